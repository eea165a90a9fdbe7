/* Retrieval (retrieval.c) alone: gtmsm_knn_brute against a plain sort (the
 * k nearest, sorted, ties by the smaller index, `skip` left out, fewer than
 * k when the memory is small), and a gradient check of
 * gtmsm_knn_d2_backward: with the neighbours fixed (the selection is
 * piecewise constant, so it is an input here), L = sum r . d2 against
 * central differences in every key, tolerance 1e-3. */
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm_internal.h"
#include "nn/rng.h"
#include "testlib.h"

enum { NK = 12, KS = 4, R = 5, K = 3 }; /* memory keys, key size, query rows, neighbours */

/* The reference: every distance, then a stable selection by (d2, index). */
static int knn_ref(const float *keys, int n, const float *q, int k, int skip, int *idx, float *d2) {
  float d[64];
  int used[64] = {0}, found = 0;
  for (int i = 0; i < n; i++) {
    float acc = 0;
    for (int j = 0; j < KS; j++) {
      float r = q[j] - keys[i * KS + j];
      acc += r * r;
    }
    d[i] = acc;
  }
  for (; found < k; found++) {
    int best = -1;
    for (int i = 0; i < n; i++)
      if (i != skip && !used[i] && (best < 0 || d[i] < d[best])) best = i;
    if (best < 0) break;
    used[best] = 1;
    idx[found] = best;
    d2[found] = d[best];
  }
  return found;
}

static void check_knn(void) {
  float keys[NK * KS];
  test_fill_uniform(keys, NK * KS, -1, 1, 31);
  memcpy(keys + 7 * KS, keys + 2 * KS, KS * sizeof(float)); /* a tie: rows 2 and 7 */
  int cases = 0, bad = 0;
  for (int qi = 0; qi < NK; qi++)
    for (int self = 0; self < 2; self++) { /* skip none, or the query's own row */
      for (int k = 1; k <= 5; k++) {
        int idx[8], ridx[8];
        float d2[8], rd2[8];
        int sk = self ? qi : -1;
        int f = gtmsm_knn_brute(keys, NK, KS, keys + qi * KS, k, sk, idx, d2);
        int rf = knn_ref(keys, NK, keys + qi * KS, k, sk, ridx, rd2);
        cases++;
        if (f != rf || memcmp(idx, ridx, sizeof(int) * (size_t)f) ||
            memcmp(d2, rd2, sizeof(float) * (size_t)f))
          bad++;
      }
    }
  CHECK(bad == 0, "%d of %d kNN cases differ from the reference", bad, cases);
  /* the tie: query row 2 without skip finds 2 then 7 (both at distance 0) */
  int idx[2];
  float d2[2];
  gtmsm_knn_brute(keys, NK, KS, keys + 2 * KS, 2, -1, idx, d2);
  CHECK(idx[0] == 2 && idx[1] == 7 && d2[0] == 0 && d2[1] == 0, "tie order: %d %d", idx[0], idx[1]);
  /* a memory smaller than k */
  int f = gtmsm_knn_brute(keys, 3, KS, keys, 5, 0, idx, d2);
  CHECK(f == 2, "found %d of a 3-row memory without its own row, want 2", f);
  printf("knn_brute: %d cases equal to the reference (sorted, ties by index, skip, small memory)\n", cases);
}

typedef struct {
  float keys[NK * KS];
  int q_row[R], idx[R * K];
  float d2[R * K], r[R * K];
} ctx_t;

/* d2 from the keys with the neighbours fixed, computed as gtmsm_knn_brute does */
static double d2_loss(void *p) {
  ctx_t *c = p;
  for (int q = 0; q < R; q++)
    for (int j = 0; j < K; j++) {
      const float *a = c->keys + c->q_row[q] * KS, *b = c->keys + c->idx[q * K + j] * KS;
      float acc = 0;
      for (int k = 0; k < KS; k++) {
        float r = a[k] - b[k];
        acc += r * r;
      }
      c->d2[q * K + j] = acc;
    }
  return test_dot(c->d2, c->r, R * K);
}

static void check_d2_backward(void) {
  static ctx_t c;
  test_fill_uniform(c.keys, NK * KS, -1, 1, 41);
  test_fill_uniform(c.r, R * K, -1, 1, 42);
  /* query rows: memorized ones (leave-one-out) and later ones, one twice */
  const int rows[R] = {1, 4, 9, 11, 4};
  const int memory = 8; /* rows 0..7 are the memory */
  for (int q = 0; q < R; q++) {
    c.q_row[q] = rows[q];
    float d2[K];
    int f = gtmsm_knn_brute(c.keys, memory, KS, c.keys + rows[q] * KS, K, rows[q] < memory ? rows[q] : -1,
                            c.idx + q * K, d2);
    CHECK(f == K, "found %d", f);
  }
  d2_loss(&c);
  float dkeys[NK * KS] = {0};
  gtmsm_knn_d2_backward(c.keys, KS, c.q_row, c.idx, c.r, R, K, dkeys);
  gc_opts o = gc_default();
  o.eps = 0.1; /* quadratic: central differences are exact up to rounding, which a wide step divides */
  o.tol = 1e-3;
  o.floor = 1e-2;
  o.noise = 1;
  gradcheck("knn_d2_backward/keys", c.keys, dkeys, NK * KS, d2_loss, &c, &o);
  /* keys neither queried nor retrieved get nothing */
  int touched[NK] = {0};
  for (int q = 0; q < R; q++) {
    touched[c.q_row[q]] = 1;
    for (int j = 0; j < K; j++) touched[c.idx[q * K + j]] = 1;
  }
  for (int i = 0; i < NK; i++)
    if (!touched[i])
      for (int k = 0; k < KS; k++) CHECK(dkeys[i * KS + k] == 0, "untouched key %d has a gradient", i);
}

int main(void) {
  check_knn();
  check_d2_backward();
  return test_finish("test_part_retrieval");
}
