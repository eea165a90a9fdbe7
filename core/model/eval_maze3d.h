/* Evaluation on maze3d (paper 4.2): memorize the first T steps of a held-out
 * episode, predict the next P from the actions alone, and compare per-step
 * PSNR of the model with four baselines:
 *   reconstruction  decode(encode(true frame)): the ceiling of this VAE;
 *   nearest_view    the memorized raw frame whose true pose is nearest
 *                   (position in cells + heading difference in radians): an
 *                   oracle that copies views;
 *   last_frame      the last memorized frame;
 *   no_memory       the decoder of the prior with an empty memory (z = 0).
 * A prediction step is "seen" when a memorized frame had the same true pose
 * (within seen_cells and seen_deg). The learned heading s3 is compared with
 * the true (unwrapped) heading after fitting offset and scale on the
 * memorized steps; the learned (s1, s2) with the true (x, y) after the
 * least-squares similarity transform (rotation, scale, translation, a mirror
 * image allowed) fitted on the memorized steps, applied unchanged to the
 * predicted ones. */
#ifndef GTMSM_MODEL_EVAL_MAZE3D_H
#define GTMSM_MODEL_EVAL_MAZE3D_H

#include <stdint.h>

#include "model/gtmsm.h"
#include "sim/maze3d.h"

enum { M3E_MODEL, M3E_RECONSTRUCTION, M3E_NEAREST_VIEW, M3E_LAST_FRAME, M3E_NO_MEMORY, M3E_METHODS };
extern const char *const M3E_METHOD_NAMES[M3E_METHODS];

typedef struct {
  int episodes, memorize, predict;
  uint64_t seed;
  maze3d_config maze; /* layout, size, textures; the seed is set per episode */
  int scenario;
  double seen_cells, seen_deg;
  int keep;           /* episodes whose frames are kept for strips */
  int threads;
} m3e_config;

typedef struct {
  double all, seen, unseen; /* NAN where no step fell in the group */
} m3e_summary;

typedef struct {
  int predict;
  double *psnr;       /* (M3E_METHODS, predict): mean over episodes per step */
  double *seen;       /* (predict): share of episodes where the step was seen */
  m3e_summary summary[M3E_METHODS];
  double heading_mean, heading_final;        /* degrees */
  double heading_scale; /* fitted true radians per unit of s3 (mean): 1 when s3 is an angle, which the
                           periodic key map needs; a constant turn fits any scale */
  double pos_mean, pos_at_150, pos_final;    /* cells (pos_at_150 NAN if P < 150 - T) */
  int keep, D;
  float *pred[M3E_METHODS], *truth;          /* kept episodes: (keep, predict, D) */
  int *seen_flags;                           /* (keep, predict) */
  float *heading_true, *heading_model;       /* (keep, T + P) degrees, for the dial plot */
  float *xy_true, *xy_model;                 /* (keep, T + P, 2) map cells: the true trajectory and the
                                                learned (s1, s2) through the fitted similarity */
  uint8_t **map;                             /* (keep) top-down maps (map_h, map_w, 3), new; NULL entries
                                                for episodes without a maze (recordings) */
  int *map_w, *map_h, *map_cell;             /* (keep) their size and pixels per cell */
} m3e_result;

/* Runs the evaluation, deterministic in cfg->seed for any thread count. Fills
 * res (free with m3e_result_free). Returns 0 or a GTMSM_E* code. */
int gtmsm_eval_maze3d(const gtmsm_model *m, const m3e_config *cfg, m3e_result *res, char *err,
                      size_t errlen);
void m3e_result_free(m3e_result *res);

/* Episodes from elsewhere (recordings): src(ctx, e, N, frames, actions,
 * truth) fills episode e's first N steps (frames (N, D) in [0, 1], actions
 * (N), truth (N)) and returns 1 with the truth filled, 0 without (then the
 * nearest view, seen flags, heading and position errors are NAN, and their
 * summaries too unless every episode has it), or a negative GTMSM_E* code.
 * Called from worker threads, each e once. cfg's maze and scenario are not
 * used, nor are maps drawn (res->map[e] stays NULL). */
typedef int (*m3e_source)(void *ctx, int e, int N, float *frames, int *actions, maze3d_truth *truth);
int gtmsm_eval_maze3d_from(const gtmsm_model *m, const m3e_config *cfg, m3e_source src, void *ctx, m3e_result *res,
                           char *err, size_t errlen);

/* Least-squares similarity (rotation, uniform scale, translation; a mirror
 * image allowed, since nothing fixes the handedness of a learned map) from
 * the points w (n, 2) to z (n, 2): as complex numbers z = a w + b or
 * z = a conj(w) + b, whichever fits better. out (5): ar, ai, br, bi, mirror. */
void eval_similarity_fit(const float *w, const double *z, int n, double *out);
/* The fitted map applied to the point (wr, wi). */
void eval_similarity_apply(const double *f, double wr, double wi, double *x, double *y);

#endif
