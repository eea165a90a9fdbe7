/* Tests of core/nn/rng: the PCG32 output function against the reference
 * generator's published sequence, splitmix64 against its known first output,
 * reproducibility by (seed, stream), independence of streams, and the moments
 * of the uniform, normal and Poisson distributions and of rng_below.
 *
 * Statistical tolerances are stated as multiples of the standard error (SE) of
 * the statistic; seeds are fixed, so the test is deterministic, and 5 SE (or a
 * chi-square above df + 6 sqrt(2 df)) means a seed change would fail it with a
 * probability below ~1e-6 while a wrong formula fails it by far. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/rng.h"
#include "testlib.h"

/* The PCG32 reference (pcg32-demo, seeded with initstate 42, initseq 54) prints
 * 0xa15c02b7 0x7b47f409 0xba1d3330 0x83d2f293 0xbfa4784b 0xcbed606e. rng_init
 * hashes seed and stream, so the reference seeding is done by hand here. */
static void test_reference_sequence(void) {
  rng_t r = {.state = 0, .inc = (54u << 1u) | 1u};
  rng_u32(&r);
  r.state += 42;
  rng_u32(&r);
  const uint32_t expect[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
                              0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
  for (int i = 0; i < 6; i++) {
    uint32_t got = rng_u32(&r);
    CHECK(got == expect[i], "pcg32 output %d: got 0x%08x expected 0x%08x", i, got, expect[i]);
  }
  /* splitmix64 from state 0: first output 0xe220a8397b1dcdaf; from 1: 0x910a2dec89025cc1. */
  CHECK(rng_mix(0) == 0xe220a8397b1dcdafULL, "rng_mix(0) = %llx", (unsigned long long)rng_mix(0));
  CHECK(rng_mix(1) == 0x910a2dec89025cc1ULL, "rng_mix(1) = %llx", (unsigned long long)rng_mix(1));
  printf("pcg32 matches the reference sequence; splitmix64 matches its known outputs\n");
}

static void test_reproducible(void) {
  enum { N = 1000 };
  rng_t a, b, c, d;
  rng_init(&a, 1234, 5);
  rng_init(&b, 1234, 5);
  rng_init(&c, 1234, 6);
  rng_init(&d, 1235, 5);
  int same_ab = 1, eq_ac = 0, eq_ad = 0;
  for (int i = 0; i < N; i++) {
    uint32_t x = rng_u32(&a), y = rng_u32(&b), z = rng_u32(&c), w = rng_u32(&d);
    same_ab &= x == y;
    eq_ac += x == z;
    eq_ad += x == w;
  }
  CHECK(same_ab, "same seed and stream gave different sequences");
  /* Independent 32-bit words agree with probability 2^-32 each. */
  CHECK(eq_ac <= 2, "streams 5 and 6 agree at %d of %d positions", eq_ac, N);
  CHECK(eq_ad <= 2, "seeds 1234 and 1235 agree at %d of %d positions", eq_ad, N);

  /* Adjacent streams are uncorrelated: |corr| of 1e5 uniform pairs < 5 SE = 5/sqrt(n). */
  enum { M = 100000 };
  rng_init(&a, 7, 1);
  rng_init(&b, 7, 2);
  double sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < M; i++) {
    double x = rng_uniform_d(&a), y = rng_uniform_d(&b);
    sx += x, sy += y, sxy += x * y, sxx += x * x, syy += y * y;
  }
  double cov = sxy / M - sx / M * sy / M;
  double corr = cov / sqrt((sxx / M - sx * sx / M / M) * (syy / M - sy * sy / M / M));
  printf("streams 1 and 2 (seed 7): correlation %.2e (tol 5/sqrt(%d) = %.2e)\n", corr, M,
         5 / sqrt(M));
  CHECK(fabs(corr) < 5 / sqrt(M), "adjacent streams correlated: %g", corr);

  /* normal_fill is the same stream as repeated rng_normal. */
  float f[16];
  rng_init(&a, 9, 9);
  rng_init(&b, 9, 9);
  rng_normal_fill(&a, f, 16);
  int fill_same = 1;
  for (int i = 0; i < 16; i++) fill_same &= f[i] == rng_normal(&b);
  CHECK(fill_same, "rng_normal_fill differs from rng_normal");
}

