/* The learned view-combining prior of the 3-D models (paper 4.2, appendix
 * A.2). For each of the K retrieved entries j (sorted by distance) an input
 *   x_j = (mu_j, lv_j, fwd_j, left_j, cos dh_j, sin dh_j)            (2Z + 4)
 * tells what was seen there and where it lies relative to the query state
 * s_t, in the agent's frame: (fwd, left) = R(-s3_t) (s_j - s_t)[1:2], dh_j =
 * s3_j - s3_t. An MLP embeds the concatenated inputs (K (2Z + 4)) into e_t
 * (two ELU layers); a linear layer maps e_t to a correction of the inverse-
 * distance mixture's mean and log-variance:
 *   m_t = sum_j w_j mu_j,  l_t = sum_j w_j lv_j  (w_j as in prior_mixture.c)
 *   p(z_t | s_t, DND) = N(m_t + o_mu, exp(LV_RANGE tanh((l_t + o_lv) / LV_RANGE)))
 * The state enters through the relative poses only, which keeps the prior
 * invariant to where the room is and which way it was first seen. The output
 * layer starts at zero, so training starts from "the weighted view average".
 * KL(q(z|x) || p) is in closed form. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm_internal.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/vecmath.h"

#define ACT ACT_ELU
#define REL 4 /* fwd, left, cos dh, sin dh */
enum { W1, B1, W2, B2, W3, B3, NT };

static int in_size(const gtmsm_config *c) { return c->K * (2 * c->Z + REL); }

static int mlp_specs(const gtmsm_config *c, param_spec *out) {
  int IN = in_size(c), Hh = c->prior_hidden, Z = c->Z;
  param_spec s[NT] = {
      {"prior.w1", (size_t)Hh * IN, IN, 0}, {"prior.b1", (size_t)Hh, 0, 0},
      {"prior.w2", (size_t)Hh * Hh, Hh, 0}, {"prior.b2", (size_t)Hh, 0, 0},
      {"prior.w3", (size_t)2 * Z * Hh, 0, 0}, {"prior.b3", (size_t)2 * Z, 0, 0},
  };
  memcpy(out, s, sizeof s);
  return NT;
}

static int mlp_value_extra(const gtmsm_config *c) { return c->S; }

typedef struct {
  int R;
  float *w, *base;                      /* (R, K), (R, 2Z): weighted mean and log-variance */
  float *in, *h1_pre, *h1, *h2_pre, *h2; /* (R, IN), (R, Hh) x4 */
  float *o, *pm, *plv;                  /* (R, 2Z), (R, Z) x2 */
  float *d_o, *g1, *g2, *d_in, *dw;     /* gradients (training) */
} mlp_ws;

static void mlp_ws_free(void *p) {
  mlp_ws *ws = p;
  if (!ws) return;
  float *all[] = {ws->w, ws->base, ws->in, ws->h1_pre, ws->h1, ws->h2_pre, ws->h2, ws->o, ws->pm, ws->plv,
                  ws->d_o, ws->g1, ws->g2, ws->d_in, ws->dw};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(ws);
}

static void *mlp_ws_new(const gtmsm_config *c, int R, int train) {
  mlp_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  size_t n = (size_t)R, K = (size_t)c->K, Z = (size_t)c->Z, IN = (size_t)in_size(c), Hh = (size_t)c->prior_hidden;
  struct {
    float **p;
    size_t n;
  } bufs[] = {{&ws->w, n * K},       {&ws->base, n * 2 * Z}, {&ws->in, n * IN},   {&ws->h1_pre, n * Hh},
              {&ws->h1, n * Hh},     {&ws->h2_pre, n * Hh},  {&ws->h2, n * Hh},   {&ws->o, n * 2 * Z},
              {&ws->pm, n * Z},      {&ws->plv, n * Z},      {&ws->d_o, n * 2 * Z}, {&ws->g1, n * Hh},
              {&ws->g2, n * Hh},     {&ws->d_in, n * IN},    {&ws->dw, n * K}};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
    if (!train && bufs[i].p == &ws->d_o) break;
    if (!(*bufs[i].p = calloc(bufs[i].n ? bufs[i].n : 1, sizeof(float)))) {
      mlp_ws_free(ws);
      return NULL;
    }
  }
  ws->R = R;
  return ws;
}

