/* The evaluators on recorded episodes (see eval_recorded.h). maze3d is
 * eval_maze3d.c's protocol with the recordings as its episode source; the
 * imagenav one follows eval.c step for step, with the frames taken from the
 * recording and the truth optional. Episodes run on worker threads
 * into their own slots and are summed in episode order afterwards, so the
 * result does not depend on the thread count. */
#include "model/eval_recorded.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "model/api.h"
#include "model/eval_pool.h"
#include "model/gtmsm_internal.h"
#include "sim/imagenav.h"

typedef struct {
  double *psnr;               /* (methods, P) */
  int *seen;                  /* (P): visited (imagenav) or seen (maze3d) */
  double *head_err, *pos_err; /* (P) */
  double head_scale;
  int rc;
} episode_out;

typedef struct episode_task episode_task;
typedef int (*episode_fn)(const episode_task *task, int e, episode_out *o);
struct episode_task {
  const gtmsm_model *m;
  const eval_recorded_config *cfg;
  int truth;       /* every recording has truth */
  episode_fn run;
  void *res;       /* eval_result or m3e_result: kept episodes */
  episode_out *outs;
};

static int task_one(void *p, int e) {
  const episode_task *task = p;
  return task->run(task, e, &task->outs[e]);
}

/* Runs task->run for every episode on cfg->threads threads; 0 or GTMSM_ENOMEM. */
static int run_all(const episode_task *task) {
  int E = task->cfg->episodes, *rcs = calloc((size_t)E, sizeof(int));
  if (!rcs) return GTMSM_ENOMEM;
  eval_pool_run(E, task->cfg->threads, task_one, (void *)task, rcs);
  for (int e = 0; e < E; e++) task->outs[e].rc = rcs[e];
  free(rcs);
  return 0;
}

static double psnr_capped(const float *a, const float *b, int D) {
  double p = image_psnr_f32(a, b, (size_t)D);
  return p > EVAL_PSNR_CAP ? EVAL_PSNR_CAP : p;
}

static float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

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

/* ---- imagenav ---- */