static void test_uniform(void) {
  enum { N = 1000000 };
  rng_t r;
  rng_init(&r, 42, 0);
  double s = 0, ss = 0, sd = 0, ssd = 0;
  int in_range = 1;
  for (int i = 0; i < N; i++) {
    float u = rng_uniform(&r);
    double v = rng_uniform_d(&r);
    in_range &= u >= 0 && u < 1 && v >= 0 && v < 1;
    s += u, ss += (double)u * u, sd += v, ssd += v * v;
  }
  CHECK(in_range, "uniform outside [0, 1)");
  /* mean 1/2, SE sqrt(1/12/N) = 2.9e-4; variance 1/12, SE sqrt((1/80 - 1/144)/N) = 7.5e-5. */
  double m = s / N, var = ss / N - m * m, md = sd / N, vard = ssd / N - md * md;
  double se_m = sqrt(1.0 / 12 / N), se_v = sqrt((1.0 / 80 - 1.0 / 144) / N);
  printf("uniform (float): mean %.5f var %.5f; (double): mean %.5f var %.5f "
         "(expect 0.5 +- %.1e, 1/12 +- %.1e at 5 SE)\n", m, var, md, vard, 5 * se_m, 5 * se_v);
  CHECK(fabs(m - 0.5) < 5 * se_m && fabs(md - 0.5) < 5 * se_m, "uniform mean %g %g", m, md);
  CHECK(fabs(var - 1.0 / 12) < 5 * se_v && fabs(vard - 1.0 / 12) < 5 * se_v, "uniform var %g %g",
        var, vard);
}

static void test_normal(void) {
  enum { N = 1000000 };
  rng_t r;
  rng_init(&r, 43, 0);
  double s = 0, ss = 0, s4 = 0;
  long within1 = 0;
  for (int i = 0; i < N; i++) {
    double z = rng_normal_d(&r);
    s += z, ss += z * z, s4 += z * z * z * z;
    within1 += fabs(z) < 1;
  }
  double m = s / N, var = ss / N - m * m, k4 = s4 / N, p1 = (double)within1 / N;
  /* SEs: mean 1/sqrt(N) = 1e-3; variance sqrt(2/N) = 1.4e-3; E z^4 = 3 with
   * SE sqrt((105 - 9)/N) = 9.8e-3; P(|z| < 1) = erf(1/sqrt 2) = 0.6826894921370859
   * with SE sqrt(p(1-p)/N) = 4.7e-4. */
  double p_exact = 0.6826894921370859;
  printf("normal: mean %.5f var %.5f E[z^4] %.4f P(|z|<1) %.5f (expect 0, 1, 3, %.5f; tol 5 SE)\n",
         m, var, k4, p1, p_exact);
  CHECK(fabs(m) < 5 / sqrt(N), "normal mean %g", m);
  CHECK(fabs(var - 1) < 5 * sqrt(2.0 / N), "normal var %g", var);
  CHECK(fabs(k4 - 3) < 5 * sqrt(96.0 / N), "normal 4th moment %g", k4);
  CHECK(fabs(p1 - p_exact) < 5 * sqrt(p_exact * (1 - p_exact) / N), "P(|z|<1) = %g", p1);
}

static double poisson_pmf(double lambda, int k) {
  return exp(-lambda + k * log(lambda) - lgamma(k + 1.0));
}

