/* The prior parts (prior_mixture.c, prior_mlp.c) alone. With the retrieved
 * rows idx and their squared distances d2 as fixed inputs (the kNN selection
 * is piecewise constant and is not the prior's), L = beta sum_r rowc_r kl_r
 * is checked against central differences in every input that receives a
 * gradient (memory means, log-variances and states; query states; q's mean,
 * log-variance and sample; d2) and every parameter tensor, tolerance 1e-3;
 * gtmsm_mixture_weights_backward on its own too. The learned prior's
 * serving path: predict() in mean mode is the forward's prior mean, found <
 * K pads with the last entry, at init (output layer zero) the mean is the
 * inverse-distance weighted mean of the neighbours' means, and the prior is
 * the same when the whole scene moves rigidly (relative poses in the agent's
 * frame) or the query heading turns by 2 pi. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm.h"
#include "model/gtmsm_internal.h"
#include "nn/rng.h"
#include "testlib.h"

#define TWO_PI 6.283185307179586
enum { NM = 8, R = 4, K = 3, Z = 3, S_MAX = 3 }; /* memory rows, query rows, neighbours, latent */

typedef struct {
  gtmsm_model m;
  void *ws;
  int S;
  float delta, beta;
  int idx[R * K];
  float d2[R * K];
  float mem_mu[NM * Z], mem_lv[NM * Z], mem_s[NM * S_MAX];
  float s[R * S_MAX], mu[R * Z], lv[R * Z], z[R * Z];
  float rowc[R];
  double kl[R];
  gtmsm_prior_in in;
} ctx_t;

static void bind(ctx_t *c) {
  c->in = (gtmsm_prior_in){.R = R,
                           .K = K,
                           .Z = Z,
                           .S = c->S,
                           .idx = c->idx,
                           .d2 = c->d2,
                           .mem_mu = c->mem_mu,
                           .mem_lv = c->mem_lv,
                           .mem_s = c->mem_s,
                           .s = c->s,
                           .mu = c->mu,
                           .lv = c->lv,
                           .z = c->z};
}

static double prior_loss(void *p) {
  ctx_t *c = p;
  int rc = c->m.prior->forward(&c->m, c->ws, &c->in, c->delta, c->kl);
  if (rc) return NAN;
  double L = 0;
  for (int r = 0; r < R; r++) L += (double)c->beta * c->rowc[r] * c->kl[r];
  return L;
}

/* Inputs of order 1: means N(0, 0.8^2), log-variances in [-1, 0.5], positions
 * in [-2, 2], headings in [-3, 3], distances in [0.2, 2] (well above the
 * eps of the check), each row's neighbours distinct, rows sharing some. */
