/* Tests of core/nn/density: hand-worked values (python3, quoted) of the Gaussian
 * log-density with learned and fixed variance, the Bernoulli log-pmf, KL between
 * diagonal Gaussians (closed forms, KL(p||p) = 0), the mixture log-density
 * (a hand case, K = 1 against the plain Gaussian, components so distant that
 * exp underflows even in double) and the reparameterised sample; then
 * gradchecks of every input of every op, with gradients accumulated into
 * pre-filled buffers. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/density.h"
#include "testlib.h"

/* ---- hand-worked values ---- */

static void test_values(void) {
  /* Gaussian: x = [1, -1], mu = [0, 0.5], logvar = [0, log 4]; python3:
   * sum(-0.5*(log(2pi) + lv + (x-m)**2 * exp(-lv))) = -3.3122742469692907;
   * with a fixed logvar log(0.5) for both: -4.3947298858494. */
  float x[2] = {1, -1}, mu[2] = {0, 0.5f}, lv[2] = {0, logf(4)}, out[3];
  gauss_logpdf_forward(out, x, mu, lv, 0, 1, 2);
  CHECK_NEAR(out[0], -3.3122742469692907, 0, 1e-6, "gauss learned variance");
  gauss_logpdf_forward(out, x, mu, NULL, logf(0.5f), 1, 2);
  CHECK_NEAR(out[0], -4.3947298858494, 0, 1e-6, "gauss fixed variance");

  /* Bernoulli: x = [1, 0, 0.3], logits = [2, -1, 0.5];
   * sum(x*l - log1p(exp(l))) = -1.2642666827413023. Saturated logits stay finite:
   * x = 1 at l = 100 is log 1 = 0, x = 0 at l = 100 is -100, x = 1 at l = -100 is -100. */
  float bx[3] = {1, 0, 0.3f}, bl[3] = {2, -1, 0.5f};
  bernoulli_logpmf_forward(out, bx, bl, 1, 3);
  CHECK_NEAR(out[0], -1.2642666827413023, 0, 1e-6, "bernoulli");
  float sx[3] = {1, 0, 1}, sl[3] = {100, 100, -100};
  bernoulli_logpmf_forward(out, sx, sl, 3, 1);
  CHECK_NEAR(out[0], 0, 1e-6, 0, "bernoulli x=1 l=100");
  CHECK_NEAR(out[1], -100, 0, 1e-6, "bernoulli x=0 l=100");
  CHECK_NEAR(out[2], -100, 0, 1e-6, "bernoulli x=1 l=-100");

  /* KL(N(0, 1) || N(1, 4)) = log(2/1) + (1 + 1)/(2*4) - 1/2 = 0.4431471805599453.
   * Row 2, D = 2: KL(N(0.5,1)||N(0,2)) + KL(N(-1,2)||N(0,1))
   *   = 0.5(log 2 + 1.25/2 - 1) + 0.5(-log 2 + 3 - 1) = 0.8125 (the logs cancel). */
  float m1[3] = {0, 0.5f, -1}, l1[3] = {0, 0, logf(2)}, m2[3] = {1, 0, 0}, l2[3] = {logf(4), logf(2), 0};
  kl_gauss_forward(out, m1, l1, m2, l2, 1, 1);
  CHECK_NEAR(out[0], 0.4431471805599453, 0, 1e-6, "KL closed form 1-D");
  kl_gauss_forward(out, m1 + 1, l1 + 1, m2 + 1, l2 + 1, 1, 2);
  CHECK_NEAR(out[0], 0.8125, 0, 1e-6, "KL closed form 2-D");

  /* Mixture: x = 0.5, w = [0.3, 0.7], mu = [0, 1], logvar = [0, log 0.25]; python3:
   * N0 = 0.3520653267642995, N1 = 0.48394144903828673, log(0.3 N0 + 0.7 N1) =
   * -0.8110783493863013; d/dx = 1.405801747133509, d/dw = N/p =
   * [0.7922643371553212, 1.0890295697905767]. */
  float mx[1] = {0.5f}, mm[2] = {0, 1}, mlv[2] = {0, logf(0.25f)}, mw[2] = {0.3f, 0.7f}, scr[2];
  float g1[1] = {1}, dx[1] = {0}, dw[2] = {0, 0};
  mixture_logpdf_forward(out, scr, mx, mm, mlv, mw, 1, 2, 1);
  CHECK_NEAR(out[0], -0.8110783493863013, 0, 1e-6, "mixture hand value");
  mixture_logpdf_backward(dx, NULL, NULL, dw, g1, out, scr, mx, mm, mlv, mw, 1, 2, 1);
  CHECK_NEAR(dx[0], 1.405801747133509, 0, 1e-5, "mixture hand d/dx");
  CHECK_NEAR(dw[0], 0.7922643371553212, 0, 1e-5, "mixture hand d/dw0");
  CHECK_NEAR(dw[1], 1.0890295697905767, 0, 1e-5, "mixture hand d/dw1");

  /* Reparam: z = mu + exp(logvar/2) eps = 1 + 2 * 0.5 = 2 at mu 1, logvar log 4, eps 0.5. */
  float rm[1] = {1}, rl[1] = {logf(4)}, re[1] = {0.5f}, z[1];
  reparam_forward(z, rm, rl, re, 1);
  CHECK_NEAR(z[0], 2, 0, 1e-6, "reparam");
  printf("hand-worked gauss, bernoulli, KL, mixture, reparam values compared\n");
}