/* Relative pose of s_j seen from s_t: (fwd, left, cos dh, sin dh). */
static void rel_pose(const float *st, const float *sj, float *rel) {
  float dx = sj[0] - st[0], dy = sj[1] - st[1], c = cosf(st[2]), sn = sinf(st[2]), dh = sj[2] - st[2];
  rel[0] = c * dx + sn * dy;
  rel[1] = -sn * dx + c * dy;
  rel[2] = cosf(dh);
  rel[3] = sinf(dh);
}

/* One row's inputs and base from its K entries: mu_j, lv_j, s_j pointers. */
static void row_inputs(const gtmsm_config *c, const float *st, const float *d2, const float *const *mu,
                       const float *const *lv, const float *const *sj, float delta, float *w, float *base,
                       float *in) {
  const int K = c->K, Z = c->Z, P = 2 * Z + REL;
  gtmsm_mixture_weights(d2, K, delta, w);
  for (int k = 0; k < 2 * Z; k++) base[k] = 0;
  for (int j = 0; j < K; j++) {
    float *x = in + (size_t)j * P;
    memcpy(x, mu[j], sizeof(float) * (size_t)Z);
    memcpy(x + Z, lv[j], sizeof(float) * (size_t)Z);
    rel_pose(st, sj[j], x + 2 * Z);
    for (int k = 0; k < Z; k++) {
      base[k] += w[j] * mu[j][k];
      base[Z + k] += w[j] * lv[j][k];
    }
  }
}

/* The MLP over R rows of ws->in, then pm, plv. */
static void mlp_net(const gtmsm_model *m, mlp_ws *ws, int R) {
  const gtmsm_config *c = &m->cfg;
  const int IN = in_size(c), Hh = c->prior_hidden, Z = c->Z;
  const float *p = m->p.data;
#define T(i) gtmsm_tensor(m, GTMSM_ROLE_PRIOR, (i), p)
  linear_forward(ws->h1_pre, ws->in, T(W1), T(B1), R, IN, Hh);  /* (R, Hh) */
  act_forward(ws->h1, ws->h1_pre, (size_t)R * Hh, ACT, 1.0f);
  linear_forward(ws->h2_pre, ws->h1, T(W2), T(B2), R, Hh, Hh);  /* (R, Hh) */
  act_forward(ws->h2, ws->h2_pre, (size_t)R * Hh, ACT, 1.0f);
  linear_forward(ws->o, ws->h2, T(W3), T(B3), R, Hh, 2 * Z);    /* (R, 2Z) */
  for (int r = 0; r < R; r++) {
    const float *o = ws->o + (size_t)r * 2 * Z, *b = ws->base + (size_t)r * 2 * Z;
    float *pl = ws->plv + (size_t)r * Z;
    for (int k = 0; k < Z; k++) {
      ws->pm[(size_t)r * Z + k] = b[k] + o[k];
      pl[k] = (b[Z + k] + o[Z + k]) / LV_RANGE;
    }
    vm_tanh(pl, pl, (size_t)Z);
    for (int k = 0; k < Z; k++) pl[k] *= LV_RANGE;
  }
}