static void fill_inputs(ctx_t *c, uint64_t seed) {
  rng_t r;
  rng_init(&r, seed, 17);
  for (int i = 0; i < NM * Z; i++) c->mem_mu[i] = 0.8f * rng_normal(&r);
  test_fill_uniform(c->mem_lv, NM * Z, -1, 0.5f, seed + 1);
  for (int i = 0; i < NM; i++)
    for (int k = 0; k < c->S; k++)
      c->mem_s[i * c->S + k] = k < 2 ? 4 * rng_uniform(&r) - 2 : 6 * rng_uniform(&r) - 3;
  for (int q = 0; q < R; q++)
    for (int k = 0; k < c->S; k++)
      c->s[q * c->S + k] = k < 2 ? 4 * rng_uniform(&r) - 2 : 6 * rng_uniform(&r) - 3;
  for (int i = 0; i < R * Z; i++) c->mu[i] = 0.8f * rng_normal(&r);
  test_fill_uniform(c->lv, R * Z, -1, 0.5f, seed + 2);
  for (int i = 0; i < R * Z; i++) c->z[i] = c->mu[i] + expf(0.5f * c->lv[i]) * rng_normal(&r);
  for (int q = 0; q < R; q++) {
    int perm[NM];
    for (int i = 0; i < NM; i++) perm[i] = i;
    for (int i = NM - 1; i > 0; i--) {
      int j = (int)rng_below(&r, (uint32_t)i + 1), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    float d = 0.2f;
    for (int j = 0; j < K; j++) {
      c->idx[q * K + j] = perm[j];
      d += 0.6f * rng_uniform(&r); /* sorted, as retrieval returns them */
      c->d2[q * K + j] = d;
    }
  }
  test_fill_uniform(c->rowc, R, 0.5f, 1.5f, seed + 3);
  c->beta = 0.7f;
  bind(c);
}

static int model_for(ctx_t *c, gtmsm_prior kind, uint64_t seed) {
  gtmsm_config cfg = gtmsm_default_config();
  cfg.Z = Z;
  cfg.K = K;
  cfg.delta = 0.05f;
  cfg.prior = kind;
  if (kind == GTMSM_PRIOR_MLP) {
    cfg.S = 3;
    cfg.trans = GTMSM_TRANS_ROT3D;
    cfg.keymap = GTMSM_KEYMAP_PERIODIC;
    cfg.prior_hidden = 8;
  }
  char err[256];
  int rc = gtmsm_model_init(&c->m, &cfg, seed, err, sizeof err);
  CHECK(rc == 0, "init: %s", err);
  if (rc) return rc;
  c->S = cfg.S;
  c->delta = cfg.delta;
  c->ws = c->m.prior->ws_new(&cfg, R, 1);
  CHECK(c->ws != NULL, "prior ws");
  return c->ws ? 0 : -1;
}

typedef struct {
  float d_mem_mu[NM * Z], d_mem_lv[NM * Z], d_mem_s[NM * S_MAX], d_s[R * S_MAX], d_mu[R * Z], d_lv[R * Z],
      d_z[R * Z], dd2[R * K];
} grads_t;

static void backward(ctx_t *c, grads_t *g, float *grad) {
  gtmsm_prior_grad pg = {.d_mem_mu = g->d_mem_mu,
                         .d_mem_lv = g->d_mem_lv,
                         .d_mem_s = g->d_mem_s,
                         .d_s = g->d_s,
                         .d_mu = g->d_mu,
                         .d_lv = g->d_lv,
                         .d_z = g->d_z,
                         .dd2 = g->dd2};
  prior_loss(c);
  c->m.prior->backward(&c->m, c->ws, &c->in, c->delta, c->beta, c->rowc, &pg, grad);
}

/* o for every input and tensor; d2 at most d2_eps (1 / (d2 + delta) is
 * curved at the scale of d2 + delta >= 0.25). */
static void check_grad(ctx_t *c, const char *kind, const gc_opts *o, double d2_eps) {
  static grads_t g, g2;
  memset(&g, 0, sizeof g);
  float *grad = calloc(c->m.p.total, sizeof(float)), *grad2 = calloc(c->m.p.total, sizeof(float));
  CHECK(grad && grad2, "out of memory");
  if (!grad || !grad2) goto done;
  backward(c, &g, grad);
  /* backward accumulates (dd2 excepted: overwritten, see gtmsm_prior_grad) */
  memcpy(&g2, &g, sizeof g);
  memcpy(grad2, grad, c->m.p.total * sizeof(float));
  backward(c, &g2, grad2);
  int twice = 1; /* up to the rounding of the sums (scatters, sgemm with beta = 1) */
  for (size_t i = 0; i < offsetof(grads_t, dd2) / sizeof(float); i++)
    twice &= fabsf(((float *)&g2)[i] - 2 * ((float *)&g)[i]) <= 1e-6f * (1 + fabsf(((float *)&g)[i]));
  for (size_t i = 0; i < c->m.p.total; i++)
    twice &= fabsf(grad2[i] - 2 * grad[i]) <= 1e-6f * (1 + fabsf(grad[i]));
  CHECK(twice, "%s: a second backward does not double the gradients", kind);
  CHECK(memcmp(g2.dd2, g.dd2, sizeof g.dd2) == 0, "%s: dd2 not overwritten", kind);

  struct {
    const char *name;
    float *x, *g;
    size_t n;
  } inputs[] = {
      {"mem_mu", c->mem_mu, g.d_mem_mu, NM * Z},
      {"mem_lv", c->mem_lv, g.d_mem_lv, NM * Z},
      {"mem_s", c->mem_s, g.d_mem_s, (size_t)NM * c->S},
      {"s", c->s, g.d_s, (size_t)R * c->S},
      {"mu", c->mu, g.d_mu, R * Z},
      {"lv", c->lv, g.d_lv, R * Z},
      {"z", c->z, g.d_z, R * Z},
      {"d2", c->d2, g.dd2, R * K},
  };
  char label[80];
  for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
    gc_opts oi = *o;
    if (inputs[i].x == c->d2) oi.eps = fmin(oi.eps, d2_eps);
    snprintf(label, sizeof label, "%s/%s", kind, inputs[i].name);
    gradcheck(label, inputs[i].x, inputs[i].g, inputs[i].n, prior_loss, c, &oi);
  }
  for (int e = c->m.part_first[GTMSM_ROLE_PRIOR]; e < c->m.part_first[GTMSM_ROLE_PRIOR + 1]; e++) {
    const param_entry *pe = &c->m.p.entries[e];
    snprintf(label, sizeof label, "%s/%s", kind, pe->name);
    gradcheck(label, c->m.p.data + pe->offset, grad + pe->offset, pe->size, prior_loss, c, o);
  }
done:
  free(grad);
  free(grad2);
}

