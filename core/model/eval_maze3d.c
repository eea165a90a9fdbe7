/* The maze3d evaluator (see eval_maze3d.h). Episodes run on worker threads
 * into their own slots; sums are formed in episode order afterwards, so the
 * result does not depend on the thread count. */
#include "model/eval_maze3d.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "model/api.h"
#include "model/eval.h"
#include "model/eval_pool.h"
#include "model/gtmsm_internal.h"
#include "nn/rng.h"

const char *const M3E_METHOD_NAMES[M3E_METHODS] = {"model", "reconstruction", "nearest_view", "last_frame",
                                                   "no_memory"};

#define PI 3.14159265358979323846

typedef struct {
  double *psnr;        /* (M3E_METHODS, P) */
  int *seen;           /* (P) */
  double *head_err, *pos_err; /* (P) */
  double head_scale;
  int has_truth;
} episode_out;

static double wrap_pi(double a) {
  a = fmod(a + PI, 2 * PI);
  if (a < 0) a += 2 * PI;
  return a - PI;
}

static double psnr_capped(const float *a, const float *b, int D) {
  double p = image_psnr_f32(a, b, (size_t)D);
  return p > EVAL_PSNR_CAP ? EVAL_PSNR_CAP : p;
}

/* The pose distance of nearest_view: cells + radians. */
static double pose_dist(const maze3d_truth *a, const maze3d_truth *b) {
  return hypot(a->x - b->x, a->y - b->y) + fabs(wrap_pi(a->heading - b->heading));
}

void eval_similarity_fit(const float *w, const double *z, int n, double *out) {
  double best = INFINITY;
  for (int mirror = 0; mirror < 2; mirror++) {
    double mw[2] = {0}, mz[2] = {0};
    for (int i = 0; i < n; i++) {
      mw[0] += w[2 * i] / n;
      mw[1] += (mirror ? -w[2 * i + 1] : w[2 * i + 1]) / n;
      mz[0] += z[2 * i] / n;
      mz[1] += z[2 * i + 1] / n;
    }
    /* a = sum conj(w') z' / sum |w'|^2 over centred points */
    double num_r = 0, num_i = 0, den = 1e-12;
    for (int i = 0; i < n; i++) {
      double wr = w[2 * i] - mw[0], wi = (mirror ? -w[2 * i + 1] : w[2 * i + 1]) - mw[1];
      double zr = z[2 * i] - mz[0], zi = z[2 * i + 1] - mz[1];
      num_r += wr * zr + wi * zi;
      num_i += wr * zi - wi * zr;
      den += wr * wr + wi * wi;
    }
    double ar = num_r / den, ai = num_i / den;
    double br = mz[0] - (ar * mw[0] - ai * mw[1]), bi = mz[1] - (ar * mw[1] + ai * mw[0]);
    double res = 0;
    for (int i = 0; i < n; i++) {
      double wr = w[2 * i], wi = mirror ? -w[2 * i + 1] : w[2 * i + 1];
      double x = ar * wr - ai * wi + br - z[2 * i], y = ar * wi + ai * wr + bi - z[2 * i + 1];
      res += x * x + y * y;
    }
    if (res < best) {
      best = res;
      out[0] = ar, out[1] = ai, out[2] = br, out[3] = bi, out[4] = mirror;
    }
  }
}

void eval_similarity_apply(const double *f, double wr, double wi, double *x, double *y) {
  if (f[4] != 0) wi = -wi;
  *x = f[0] * wr - f[1] * wi + f[2];
  *y = f[0] * wi + f[1] * wr + f[3];
}

/* The top-down map of episode e's maze with the agent at its true final pose,
 * into res->map[e] (new), about 320 pixels on its longer side. */