/* KL(p||p) = 0 and KL >= 0 on random rows. */
static void test_kl_properties(void) {
  enum { B = 4, D = 16 };
  float m1[B * D], l1[B * D], m2[B * D], l2[B * D], out[B];
  test_fill_uniform(m1, B * D, -2, 2, 1);
  test_fill_uniform(l1, B * D, -2, 2, 2);
  test_fill_uniform(m2, B * D, -2, 2, 3);
  test_fill_uniform(l2, B * D, -2, 2, 4);
  kl_gauss_forward(out, m1, l1, m1, l1, B, D);
  double worst = 0;
  for (int b = 0; b < B; b++) worst = fmax(worst, fabs(out[b]));
  /* each term is 0.5 (exp(l) exp(-l) - 1), a few float ulp away from 0 */
  printf("KL(p||p) over %d rows of %d dims: max |KL| %.3g (tol 1e-5)\n", B, D, worst);
  CHECK(worst <= 1e-5, "KL(p||p) = %g", worst);
  kl_gauss_forward(out, m1, l1, m2, l2, B, D);
  for (int b = 0; b < B; b++) CHECK(out[b] > 0, "KL(p||q) = %g <= 0", out[b]);
}

/* log N_k in double for row b, component k. */
static double log_gauss_d(const float *x, const float *mu, const float *lv, int D) {
  double s = 0;
  for (int d = 0; d < D; d++) {
    double r = (double)x[d] - mu[d];
    s += -0.5 * (1.8378770664093453 + lv[d] + r * r * exp(-(double)lv[d]));
  }
  return s;
}

/* The mixture with K = 1 (w = 1) is the plain Gaussian, values and gradients. */
static void test_mixture_k1(void) {
  enum { B = 3, D = 5 };
  float x[B * D], mu[B * D], lv[B * D], w[B] = {1, 1, 1}, o1[B], o2[B], scr[B], g[B];
  test_fill_uniform(x, B * D, -1, 1, 5);
  test_fill_uniform(mu, B * D, -1, 1, 6);
  test_fill_uniform(lv, B * D, -1, 1, 7);
  test_fill_uniform(g, B, -1, 1, 8);
  mixture_logpdf_forward(o1, scr, x, mu, lv, w, B, 1, D);
  gauss_logpdf_forward(o2, x, mu, lv, 0, B, D);
  for (int b = 0; b < B; b++) CHECK_NEAR(o1[b], o2[b], 1e-6, 1e-6, "mixture K=1 vs gauss");
  float ax[B * D] = {0}, am[B * D] = {0}, al[B * D] = {0}, bx[B * D] = {0}, bm[B * D] = {0},
        bl[B * D] = {0};
  mixture_logpdf_backward(ax, am, al, NULL, g, o1, scr, x, mu, lv, w, B, 1, D);
  gauss_logpdf_backward(bx, bm, bl, g, x, mu, lv, 0, B, D);
  for (int i = 0; i < B * D; i++) {
    CHECK_NEAR(ax[i], bx[i], 1e-6, 1e-5, "mixture K=1 dx vs gauss");
    CHECK_NEAR(am[i], bm[i], 1e-6, 1e-5, "mixture K=1 dmu vs gauss");
    CHECK_NEAR(al[i], bl[i], 1e-6, 1e-5, "mixture K=1 dlogvar vs gauss");
  }
  printf("mixture with K = 1 equals the Gaussian (values and gradients)\n");
}

