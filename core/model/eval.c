/* The image-navigation evaluator. Episodes run on worker threads into their
 * own slots; the sums are formed in episode order afterwards, so the result
 * does not depend on the thread count. */
#include "model/eval.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "model/api.h"
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
  int rc;
} episode_out;

typedef struct {
  const gtmsm_model *m;
  const eval_config *cfg;
  eval_result *res;
  episode_out *outs;
  int tid, nthreads;
} eval_worker;

static double psnr_capped(const float *a, const float *b, int D) {
  double p = image_psnr_f32(a, b, (size_t)D);
  return p > EVAL_PSNR_CAP ? EVAL_PSNR_CAP : p;
}

static int run_episode(const gtmsm_model *m, const eval_config *cfg, int e, episode_out *o,
                       eval_result *res) {
  const int T = cfg->memorize, P = cfg->predict, N = T + P, D = gtmsm_config_D(&m->cfg),
            S = m->cfg.S, Z = m->cfg.Z;
  int rc = GTMSM_OK;
  float *world = malloc(sizeof(float) * WORLD_SIZE * WORLD_SIZE * 3);
  float *frames = malloc(sizeof(float) * (size_t)N * D);
  int *actions = malloc(sizeof(int) * (size_t)N);
  imagenav_truth *truth = malloc(sizeof *truth * (size_t)N);
  float *pred = malloc(sizeof(float) * (size_t)P * D), *pstates = malloc(sizeof(float) * (size_t)P * S);
  float *oracle = malloc(sizeof(float) * (size_t)P * D), *nomem = malloc(sizeof(float) * (size_t)P * D);
  float *mu = malloc(sizeof(float) * (size_t)T * Z), *lv = malloc(sizeof(float) * (size_t)T * Z);
  float *recon = malloc(sizeof(float) * (size_t)T * D), *zero = calloc((size_t)P * Z, sizeof(float));
  float *mean_frame = calloc((size_t)D, sizeof(float));
  double *pos = calloc((size_t)T * 2, sizeof(double));
  float *mstates = calloc((size_t)T * S, sizeof(float));
  gtmsm_memory *mem = gtmsm_memory_new(m);
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, T > P ? T : P, 0);
  if (!world || !frames || !actions || !truth || !pred || !pstates || !oracle || !nomem || !mu ||
      !lv || !recon || !zero || !mean_frame || !pos || !mstates || !mem || !ws) {
    rc = GTMSM_ENOMEM;
    goto done;
  }
  uint64_t es = rng_mix(cfg->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)e + 0xE7A1);
  if (cfg->worlds)
    memcpy(world, worldset_get(cfg->worlds, e % cfg->worlds->n), sizeof(float) * WORLD_SIZE * WORLD_SIZE * 3);
  else
    world_generate(world, es);
  imagenav_episode(world, &cfg->env, es, N, frames, actions, truth);
  /* the model */
  if ((rc = gtmsm_observe(m, mem, actions, frames, T, NULL, 0))) goto done;
  if ((rc = gtmsm_predict(m, mem, actions + T, P, GTMSM_PREDICT_MEAN, 0, pred, pstates, NULL, 0)))
    goto done;
  /* the oracle: VAE reconstruction of the frame last seen at each position */
  gtmsm_encode(m, ws, frames, T, mu, lv);
  gtmsm_decode_mean(m, ws, mu, T, recon);
  int last[IMAGENAV_GRID][IMAGENAV_GRID];
  for (int r = 0; r < IMAGENAV_GRID; r++)
    for (int c = 0; c < IMAGENAV_GRID; c++) last[r][c] = -1;
  for (int t = 0; t < T; t++) {
    last[truth[t].row][truth[t].col] = t;
    for (int d = 0; d < D; d++) mean_frame[d] += frames[(size_t)t * D + d] / (float)T;
  }
  for (int p = 0; p < P; p++) {
    const imagenav_truth *tr = &truth[T + p];
    int l = last[tr->row][tr->col];
    o->visited[p] = l >= 0;
    float *dst = oracle + (size_t)p * D;
    for (int d = 0; d < D; d++) {
      float v = l >= 0 ? recon[(size_t)l * D + d] : mean_frame[d];
      dst[d] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  /* no memory: the prior mean */
  gtmsm_decode_mean(m, ws, zero, P, nomem);
  for (size_t i = 0; i < (size_t)P * D; i++) nomem[i] = nomem[i] < 0 ? 0 : nomem[i] > 1 ? 1 : nomem[i];
  const float *outs[EVAL_METHODS] = {pred, oracle, nomem};
  for (int k = 0; k < EVAL_METHODS; k++)
    for (int p = 0; p < P; p++)
      o->psnr[k * P + p] = psnr_capped(outs[k] + (size_t)p * D, frames + (size_t)(T + p) * D, D);
  /* position error: affine fit over the memorized steps (the memory's keys) */
  for (int t = 0; t < T; t++) {
    memcpy(mstates + (size_t)t * S, dnd_key(mem->mem, (size_t)t), sizeof(float) * (size_t)S);
    pos[t * 2] = truth[t].col;
    pos[t * 2 + 1] = truth[t].row;
  }
  double coef[(GTMSM_MAX_S + 1) * 2];
  eval_affine_fit(mstates, pos, T, S, coef);
  double sum = 0, dist = 0;
  const int kept = e < res->keep && res->xy_model;
  float *xyt = kept ? res->xy_true + (size_t)e * N * 2 : NULL, *xym = kept ? res->xy_model + (size_t)e * N * 2 : NULL;
  for (int t = 0; t < N; t++) {
    const float *st = t < T ? mstates + (size_t)t * S : pstates + (size_t)(t - T) * S;
    double xy[2];
    for (int k = 0; k < 2; k++) {
      xy[k] = coef[S * 2 + k];
      for (int j = 0; j < S; j++) xy[k] += coef[j * 2 + k] * st[j];
    }
    if (kept) {
      xyt[t * 2] = (float)truth[t].col;
      xyt[t * 2 + 1] = (float)truth[t].row;
      xym[t * 2] = (float)xy[0];
      xym[t * 2 + 1] = (float)xy[1];
    }
    if (t < T) continue;
    double dx = xy[0] - truth[t].col, dy = xy[1] - truth[t].row;
    dist = sqrt(dx * dx + dy * dy);
    sum += dist;
  }
  o->pos_mean = sum / P;
  o->pos_final = dist;
  if (kept) {
    imagenav env;
    imagenav_episode_env(world, &cfg->env, es, &env);
    memcpy(res->world + (size_t)e * WORLD_SIZE * WORLD_SIZE * 3, world, sizeof(float) * WORLD_SIZE * WORLD_SIZE * 3);
    memcpy(res->blocked + (size_t)e * IMAGENAV_GRID * IMAGENAV_GRID, env.blocked, sizeof env.blocked);
  }
  if (e < res->keep) {
    size_t off = (size_t)e * P * D;
    memcpy(res->truth + off, frames + (size_t)T * D, sizeof(float) * (size_t)P * D);
    for (int k = 0; k < EVAL_METHODS; k++) memcpy(res->pred[k] + off, outs[k], sizeof(float) * (size_t)P * D);
    memcpy(res->visited_flags + (size_t)e * P, o->visited, sizeof(int) * (size_t)P);
  }
done:
  free(world);
  free(frames);
  free(actions);
  free(truth);
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

static void *eval_thread(void *arg) {
  eval_worker *w = arg;
  for (int e = w->tid; e < w->cfg->episodes; e += w->nthreads)
    w->outs[e].rc = run_episode(w->m, w->cfg, e, &w->outs[e], w->res);
  return NULL;
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

int gtmsm_eval_imagenav(const gtmsm_model *m, const eval_config *cfg, eval_result *res, char *err,
                        size_t errlen) {
  const int E = cfg->episodes, P = cfg->predict, D = gtmsm_config_D(&m->cfg);
  int rc = GTMSM_OK, nt = cfg->threads > 0 ? cfg->threads : 1;
  memset(res, 0, sizeof *res);
  if (E < 1 || cfg->memorize < 2 || P < 1)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "need episodes >= 1, memorize >= 2, predict >= 1");
  if (m->cfg.H != IMAGENAV_VIEW || m->cfg.W != IMAGENAV_VIEW || m->cfg.C != 3 || m->cfg.A != IMAGENAV_ACTIONS)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "model is not an image-navigation model (frames %dx%dx%d, %d actions)",
                      m->cfg.H, m->cfg.W, m->cfg.C, m->cfg.A);
  episode_out *outs = calloc((size_t)E, sizeof *outs);
  double *psnr_all = calloc((size_t)EVAL_METHODS * E * P, sizeof(double));
  int *vis_all = calloc((size_t)E * P, sizeof(int));
  eval_worker *ws = calloc((size_t)nt, sizeof *ws);
  pthread_t *tids = calloc((size_t)nt, sizeof *tids);
  res->predict = P;
  res->keep = cfg->keep < E ? cfg->keep : E;
  res->D = D;
  res->psnr = calloc((size_t)EVAL_METHODS * P, sizeof(double));
  res->visited = calloc((size_t)P, sizeof(double));
  res->truth = calloc((size_t)res->keep * P * D + 1, sizeof(float));
  res->visited_flags = calloc((size_t)res->keep * P + 1, sizeof(int));
  for (int k = 0; k < EVAL_METHODS; k++) res->pred[k] = calloc((size_t)res->keep * P * D + 1, sizeof(float));
  const size_t kn = (size_t)res->keep * (cfg->memorize + P);
  res->memorize = cfg->memorize;
  res->world = calloc((size_t)res->keep * WORLD_SIZE * WORLD_SIZE * 3 + 1, sizeof(float));
  res->blocked = calloc((size_t)res->keep * IMAGENAV_GRID * IMAGENAV_GRID + 1, 1);
  res->xy_true = calloc(kn * 2 + 1, sizeof(float));
  res->xy_model = calloc(kn * 2 + 1, sizeof(float));
  if (!outs || !psnr_all || !vis_all || !ws || !tids || !res->psnr || !res->visited || !res->truth ||
      !res->visited_flags || !res->pred[0] || !res->pred[1] || !res->pred[2] || !res->world || !res->blocked ||
      !res->xy_true || !res->xy_model) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  /* per-episode slots inside the big arrays: psnr (E, METHODS, P) */
  double *slot = malloc(sizeof(double) * (size_t)E * EVAL_METHODS * P);
  if (!slot) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  for (int e = 0; e < E; e++) {
    outs[e].psnr = slot + (size_t)e * EVAL_METHODS * P;
    outs[e].visited = vis_all + (size_t)e * P;
  }
  for (int t = 0; t < nt; t++) {
    ws[t] = (eval_worker){.m = m, .cfg = cfg, .res = res, .outs = outs, .tid = t, .nthreads = nt};
    pthread_create(&tids[t], NULL, eval_thread, &ws[t]);
  }
  for (int t = 0; t < nt; t++) pthread_join(tids[t], NULL);
  for (int e = 0; e < E && !rc; e++)
    if (outs[e].rc) rc = gtmsm_fail(err, errlen, outs[e].rc, "episode %d failed (code %d)", e, outs[e].rc);
  if (!rc) {
    for (int k = 0; k < EVAL_METHODS; k++) {
      for (int e = 0; e < E; e++)
        for (int p = 0; p < P; p++) {
          double v = outs[e].psnr[k * P + p];
          psnr_all[((size_t)k * E + e) * P + p] = v;
          res->psnr[(size_t)k * P + p] += v / E;
        }
      summarise(psnr_all + (size_t)k * E * P, vis_all, E, P, &res->summary[k]);
    }
    for (int e = 0; e < E; e++) {
      for (int p = 0; p < P; p++) res->visited[p] += (double)vis_all[(size_t)e * P + p] / E;
      res->pos_mean += outs[e].pos_mean / E;
      res->pos_final += outs[e].pos_final / E;
    }
  }
  free(slot);
done:
  free(outs);
  free(psnr_all);
  free(vis_all);
  free(ws);
  free(tids);
  if (rc) eval_result_free(res);
  return rc;
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