static int episode_map(const maze3d_config *mc, const maze3d_truth *last, int e, m3e_result *res) {
  maze3d *mz = NULL;
  int rc = maze3d_new(&mz, mc, NULL, 0);
  if (rc) return rc;
  maze3d_pose pose = {last->x, last->y, last->heading};
  int gw = maze3d_grid_width(mz), gh = maze3d_grid_height(mz), longer = gw > gh ? gw : gh;
  int cell = 320 / longer < 4 ? 4 : 320 / longer;
  maze3d_map_size(mz, cell, &res->map_w[e], &res->map_h[e]);
  res->map_cell[e] = cell;
  res->map[e] = malloc((size_t)res->map_w[e] * res->map_h[e] * 3);
  if (!res->map[e]) rc = GTMSM_ENOMEM;
  if (!rc) rc = maze3d_reset(mz, &pose, NULL, NULL, 0);
  if (!rc) rc = maze3d_render_map(mz, res->map[e], cell, NULL, 0);
  maze3d_free(mz);
  return rc;
}

/* One episode: its first N steps from the source, observed and predicted;
 * the baselines, and with truth the nearest view, seen flags, heading and
 * position errors (NAN without). */
static int run_episode(const gtmsm_model *m, const m3e_config *cfg, m3e_source src, void *ctx, int e, episode_out *o,
                       m3e_result *res) {
  const int T = cfg->memorize, P = cfg->predict, N = T + P, D = gtmsm_config_D(&m->cfg), S = m->cfg.S,
            Z = m->cfg.Z, H = m->trans->hidden_size(&m->cfg);
  int rc = GTMSM_OK;
  float *frames = malloc(sizeof(float) * (size_t)N * D);
  int *actions = malloc(sizeof(int) * (size_t)N);
  maze3d_truth *truth = malloc(sizeof *truth * (size_t)N);
  float *out[M3E_METHODS];
  for (int k = 0; k < M3E_METHODS; k++) out[k] = calloc((size_t)P * D, sizeof(float));
  float *pstates = malloc(sizeof(float) * (size_t)P * S), *mstates = malloc(sizeof(float) * (size_t)T * S);
  float *mu = malloc(sizeof(float) * (size_t)P * Z), *lv = malloc(sizeof(float) * (size_t)P * Z);
  float *zero = calloc((size_t)P * Z, sizeof(float));
  double *href = malloc(sizeof(double) * (size_t)N * 2), *pos = malloc(sizeof(double) * (size_t)T * 2);
  float *s12 = malloc(sizeof(float) * (size_t)T * 2), *s3 = malloc(sizeof(float) * (size_t)T);
  gtmsm_memory *mem = gtmsm_memory_new(m);
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, P, 0);
  int ok = frames && actions && truth && pstates && mstates && mu && lv && zero && href && pos && s12 && s3 &&
           mem && ws;
  for (int k = 0; k < M3E_METHODS; k++) ok = ok && out[k];
  if (!ok) {
    rc = GTMSM_ENOMEM;
    goto done;
  }
  int has = src(ctx, e, N, frames, actions, truth);
  if (has < 0) {
    rc = has;
    goto done;
  }
  o->has_truth = has;
  for (int t = 0; t < N; t++)
    if (actions[t] < 0 || actions[t] >= m->cfg.A) {
      rc = GTMSM_EINVAL; /* a model without maze3d's actions */
      goto done;
    }
  /* the model */
  if ((rc = gtmsm_observe(m, mem, actions, frames, T, NULL, 0))) goto done;
  if ((rc = gtmsm_predict(m, mem, actions + T, P, GTMSM_PREDICT_MEAN, 0, out[M3E_MODEL], pstates, NULL, 0)))
    goto done;
  /* the memorized states, as observe rolled them */
  float h0[GTMSM_MAX_H] = {0}, h1[GTMSM_MAX_H] = {0};
  memset(mstates, 0, sizeof(float) * (size_t)S);
  for (int t = 1; t < T; t++) {
    m->trans->step(m, mstates + (size_t)(t - 1) * S, h0, actions[t], mstates + (size_t)t * S, h1, NULL, 0);
    memcpy(h0, h1, sizeof(float) * (size_t)H);
  }
  /* baselines */
  gtmsm_encode(m, ws, frames + (size_t)T * D, P, mu, lv);
  gtmsm_decode_mean(m, ws, mu, P, out[M3E_RECONSTRUCTION]);
  gtmsm_decode_mean(m, ws, zero, P, out[M3E_NO_MEMORY]);
  for (size_t i = 0; i < (size_t)P * D; i++) { /* frames in [0, 1], as predict clamps them */
    float *r = out[M3E_RECONSTRUCTION] + i, *z = out[M3E_NO_MEMORY] + i;
    *r = *r < 0 ? 0 : *r > 1 ? 1 : *r;
    *z = *z < 0 ? 0 : *z > 1 ? 1 : *z;
  }
  const double seen_rad = cfg->seen_deg * PI / 180;
  for (int p = 0; p < P; p++) {
    int best = 0, seen = 0;
    if (has) { /* the memorized view of the nearest true pose */
      const maze3d_truth *tp = &truth[T + p];
      double bd = INFINITY;
      for (int t = 0; t < T; t++) {
        double d = pose_dist(tp, &truth[t]);
        if (d < bd) bd = d, best = t;
        if (hypot(tp->x - truth[t].x, tp->y - truth[t].y) <= cfg->seen_cells &&
            fabs(wrap_pi(tp->heading - truth[t].heading)) <= seen_rad)
          seen = 1;
      }
      memcpy(out[M3E_NEAREST_VIEW] + (size_t)p * D, frames + (size_t)best * D, sizeof(float) * (size_t)D);
    }
    memcpy(out[M3E_LAST_FRAME] + (size_t)p * D, frames + (size_t)(T - 1) * D, sizeof(float) * (size_t)D);
    o->seen[p] = seen;
    for (int k = 0; k < M3E_METHODS; k++)
      o->psnr[(size_t)k * P + p] = k == M3E_NEAREST_VIEW && !has
                                       ? NAN
                                       : psnr_capped(out[k] + (size_t)p * D, frames + (size_t)(T + p) * D, D);
    o->head_err[p] = o->pos_err[p] = NAN;
  }
  o->head_scale = NAN;
  double hc[4] = {NAN, NAN, NAN, NAN}, pc[5] = {0};
  if (has) {
    /* heading: true heading unwrapped by its signed changes, fitted on the memorized steps */
    double hu = truth[0].heading;
    for (int t = 0; t < N; t++) {
      if (t > 0) hu += truth[t].d_heading;
      href[2 * t] = hu;
      href[2 * t + 1] = 0;
    }
    for (int t = 0; t < T; t++) {
      s3[t] = S >= 3 ? mstates[(size_t)t * S + 2] : 0;
      s12[2 * t] = mstates[(size_t)t * S];
      s12[2 * t + 1] = S >= 2 ? mstates[(size_t)t * S + 1] : 0;
      pos[2 * t] = truth[t].x;
      pos[2 * t + 1] = truth[t].y;
    }
    eval_affine_fit(s3, href, T, 1, hc);
    eval_similarity_fit(s12, pos, T, pc);
    o->head_scale = hc[0];
    for (int p = 0; p < P; p++) {
      const float *st = pstates + (size_t)p * S;
      double h = hc[0] * (S >= 3 ? st[2] : 0) + hc[2];
      o->head_err[p] = fabs(wrap_pi(h - href[2 * (T + p)])) * 180 / PI;
      double x, y;
      eval_similarity_apply(pc, st[0], S >= 2 ? st[1] : 0, &x, &y);
      o->pos_err[p] = hypot(x - truth[T + p].x, y - truth[T + p].y);
    }
  }
  if (e < res->keep) {
    size_t per = (size_t)P * D;
    memcpy(res->truth + e * per, frames + (size_t)T * D, per * sizeof(float));
    for (int k = 0; k < M3E_METHODS; k++) memcpy(res->pred[k] + e * per, out[k], per * sizeof(float));
    for (int p = 0; p < P; p++) res->seen_flags[(size_t)e * P + p] = o->seen[p];
    for (int t = 0; t < N; t++) {
      const float *st = t < T ? mstates + (size_t)t * S : pstates + (size_t)(t - T) * S;
      double x = NAN, y = NAN;
      if (has) eval_similarity_apply(pc, st[0], S >= 2 ? st[1] : 0, &x, &y);
      res->heading_true[(size_t)e * N + t] = has ? (float)(href[2 * t] * 180 / PI) : NAN;
      res->heading_model[(size_t)e * N + t] = has ? (float)((hc[0] * (S >= 3 ? st[2] : 0) + hc[2]) * 180 / PI) : NAN;
      float *xt = res->xy_true + ((size_t)e * N + t) * 2, *xm = res->xy_model + ((size_t)e * N + t) * 2;
      xt[0] = has ? (float)truth[t].x : NAN, xt[1] = has ? (float)truth[t].y : NAN;
      xm[0] = (float)x, xm[1] = (float)y;
    }
  }