static void test_poisson(void) {
  /* 0.5, 2, 10 use the product method; 30 is the switch to PTRS; 50 and 200 use PTRS. */
  const double lambdas[] = {0, 0.5, 2, 10, 30, 50, 200};
  enum { N = 200000, KMAX = 400 };
  static double counts[KMAX + 1]; // double: exact for these counts, and used as such
  for (size_t t = 0; t < sizeof lambdas / sizeof *lambdas; t++) {
    double lam = lambdas[t];
    rng_t r;
    rng_init(&r, 44, t);
    memset(counts, 0, sizeof counts);
    double s = 0, ss = 0;
    for (int i = 0; i < N; i++) {
      unsigned k = rng_poisson(&r, lam);
      s += k, ss += (double)k * k;
      counts[k > KMAX ? KMAX : k]++;
    }
    double m = s / N, var = ss / N - m * m;
    if (lam == 0) {
      CHECK(s == 0, "Poisson(0) gave a nonzero draw");
      printf("poisson lambda 0: all %d draws are 0\n", N);
      continue;
    }
    /* SE of the mean sqrt(lambda/N); of the variance sqrt((lambda + 2 lambda^2)/N),
     * from the fourth central moment lambda (1 + 3 lambda). */
    double se_m = sqrt(lam / N), se_v = sqrt((lam + 2 * lam * lam) / N);
    /* Chi-square over bins with expected count >= 20, tails pooled into the end bins. */
    int lo = 0, hi = KMAX - 1;
    while (N * poisson_pmf(lam, lo) < 20) lo++;
    while (N * poisson_pmf(lam, hi) < 20) hi--;
    double chi = 0, cdf_lo = 0, obs_lo = 0, obs_hi = 0;
    for (int k = 0; k <= lo; k++) cdf_lo += poisson_pmf(lam, k), obs_lo += counts[k];
    double cdf_hi = 1 - cdf_lo;
    for (int k = lo + 1; k < hi; k++) cdf_hi -= poisson_pmf(lam, k);
    for (int k = hi; k <= KMAX; k++) obs_hi += counts[k];
    chi += (obs_lo - N * cdf_lo) * (obs_lo - N * cdf_lo) / (N * cdf_lo);
    chi += (obs_hi - N * cdf_hi) * (obs_hi - N * cdf_hi) / (N * cdf_hi);
    for (int k = lo + 1; k < hi; k++) {
      double e = N * poisson_pmf(lam, k);
      chi += (counts[k] - e) * (counts[k] - e) / e;
    }
    int df = hi - lo; // bins (hi - lo + 1) minus one constraint
    double chi_tol = df + 6 * sqrt(2.0 * df);
    printf("poisson lambda %g: mean %.4f (+-%.3f) var %.3f (+-%.3f) chi2 %.1f on %d df (tol %.1f)\n",
           lam, m, 5 * se_m, var, 5 * se_v, chi, df, chi_tol);
    CHECK(fabs(m - lam) < 5 * se_m, "Poisson(%g) mean %g", lam, m);
    CHECK(fabs(var - lam) < 5 * se_v, "Poisson(%g) variance %g", lam, var);
    CHECK(chi < chi_tol, "Poisson(%g) chi-square %g on %d df", lam, chi, df);
  }
}

static void test_below(void) {
  rng_t r;
  rng_init(&r, 45, 0);
  int ok = 1;
  for (int i = 0; i < 1000; i++) ok &= rng_below(&r, 1) == 0;
  CHECK(ok, "rng_below(1) != 0");

  /* n = 7: chi-square of 7 bins over 700000 draws, 6 df, tol 6 + 6 sqrt(12) = 26.8. */
  enum { N7 = 700000 };
  double c[7] = {0};
  for (int i = 0; i < N7; i++) {
    uint32_t k = rng_below(&r, 7);
    if (k >= 7) {
      ok = 0;
      break;
    }
    c[k]++;
  }
  CHECK(ok, "rng_below(7) out of range");
  double chi = 0;
  for (int k = 0; k < 7; k++) chi += (c[k] - N7 / 7.0) * (c[k] - N7 / 7.0) / (N7 / 7.0);
  printf("rng_below(7): chi2 %.2f on 6 df (tol 26.8)\n", chi);
  CHECK(chi < 6 + 6 * sqrt(12.0), "rng_below(7) chi-square %g", chi);

  /* n = 3 * 2^30: a plain u32 % n would return values below 2^30 half of the time
   * instead of a third; the rejection step must remove that bias. SE sqrt(2/9/N). */
  enum { NB = 300000 };
  uint32_t n = 3u << 30;
  long below = 0;
  for (int i = 0; i < NB; i++) {
    uint32_t k = rng_below(&r, n);
    ok &= k < n;
    below += k < (1u << 30);
  }
  double p = (double)below / NB, se = sqrt(2.0 / 9 / NB);
  printf("rng_below(3*2^30): P(k < 2^30) = %.4f (expect 1/3 +- %.4f; modulo bias would give 1/2)\n",
         p, 5 * se);
  CHECK(ok, "rng_below(3*2^30) out of range");
  CHECK(fabs(p - 1.0 / 3) < 5 * se, "rng_below biased: %g", p);
}

int main(void) {
  test_reference_sequence();
  test_reproducible();
  test_uniform();
  test_normal();
  test_poisson();
  test_below();
  return test_finish("test_rng");
}