/* ---- mixture weights ------------------------------------------------------ */
typedef struct {
  float d2[5], w[5], r[5];
  float delta;
} wctx_t;

static double weights_loss(void *p) {
  wctx_t *c = p;
  gtmsm_mixture_weights(c->d2, 5, c->delta, c->w);
  return test_dot(c->w, c->r, 5);
}

static void check_weights(void) {
  static wctx_t c;
  test_fill_uniform(c.d2, 5, 0.2f, 2.0f, 51);
  test_fill_uniform(c.r, 5, -1, 1, 52);
  c.delta = 0.05f;
  weights_loss(&c);
  double sum = 0;
  for (int j = 0; j < 5; j++) sum += c.w[j];
  CHECK_NEAR(sum, 1.0, 1e-6, 0, "mixture weights sum");
  float dd2[5];
  gtmsm_mixture_weights_backward(c.d2, c.w, c.r, 5, c.delta, dd2);
  gc_opts o = gc_default();
  o.eps = 2e-2; /* rational in d2 + delta >= 0.25: smooth */
  o.richardson = 1;
  o.noise = 1;
  o.tol = 1e-3;
  o.floor = 1e-2;
  gradcheck("mixture_weights_backward/d2", c.d2, dd2, 5, weights_loss, &c, &o);
}

/* ---- the learned prior's serving path -------------------------------------- */

/* One query: row q of the context as predict() sees it, values (K, 2Z + S). */
static void pack_values(const ctx_t *c, int q, float *vals, const float **vp, int found) {
  const int P = 2 * Z + c->S;
  for (int j = 0; j < found; j++) {
    int i = c->idx[q * K + j];
    memcpy(vals + j * P, c->mem_mu + i * Z, Z * sizeof(float));
    memcpy(vals + j * P + Z, c->mem_lv + i * Z, Z * sizeof(float));
    memcpy(vals + j * P + 2 * Z, c->mem_s + i * c->S, (size_t)c->S * sizeof(float));
    vp[j] = vals + j * P;
  }
}

/* The forward's prior (pm, exp(-plv)) of every row, read off its gradients
 * with beta rowc = 1: d kl / d mu = (mu - pm) e^-pl, d kl / d lv =
 * (e^(lv - pl) - 1) / 2. */
static void forward_prior(ctx_t *c, float *pm, float *ipl) {
  static grads_t g;
  memset(&g, 0, sizeof g);
  float *grad = calloc(c->m.p.total, sizeof(float));
  float rowc[R], beta = c->beta;
  memcpy(rowc, c->rowc, sizeof rowc);
  for (int r = 0; r < R; r++) c->rowc[r] = 1;
  c->beta = 1;
  backward(c, &g, grad);
  c->beta = beta;
  memcpy(c->rowc, rowc, sizeof rowc);
  for (int i = 0; i < R * Z; i++) {
    double e = (2.0 * g.d_lv[i] + 1.0) * exp(-(double)c->lv[i]);
    ipl[i] = (float)e;
    pm[i] = (float)(c->mu[i] - g.d_mu[i] / e);
  }
  free(grad);
}

