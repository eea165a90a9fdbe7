/* The evaluators on recorded episodes (see eval_recorded.h). maze3d is
 * eval_maze3d.c's protocol and imagenav eval.c's, each with the recordings as
 * its episode source (the truth optional). */
#include "model/eval_recorded.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "sim/imagenav.h"

/* Checks the common preconditions: sizes, lengths and actions. */
static int check_config(const gtmsm_model *m, const eval_recorded_config *cfg, int *truth, char *err,
                        size_t errlen) {
  const int N = cfg->memorize + cfg->predict;
  if (cfg->episodes < 1 || cfg->memorize < 2 || cfg->predict < 1 || !cfg->recs)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "eval: need recordings, memorize >= 2, predict >= 1");
  *truth = 1;
  for (int e = 0; e < cfg->episodes; e++) {
    const eval_recording *r = &cfg->recs[e];
    if (r->n < N)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                        "eval: recording %d holds %d steps; memorize %d + predict %d need %d", e, r->n,
                        cfg->memorize, cfg->predict, N);
    for (int t = 0; t < N; t++)
      if (r->actions[t] >= m->cfg.A)
        return gtmsm_fail(err, errlen, GTMSM_EINVAL, "eval: recording %d step %d: action %d, the model has %d",
                          e, t, r->actions[t], m->cfg.A);
    if (!r->truth) *truth = 0;
  }
  return 0;
}

/* Frames (N, D) in [0, 1] and actions (N) of the first N steps of r. */
static void window(const eval_recording *r, int N, int D, float *frames, int *actions) {
  image_float_from_u8(frames, r->frames, (size_t)N * D);
  for (int t = 0; t < N; t++) actions[t] = r->actions[t];
}

/* ---- imagenav: eval.c's protocol with the recordings as its source ---- */

typedef struct {
  const eval_recorded_config *cfg;
  int D;
} nav_source;

static int nav_episode(void *ctx, int e, int N, float *frames, int *actions, int *cells, float *world,
                       unsigned char *blocked) {
  (void)world, (void)blocked; /* recordings have no map */
  const nav_source *ns = ctx;
  const eval_recording *r = &ns->cfg->recs[e];
  window(r, N, ns->D, frames, actions);
  for (int t = 0; r->truth && t < N; t++) {
    cells[2 * t] = (int)r->truth[t * REC_TRUTH_N + REC_TRUTH_X];
    cells[2 * t + 1] = (int)r->truth[t * REC_TRUTH_N + REC_TRUTH_Y];
  }
  return 0;
}

int gtmsm_eval_recorded_imagenav(const gtmsm_model *m, const eval_recorded_config *cfg, eval_result *res,
                                 char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  int truth, rc = check_config(m, cfg, &truth, err, errlen);
  if (rc) return rc;
  const int E = cfg->episodes, P = cfg->predict, T = cfg->memorize, D = gtmsm_config_D(&m->cfg);
  if (truth) /* the oracle indexes the grid by the true cell */
    for (int e = 0; e < E; e++)
      for (int t = 0; t < T + P; t++) {
        const float *tr = cfg->recs[e].truth + (size_t)t * REC_TRUTH_N;
        if (!(tr[REC_TRUTH_X] >= 0 && tr[REC_TRUTH_X] < IMAGENAV_GRID && tr[REC_TRUTH_Y] >= 0 &&
              tr[REC_TRUTH_Y] < IMAGENAV_GRID))
          return gtmsm_fail(err, errlen, GTMSM_EINVAL, "eval: recording %d step %d: truth cell outside 0..%d", e,
                            t, IMAGENAV_GRID - 1);
      }
  nav_source ns = {cfg, D};
  const eval_imagenav_source src = {nav_episode, &ns, truth, 0};
  return gtmsm_eval_imagenav_from(m, &src, E, T, P, cfg->keep, cfg->threads, res, err, errlen);
}

/* ---- maze3d: eval_maze3d.c's protocol with the recordings as its source ---- */

typedef struct {
  const eval_recorded_config *cfg;
  int D, truth;
} rec_source;

static int rec_episode(void *ctx, int e, int N, float *frames, int *actions, maze3d_truth *truth) {
  const rec_source *rs = ctx;
  const eval_recording *r = &rs->cfg->recs[e];
  window(r, N, rs->D, frames, actions);
  if (!rs->truth) return 0;
  for (int t = 0; t < N; t++) {
    const float *x = r->truth + (size_t)t * REC_TRUTH_N;
    truth[t] = (maze3d_truth){.action = actions[t], .x = x[REC_TRUTH_X], .y = x[REC_TRUTH_Y],
                              .heading = x[REC_TRUTH_HEADING], .d_forward = x[REC_TRUTH_D_FORWARD],
                              .d_left = x[REC_TRUTH_D_LEFT], .d_heading = x[REC_TRUTH_D_HEADING]};
  }
  return 1;
}

int gtmsm_eval_recorded_maze3d(const gtmsm_model *m, const eval_recorded_config *cfg, m3e_result *res,
                               char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  int truth, rc = check_config(m, cfg, &truth, err, errlen);
  if (rc) return rc;
  m3e_config mc = {.episodes = cfg->episodes, .memorize = cfg->memorize, .predict = cfg->predict,
                   .seen_cells = cfg->seen_cells, .seen_deg = cfg->seen_deg, .keep = cfg->keep,
                   .threads = cfg->threads < 1 ? 1 : cfg->threads};
  rec_source rs = {cfg, gtmsm_config_D(&m->cfg), truth};
  return gtmsm_eval_maze3d_from(m, &mc, rec_episode, &rs, res, err, errlen);
}
