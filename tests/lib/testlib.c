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
               .kink_tol = 0, .richardson = 0};
  return o;
}

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

/* The numeric gradient in element i: the central difference at eps, or with
 * o->richardson (4 D(eps/2) - D(eps)) / 3. With o->kink_tol, *converged says
 * whether the same from half the step agrees within kink_tol (else the
 * half-step estimate is returned); without, it is 1. */
static double numeric(float *x, size_t i, gc_loss_fn f, void *ctx, const gc_opts *o, int *converged) {
  double d0 = central(x, i, o->eps, f, ctx), d1 = 0, d2 = 0;
  if (o->richardson || o->kink_tol > 0) d1 = central(x, i, 0.5 * o->eps, f, ctx);
  if (o->richardson && o->kink_tol > 0) d2 = central(x, i, 0.25 * o->eps, f, ctx);
  double e1 = o->richardson ? (4 * d1 - d0) / 3 : d0, e2 = o->richardson ? (4 * d2 - d1) / 3 : d1;
  *converged = 1;
  if (!(o->kink_tol > 0)) return e1;
  double dn = fmax(fmax(fabs(e1), fabs(e2)), o->floor); /* not |a|: a wrong analytic must not loosen it */
  *converged = fabs(e1 - e2) <= o->kink_tol * dn;
  return *converged ? e1 : e2;
}

double gradcheck(const char *label, float *x, const float *analytic, size_t n, gc_loss_fn f,
                 void *ctx, const gc_opts *opts) {
  gc_opts o = opts ? *opts : gc_default();
  rng_t r;
  rng_init(&r, o.seed, 99);
  size_t checks = n < o.max_checks ? n : o.max_checks, skipped = 0, done = 0, kinks = 0;
  double worst = 0;
  size_t worst_i = 0;
  double worst_a = 0, worst_n = 0, worst_kink = 0;
  for (size_t c = 0; c < checks; c++) {
    size_t i = n <= o.max_checks ? c : rng_below(&r, (uint32_t)n);
    if (o.skip && o.skip(ctx, i, o.eps)) {
      skipped++;
      continue;
    }
    int converged;
    double num = numeric(x, i, f, ctx, &o, &converged);
    double a = analytic[i];
    double den = fmax(fmax(fabs(a), fabs(num)), o.floor);
    if (!converged) {
      /* still compared, on the half step, at ten times the tolerance:
       * through a C1 kink (ELU) the quotient is off by O(step) only */
      double rk = fabs(a - num) / den;
      if (!(rk <= worst_kink)) worst_kink = isfinite(rk) ? fmax(rk, worst_kink) : INFINITY;
      kinks++;
      continue;
    }
    double rel = fabs(a - num) / den;
    done++;
    if (rel > worst || !isfinite(rel)) {
      worst = isfinite(rel) ? rel : INFINITY;
      worst_i = i;
      worst_a = a;
      worst_n = num;
    }
  }
  printf("gradcheck %-32s max rel err %.3e over %zu elements (%zu skipped", label, worst, done, skipped);
  if (o.kink_tol > 0) printf(", %zu unresolved (max rel err %.1e)", kinks, worst_kink);
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