static int mlp_forward(const gtmsm_model *m, void *p, const gtmsm_prior_in *in, float delta, double *kl) {
  mlp_ws *ws = p;
  const gtmsm_config *c = &m->cfg;
  const int R = in->R, K = in->K, Z = in->Z, S = in->S, IN = in_size(c);
  if (K != c->K || R > ws->R) return -1;
  for (int r = 0; r < R; r++) {
    const float *mu[GTMSM_MAX_K], *lv[GTMSM_MAX_K], *sj[GTMSM_MAX_K];
    for (int j = 0; j < K; j++) {
      int i = in->idx[(size_t)r * K + j];
      mu[j] = in->mem_mu + (size_t)i * Z;
      lv[j] = in->mem_lv + (size_t)i * Z;
      sj[j] = in->mem_s + (size_t)i * S;
    }
    row_inputs(c, in->s + (size_t)r * S, in->d2 + (size_t)r * K, mu, lv, sj, delta, ws->w + (size_t)r * K,
               ws->base + (size_t)r * 2 * Z, ws->in + (size_t)r * IN);
  }
  mlp_net(m, ws, R);
  for (int r = 0; r < R; r++) {
    double acc = 0;
    for (int k = 0; k < Z; k++) {
      size_t i = (size_t)r * Z + k;
      double qm = in->mu[i], ql = in->lv[i], pm = ws->pm[i], pl = ws->plv[i], d = qm - pm;
      acc += 0.5 * (pl - ql + (exp(ql) + d * d) * exp(-pl) - 1.0);
    }
    kl[r] = acc;
  }
  return 0;
}

static void mlp_backward(const gtmsm_model *m, void *p, const gtmsm_prior_in *in, float delta, float beta,
                         const float *rowc, const gtmsm_prior_grad *g, float *grad) {
  mlp_ws *ws = p;
  const gtmsm_config *c = &m->cfg;
  const int R = in->R, K = in->K, Z = in->Z, S = in->S, IN = in_size(c), Hh = c->prior_hidden,
            P = 2 * Z + REL;
  const float *p_ = m->p.data;
#define G(i) gtmsm_tensor(m, GTMSM_ROLE_PRIOR, (i), grad)
  /* KL -> q's statistics and the prior's outputs */
  for (int r = 0; r < R; r++) {
    float cr = beta * rowc[r];
    const float *o = ws->o + (size_t)r * 2 * Z, *b = ws->base + (size_t)r * 2 * Z;
    for (int k0 = 0; k0 < Z; k0 += 64) {
      int n = Z - k0 < 64 ? Z - k0 : 64;
      /* e^-pl, e^ql and tanh' of the prior log-variance's input (from the
       * input, not 1 - (pl / LV_RANGE)^2) */
      float ip[64], eq[64], th[64];
      for (int j = 0; j < n; j++) {
        size_t i = (size_t)r * Z + k0 + j;
        ip[j] = -ws->plv[i];
        th[j] = (b[Z + k0 + j] + o[Z + k0 + j]) / LV_RANGE;
      }
      vm_exp(ip, ip, (size_t)n);
      vm_exp(eq, in->lv + (size_t)r * Z + k0, (size_t)n);
      vm_sech2(th, th, (size_t)n);
      for (int j = 0; j < n; j++) {
        int k = k0 + j;
        size_t i = (size_t)r * Z + k;
        float qm = in->mu[i], pm = ws->pm[i], d = qm - pm;
        g->d_mu[i] += cr * d * ip[j];
        g->d_lv[i] += cr * 0.5f * (eq[j] * ip[j] - 1.0f);
        float dpl = cr * 0.5f * (1.0f - (eq[j] + d * d) * ip[j]);
        ws->d_o[(size_t)r * 2 * Z + k] = -cr * d * ip[j];
        ws->d_o[(size_t)r * 2 * Z + Z + k] = dpl * th[j];
      }
    }
  }
  /* the network */
  size_t nh = (size_t)R * Hh * sizeof(float);
  memset(ws->g2, 0, nh);
  linear_backward(ws->g2, G(W3), G(B3), ws->d_o, ws->h2, gtmsm_tensor(m, GTMSM_ROLE_PRIOR, W3, p_), R, Hh, 2 * Z);
  memset(ws->g1, 0, nh);
  act_backward(ws->g1, ws->g2, ws->h2_pre, ws->h2, (size_t)R * Hh, ACT, 1.0f);
  memset(ws->g2, 0, nh);
  linear_backward(ws->g2, G(W2), G(B2), ws->g1, ws->h1, gtmsm_tensor(m, GTMSM_ROLE_PRIOR, W2, p_), R, Hh, Hh);
  memset(ws->g1, 0, nh);
  act_backward(ws->g1, ws->g2, ws->h1_pre, ws->h1, (size_t)R * Hh, ACT, 1.0f);
  memset(ws->d_in, 0, (size_t)R * IN * sizeof(float));
  linear_backward(ws->d_in, G(W1), G(B1), ws->g1, ws->in, gtmsm_tensor(m, GTMSM_ROLE_PRIOR, W1, p_), R, IN, Hh);
  /* inputs and base -> memory values, relative poses -> states, weights -> distances */
  for (int r = 0; r < R; r++) {
    const float *st = in->s + (size_t)r * S, *dob = ws->d_o + (size_t)r * 2 * Z, *w = ws->w + (size_t)r * K;
    float *dst = g->d_s + (size_t)r * S, *dw = ws->dw + (size_t)r * K;
    for (int j = 0; j < K; j++) {
      int i = in->idx[(size_t)r * K + j];
      const float *mu = in->mem_mu + (size_t)i * Z, *lv = in->mem_lv + (size_t)i * Z, *sj = in->mem_s + (size_t)i * S;
      const float *dx = ws->d_in + (size_t)r * IN + (size_t)j * P;
      float *dmu = g->d_mem_mu + (size_t)i * Z, *dlv = g->d_mem_lv + (size_t)i * Z, *dsj = g->d_mem_s + (size_t)i * S;
      double dwj = 0;
      for (int k = 0; k < Z; k++) {
        dmu[k] += dx[k] + w[j] * dob[k];
        dlv[k] += dx[Z + k] + w[j] * dob[Z + k];
        dwj += (double)dob[k] * mu[k] + (double)dob[Z + k] * lv[k];
      }
      dw[j] = (float)dwj;
      /* relative pose */
      const float *dr = dx + 2 * Z;
      float ddx0 = sj[0] - st[0], ddy0 = sj[1] - st[1], cs = cosf(st[2]), sn = sinf(st[2]), dh = sj[2] - st[2];
      float fwd = cs * ddx0 + sn * ddy0, left = -sn * ddx0 + cs * ddy0;
      float ddx = cs * dr[0] - sn * dr[1], ddy = sn * dr[0] + cs * dr[1];
      float ddh = -sinf(dh) * dr[2] + cosf(dh) * dr[3];
      dsj[0] += ddx;
      dsj[1] += ddy;
      dsj[2] += ddh;
      dst[0] -= ddx;
      dst[1] -= ddy;
      dst[2] += dr[0] * left - dr[1] * fwd - ddh;
    }
    gtmsm_mixture_weights_backward(in->d2 + (size_t)r * K, w, dw, K, delta, g->dd2 + (size_t)r * K);
  }
}

