/* Seeded random numbers: PCG32 (O'Neill 2014, the "XSH RR" output function).
 * A generator is (seed, stream); work that runs in parallel gives each unit of
 * work (an episode, a sequence) its own stream, so results do not depend on the
 * number of threads or the order they run in. */
#ifndef GTMSM_NN_RNG_H
#define GTMSM_NN_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t state;
  uint64_t inc; /* odd; selects the stream */
} rng_t;

void rng_init(rng_t *r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(rng_t *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint32_t rng_below(rng_t *r, uint32_t n);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float rng_uniform(rng_t *r);
double rng_uniform_d(rng_t *r);
/* Standard normal (Box-Muller, no cached spare, so the state is the whole story). */
double rng_normal_d(rng_t *r);
float rng_normal(rng_t *r);
void rng_normal_fill(rng_t *r, float *out, size_t n);
/* Poisson(lambda), lambda >= 0: Knuth's product method below 30, Hormann's
 * PTRS transformed rejection above. */
unsigned rng_poisson(rng_t *r, double lambda);
/* A 64-bit hash to derive seeds of sub-streams: splitmix64 finaliser. */
uint64_t rng_mix(uint64_t x);

#endif
