/* Test helpers: checks that count failures, and a central finite-difference
 * gradient checker in double precision. Every test exits with test_finish(). */
#ifndef GTMSM_TESTLIB_H
#define GTMSM_TESTLIB_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int test_failures;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      test_failures++;                                                       \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
      fprintf(stderr, __VA_ARGS__);                                          \
      fprintf(stderr, "\n");                                                 \
    }                                                                        \
  } while (0)

/* |a - b| <= atol + rtol * |b|, printing both on failure. */
#define CHECK_NEAR(a, b, atol, rtol, what)                                               \
  CHECK(fabs((double)(a) - (double)(b)) <= (atol) + (rtol) * fabs((double)(b)),          \
        "%s: got %.9g expected %.9g", (what), (double)(a), (double)(b))

/* Prints a summary line and returns the process exit status (0 iff no failure). */
int test_finish(const char *name);

/* A scalar loss evaluated in double from the current contents of the inputs. */
typedef double (*gc_loss_fn)(void *ctx);
/* Optional: return non-zero to skip element i (a kink within eps, say). */
typedef int (*gc_skip_fn)(void *ctx, size_t i, double eps);

typedef struct {
  double eps;      /* perturbation (per op: 1e-2 for float ops of order 1) */
  double tol;      /* max allowed relative error */
  double floor;    /* relative error denominator is max(|a|, |n|, floor) (see noise) */
  size_t max_checks; /* cap on elements checked (random subset beyond it) */
  uint64_t seed;   /* picks the subset */
  gc_skip_fn skip;
  /* Richardson: the numeric gradient is (4 D(eps/2) - D(eps)) / 3 from the
   * central differences D, error O(eps^4) instead of O(eps^2), so a smooth
   * op can take a wide eps, which divides the float rounding of the loss. */
  int richardson;
  /* > 0: kinks. The numeric gradient must agree within kink_tol *
   * max(|n|, floor) (or the rounding noise of the two, with noise) with the
   * same from half the step; where not, the loss is not smooth within the
   * step (an ELU switching near x) and the step is halved, up to eps / 8;
   * where it does, the analytic gradient may also differ from the numeric
   * by twice as much as the two estimates differ (their error if it goes as
   * the step; 4/3 of it if as its square), on top of the noise below.
   * An element that never agrees is unresolved: compared on the finest
   * step at 10 * tol only, since through a C1 kink such as the ELU's the
   * quotient is off by O(step). A wrong backward still fails: its numeric
   * gradient agrees with itself. More than a quarter of the elements
   * unresolved (and more than one) fails (the check would be hollow). */
  double kink_tol;
  /* Allow for the float rounding of the loss: measure the noise of the
   * central difference in each element (the scatter, about a smooth trend,
   * of the differences at 8 steps within 10% of eps; the larger of that and
   * its median over the elements) and let an element's denominator be at
   * least 5 sigma / tol, sigma the noise of its estimate. Gradients far
   * above the noise are held to tol relative, those near it to 5 sigma
   * absolute; the elements this loosens beyond tol and floor are counted
   * as "noise-limited" in the output. */
  int noise;
} gc_opts;

gc_opts gc_default(void);

/* Compares analytic (n) to central differences of f over x (n), perturbing x
 * in place and restoring it. Prints "gradcheck <label>: max rel err E over N
 * elements (S skipped[, J unresolved: max rel err E2][; noise of D(eps) s,
 * K noise-limited])" and returns the largest relative error seen; counts a
 * test failure if it exceeds opts.tol. */
double gradcheck(const char *label, float *x, const float *analytic, size_t n, gc_loss_fn f,
                 void *ctx, const gc_opts *opts);

/* Fills x (n) with uniform values in [lo, hi) from a seeded stream. */
void test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
/* sum_i out[i] * r[i] in double: the projection used to turn a vector output
 * into a scalar loss whose gradient with respect to out is r. */
double test_dot(const float *out, const float *r, size_t n);

#endif
