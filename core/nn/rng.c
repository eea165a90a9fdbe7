/* PCG32 and the distributions built on it. */
#include "nn/rng.h"

#include <math.h>

uint64_t rng_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void rng_init(rng_t *r, uint64_t seed, uint64_t stream) {
  r->state = 0;
  r->inc = (rng_mix(stream) << 1u) | 1u;
  rng_u32(r);
  r->state += rng_mix(seed);
  rng_u32(r);
}

uint32_t rng_u32(rng_t *r) {
  uint64_t old = r->state;
  r->state = old * 6364136223846793005ULL + r->inc;
  uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
  uint32_t rot = (uint32_t)(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((-rot) & 31u));
}

uint32_t rng_below(rng_t *r, uint32_t n) {
  uint32_t threshold = (uint32_t)(-n) % n;
  for (;;) {
    uint32_t x = rng_u32(r);
    if (x >= threshold) return x % n;
  }
}

float rng_uniform(rng_t *r) { return (float)(rng_u32(r) >> 8) * 0x1.0p-24f; }

double rng_uniform_d(rng_t *r) {
  uint64_t hi = rng_u32(r) >> 5, lo = rng_u32(r) >> 6;
  return (double)(hi * 67108864u + lo) * 0x1.0p-53;
}

double rng_normal_d(rng_t *r) {
  double u1 = 1.0 - rng_uniform_d(r); /* (0, 1]: log is finite */
  double u2 = rng_uniform_d(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

float rng_normal(rng_t *r) { return (float)rng_normal_d(r); }

void rng_normal_fill(rng_t *r, float *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = rng_normal(r);
}

/* PTRS, Hormann (1993), "The transformed rejection method for generating
 * Poisson random variables", for lambda >= 10. */
static unsigned poisson_ptrs(rng_t *r, double lambda) {
  double slam = sqrt(lambda), loglam = log(lambda);
  double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
  double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    double u = rng_uniform_d(r) - 0.5, v = rng_uniform_d(r);
    double us = 0.5 - fabs(u);
    double k = floor((2 * a / us + b) * u + lambda + 0.43);
    if (us >= 0.07 && v <= vr) return (unsigned)k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (log(v) + log(invalpha) - log(a / (us * us) + b) <= -lambda + k * loglam - lgamma(k + 1))
      return (unsigned)k;
  }
}

unsigned rng_poisson(rng_t *r, double lambda) {
  if (!(lambda > 0)) return 0;
  if (lambda >= 30) return poisson_ptrs(r, lambda);
  double limit = exp(-lambda), p = rng_uniform_d(r);
  unsigned k = 0;
  while (p > limit) {
    k++;
    p *= rng_uniform_d(r);
  }
  return k;
}