done:
  free(frames);
  free(actions);
  free(truth);
  for (int k = 0; k < M3E_METHODS; k++) free(out[k]);
  free(pstates);
  free(mstates);
  free(mu);
  free(lv);
  free(zero);
  free(href);
  free(pos);
  free(s12);
  free(s3);
  gtmsm_memory_free(mem);
  gtmsm_ws_free(ws);
  return rc;
}

/* The simulator as a source: episode e of cfg's scenario, and for a kept
 * episode its map with the agent at the true final pose. */
typedef struct {
  const m3e_config *cfg;
  m3e_result *res;
} sim_source;

static int sim_episode(void *ctx, int e, int N, float *frames, int *actions, maze3d_truth *truth) {
  const sim_source *ss = ctx;
  uint64_t es = rng_mix(ss->cfg->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)e + 0x3D3D);
  maze3d_config mc = ss->cfg->maze;
  mc.seed = es;
  int rc = maze3d_episode(&mc, ss->cfg->scenario, es, N, 0, frames, actions, truth, NULL, 0);
  if (!rc && e < ss->res->keep) rc = episode_map(&mc, &truth[N - 1], e, ss->res);
  return rc ? rc : 1;
}

typedef struct {
  const gtmsm_model *m;
  const m3e_config *cfg;
  m3e_source src;
  void *ctx;
  m3e_result *res;
  episode_out *outs;
} run_ctx;