/* Two components 60 apart in each of 8 dims, x half way: log N_k ~ -3600, far
 * below where exp underflows even in double (~ -745), so only log-sum-exp works.
 * Values and gradients are compared with a double-precision log-sum-exp. */
static void test_mixture_distant(void) {
  enum { K = 2, D = 8 };
  float x[D], mu[K * D], lv[K * D], w[K] = {0.3f, 0.7f}, out[1], scr[K], g[1] = {1};
  for (int d = 0; d < D; d++) {
    x[d] = 0.1f * (float)d;
    mu[d] = x[d] + 30.0f, mu[D + d] = x[d] - 30.0f; // equal N_k: responsibilities are w
    lv[d] = 0.1f, lv[D + d] = 0.1f;
  }
  double lc[K], naive = 0;
  for (int k = 0; k < K; k++) {
    lc[k] = log(w[k]) + log_gauss_d(x, mu + k * D, lv + k * D, D);
    naive += w[k] * exp(log_gauss_d(x, mu + k * D, lv + k * D, D));
  }
  double mx = fmax(lc[0], lc[1]);
  double ref = mx + log(exp(lc[0] - mx) + exp(lc[1] - mx));
  mixture_logpdf_forward(out, scr, x, mu, lv, w, 1, K, D);
  printf("distant mixture: log N_k = %.1f, %.1f; naive log(sum w exp) in double = %g; "
         "ours %.7g, double log-sum-exp %.9g\n",
         lc[0] - log(w[0]), lc[1] - log(w[1]), log(naive), out[0], ref);
  CHECK(naive == 0, "the case is meant to underflow a naive sum");
  CHECK_NEAR(out[0], ref, 0, 1e-6, "distant mixture log-density"); // float at ~3600: 2.4e-4 ulp
  float dx[D] = {0}, dmu[K * D] = {0}, dlv[K * D] = {0}, dw[K] = {0};
  mixture_logpdf_backward(dx, dmu, dlv, dw, g, out, scr, x, mu, lv, w, 1, K, D);
  double resp[K];
  for (int k = 0; k < K; k++) resp[k] = exp(lc[k] - ref);
  double worst = 0;
  for (int d = 0; d < D; d++) {
    double ex = 0;
    for (int k = 0; k < K; k++) {
      double iv = exp(-(double)lv[k * D + d]), r = (double)x[d] - mu[k * D + d];
      double em = resp[k] * r * iv, el = resp[k] * 0.5 * (r * r * iv - 1);
      ex -= em;
      worst = fmax(worst, fabs(dmu[k * D + d] - em) / fmax(fabs(em), 1e-3));
      worst = fmax(worst, fabs(dlv[k * D + d] - el) / fmax(fabs(el), 1e-3));
    }
    worst = fmax(worst, fabs(dx[d] - ex) / fmax(fabs(ex), 1e-3));
  }
  for (int k = 0; k < K; k++) { // d out / d w_k = N_k / p = resp_k / w_k
    double ew = resp[k] / w[k];
    worst = fmax(worst, fabs(dw[k] - ew) / fmax(fabs(ew), 1e-3));
  }
  /* resp = exp(lc - out) with lc and out rounded to float at ~3600 (ulp 2.4e-4),
   * so ~5e-4 relative is expected; tol 5e-3. */
  printf("distant mixture gradients vs double log-sum-exp: max rel err %.3g (tol 5e-3), "
         "responsibilities %.4f %.4f\n", worst, resp[0], resp[1]);
  CHECK(worst <= 5e-3, "distant mixture gradient rel err %.3g", worst);
}

/* A zero weight: the gradient with respect to it is N_k / p (finite), taken by
 * a separate branch; central differences would step to a negative weight, so
 * this compares against the double formula and a one-sided difference. */