static void check_mlp_predict(ctx_t *c) {
  const int P = 2 * Z + c->S;
  void *pws = c->m.prior->ws_new(&c->m.cfg, 1, 0);
  CHECK(pws != NULL, "predict ws");
  if (!pws) return;
  float pm[R * Z], ipl[R * Z];
  forward_prior(c, pm, ipl);
  double worst_m = 0, worst_v = 0;
  for (int q = 0; q < R; q++) {
    float vals[K * (2 * Z + S_MAX)], zq[Z], zs[Z];
    const float *vp[K];
    pack_values(c, q, vals, vp, K);
    c->m.prior->predict(&c->m, pws, c->s + q * c->S, c->d2 + q * K, vp, K, 0, NULL, zq);
    for (int k = 0; k < Z; k++) {
      worst_m = fmax(worst_m, fabs((double)zq[k] - pm[q * Z + k]));
      CHECK_NEAR(zq[k], pm[q * Z + k], 1e-5, 1e-5, "predict mean vs the forward's prior mean");
    }
    /* sample mode: pm + exp(plv / 2) n with n the stream's normals */
    rng_t r1, r2;
    rng_init(&r1, 77, q);
    rng_init(&r2, 77, q);
    c->m.prior->predict(&c->m, pws, c->s + q * c->S, c->d2 + q * K, vp, K, 1, &r1, zs);
    for (int k = 0; k < Z; k++) {
      double n = rng_normal(&r2), sd = exp(-0.5 * log(ipl[q * Z + k]));
      worst_v = fmax(worst_v, fabs((zs[k] - zq[k]) - sd * n));
      CHECK_NEAR(zs[k] - zq[k], sd * n, 1e-5, 1e-4, "predict sample spread vs the forward's prior variance");
    }
    /* found < K: the last entry fills the rest */
    float vals_pad[K * (2 * Z + S_MAX)], d2_pad[K], z_short[Z], z_pad[Z];
    const float *vp_pad[K];
    memcpy(vals_pad, vals, sizeof vals_pad);
    memcpy(d2_pad, c->d2 + q * K, sizeof d2_pad);
    for (int j = 2; j < K; j++) {
      memcpy(vals_pad + j * P, vals + 1 * P, (size_t)P * sizeof(float));
      d2_pad[j] = d2_pad[1];
    }
    for (int j = 0; j < K; j++) vp_pad[j] = vals_pad + j * P;
    c->m.prior->predict(&c->m, pws, c->s + q * c->S, c->d2 + q * K, vp, 2, 0, NULL, z_short);
    c->m.prior->predict(&c->m, pws, c->s + q * c->S, d2_pad, vp_pad, K, 0, NULL, z_pad);
    CHECK(memcmp(z_short, z_pad, sizeof z_pad) == 0, "predict with 2 found != the last entry repeated");
  }
  printf(
      "mlp predict: mean vs forward prior mean max |diff| %.2e (tol 1e-5 + 1e-5 rel); sample spread %.2e\n",
      worst_m, worst_v);

  /* the whole scene moved rigidly (rotate by phi about the origin, shift,
   * turn every heading by phi), or the query heading by 2 pi: the same prior */
  const float phi = 0.9f, tx = 1.5f, ty = -0.7f;
  double worst_rigid = 0, worst_turn = 0;
  for (int q = 0; q < R; q++) {
    float vals[K * (2 * Z + S_MAX)], z0[Z], z1[Z], z2[Z];
    const float *vp[K];
    pack_values(c, q, vals, vp, K);
    const float *sq = c->s + q * c->S;
    c->m.prior->predict(&c->m, pws, sq, c->d2 + q * K, vp, K, 0, NULL, z0);
    float moved[K * (2 * Z + S_MAX)], sm[3];
    memcpy(moved, vals, sizeof moved);
    const float cp = cosf(phi), sp = sinf(phi);
    for (int j = 0; j <= K; j++) {
      const float *a = j < K ? vals + j * P + 2 * Z : sq;
      float *b = j < K ? moved + j * P + 2 * Z : sm;
      b[0] = cp * a[0] - sp * a[1] + tx;
      b[1] = sp * a[0] + cp * a[1] + ty;
      b[2] = a[2] + phi;
    }
    for (int j = 0; j < K; j++) vp[j] = moved + j * P;
    c->m.prior->predict(&c->m, pws, sm, c->d2 + q * K, vp, K, 0, NULL, z1);
    for (int j = 0; j < K; j++) vp[j] = vals + j * P;
    float st[3] = {sq[0], sq[1], (float)(sq[2] + TWO_PI)};
    c->m.prior->predict(&c->m, pws, st, c->d2 + q * K, vp, K, 0, NULL, z2);
    for (int k = 0; k < Z; k++) {
      worst_rigid = fmax(worst_rigid, fabs((double)z1[k] - z0[k]));
      worst_turn = fmax(worst_turn, fabs((double)z2[k] - z0[k]));
    }
  }
  CHECK(worst_rigid <= 1e-4, "mlp prior under a rigid motion of the scene: max |diff| %.3g", worst_rigid);
  CHECK(worst_turn <= 1e-4, "mlp prior with the query heading + 2 pi: max |diff| %.3g", worst_turn);
  printf("mlp prior invariance: rigid motion max |diff| %.2e, heading + 2 pi %.2e (tol 1e-4)\n", worst_rigid,
         worst_turn);
  c->m.prior->ws_free(pws);
}

