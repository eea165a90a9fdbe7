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
  /* kept episodes of a source with maps (NULL for recordings): the world and its
   * obstacles, the true and the learned trajectory (the states through the
   * affine fit of the memorized steps), memorized then predicted */
  int memorize;
  float *world;        /* (keep, 32, 32, 3) */
  unsigned char *blocked; /* (keep, 9, 9) [row][col] */
  float *xy_true, *xy_model; /* (keep, memorize + predict, 2) grid (col, row) */
} eval_result;

/* Where the episodes of an evaluation come from: episode(ctx, e, N, ...)
 * fills frames (N, D), actions (N) and, when truth is set, cells (N, 2: the
 * true col, row of every step); world (32, 32, 3) and blocked (9, 9) for the
 * map figure when they are not NULL (asked only when maps is set). Returns 0
 * or a GTMSM_E* code. */
typedef struct {
  int (*episode)(void *ctx, int e, int N, float *frames, int *actions, int *cells, float *world,
                 unsigned char *blocked);
  void *ctx;
  int truth, maps;
} eval_imagenav_source;

/* The image-navigation protocol on E episodes of src (memorize, then predict
 * from the actions alone; the oracle, visited and the position error need
 * truth). Fills res (free with eval_result_free); deterministic for any
 * thread count. Returns 0 or a GTMSM_E* code with a message. */
int gtmsm_eval_imagenav_from(const gtmsm_model *m, const eval_imagenav_source *src, int E, int memorize, int P,
                             int keep, int threads, eval_result *res, char *err, size_t errlen);

/* Runs the evaluation (deterministic in cfg->seed for any thread count).
 * Fills res (free with eval_result_free). Returns 0 or a GTMSM_E* code. */
int gtmsm_eval_imagenav(const gtmsm_model *m, const eval_config *cfg, eval_result *res, char *err,
                        size_t errlen);
void eval_result_free(eval_result *res);

/* Least-squares affine map from states (n, S) to positions (n, 2):
 * coef (S + 1, 2), with a tiny ridge so collapsed states do not fail. */
void eval_affine_fit(const float *states, const double *pos, int n, int S, double *coef);

#endif
