/* Evaluation on image navigation (the paper's test protocol): memorize T steps
 * of a held-out episode, predict the next P from the actions alone, and
 * compare per-step PSNR of the model against two baselines:
 *   oracle     knows the true position: the VAE reconstruction of the frame
 *              last seen there while memorizing, or the mean memorized frame
 *              if the position was never seen (what a perfect memory reaches);
 *   no_memory  the same decoder on the prior mean z = 0 (no spatial memory).
 * Position error maps the learned states onto the true grid with the
 * least-squares affine fit over the memorized steps, then measures the
 * distance in grid cells over the predicted steps. */
#ifndef GTMSM_MODEL_EVAL_H
#define GTMSM_MODEL_EVAL_H

#include <stdint.h>

#include "model/gtmsm.h"
#include "sim/imagenav.h"
#include "sim/worldset.h"

#define EVAL_PSNR_CAP 60.0 /* dB: identical frames would be +inf */

enum { EVAL_MODEL, EVAL_ORACLE, EVAL_NO_MEMORY, EVAL_METHODS };
extern const char *const EVAL_METHOD_NAMES[EVAL_METHODS];

typedef struct {
  int episodes, memorize, predict;
  uint64_t seed;
  const worldset *worlds; /* NULL: procedural worlds from the seed */
  imagenav_options env;
  int keep;               /* episodes whose frames are kept for strips */
  int threads;
} eval_config;

typedef struct {
  double all, steps_1_32, steps_200_256, visited, unvisited;
  double visited_200_256; /* visited positions within steps 200-256 (the shipping target) */
} eval_summary;

typedef struct {
  int predict;
  double *psnr;        /* (EVAL_METHODS, predict): mean over episodes per step */
  double *visited;     /* (predict): share of episodes whose position was seen */
  eval_summary summary[EVAL_METHODS];
  double pos_mean, pos_final; /* grid cells */
  /* kept episodes: (keep, predict, D) floats each, and true positions */
  int keep, D;
  float *truth, *pred[EVAL_METHODS];
  int *visited_flags;  /* (keep, predict) */
  /* kept simulated episodes (NULL for recordings): the world and its
   * obstacles, the true and the learned trajectory (the states through the
   * affine fit of the memorized steps), memorized then predicted */
  int memorize;
  float *world;        /* (keep, 32, 32, 3) */
  unsigned char *blocked; /* (keep, 9, 9) [row][col] */
  float *xy_true, *xy_model; /* (keep, memorize + predict, 2) grid (col, row) */
} eval_result;

/* Runs the evaluation (deterministic in cfg->seed for any thread count).
 * Fills res (free with eval_result_free). Returns 0 or a GTMSM_E* code. */
int gtmsm_eval_imagenav(const gtmsm_model *m, const eval_config *cfg, eval_result *res, char *err,
                        size_t errlen);
void eval_result_free(eval_result *res);

/* Least-squares affine map from states (n, S) to positions (n, 2):
 * coef (S + 1, 2), with a tiny ridge so collapsed states do not fail. */
void eval_affine_fit(const float *states, const double *pos, int n, int S, double *coef);

#endif
