/* Pictures of the CLI: evaluation plot and prediction strips. */
#ifndef GTMSM_TOOLS_FIGURES_H
#define GTMSM_TOOLS_FIGURES_H

#include <stddef.h>

#include "model/eval.h"
#include "model/eval_maze3d.h"

/* A strip of nrows sequences (each (n, H, W, C) floats in [0, 1], borrowed)
 * sampled at up to 16 evenly spaced steps, frames scaled x4, labels at the
 * left; step numbers on top, in red where flags[step] == 0 (flags may be NULL). */
int figures_strip(const char *path, const float *rows[], const char *labels[], int nrows, int n,
                  int H, int W, int C, const int *flags, char *err, size_t errlen);

/* Writes OUT/psnr.csv, OUT/psnr.png and OUT/strip_<e>.png for the kept
 * episodes (frames H x W x C). */
int figures_eval(const char *out, const eval_result *res, int H, int W, int C, char *err, size_t errlen);

/* maze3d: OUT/psnr.csv and psnr.png (every method), OUT/strip_<e>.png (true /
 * model / reconstruction / nearest view, unseen steps in red), OUT/map_<e>.png
 * (the room from above, true and learned trajectories) and
 * OUT/heading.png (true and learned heading of the first kept episode;
 * memorize: its memorized steps). */
int figures_eval_maze3d(const char *out, const m3e_result *res, int memorize, int H, int W, int C, char *err,
                        size_t errlen);

#endif
