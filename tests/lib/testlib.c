/* Test helpers. */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/rng.h"

int test_failures = 0;

int test_finish(const char *name) {
  if (test_failures) {
    fprintf(stderr, "%s: %d FAILED check(s)\n", name, test_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

gc_opts gc_default(void) {
  gc_opts o = {.eps = 1e-2, .tol = 1e-2, .floor = 1e-3, .max_checks = 200, .seed = 1, .skip = NULL,
               .richardson = 0, .kink_tol = 0, .noise = 0};
  return o;
}

#define GC_LEVELS 3   /* halvings of the step while looking for convergence */
#define GC_SIGMAS 5.0 /* rounding noise allowed, in standard deviations */
#define GC_NOISE_STEPS 8

/* (f(x + h) - f(x - h)) / (2 h) in element i, with the steps as rounded in float. */
static double central(float *x, size_t i, double h, gc_loss_fn f, void *ctx) {
  float x0 = x[i];
  x[i] = (float)(x0 + h);
  double hp = (double)x[i] - x0, lp = f(ctx);
  x[i] = (float)(x0 - h);
  double hm = x0 - (double)x[i], lm = f(ctx);
  x[i] = x0;
  return (lp - lm) / (hp + hm);
}

/* The rounding noise of the central difference at step h in element i: the
 * RMS residual of a least-squares fit a + b u^2 to the differences at
 * GC_NOISE_STEPS steps u h, u in [0.9, 1.1] (the fit takes out the change of
 * the truncation error; what is left is float rounding, and a kink or a
 * jump within the steps if any). */
static double central_noise(float *x, size_t i, double h, gc_loss_fn f, void *ctx) {
  enum { M = GC_NOISE_STEPS };
  double u2[M], d[M], su = 0, sd = 0;
  for (int j = 0; j < M; j++) {
    double u = 0.9 + 0.2 * j / (M - 1);
    u2[j] = u * u;
    d[j] = central(x, i, u * h, f, ctx);
    su += u2[j];
    sd += d[j];
  }
  su /= M;
  sd /= M;
  double suu = 0, sud = 0;
  for (int j = 0; j < M; j++) {
    suu += (u2[j] - su) * (u2[j] - su);
    sud += (u2[j] - su) * (d[j] - sd);
  }
  double b = sud / suu, ss = 0;
  for (int j = 0; j < M; j++) {
    double e = d[j] - sd - b * (u2[j] - su);
    ss += e * e;
  }
  return sqrt(ss / (M - 2));
}

/* Central differences of element i at eps / 2^k, each computed once. */
typedef struct {
  float *x;
  size_t i;
  gc_loss_fn f;
  void *ctx;
  double eps;
  int have;
  double d[GC_LEVELS + 3];
} gc_steps;

static double step_d(gc_steps *st, int k) {
  for (; st->have <= k; st->have++)
    st->d[st->have] = central(st->x, st->i, st->eps / (double)(1 << st->have), st->f, st->ctx);
  return st->d[k];
}

/* The numeric gradient of element i. The estimate at level k is
 * ca D(h_k) + cb D(h_k / 2), h_k = eps / 2^k: the central difference D, or
 * Richardson's (4 D(h/2) - D(h)) / 3. sd0 is the rounding noise of D(eps);
 * that of D(h) goes as 1 / h, so the estimate's is sd0 2^k sqrt(ca^2 +
 * 4 cb^2) and that of the difference of the estimates at levels k and k + 1
 * sd0 2^k sqrt(ca^2 + 4 (cb - ca)^2 + 16 cb^2). Returns the estimate, with
 * *converged (see kink_tol), *sigma its noise and *disagree its distance to
 * the estimate on half the step (0 when it never converged). */
static double step_est(gc_steps *st, int k, double ca, double cb) {
  return ca * step_d(st, k) + (cb != 0 ? cb * step_d(st, k + 1) : 0);
}

static double numeric(float *x, size_t i, gc_loss_fn f, void *ctx, const gc_opts *o, double sd0,
                      int *converged, double *sigma, double *disagree) {
  const double ca = o->richardson ? -1.0 / 3 : 1, cb = o->richardson ? 4.0 / 3 : 0;
  const double s_est = sd0 * sqrt(ca * ca + 4 * cb * cb);
  const double s_diff = sd0 * sqrt(ca * ca + 4 * (cb - ca) * (cb - ca) + 16 * cb * cb);
  gc_steps st = {.x = x, .i = i, .f = f, .ctx = ctx, .eps = o->eps, .have = 0};
  double num = step_est(&st, 0, ca, cb);
  *sigma = s_est;
  *disagree = 0;
  *converged = 1;
  if (!(o->kink_tol > 0)) return num;
  *converged = 0;
  for (int k = 0; k < GC_LEVELS && !*converged; k++) {
    const double scale = (double)(1 << k);
    double e1 = step_est(&st, k, ca, cb), e2 = step_est(&st, k + 1, ca, cb);
    double dn = fmax(fmax(fabs(e1), fabs(e2)), o->floor); /* not |a|: a wrong analytic must not loosen it */
    *converged = fabs(e1 - e2) <= fmax(o->kink_tol * dn, GC_SIGMAS * s_diff * scale);
    num = *converged ? e1 : e2;
    *sigma = s_est * (*converged ? scale : 2 * scale);
    *disagree = *converged ? fabs(e1 - e2) : 0; /* unresolved: no allowance for it */
  }
  return num;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double gradcheck(const char *label, float *x, const float *analytic, size_t n, gc_loss_fn f,
                 void *ctx, const gc_opts *opts) {
  gc_opts o = opts ? *opts : gc_default();
  rng_t r;
  rng_init(&r, o.seed, 99);
  size_t checks = n < o.max_checks ? n : o.max_checks, skipped = 0, done = 0, kinks = 0, m = 0, limited = 0;
  double worst = 0, worst_a = 0, worst_n = 0, worst_kink = 0, pooled = 0;
  size_t worst_i = 0;
  /* the elements to check, and with noise the rounding noise of D(eps) in
   * each; an element's noise is the larger of its own and the median (its
   * own, from few steps, may come out low by chance) */
  size_t *idx = malloc(sizeof(size_t) * (checks ? checks : 1));
  double *sd = calloc(checks ? checks : 1, sizeof(double));
  double *sorted = calloc(checks ? checks : 1, sizeof(double));
  if (!idx || !sd || !sorted) {
    test_failures++;
    fprintf(stderr, "FAIL gradcheck %s: out of memory\n", label);
    goto done;
  }
  for (size_t c = 0; c < checks; c++) {
    size_t i = n <= o.max_checks ? c : rng_below(&r, (uint32_t)n);
    if (o.skip && o.skip(ctx, i, o.eps)) {
      skipped++;
      continue;
    }
    idx[m] = i;
    if (o.noise) sd[m] = sorted[m] = central_noise(x, i, o.eps, f, ctx);
    m++;
  }
  if (o.noise && m) {
    qsort(sorted, m, sizeof(double), cmp_double);
    pooled = sorted[m / 2];
  }
  for (size_t c = 0; c < m; c++) {
    size_t i = idx[c];
    int converged;
    double sigma, disagree;
    double num = numeric(x, i, f, ctx, &o, fmax(sd[c], pooled), &converged, &sigma, &disagree);
    double a = analytic[i];
    /* the floor, or the uncertainty of this estimate if larger: its rounding
     * noise plus twice its distance to the estimate on half the step (the
     * error of the estimate when that error goes as the step, a kink; 4/3
     * of it when as its square) */
    double unc = (GC_SIGMAS * sigma + 2 * disagree) / o.tol;
    double den = fmax(fmax(fabs(a), fabs(num)), fmax(o.floor, unc));
    double rel = fabs(a - num) / den;
    if (!converged) {
      /* still compared, on the finest step, at ten times the tolerance:
       * through a C1 kink (ELU) the quotient is off by O(step) only */
      if (!(rel <= worst_kink)) worst_kink = isfinite(rel) ? fmax(rel, worst_kink) : INFINITY;
      kinks++;
      continue;
    }
    done++;
    if (unc > fmax(fmax(fabs(a), fabs(num)), o.floor)) limited++;
    if (rel > worst || !isfinite(rel)) {
      worst = isfinite(rel) ? rel : INFINITY;
      worst_i = i;
      worst_a = a;
      worst_n = num;
    }
  }
  printf("gradcheck %-32s max rel err %.3e over %zu elements (%zu skipped", label, worst, done, skipped);
  if (o.kink_tol > 0) printf(", %zu unresolved: max rel err %.1e", kinks, worst_kink);
  if (o.noise) printf("; noise of D(eps) %.1e, %zu noise-limited", pooled, limited);
  printf(")");
  if (worst > 0) printf("  [worst at %zu: analytic %.6g numeric %.6g]", worst_i, worst_a, worst_n);
  printf("\n");
  if (!(worst <= o.tol)) {
    test_failures++;
    fprintf(stderr, "FAIL gradcheck %s: max rel err %.3e > tol %.1e\n", label, worst, o.tol);
  }
  if (done == 0) {
    test_failures++;
    fprintf(stderr, "FAIL gradcheck %s: no element checked\n", label);
  }
  if (!(worst_kink <= 10 * o.tol)) {
    test_failures++;
    fprintf(stderr, "FAIL gradcheck %s: max rel err %.3e at unresolved elements > %.1e\n", label, worst_kink,
            10 * o.tol);
  }
  if (kinks > 1 && 4 * kinks > done + kinks) {
    test_failures++;
    fprintf(stderr, "FAIL gradcheck %s: %zu of %zu elements unresolved (kinks)\n", label, kinks,
            done + kinks);
  }
done:
  free(idx);
  free(sd);
  free(sorted);
  return worst;
}

void test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
  rng_t r;
  rng_init(&r, seed, 7);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(&r);
}

double test_dot(const float *out, const float *r, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)out[i] * r[i];
  return s;
}
