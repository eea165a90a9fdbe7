/* The image-navigation evaluator. Episodes run on worker threads into their
 * own slots; the sums are formed in episode order afterwards, so the result
 * does not depend on the thread count. */
#include "model/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "model/api.h"
#include "model/eval_pool.h"
#include "nn/rng.h"

const char *const EVAL_METHOD_NAMES[EVAL_METHODS] = {"model", "oracle", "no_memory"};

void eval_affine_fit(const float *states, const double *pos, int n, int S, double *coef) {
  int P = S + 1;
  double A[(GTMSM_MAX_S + 1) * (GTMSM_MAX_S + 1)] = {0}, B[(GTMSM_MAX_S + 1) * 2] = {0};
  for (int i = 0; i < n; i++) {
    double x[GTMSM_MAX_S + 1];
    for (int k = 0; k < S; k++) x[k] = states[(size_t)i * S + k];
    x[S] = 1;
    for (int a = 0; a < P; a++) {
      for (int b = 0; b < P; b++) A[a * P + b] += x[a] * x[b];
      B[a * 2] += x[a] * pos[i * 2];
      B[a * 2 + 1] += x[a] * pos[i * 2 + 1];
    }
  }
  for (int a = 0; a < P; a++) A[a * P + a] += 1e-9 * (1 + A[a * P + a]);
  /* Gaussian elimination with partial pivoting on [A | B] */
  for (int c = 0; c < P; c++) {
    int piv = c;
    for (int r = c + 1; r < P; r++)
      if (fabs(A[r * P + c]) > fabs(A[piv * P + c])) piv = r;
    if (piv != c) {
      for (int k = 0; k < P; k++) {
        double t = A[c * P + k];
        A[c * P + k] = A[piv * P + k];
        A[piv * P + k] = t;
      }
      for (int k = 0; k < 2; k++) {
        double t = B[c * 2 + k];
        B[c * 2 + k] = B[piv * 2 + k];
        B[piv * 2 + k] = t;
      }
    }
    for (int r = 0; r < P; r++) {
      if (r == c || A[c * P + c] == 0) continue;
      double f = A[r * P + c] / A[c * P + c];
      for (int k = 0; k < P; k++) A[r * P + k] -= f * A[c * P + k];
      for (int k = 0; k < 2; k++) B[r * 2 + k] -= f * B[c * 2 + k];
    }
  }
  for (int a = 0; a < P; a++)
    for (int k = 0; k < 2; k++) coef[a * 2 + k] = A[a * P + a] != 0 ? B[a * 2 + k] / A[a * P + a] : 0;
}

typedef struct {
  double *psnr;    /* (EVAL_METHODS, P) */
  int *visited;    /* (P) */
  double pos_mean, pos_final;
} episode_out;

typedef struct {
  const gtmsm_model *m;
  const eval_imagenav_source *src;
  int memorize, predict;
  eval_result *res;
  episode_out *outs;
} eval_task;

static double psnr_capped(const float *a, const float *b, int D) {
  double p = image_psnr_f32(a, b, (size_t)D);
  return p > EVAL_PSNR_CAP ? EVAL_PSNR_CAP : p;
}

static float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

/* One episode of the protocol: memorize T steps, predict P; the oracle,
 * visited and the position error only with the source's truth. */
