/* DND memory benchmark: K-nearest-key query time of the kd-tree against brute
 * force for memories of 1e3 .. 1e6 entries (S = 2, K = 5, V = 32), and insert
 * throughput. Keys follow an agent-like random walk in the unit square with
 * one key in ten uniform; queries are half near the trajectory, half uniform.
 * Prints a markdown table; the whole run takes well under a minute.
 * Usage: bench_dnd [max_n]   (default 1000000) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/dnd.h"
#include "nn/blas_core.h"
#include "nn/rng.h"

enum { S = 2, V = 32, K = 5, NQ = 20000 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float reflect(float x) {
  if (x < 0.0f) return -x;
  if (x > 1.0f) return 2.0f - x;
  return x;
}

/* Fills keys (n, S) with the trajectory and values (n, V) with noise. */
static void make_data(float *keys, float *values, size_t n, uint64_t seed) {
  rng_t r;
  rng_init(&r, seed, 1);
  float x = 0.5f, y = 0.5f;
  for (size_t i = 0; i < n; i++) {
    x = reflect(x + 0.01f * rng_normal(&r));
    y = reflect(y + 0.01f * rng_normal(&r));
    if (i % 10 == 9) {
      keys[2 * i] = rng_uniform(&r);
      keys[2 * i + 1] = rng_uniform(&r);
    } else {
      keys[2 * i] = x;
      keys[2 * i + 1] = y;
    }
  }
  rng_normal_fill(&r, values, n * V);
}

static void make_queries(float *q, const float *keys, size_t n, uint64_t seed) {
  rng_t r;
  rng_init(&r, seed, 2);
  for (int i = 0; i < NQ; i++) {
    if (i % 2) {
      size_t j = rng_below(&r, (uint32_t)n);
      q[2 * i] = keys[2 * j] + 0.01f * rng_normal(&r);
      q[2 * i + 1] = keys[2 * j + 1] + 0.01f * rng_normal(&r);
    } else {
      q[2 * i] = rng_uniform(&r);
      q[2 * i + 1] = rng_uniform(&r);
    }
  }
}

typedef int (*query_fn)(const dnd *, const float *, int, int *, float *);

/* Mean microseconds per query over the first nq queries; *sink keeps the
 * results live. */
static double time_queries(const dnd *d, query_fn f, const float *q, int nq, long *sink) {
  int idx[K];
  float d2[K];
  double t0 = now_s();
  for (int i = 0; i < nq; i++) {
    f(d, q + 2 * i, K, idx, d2);
    *sink += idx[0] + idx[K - 1];
  }
  return 1e6 * (now_s() - t0) / nq;
}

int main(int argc, char **argv) {
  char core[128];
  printf("BLAS core: %s\n\n", blas_core_describe(core, sizeof core));
  size_t max_n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
  const size_t sizes[] = {1000, 10000, 100000, 1000000};
  long sink = 0;
  int mismatches = 0;
  float *q = malloc(NQ * S * sizeof *q);
  printf("DND memory, S = %d, K = %d, V = %d; %d kd queries per size\n\n", S, K, V, NQ);
  printf("| n | insert ns/op | tail at query | kd us/query | reindex ms | kd us/query "
         "(no tail) | brute us/query (queries) | brute/kd | brute/kd (no tail) |\n");
  printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes && sizes[si] <= max_n; si++) {
    size_t n = sizes[si];
    float *keys = malloc(n * S * sizeof *keys), *values = malloc(n * V * sizeof *values);
    char err[256];
    dnd *d = dnd_new(S, V, err, sizeof err);
    if (!keys || !values || !d) {
      fprintf(stderr, "bench_dnd: out of memory at n=%zu\n", n);
      return 1;
    }
    make_data(keys, values, n, 1 + n);
    make_queries(q, keys, n, 2 + n);

    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
      if (dnd_insert(d, keys + i * S, values + i * V)) {
        fprintf(stderr, "bench_dnd: insert %zu failed\n", i);
        return 1;
      }
    double ins_ns = 1e9 * (now_s() - t0) / (double)n;
    size_t tail = dnd_size(d) - dnd_indexed_size(d);

    /* Brute force costs ~n ns per query: cap its total near half a second. */
    int nb = (int)(5e8 / (double)n);
    if (nb > NQ) nb = NQ;
    if (nb < 100) nb = 100;
    double kd_tail = time_queries(d, dnd_query, q, NQ, &sink);
    double brute = time_queries(d, dnd_query_brute, q, nb, &sink);
    t0 = now_s();
    dnd_reindex(d);
    double reindex_ms = 1e3 * (now_s() - t0);
    double kd_full = time_queries(d, dnd_query, q, NQ, &sink);

    /* The figures mean nothing unless the answers agree. */
    for (int i = 0; i < nb; i++) {
      int i1[K], i2[K];
      float d1[K], d2[K];
      dnd_query(d, q + 2 * i, K, i1, d1);
      dnd_query_brute(d, q + 2 * i, K, i2, d2);
      mismatches += memcmp(i1, i2, sizeof i1) != 0 || memcmp(d1, d2, sizeof d1) != 0;
    }
    printf("| %zu | %.0f | %zu | %.3f | %.1f | %.3f | %.2f (%d) | %.0f | %.0f |\n", n, ins_ns,
           tail, kd_tail, reindex_ms, kd_full, brute, nb, brute / kd_tail, brute / kd_full);
    fflush(stdout);
    dnd_free(d);
    free(keys);
    free(values);
  }
  printf("\ninsert ns/op includes the automatic rebuilds (tail > max(64, n/8)); \"tail at "
         "query\" entries are scanned by every kd query until the next rebuild; \"no tail\" "
         "columns are after dnd_reindex.\n");
  printf("kd-tree vs brute force mismatches: %d (checksum %ld)\n", mismatches, sink);
  free(q);
  return mismatches ? 1 : 0;
}
