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
  gc_opts o = {.eps = 1e-2, .tol = 1e-2, .floor = 1e-3, .max_checks = 200, .seed = 1, .skip = NULL};
  return o;
}

double gradcheck(const char *label, float *x, const float *analytic, size_t n, gc_loss_fn f,
                 void *ctx, const gc_opts *opts) {
  gc_opts o = opts ? *opts : gc_default();
  rng_t r;
  rng_init(&r, o.seed, 99);
  size_t checks = n < o.max_checks ? n : o.max_checks, skipped = 0, done = 0;
  double worst = 0;
  size_t worst_i = 0;
  double worst_a = 0, worst_n = 0;
  for (size_t c = 0; c < checks; c++) {
    size_t i = n <= o.max_checks ? c : rng_below(&r, (uint32_t)n);
    if (o.skip && o.skip(ctx, i, o.eps)) {
      skipped++;
      continue;
    }
    float x0 = x[i];
    x[i] = (float)(x0 + o.eps);
    double hp = (double)x[i] - x0;
    double lp = f(ctx);
    x[i] = (float)(x0 - o.eps);
    double hm = x0 - (double)x[i];
    double lm = f(ctx);
    x[i] = x0;
    double num = (lp - lm) / (hp + hm);
    double a = analytic[i];
    double den = fmax(fmax(fabs(a), fabs(num)), o.floor);
    double rel = fabs(a - num) / den;
    done++;
    if (rel > worst || !isfinite(rel)) {
      worst = isfinite(rel) ? rel : INFINITY;
      worst_i = i;
      worst_a = a;
      worst_n = num;
    }
  }
  printf("gradcheck %-32s max rel err %.3e over %zu elements (%zu skipped)", label, worst, done,
         skipped);
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