static int run_episode(void *ctx, int e) {
  const eval_task *task = ctx;
  const gtmsm_model *m = task->m;
  const eval_imagenav_source *src = task->src;
  eval_result *res = task->res;
  episode_out *o = &task->outs[e];
  const int T = task->memorize, P = task->predict, N = T + P, D = gtmsm_config_D(&m->cfg), S = m->cfg.S,
            Z = m->cfg.Z;
  const int kept = e < res->keep, maps = kept && src->maps;
  int rc = GTMSM_OK;
  float *frames = malloc(sizeof(float) * (size_t)N * D);
  int *actions = malloc(sizeof(int) * (size_t)N), *cells = malloc(sizeof(int) * 2 * (size_t)N);
  float *pred = malloc(sizeof(float) * (size_t)P * D), *pstates = malloc(sizeof(float) * (size_t)P * S);
  float *oracle = calloc((size_t)P * D, sizeof(float)), *nomem = malloc(sizeof(float) * (size_t)P * D);
  float *mu = malloc(sizeof(float) * (size_t)T * Z), *lv = malloc(sizeof(float) * (size_t)T * Z);
  float *recon = malloc(sizeof(float) * (size_t)T * D), *zero = calloc((size_t)P * Z, sizeof(float));
  float *mean_frame = calloc((size_t)D, sizeof(float));
  double *pos = calloc((size_t)T * 2, sizeof(double));
  float *mstates = calloc((size_t)T * S, sizeof(float));
  gtmsm_memory *mem = gtmsm_memory_new(m);
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, T > P ? T : P, 0);
  if (!frames || !actions || !cells || !pred || !pstates || !oracle || !nomem || !mu || !lv || !recon || !zero ||
      !mean_frame || !pos || !mstates || !mem || !ws) {
    rc = GTMSM_ENOMEM;
    goto done;
  }
  rc = src->episode(src->ctx, e, N, frames, actions, cells,
                    maps ? res->world + (size_t)e * WORLD_SIZE * WORLD_SIZE * 3 : NULL,
                    maps ? res->blocked + (size_t)e * IMAGENAV_GRID * IMAGENAV_GRID : NULL);
  if (rc) goto done;
  /* the model */
  if ((rc = gtmsm_observe(m, mem, actions, frames, T, NULL, 0))) goto done;
  if ((rc = gtmsm_predict(m, mem, actions + T, P, GTMSM_PREDICT_MEAN, 0, pred, pstates, NULL, 0)))
    goto done;
  /* no memory: the prior mean */
  gtmsm_decode_mean(m, ws, zero, P, nomem);
  for (size_t i = 0; i < (size_t)P * D; i++) nomem[i] = clamp01(nomem[i]);
  const float *outs[EVAL_METHODS] = {pred, oracle, nomem};
  for (int p = 0; p < P; p++) {
    const float *x = frames + (size_t)(T + p) * D;
    o->psnr[EVAL_MODEL * P + p] = psnr_capped(pred + (size_t)p * D, x, D);
    o->psnr[EVAL_NO_MEMORY * P + p] = psnr_capped(nomem + (size_t)p * D, x, D);
    o->psnr[EVAL_ORACLE * P + p] = NAN;
    o->visited[p] = 0;
  }
  o->pos_mean = o->pos_final = NAN;
  if (src->truth) {
    /* the oracle: the VAE reconstruction of the frame last seen at each position */
    gtmsm_encode(m, ws, frames, T, mu, lv);
    gtmsm_decode_mean(m, ws, mu, T, recon);
    int last[IMAGENAV_GRID][IMAGENAV_GRID];
    for (int r = 0; r < IMAGENAV_GRID; r++)
      for (int c = 0; c < IMAGENAV_GRID; c++) last[r][c] = -1;
    for (int t = 0; t < T; t++) {
      last[cells[2 * t + 1]][cells[2 * t]] = t;
      for (int d = 0; d < D; d++) mean_frame[d] += frames[(size_t)t * D + d] / (float)T;
    }
    for (int p = 0; p < P; p++) {
      int l = last[cells[2 * (T + p) + 1]][cells[2 * (T + p)]];
      o->visited[p] = l >= 0;
      float *dst = oracle + (size_t)p * D;
      for (int d = 0; d < D; d++) dst[d] = clamp01(l >= 0 ? recon[(size_t)l * D + d] : mean_frame[d]);
      o->psnr[EVAL_ORACLE * P + p] = psnr_capped(dst, frames + (size_t)(T + p) * D, D);
    }
    /* position error: affine fit over the memorized steps (the memory's keys) */
    for (int t = 0; t < T; t++) {
      memcpy(mstates + (size_t)t * S, dnd_key(mem->mem, (size_t)t), sizeof(float) * (size_t)S);
      pos[t * 2] = cells[2 * t];
      pos[t * 2 + 1] = cells[2 * t + 1];
    }
    double coef[(GTMSM_MAX_S + 1) * 2];
    eval_affine_fit(mstates, pos, T, S, coef);
    double sum = 0, dist = 0;
    float *xyt = maps ? res->xy_true + (size_t)e * N * 2 : NULL, *xym = maps ? res->xy_model + (size_t)e * N * 2 : NULL;
    for (int t = 0; t < N; t++) {
      const float *st = t < T ? mstates + (size_t)t * S : pstates + (size_t)(t - T) * S;
      double xy[2];
      for (int k = 0; k < 2; k++) {
        xy[k] = coef[S * 2 + k];
        for (int j = 0; j < S; j++) xy[k] += coef[j * 2 + k] * st[j];
      }
      if (maps) {
        xyt[t * 2] = (float)cells[2 * t];
        xyt[t * 2 + 1] = (float)cells[2 * t + 1];
        xym[t * 2] = (float)xy[0];
        xym[t * 2 + 1] = (float)xy[1];
      }
      if (t < T) continue;
      double dx = xy[0] - cells[2 * t], dy = xy[1] - cells[2 * t + 1];
      dist = sqrt(dx * dx + dy * dy);
      sum += dist;
    }
    o->pos_mean = sum / P;
    o->pos_final = dist;
  }
  if (kept) {
    size_t off = (size_t)e * P * D;
    memcpy(res->truth + off, frames + (size_t)T * D, sizeof(float) * (size_t)P * D);
    for (int k = 0; k < EVAL_METHODS; k++) memcpy(res->pred[k] + off, outs[k], sizeof(float) * (size_t)P * D);
    memcpy(res->visited_flags + (size_t)e * P, o->visited, sizeof(int) * (size_t)P);
  }