static void mlp_predict(const gtmsm_model *m, void *p, const float *s, const float *d2, const float *const *values,
                        int found, int sample, rng_t *r, float *z) {
  mlp_ws *ws = p;
  const gtmsm_config *c = &m->cfg;
  const int K = c->K, Z = c->Z;
  const float *mu[GTMSM_MAX_K], *lv[GTMSM_MAX_K], *sj[GTMSM_MAX_K];
  float dd[GTMSM_MAX_K];
  /* fewer entries than K (a young memory): the farthest one fills the rest */
  for (int j = 0; j < K; j++) {
    int i = j < found ? j : found - 1;
    mu[j] = values[i];
    lv[j] = values[i] + Z;
    sj[j] = values[i] + 2 * Z;
    dd[j] = d2[i];
  }
  row_inputs(c, s, dd, mu, lv, sj, c->delta, ws->w, ws->base, ws->in);
  mlp_net(m, ws, 1);
  for (int k = 0; k < Z; k++)
    z[k] = sample ? ws->pm[k] + vm_expf(0.5f * ws->plv[k]) * rng_normal(r) : ws->pm[k];
}

const struct gtmsm_prior_ops gtmsm_prior_mlp = {"mlp", mlp_specs, mlp_value_extra, mlp_ws_new, mlp_ws_free,
                                                mlp_forward, mlp_backward, mlp_predict};