static void test_mixture_zero_weight(void) {
  enum { K = 2, D = 3 };
  float x[D] = {0.2f, -0.4f, 0.9f}, mu[K * D] = {0, 0, 1, 0.5f, -0.5f, 0.5f};
  float lv[K * D] = {0, 0.3f, -0.2f, 0.1f, 0, 0.2f}, w[K] = {0, 1}, out[1], scr[K], g[1] = {1};
  float dw[K] = {0};
  mixture_logpdf_forward(out, scr, x, mu, lv, w, 1, K, D);
  mixture_logpdf_backward(NULL, NULL, NULL, dw, g, out, scr, x, mu, lv, w, 1, K, D);
  double ln0 = log_gauss_d(x, mu, lv, D), ln1 = log_gauss_d(x, mu + D, lv + D, D);
  double expect = exp(ln0 - ln1); // p = N_1 when w = [0, 1]
  CHECK_NEAR(out[0], ln1, 0, 1e-6, "zero-weight mixture value");
  CHECK_NEAR(dw[0], expect, 0, 1e-5, "zero-weight d/dw0 = N0/p");
  float o2[1], h = 1e-3f;
  w[0] = h;
  mixture_logpdf_forward(o2, scr, x, mu, lv, w, 1, K, D);
  double onesided = ((double)o2[0] - out[0]) / h; // truncation ~ h N0/p / 2, rounding 6e-8/h
  printf("zero weight: d/dw0 analytic %.7g, double formula %.7g, one-sided difference %.7g\n",
         dw[0], expect, onesided);
  CHECK_NEAR(dw[0], onesided, 0, 5e-3, "zero-weight d/dw0 vs one-sided difference");
}

/* ---- gradchecks ---- */

enum { OP_GAUSS, OP_GAUSS_FIXED, OP_BERN, OP_KL, OP_MIX, OP_REPARAM };
enum { MB = 4, MK = 3, MD = 64, MAXN = MB * MK * MD };

typedef struct {
  int op, B, K, D;
  float fixed_lv;
  float x[MAXN], mu[MAXN], lv[MAXN], mu2[MAXN], lv2[MAXN], w[MB * MK]; // x is eps for reparam
  float out[MAXN], scratch[MB * MK], dout[MAXN];
} dctx;

static size_t n_out(const dctx *c) { return c->op == OP_REPARAM ? (size_t)c->B * c->D : (size_t)c->B; }

static double dens_loss(void *p) {
  dctx *c = p;
  switch (c->op) {
    case OP_GAUSS: gauss_logpdf_forward(c->out, c->x, c->mu, c->lv, 0, c->B, c->D); break;
    case OP_GAUSS_FIXED: gauss_logpdf_forward(c->out, c->x, c->mu, NULL, c->fixed_lv, c->B, c->D); break;
    case OP_BERN: bernoulli_logpmf_forward(c->out, c->x, c->mu, c->B, c->D); break;
    case OP_KL: kl_gauss_forward(c->out, c->mu, c->lv, c->mu2, c->lv2, c->B, c->D); break;
    case OP_MIX:
      mixture_logpdf_forward(c->out, c->scratch, c->x, c->mu, c->lv, c->w, c->B, c->K, c->D);
      break;
    case OP_REPARAM: reparam_forward(c->out, c->mu, c->lv, c->x, c->B * c->D); break;
  }
  return test_dot(c->out, c->dout, n_out(c));
}

/* Gradients of every input, accumulated onto g0 (random), returned as the difference. */
typedef struct {
  float x[MAXN], mu[MAXN], lv[MAXN], mu2[MAXN], lv2[MAXN], w[MB * MK];
} dgrads;

static void dens_backward(dctx *c, dgrads *g) {
  static dgrads g0;
  test_fill_uniform((float *)&g0, sizeof g0 / sizeof(float), -0.5f, 0.5f, 77);
  *g = g0;
  dens_loss(c); // forward, so out and scratch match the inputs
  int B = c->B, K = c->K, D = c->D;
  switch (c->op) {
    case OP_GAUSS: gauss_logpdf_backward(g->x, g->mu, g->lv, c->dout, c->x, c->mu, c->lv, 0, B, D); break;
    case OP_GAUSS_FIXED:
      gauss_logpdf_backward(g->x, g->mu, g->lv, c->dout, c->x, c->mu, NULL, c->fixed_lv, B, D);
      CHECK(memcmp(g->lv, g0.lv, sizeof g->lv) == 0, "fixed variance wrote dlogvar");
      break;
    case OP_BERN: bernoulli_logpmf_backward(g->mu, c->dout, c->x, c->mu, B, D); break;
    case OP_KL:
      kl_gauss_backward(g->mu, g->lv, g->mu2, g->lv2, c->dout, c->mu, c->lv, c->mu2, c->lv2, B, D);
      break;
    case OP_MIX:
      mixture_logpdf_backward(g->x, g->mu, g->lv, g->w, c->dout, c->out, c->scratch, c->x, c->mu,
                              c->lv, c->w, B, K, D);
      break;
    case OP_REPARAM: reparam_backward(g->mu, g->lv, c->dout, c->lv, c->x, B * D); break;
  }
  float *a = (float *)g;
  const float *a0 = (const float *)&g0;
  for (size_t i = 0; i < sizeof *g / sizeof(float); i++) a[i] -= a0[i];
}