done:
  free(frames);
  free(actions);
  free(cells);
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

static void summarise(const double *psnr, const int *visited_all, int E, int P, eval_summary *s) {
  double sums[6] = {0};
  long counts[6] = {0};
  for (int e = 0; e < E; e++)
    for (int p = 0; p < P; p++) {
      double v = psnr[(size_t)e * P + p];
      int step = p + 1; /* prediction steps are numbered from 1 */
      sums[0] += v, counts[0]++;
      if (step <= 32) sums[1] += v, counts[1]++;
      if (step >= 200 && step <= 256) sums[2] += v, counts[2]++;
      if (visited_all[(size_t)e * P + p]) sums[3] += v, counts[3]++;
      else sums[4] += v, counts[4]++;
      if (step >= 200 && step <= 256 && visited_all[(size_t)e * P + p]) sums[5] += v, counts[5]++;
    }
  double *out[6] = {&s->all, &s->steps_1_32, &s->steps_200_256, &s->visited, &s->unvisited,
                    &s->visited_200_256};
  for (int i = 0; i < 6; i++) *out[i] = counts[i] ? sums[i] / (double)counts[i] : NAN;
}

int gtmsm_eval_imagenav_from(const gtmsm_model *m, const eval_imagenav_source *src, int E, int memorize, int P,
                             int keep, int threads, eval_result *res, char *err, size_t errlen) {
  const int D = gtmsm_config_D(&m->cfg);
  int rc = GTMSM_OK;
  memset(res, 0, sizeof *res);
  if (E < 1 || memorize < 2 || P < 1)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "need episodes >= 1, memorize >= 2, predict >= 1");
  if (m->cfg.H != IMAGENAV_VIEW || m->cfg.W != IMAGENAV_VIEW || m->cfg.C != 3 || m->cfg.A != IMAGENAV_ACTIONS)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "model is not an image-navigation model (frames %dx%dx%d, %d actions)",
                      m->cfg.H, m->cfg.W, m->cfg.C, m->cfg.A);
  episode_out *outs = calloc((size_t)E, sizeof *outs);
  double *psnr_all = calloc((size_t)EVAL_METHODS * E * P, sizeof(double));
  double *slot = malloc(sizeof(double) * (size_t)E * EVAL_METHODS * P); /* per episode: (METHODS, P) */
  int *vis_all = calloc((size_t)E * P, sizeof(int)), *rcs = calloc((size_t)E, sizeof(int));
  res->predict = P;
  res->keep = keep < E ? keep : E;
  res->D = D;
  res->memorize = memorize;
  res->psnr = calloc((size_t)EVAL_METHODS * P, sizeof(double));
  res->visited = calloc((size_t)P, sizeof(double));
  res->truth = calloc((size_t)res->keep * P * D + 1, sizeof(float));
  res->visited_flags = calloc((size_t)res->keep * P + 1, sizeof(int));
  for (int k = 0; k < EVAL_METHODS; k++) res->pred[k] = calloc((size_t)res->keep * P * D + 1, sizeof(float));
  int ok = outs && psnr_all && slot && vis_all && rcs && res->psnr && res->visited && res->truth &&
           res->visited_flags && res->pred[0] && res->pred[1] && res->pred[2];
  if (ok && src->maps) {
    const size_t kn = (size_t)res->keep * (memorize + P);
    res->world = calloc((size_t)res->keep * WORLD_SIZE * WORLD_SIZE * 3 + 1, sizeof(float));
    res->blocked = calloc((size_t)res->keep * IMAGENAV_GRID * IMAGENAV_GRID + 1, 1);
    res->xy_true = calloc(kn * 2 + 1, sizeof(float));
    res->xy_model = calloc(kn * 2 + 1, sizeof(float));
    ok = res->world && res->blocked && res->xy_true && res->xy_model;
  }
  if (!ok) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  for (int e = 0; e < E; e++) {
    outs[e].psnr = slot + (size_t)e * EVAL_METHODS * P;
    outs[e].visited = vis_all + (size_t)e * P;
  }
  eval_task task = {m, src, memorize, P, res, outs};
  eval_pool_run(E, threads > 0 ? threads : 1, run_episode, &task, rcs);
  for (int e = 0; e < E && !rc; e++)
    if (rcs[e]) rc = gtmsm_fail(err, errlen, rcs[e], "episode %d failed (code %d)", e, rcs[e]);
  if (rc) goto done;
  for (int k = 0; k < EVAL_METHODS; k++) {
    for (int e = 0; e < E; e++)
      for (int p = 0; p < P; p++) {
        double v = outs[e].psnr[k * P + p];
        psnr_all[((size_t)k * E + e) * P + p] = v;
        res->psnr[(size_t)k * P + p] += v / E;
      }
    summarise(psnr_all + (size_t)k * E * P, vis_all, E, P, &res->summary[k]);
    if (!src->truth) /* nothing is known to be visited */
      res->summary[k].visited = res->summary[k].unvisited = res->summary[k].visited_200_256 = NAN;
  }
  for (int e = 0; e < E; e++) {
    for (int p = 0; p < P; p++) res->visited[p] += src->truth ? (double)vis_all[(size_t)e * P + p] / E : NAN;
    res->pos_mean += outs[e].pos_mean / E;
    res->pos_final += outs[e].pos_final / E;
  }