static int imagenav_episode_run(const episode_task *task, int e, episode_out *o) {
  const gtmsm_model *m = task->m;
  const eval_recorded_config *cfg = task->cfg;
  const eval_recording *r = &cfg->recs[e];
  eval_result *res = task->res;
  const int T = cfg->memorize, P = cfg->predict, N = T + P, D = gtmsm_config_D(&m->cfg), S = m->cfg.S,
            Z = m->cfg.Z;
  int rc = GTMSM_OK;
  float *frames = malloc(sizeof(float) * (size_t)N * D);
  int *actions = malloc(sizeof(int) * (size_t)N);
  float *pred = malloc(sizeof(float) * (size_t)P * D), *pstates = malloc(sizeof(float) * (size_t)P * S);
  float *oracle = calloc((size_t)P * D, sizeof(float)), *nomem = malloc(sizeof(float) * (size_t)P * D);
  float *mu = malloc(sizeof(float) * (size_t)T * Z), *lv = malloc(sizeof(float) * (size_t)T * Z);
  float *recon = malloc(sizeof(float) * (size_t)T * D), *zero = calloc((size_t)P * Z, sizeof(float));
  float *mean_frame = calloc((size_t)D, sizeof(float));
  double *pos = calloc((size_t)T * 2, sizeof(double));
  float *mstates = calloc((size_t)T * S, sizeof(float));
  gtmsm_memory *mem = gtmsm_memory_new(m);
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, T > P ? T : P, 0);
  if (!frames || !actions || !pred || !pstates || !oracle || !nomem || !mu || !lv || !recon || !zero ||
      !mean_frame || !pos || !mstates || !mem || !ws) {
    rc = GTMSM_ENOMEM;
    goto done;
  }
  window(r, N, D, frames, actions);
  if ((rc = gtmsm_observe(m, mem, actions, frames, T, NULL, 0))) goto done;
  if ((rc = gtmsm_predict(m, mem, actions + T, P, GTMSM_PREDICT_MEAN, 0, pred, pstates, NULL, 0))) goto done;
  gtmsm_decode_mean(m, ws, zero, P, nomem);
  for (size_t i = 0; i < (size_t)P * D; i++) nomem[i] = clamp01(nomem[i]);
  for (int p = 0; p < P; p++) {
    o->psnr[EVAL_MODEL * P + p] = psnr_capped(pred + (size_t)p * D, frames + (size_t)(T + p) * D, D);
    o->psnr[EVAL_NO_MEMORY * P + p] = psnr_capped(nomem + (size_t)p * D, frames + (size_t)(T + p) * D, D);
    o->psnr[EVAL_ORACLE * P + p] = NAN;
    o->seen[p] = 0;
  }
  o->pos_err[P - 1] = NAN;
  o->head_scale = NAN;
  if (task->truth) {
    /* the oracle: the VAE reconstruction of the frame last seen in the true cell */
    gtmsm_encode(m, ws, frames, T, mu, lv);
    gtmsm_decode_mean(m, ws, mu, T, recon);
    int last[IMAGENAV_GRID][IMAGENAV_GRID];
    for (int y = 0; y < IMAGENAV_GRID; y++)
      for (int x = 0; x < IMAGENAV_GRID; x++) last[y][x] = -1;
    for (int t = 0; t < T; t++) {
      last[(int)r->truth[t * REC_TRUTH_N + REC_TRUTH_Y]][(int)r->truth[t * REC_TRUTH_N + REC_TRUTH_X]] = t;
      for (int d = 0; d < D; d++) mean_frame[d] += frames[(size_t)t * D + d] / (float)T;
    }
    for (int p = 0; p < P; p++) {
      const float *tr = r->truth + (size_t)(T + p) * REC_TRUTH_N;
      int l = last[(int)tr[REC_TRUTH_Y]][(int)tr[REC_TRUTH_X]];
      o->seen[p] = l >= 0;
      float *dst = oracle + (size_t)p * D;
      for (int d = 0; d < D; d++) dst[d] = clamp01(l >= 0 ? recon[(size_t)l * D + d] : mean_frame[d]);
      o->psnr[EVAL_ORACLE * P + p] = psnr_capped(dst, frames + (size_t)(T + p) * D, D);
    }
    /* position error: affine fit over the memorized steps (the memory's keys) */
    for (int t = 0; t < T; t++) {
      memcpy(mstates + (size_t)t * S, dnd_key(mem->mem, (size_t)t), sizeof(float) * (size_t)S);
      pos[t * 2] = r->truth[t * REC_TRUTH_N + REC_TRUTH_X];
      pos[t * 2 + 1] = r->truth[t * REC_TRUTH_N + REC_TRUTH_Y];
    }
    double coef[(GTMSM_MAX_S + 1) * 2];
    eval_affine_fit(mstates, pos, T, S, coef);
    for (int p = 0; p < P; p++) {
      double xy[2];
      for (int k = 0; k < 2; k++) {
        xy[k] = coef[S * 2 + k];
        for (int j = 0; j < S; j++) xy[k] += coef[j * 2 + k] * pstates[(size_t)p * S + j];
      }
      const float *tr = r->truth + (size_t)(T + p) * REC_TRUTH_N;
      o->pos_err[p] = hypot(xy[0] - tr[REC_TRUTH_X], xy[1] - tr[REC_TRUTH_Y]);
    }
  }
  if (e < res->keep) {
    size_t off = (size_t)e * P * D;
    const float *outs[EVAL_METHODS] = {pred, oracle, nomem};
    memcpy(res->truth + off, frames + (size_t)T * D, sizeof(float) * (size_t)P * D);
    for (int k = 0; k < EVAL_METHODS; k++) memcpy(res->pred[k] + off, outs[k], sizeof(float) * (size_t)P * D);
    memcpy(res->visited_flags + (size_t)e * P, o->seen, sizeof(int) * (size_t)P);
  }
done:
  free(frames);
  free(actions);
  free(pred);
  free(pstates);
  free(oracle);
  free(nomem);
  free(mu);
  free(lv);
  free(recon);
  free(zero);
  free(mean_frame);
  free(pos);
  free(mstates);
  gtmsm_memory_free(mem);
  gtmsm_ws_free(ws);
  return rc;
}