static int run_one(void *p, int e) {
  run_ctx *c = p;
  return run_episode(c->m, c->cfg, c->src, c->ctx, e, &c->outs[e], c->res);
}

void m3e_result_free(m3e_result *res) {
  free(res->psnr);
  free(res->seen);
  for (int k = 0; k < M3E_METHODS; k++) free(res->pred[k]);
  free(res->truth);
  free(res->seen_flags);
  free(res->heading_true);
  free(res->heading_model);
  free(res->xy_true);
  free(res->xy_model);
  for (int e = 0; res->map && e < res->keep; e++) free(res->map[e]);
  free(res->map);
  free(res->map_w);
  free(res->map_h);
  free(res->map_cell);
  memset(res, 0, sizeof *res);
}

int gtmsm_eval_maze3d(const gtmsm_model *m, const m3e_config *cfg, m3e_result *res, char *err,
                      size_t errlen) {
  if (cfg->maze.W != m->cfg.W || cfg->maze.H != m->cfg.H || m->cfg.C != 3)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "eval: maze frames %dx%d, the model's are %dx%dx%d",
                      cfg->maze.W, cfg->maze.H, m->cfg.W, m->cfg.H, m->cfg.C);
  sim_source ss = {cfg, res};
  return gtmsm_eval_maze3d_from(m, cfg, sim_episode, &ss, res, err, errlen);
}