done:
  free(outs);
  free(psnr_all);
  free(slot);
  free(vis_all);
  free(rcs);
  if (rc) eval_result_free(res);
  return rc;
}

/* The simulator as an episode source: a world of cfg->worlds (or a
 * procedural one) and the episode's seed, as before the sources existed. */
static int sim_episode(void *ctx, int e, int N, float *frames, int *actions, int *cells, float *world_out,
                       unsigned char *blocked_out) {
  const eval_config *cfg = ctx;
  float *world = malloc(sizeof(float) * WORLD_SIZE * WORLD_SIZE * 3);
  imagenav_truth *truth = malloc(sizeof *truth * (size_t)N);
  if (!world || !truth) {
    free(world);
    free(truth);
    return GTMSM_ENOMEM;
  }
  uint64_t es = rng_mix(cfg->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)e + 0xE7A1);
  if (cfg->worlds)
    memcpy(world, worldset_get(cfg->worlds, e % cfg->worlds->n), sizeof(float) * WORLD_SIZE * WORLD_SIZE * 3);
  else
    world_generate(world, es);
  imagenav_episode(world, &cfg->env, es, N, frames, actions, truth);
  for (int t = 0; t < N; t++) {
    cells[2 * t] = truth[t].col;
    cells[2 * t + 1] = truth[t].row;
  }
  if (world_out) memcpy(world_out, world, sizeof(float) * WORLD_SIZE * WORLD_SIZE * 3);
  if (blocked_out) {
    imagenav env;
    imagenav_episode_env(world, &cfg->env, es, &env);
    memcpy(blocked_out, env.blocked, sizeof env.blocked);
  }
  free(world);
  free(truth);
  return GTMSM_OK;
}

int gtmsm_eval_imagenav(const gtmsm_model *m, const eval_config *cfg, eval_result *res, char *err,
                        size_t errlen) {
  const eval_imagenav_source src = {sim_episode, (void *)cfg, 1, 1};
  return gtmsm_eval_imagenav_from(m, &src, cfg->episodes, cfg->memorize, cfg->predict, cfg->keep, cfg->threads,
                                  res, err, errlen);
}

void eval_result_free(eval_result *res) {
  free(res->psnr);
  free(res->visited);
  free(res->truth);
  free(res->visited_flags);
  for (int k = 0; k < EVAL_METHODS; k++) free(res->pred[k]);
  free(res->world);
  free(res->blocked);
  free(res->xy_true);
  free(res->xy_model);
  memset(res, 0, sizeof *res);
}