/* At init the output layer is zero: the mean is the inverse-distance
 * weighted mean of the neighbours' means (computed here in double). */
static void check_mlp_init(ctx_t *c) {
  const float *w3 = gtmsm_tensor(&c->m, GTMSM_ROLE_PRIOR, 4, c->m.p.data);
  const float *b3 = gtmsm_tensor(&c->m, GTMSM_ROLE_PRIOR, 5, c->m.p.data);
  int zero = 1;
  for (int i = 0; i < 2 * Z * c->m.cfg.prior_hidden; i++) zero &= w3[i] == 0;
  for (int i = 0; i < 2 * Z; i++) zero &= b3[i] == 0;
  CHECK(zero, "the learned prior's output layer does not start at zero");
  void *pws = c->m.prior->ws_new(&c->m.cfg, 1, 0);
  double worst = 0;
  for (int q = 0; q < R; q++) {
    for (int found = 1; found <= K; found++) {
      float vals[K * (2 * Z + S_MAX)], zq[Z];
      const float *vp[K];
      pack_values(c, q, vals, vp, found);
      c->m.prior->predict(&c->m, pws, c->s + q * c->S, c->d2 + q * K, vp, found, 0, NULL, zq);
      double v[K], vs = 0;
      for (int j = 0; j < K; j++) { /* padded as predict pads */
        int jj = j < found ? j : found - 1;
        v[j] = 1.0 / ((double)c->d2[q * K + jj] + c->m.cfg.delta);
        vs += v[j];
      }
      for (int k = 0; k < Z; k++) {
        double want = 0;
        for (int j = 0; j < K; j++) want += v[j] / vs * vp[j < found ? j : found - 1][k];
        worst = fmax(worst, fabs(zq[k] - want));
        CHECK_NEAR(zq[k], want, 1e-6, 1e-6, "mlp prior at init vs the inverse-distance mean");
      }
    }
  }
  printf("mlp prior at init: mean vs inverse-distance weighted mean max |diff| %.2e (tol 1e-6 + 1e-6 rel)\n",
         worst);
  c->m.prior->ws_free(pws);
}

int main(void) {
  check_weights();
  static ctx_t c;

  /* the mixture: log-sum-exp of Gaussians and rational weights, smooth */
  if (model_for(&c, GTMSM_PRIOR_MIXTURE, 61) == 0) {
    fill_inputs(&c, 62);
    gc_opts o = gc_default();
    o.eps = 6e-2; /* wide: the loss is a float log-density, rounded to 2e-7 */
    o.richardson = 1;
    o.noise = 1;
    o.tol = 1e-3;
    o.floor = 1e-2;
    check_grad(&c, "mixture", &o, 2e-2);
  }
  if (c.ws) c.m.prior->ws_free(c.ws);
  gtmsm_model_free(&c.m);

  /* the learned prior: at init, then with a live output layer */
  memset(&c, 0, sizeof c);
  if (model_for(&c, GTMSM_PRIOR_MLP, 63) == 0) {
    fill_inputs(&c, 64);
    check_mlp_init(&c);
    float *w3 = gtmsm_tensor(&c.m, GTMSM_ROLE_PRIOR, 4, c.m.p.data);
    float *b3 = gtmsm_tensor(&c.m, GTMSM_ROLE_PRIOR, 5, c.m.p.data);
    test_fill_uniform(w3, (size_t)2 * Z * c.m.cfg.prior_hidden, -0.5f, 0.5f, 65);
    test_fill_uniform(b3, 2 * Z, -0.3f, 0.3f, 66);
    gc_opts o = gc_default();
    o.eps = 1e-2; /* ELU layers: kinks, so no Richardson; convergence checked */
    o.tol = 1e-3;
    o.floor = 1e-2;
    o.kink_tol = 5e-4;
    o.noise = 1;
    check_grad(&c, "mlp", &o, o.eps);
    check_mlp_predict(&c);
  }
  if (c.ws) c.m.prior->ws_free(c.ws);
  gtmsm_model_free(&c.m);
  return test_finish("test_part_prior");
}