int gtmsm_eval_maze3d_from(const gtmsm_model *m, const m3e_config *cfg, m3e_source src, void *ctx, m3e_result *res,
                           char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  const int E = cfg->episodes, P = cfg->predict, T = cfg->memorize, D = gtmsm_config_D(&m->cfg);
  if (E < 1 || P < 1 || T < 2 || cfg->threads < 1)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "eval: episodes, predict >= 1, memorize >= 2");
  int keep = cfg->keep < E ? cfg->keep : E;
  res->predict = P;
  res->keep = keep;
  res->D = D;
  res->psnr = calloc((size_t)M3E_METHODS * P, sizeof(double));
  res->seen = calloc((size_t)P, sizeof(double));
  res->truth = calloc((size_t)keep * P * D + 1, sizeof(float));
  for (int k = 0; k < M3E_METHODS; k++) res->pred[k] = calloc((size_t)keep * P * D + 1, sizeof(float));
  res->seen_flags = calloc((size_t)keep * P + 1, sizeof(int));
  res->heading_true = calloc((size_t)keep * (T + P) + 1, sizeof(float));
  res->heading_model = calloc((size_t)keep * (T + P) + 1, sizeof(float));
  res->xy_true = calloc((size_t)keep * (T + P) * 2 + 1, sizeof(float));
  res->xy_model = calloc((size_t)keep * (T + P) * 2 + 1, sizeof(float));
  res->map = calloc((size_t)keep + 1, sizeof *res->map);
  res->map_w = calloc((size_t)keep + 1, sizeof(int));
  res->map_h = calloc((size_t)keep + 1, sizeof(int));
  res->map_cell = calloc((size_t)keep + 1, sizeof(int));
  episode_out *outs = calloc((size_t)E, sizeof *outs);
  double *slab = calloc((size_t)E * P * (M3E_METHODS + 2), sizeof(double));
  int *seen = calloc((size_t)E * P, sizeof(int)), *rcs = calloc((size_t)E, sizeof(int));
  int rc = GTMSM_OK, ok = res->psnr && res->seen && res->truth && res->seen_flags && res->heading_true &&
                         res->heading_model && res->xy_true && res->xy_model && res->map && res->map_w &&
                         res->map_h && res->map_cell && outs && slab && seen && rcs;
  for (int k = 0; k < M3E_METHODS; k++) ok = ok && res->pred[k];
  if (!ok) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  for (int e = 0; e < E; e++) {
    double *b = slab + (size_t)e * P * (M3E_METHODS + 2);
    outs[e] = (episode_out){.psnr = b, .head_err = b + (size_t)M3E_METHODS * P,
                            .pos_err = b + (size_t)(M3E_METHODS + 1) * P, .seen = seen + (size_t)e * P};
  }
  run_ctx rctx = {m, cfg, src, ctx, res, outs};
  eval_pool_run(E, cfg->threads, run_one, &rctx, rcs);
  for (int e = 0; e < E; e++)
    if (rcs[e]) {
      rc = gtmsm_fail(err, errlen, rcs[e], "eval: episode %d failed (%d)", e, rcs[e]);
      goto done;
    }
  /* truth metrics only when every episode has the truth */
  int truth = 1;
  for (int e = 0; e < E; e++) truth = truth && outs[e].has_truth;
  /* sums in episode order */
  double sum[M3E_METHODS][3] = {{0}};
  long cnt[3] = {0};
  for (int e = 0; e < E; e++) {
    const episode_out *o = &outs[e];
    for (int p = 0; p < P; p++) {
      int g = o->seen[p] ? 1 : 2;
      cnt[0]++;
      cnt[g]++;
      res->seen[p] += truth ? o->seen[p] / (double)E : NAN;
      for (int k = 0; k < M3E_METHODS; k++) {
        double v = o->psnr[(size_t)k * P + p];
        res->psnr[(size_t)k * P + p] += v / E;
        sum[k][0] += v;
        sum[k][g] += v;
      }
      res->heading_mean += o->head_err[p] / ((double)E * P);
      res->pos_mean += o->pos_err[p] / ((double)E * P);
    }
    res->heading_final += o->head_err[P - 1] / E;
    res->heading_scale += o->head_scale / E;
    res->pos_final += o->pos_err[P - 1] / E;
    res->pos_at_150 += P >= 150 ? o->pos_err[149] / E : 0;
  }
  if (P < 150) res->pos_at_150 = NAN;
  for (int k = 0; k < M3E_METHODS; k++) {
    res->summary[k].all = cnt[0] ? sum[k][0] / cnt[0] : NAN;
    res->summary[k].seen = truth && cnt[1] ? sum[k][1] / cnt[1] : NAN;
    res->summary[k].unseen = truth && cnt[2] ? sum[k][2] / cnt[2] : NAN;
  }
done:
  free(outs);
  free(slab);
  free(seen);
  free(rcs);
  if (rc) m3e_result_free(res);
  return rc;
}