/* Allocates the per-episode slots: (methods + 2) x P doubles and P ints each. */
static int outs_new(episode_out **outs, double **slab, int **seen, int E, int P, int methods) {
  *outs = calloc((size_t)E, sizeof **outs);
  *slab = calloc((size_t)E * P * (methods + 2), sizeof(double));
  *seen = calloc((size_t)E * P, sizeof(int));
  if (!*outs || !*slab || !*seen) return GTMSM_ENOMEM;
  for (int e = 0; e < E; e++) {
    double *b = *slab + (size_t)e * P * (methods + 2);
    (*outs)[e] = (episode_out){.psnr = b, .head_err = b + (size_t)methods * P,
                               .pos_err = b + (size_t)(methods + 1) * P, .seen = *seen + (size_t)e * P};
  }
  return 0;
}

static int first_failure(const episode_out *outs, int E, char *err, size_t errlen) {
  for (int e = 0; e < E; e++)
    if (outs[e].rc) return gtmsm_fail(err, errlen, outs[e].rc, "eval: recording %d failed (code %d)", e, outs[e].rc);
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
  episode_out *outs = NULL;
  double *slab = NULL;
  int *seen = NULL;
  res->predict = P;
  res->keep = cfg->keep < E ? cfg->keep : E;
  res->D = D;
  res->psnr = calloc((size_t)EVAL_METHODS * P, sizeof(double));
  res->visited = calloc((size_t)P, sizeof(double));
  res->truth = calloc((size_t)res->keep * P * D + 1, sizeof(float));
  res->visited_flags = calloc((size_t)res->keep * P + 1, sizeof(int));
  for (int k = 0; k < EVAL_METHODS; k++) res->pred[k] = calloc((size_t)res->keep * P * D + 1, sizeof(float));
  rc = outs_new(&outs, &slab, &seen, E, P, EVAL_METHODS);
  if (rc || !res->psnr || !res->visited || !res->truth || !res->visited_flags || !res->pred[0] || !res->pred[1] ||
      !res->pred[2]) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  episode_task task = {m, cfg, truth, imagenav_episode_run, res, outs};
  if ((rc = run_all(&task))) {
    rc = gtmsm_fail(err, errlen, rc, "out of memory");
    goto done;
  }
  if ((rc = first_failure(outs, E, err, errlen))) goto done;
  /* sums in episode order; the summary groups as eval.c's */
  for (int k = 0; k < EVAL_METHODS; k++) {
    double sums[6] = {0};
    long counts[6] = {0};
    for (int e = 0; e < E; e++)
      for (int p = 0; p < P; p++) {
        double v = outs[e].psnr[k * P + p];
        int step = p + 1, vis = outs[e].seen[p];
        res->psnr[(size_t)k * P + p] += v / E;
        sums[0] += v, counts[0]++;
        if (step <= 32) sums[1] += v, counts[1]++;
        if (step >= 200 && step <= 256) sums[2] += v, counts[2]++;
        if (vis) sums[3] += v, counts[3]++;
        else sums[4] += v, counts[4]++;
        if (step >= 200 && step <= 256 && vis) sums[5] += v, counts[5]++;
      }
    eval_summary *s = &res->summary[k];
    double *dst[6] = {&s->all, &s->steps_1_32, &s->steps_200_256, &s->visited, &s->unvisited, &s->visited_200_256};
    for (int i = 0; i < 6; i++) *dst[i] = counts[i] ? sums[i] / (double)counts[i] : NAN;
    if (!truth) s->visited = s->unvisited = s->visited_200_256 = NAN; /* nothing is known to be visited */
  }
  for (int e = 0; e < E; e++) {
    for (int p = 0; p < P; p++) {
      res->visited[p] += truth ? (double)outs[e].seen[p] / E : NAN;
      res->pos_mean += outs[e].pos_err[p] / ((double)E * P);
    }
    res->pos_final += outs[e].pos_err[P - 1] / E;
  }
  if (!truth) res->pos_mean = res->pos_final = NAN;
done:
  free(outs);
  free(slab);
  free(seen);
  if (rc) eval_result_free(res);
  return rc;
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