static void gc(const char *label, dctx *c, float *x, const float *analytic, size_t n, double eps,
               double tol) {
  gc_opts o = gc_default();
  o.eps = eps, o.tol = tol, o.floor = 1e-2;
  gradcheck(label, x, analytic, n, dens_loss, c, &o);
}

static void test_gradients(void) {
  static dctx c;
  static dgrads g;
  /* Error budget. The forward rounds each row's output (|out| ~ 10) to float, ~5e-7,
   * which over 2 eps = 2e-2 is ~3e-5 of noise in the numeric gradient; truncation
   * is eps^2 |f'''| / 6 ~ 2e-5. So gradients are compared relative to
   * max(|a|, |n|, 1e-2) (gc() sets the floor) with tol 2e-3, which a wrong sign,
   * a missing factor 1/2 or exp(lv) for exp(-lv) exceed by orders of magnitude.
   * Inputs that enter quadratically (x and mu of the Gaussian, the means in KL) or
   * linearly (mu in reparam) have no truncation error, so they get eps 0.25,
   * which shrinks the rounding noise 25-fold. */
  size_t n;

  memset(&c, 0, sizeof c);
  c.op = OP_GAUSS, c.B = 3, c.D = 6, n = (size_t)c.B * c.D;
  test_fill_uniform(c.x, n, -2, 2, 1), test_fill_uniform(c.mu, n, -2, 2, 2);
  test_fill_uniform(c.lv, n, -1.5f, 1.5f, 3), test_fill_uniform(c.dout, (size_t)c.B, -1, 1, 4);
  dens_backward(&c, &g);
  gc("gauss learned dx", &c, c.x, g.x, n, 0.25, 2e-3);
  gc("gauss learned dmu", &c, c.mu, g.mu, n, 0.25, 2e-3);
  gc("gauss learned dlogvar", &c, c.lv, g.lv, n, 1e-2, 2e-3);

  c.op = OP_GAUSS_FIXED, c.fixed_lv = -0.7f;
  dens_backward(&c, &g);
  gc("gauss fixed dx", &c, c.x, g.x, n, 0.25, 2e-3);
  gc("gauss fixed dmu", &c, c.mu, g.mu, n, 0.25, 2e-3);

  memset(&c, 0, sizeof c);
  c.op = OP_BERN, c.B = 3, c.D = 8, n = (size_t)c.B * c.D;
  test_fill_uniform(c.x, n, 0, 1, 5), test_fill_uniform(c.mu, n, -5, 5, 6);
  c.x[0] = 0, c.x[1] = 1, c.mu[2] = 12, c.mu[3] = -12; // hard targets, saturated logits
  test_fill_uniform(c.dout, (size_t)c.B, -1, 1, 7);
  dens_backward(&c, &g);
  gc("bernoulli dlogits", &c, c.mu, g.mu, n, 1e-2, 2e-3);

  memset(&c, 0, sizeof c);
  c.op = OP_KL, c.B = 3, c.D = 6, n = (size_t)c.B * c.D;
  test_fill_uniform(c.mu, n, -2, 2, 8), test_fill_uniform(c.lv, n, -1.5f, 1.5f, 9);
  test_fill_uniform(c.mu2, n, -2, 2, 10), test_fill_uniform(c.lv2, n, -1.5f, 1.5f, 11);
  test_fill_uniform(c.dout, (size_t)c.B, -1, 1, 12);
  dens_backward(&c, &g);
  gc("KL dmu1", &c, c.mu, g.mu, n, 0.25, 2e-3);
  gc("KL dlogvar1", &c, c.lv, g.lv, n, 1e-2, 2e-3);
  gc("KL dmu2", &c, c.mu2, g.mu2, n, 0.25, 2e-3);
  gc("KL dlogvar2", &c, c.lv2, g.lv2, n, 1e-2, 2e-3);

  /* Mixture, moderate: components overlap, every responsibility matters. The
   * forward also rounds each log(w_k N_k) to float in scratch, which doubles the
   * rounding noise above, so tol 5e-3 (seen: up to ~1.2e-3; with eps 3e-2 the
   * truncation error takes over instead). */
  memset(&c, 0, sizeof c);
  c.op = OP_MIX, c.B = 3, c.K = 3, c.D = 4, n = (size_t)c.B * c.K * c.D;
  test_fill_uniform(c.x, (size_t)c.B * c.D, -1, 1, 13), test_fill_uniform(c.mu, n, -1.5f, 1.5f, 14);
  test_fill_uniform(c.lv, n, -0.5f, 0.5f, 15), test_fill_uniform(c.w, (size_t)c.B * c.K, 0.2f, 1, 16);
  for (int b = 0; b < c.B; b++) { // rows sum to 1
    float s = 0;
    for (int k = 0; k < c.K; k++) s += c.w[b * c.K + k];
    for (int k = 0; k < c.K; k++) c.w[b * c.K + k] /= s;
  }
  test_fill_uniform(c.dout, (size_t)c.B, -1, 1, 17);
  dens_backward(&c, &g);
  gc("mixture dx", &c, c.x, g.x, (size_t)c.B * c.D, 1e-2, 5e-3);
  gc("mixture dmu", &c, c.mu, g.mu, n, 1e-2, 5e-3);
  gc("mixture dlogvar", &c, c.lv, g.lv, n, 1e-2, 5e-3);
  gc("mixture dw", &c, c.w, g.w, (size_t)c.B * c.K, 1e-2, 5e-3);

  /* Mixture, distant: 48 dims, each component ~2.5 from x in every dim, so
   * log N_k ~ -150 to -200, past where expf underflows (~ -104). Float rounding of
   * a loss of ~200 (ulp 1.5e-5) over 2 eps gives ~1e-3 noise on O(1) gradients,
   * hence eps 2e-2 and tol 1e-2 here. */
  memset(&c, 0, sizeof c);
  c.op = OP_MIX, c.B = 1, c.K = 2, c.D = 48, n = (size_t)c.K * c.D;
  test_fill_uniform(c.x, (size_t)c.D, -1, 1, 18);
  test_fill_uniform(c.lv, n, -0.3f, 0.3f, 19);
  for (int d = 0; d < c.D; d++) {
    c.mu[d] = c.x[d] + (d % 2 ? 2.5f : -2.5f);
    c.mu[c.D + d] = c.x[d] + (d % 3 ? -2.4f : 2.6f);
  }
  c.w[0] = 0.4f, c.w[1] = 0.6f, c.dout[0] = 1;
  dens_backward(&c, &g);
  printf("distant mixture for gradcheck: log(w_k N_k) = %.1f, %.1f, log p = %.1f\n", c.scratch[0],
         c.scratch[1], c.out[0]);
  gc("distant mixture dx", &c, c.x, g.x, (size_t)c.D, 2e-2, 1e-2);
  gc("distant mixture dmu", &c, c.mu, g.mu, n, 2e-2, 1e-2);
  gc("distant mixture dlogvar", &c, c.lv, g.lv, n, 2e-2, 1e-2);
  gc("distant mixture dw", &c, c.w, g.w, (size_t)c.K, 2e-2, 1e-2);

  memset(&c, 0, sizeof c);
  c.op = OP_REPARAM, c.B = 2, c.D = 10, n = (size_t)c.B * c.D;
  test_fill_uniform(c.x, n, -2, 2, 20), test_fill_uniform(c.mu, n, -1, 1, 21);
  test_fill_uniform(c.lv, n, -2, 2, 22), test_fill_uniform(c.dout, n, -1, 1, 23);
  dens_backward(&c, &g);
  gc("reparam dmu", &c, c.mu, g.mu, n, 0.25, 2e-3);
  gc("reparam dlogvar", &c, c.lv, g.lv, n, 1e-2, 2e-3);
}

int main(void) {
  test_values();
  test_kl_properties();
  test_mixture_k1();
  test_mixture_distant();
  test_mixture_zero_weight();
  test_gradients();
  return test_finish("test_density");
}
