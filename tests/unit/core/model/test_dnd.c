/* DND memory: the kd-tree query against brute force and against an
 * independent reference (full selection by (d2, index)) on random, duplicate,
 * grid and trajectory keys at sizes around every threshold; the tail and
 * rebuild paths under interleaved inserts; concurrent queries; serialisation
 * round trips and rejection of every truncation and single-byte corruption. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "model/dnd.h"
#include "nn/rng.h"
#include "testlib.h"

enum { MAX_K = 16 };

typedef enum {
  KEYS_UNIFORM,   /* uniform in [-1, 1)^S */
  KEYS_DUPLICATE, /* only 3 distinct keys: massive ties */
  KEYS_GRID,      /* integer lattice: many equal distances */
  KEYS_WALK,      /* a random walk, like an agent's trajectory */
} keys_kind;

static const char *KIND_NAMES[] = {"uniform", "duplicate", "grid", "walk"};

static void make_key(keys_kind kind, rng_t *r, int S, size_t i, float *walk, float *key) {
  switch (kind) {
  case KEYS_UNIFORM:
    for (int j = 0; j < S; j++) key[j] = 2.0f * rng_uniform(r) - 1.0f;
    break;
  case KEYS_DUPLICATE: {
    uint32_t c = rng_below(r, 3);
    for (int j = 0; j < S; j++) key[j] = (float)c * 0.5f + (float)j;
    break;
  }
  case KEYS_GRID: {
    size_t x = i;
    for (int j = 0; j < S; j++) {
      key[j] = (float)(x % 7);
      x /= 7;
    }
    break;
  }
  case KEYS_WALK:
    for (int j = 0; j < S; j++) {
      walk[j] += 0.05f * rng_normal(r);
      key[j] = walk[j];
    }
    break;
  }
}

/* Queries near and far from the data; grid queries sit on lattice points and
 * half-integers so that many distances are exactly equal. */
static void make_query(keys_kind kind, rng_t *r, int S, int t, float *q) {
  int far = t % 5 == 4;
  for (int j = 0; j < S; j++) {
    if (kind == KEYS_GRID)
      q[j] = 0.5f * (float)rng_below(r, 16) - 1.0f;
    else if (kind == KEYS_DUPLICATE && t % 3 == 0)
      q[j] = (float)rng_below(r, 3) * 0.5f + (float)j;
    else
      q[j] = 3.0f * rng_uniform(r) - 1.5f;
    if (far) q[j] += (t % 2 ? 1000.0f : -1000.0f) * (float)(j + 1);
  }
}

/* The reference: K passes of "smallest (d2, index) not yet taken", with d2
 * computed in the same float order as the library (the contract is bit
 * equality, so the reference must round the same way). */
static int reference_knn(const dnd *d, const float *q, int K, int *idx, float *d2, float *scratch,
                         unsigned char *taken) {
  size_t n = dnd_size(d);
  int S = dnd_key_size(d);
  for (size_t i = 0; i < n; i++) {
    const float *p = dnd_key(d, i);
    float acc = 0.0f;
    for (int j = 0; j < S; j++) {
      float t = q[j] - p[j];
      float t2 = t * t; /* a separate statement, as in dnd.c: never fused */
      acc += t2;
    }
    scratch[i] = acc;
    taken[i] = 0;
  }
  int found = (size_t)K < n ? K : (int)n;
  for (int k = 0; k < found; k++) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
      if (!taken[i] && (best == SIZE_MAX || scratch[i] < scratch[best])) best = i;
    taken[best] = 1;
    idx[k] = (int)best;
    d2[k] = scratch[best];
  }
  return found;
}

/* Compares dnd_query, dnd_query_brute and the reference on one query; returns
 * the number of mismatches (printing the first of each call). */
static int compare_one(const dnd *d, const float *q, int K, float *scratch, unsigned char *taken,
                       const char *what) {
  int ik[MAX_K], ib[MAX_K], ir[MAX_K];
  float dk[MAX_K], db[MAX_K], dr[MAX_K];
  int nk = dnd_query(d, q, K, ik, dk);
  int nb = dnd_query_brute(d, q, K, ib, db);
  int nr = reference_knn(d, q, K, ir, dr, scratch, taken);
  int bad = 0;
  if (nk != nr || nb != nr) {
    fprintf(stderr, "%s: found kd=%d brute=%d reference=%d\n", what, nk, nb, nr);
    return 1;
  }
  for (int k = 0; k < nr; k++)
    if (ik[k] != ir[k] || ib[k] != ir[k] || memcmp(&dk[k], &dr[k], sizeof(float)) != 0 ||
        memcmp(&db[k], &dr[k], sizeof(float)) != 0) {
      if (!bad)
        fprintf(stderr, "%s: rank %d kd (%d, %.9g) brute (%d, %.9g) reference (%d, %.9g)\n", what,
                k, ik[k], (double)dk[k], ib[k], (double)db[k], ir[k], (double)dr[k]);
      bad = 1;
    }
  for (int k = nr; k < K; k++)
    if (ik[k] != -1 || ib[k] != -1 || !isinf(dk[k]) || !isinf(db[k])) bad = 1;
  return bad;
}

static dnd *build(keys_kind kind, int S, int V, size_t n, uint64_t seed) {
  dnd *d = dnd_new(S, V, NULL, 0);
  rng_t r;
  rng_init(&r, seed, 1);
  float walk[DND_MAX_S] = {0}, key[DND_MAX_S], value[64];
  for (size_t i = 0; i < n; i++) {
    make_key(kind, &r, S, i, walk, key);
    for (int v = 0; v < V; v++) value[v] = (float)i + 0.001f * (float)v;
    int rc = dnd_insert(d, key, value);
    if (rc) {
      CHECK(rc == 0, "insert %zu returned %d", i, rc);
      break;
    }
  }
  return d;
}

static void test_against_reference(void) {
  const size_t sizes[] = {0, 1, 3, 4, 5, 63, 64, 65, 1000, 20000};
  /* 16 and 64: a landmark model's reverse memory is keyed by frame latents */
  const int dims[] = {2, 3, 5, 16, DND_MAX_S};
  const int Ks[] = {1, 4, 5, 7};
  float *scratch = malloc(20000 * sizeof *scratch);
  unsigned char *taken = malloc(20000);
  long queries = 0, mismatches = 0, trees = 0;
  for (int kind = 0; kind < 4; kind++)
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
      for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        int S = dims[di];
        size_t n = sizes[si];
        dnd *d = build((keys_kind)kind, S, 3, n, 100 + n + (size_t)S);
        CHECK(dnd_size(d) == n, "size %zu expected %zu", dnd_size(d), n);
        int nq = n >= 20000 ? 60 : 150;
        /* Pass 0 queries the memory as inserted (tree plus tail), pass 1
         * after dnd_reindex (tree only, even below the scan threshold). */
        for (int pass = 0; pass < 2; pass++) {
          if (pass == 1) CHECK(dnd_reindex(d) == 0, "reindex failed");
          if (dnd_indexed_size(d) > 0) trees++;
          if (pass == 1) CHECK(dnd_indexed_size(d) == n, "indexed %zu of %zu", dnd_indexed_size(d), n);
          rng_t r;
          rng_init(&r, n * 31 + (size_t)S, (uint64_t)pass + 2);
          char what[128];
          snprintf(what, sizeof what, "%s n=%zu S=%d pass=%d", KIND_NAMES[kind], n, S, pass);
          for (int t = 0; t < nq; t++) {
            float q[DND_MAX_S];
            make_query((keys_kind)kind, &r, S, t, q);
            int K = Ks[t % 4];
            queries++;
            int bad = compare_one(d, q, K, scratch, taken, what);
            mismatches += bad;
            if (bad) test_failures++;
          }
        }
        dnd_free(d);
      }
  printf("kd vs brute vs reference: %ld queries, %ld mismatches, %ld indexed configurations\n",
         queries, mismatches, trees);
  CHECK(trees > 0, "no configuration built a tree");
  free(scratch);
  free(taken);
}

/* Tree sizes >= 65 come from dnd_insert's automatic rebuilds: check they
 * happen, that the tail is bounded, and that every intermediate state
 * answers exactly. */
static void test_interleaved(void) {
  const int S = 2, K = 5;
  dnd *d = dnd_new(S, 0, NULL, 0);
  rng_t r;
  rng_init(&r, 7, 3);
  float walk[2] = {0}, key[2], q[2];
  float *scratch = malloc(6000 * sizeof *scratch);
  unsigned char *taken = malloc(6000);
  int rebuilds = 0, bad = 0, tail_seen = 0;
  size_t last_indexed = 0;
  for (size_t i = 0; i < 6000; i++) {
    make_key(i % 3 ? KEYS_WALK : KEYS_UNIFORM, &r, S, i, walk, key);
    CHECK(dnd_insert(d, key, NULL) == 0, "insert %zu", i);
    size_t n = dnd_size(d), ix = dnd_indexed_size(d);
    if (ix != last_indexed) rebuilds++, last_indexed = ix;
    if (n > 64 && ix < n) tail_seen = 1;
    size_t tail_max = n / 8 > 64 ? n / 8 : 64;
    if (n > 64) CHECK(n - ix <= tail_max, "tail %zu > %zu at n=%zu", n - ix, tail_max, n);
    else CHECK(ix == 0, "tree built below the threshold at n=%zu", n);
    make_query(KEYS_WALK, &r, S, (int)i, q);
    if (i % 3 == 0) q[0] = walk[0], q[1] = walk[1]; /* at the agent: nearest is recent */
    bad += compare_one(d, q, K, scratch, taken, "interleaved");
  }
  printf("interleaved: 6000 inserts, %d rebuilds, %d mismatches\n", rebuilds, bad);
  CHECK(bad == 0, "%d interleaved mismatches", bad);
  CHECK(rebuilds >= 10, "only %d rebuilds", rebuilds);
  CHECK(tail_seen, "never queried with a tail");
  /* Clearing drops the tree; the memory is usable again. */
  dnd_clear(d);
  CHECK(dnd_size(d) == 0 && dnd_indexed_size(d) == 0, "clear left %zu/%zu", dnd_size(d),
        dnd_indexed_size(d));
  int idx[5];
  float d2[5];
  CHECK(dnd_query(d, q, K, idx, d2) == 0, "query on cleared memory");
  CHECK(idx[0] == -1 && isinf(d2[0]), "unused slot not (-1, inf)");
  for (int i = 0; i < 200; i++) {
    key[0] = (float)i, key[1] = 0.0f;
    CHECK(dnd_insert(d, key, NULL) == 0, "insert after clear");
  }
  q[0] = 10.2f, q[1] = 0.0f;
  CHECK(dnd_query(d, q, 3, idx, d2) == 3, "query after clear");
  CHECK(idx[0] == 10 && idx[1] == 11 && idx[2] == 9, "got %d %d %d", idx[0], idx[1], idx[2]);
  free(scratch);
  free(taken);
  dnd_free(d);
}

static void test_basics(void) {
  char err[256] = "";
  CHECK(dnd_new(0, 4, err, sizeof err) == NULL, "S=0 accepted");
  CHECK(strstr(err, "S=0") != NULL, "message: %s", err);
  CHECK(dnd_new(DND_MAX_S + 1, 4, NULL, 0) == NULL, "S too large accepted");
  CHECK(DND_MAX_S >= 64, "the key limit %d is below the latents of a landmark model (64)", DND_MAX_S);
  dnd *big = dnd_new(DND_MAX_S, 4, NULL, 0);
  CHECK(big != NULL, "S = DND_MAX_S refused");
  dnd_free(big);
  CHECK(dnd_new(2, -1, err, sizeof err) == NULL, "V=-1 accepted");
  dnd *d = dnd_new(2, 3, err, sizeof err);
  CHECK(d != NULL, "dnd_new: %s", err);
  float k[2] = {1, 2}, v[3] = {4, 5, 6};
  CHECK(dnd_insert(d, k, v) == 0, "insert");
  k[0] = NAN;
  CHECK(dnd_insert(d, k, v) == GTMSM_ENAN, "NaN key accepted");
  k[0] = 3;
  v[1] = INFINITY;
  CHECK(dnd_insert(d, k, v) == GTMSM_ENAN, "Inf value accepted");
  CHECK(dnd_size(d) == 1, "failed inserts changed the size to %zu", dnd_size(d));
  CHECK(dnd_key(d, 0)[1] == 2.0f && dnd_value(d, 0)[2] == 6.0f, "stored entry differs");
  int idx[3];
  float d2[3], q[2] = {NAN, 0};
  CHECK(dnd_query(d, q, 2, idx, d2) == GTMSM_ENAN, "NaN query accepted");
  q[0] = 0;
  CHECK(dnd_query(d, q, -1, idx, d2) == GTMSM_EINVAL, "K=-1 accepted");
  CHECK(dnd_query(d, q, 0, idx, d2) == 0, "K=0");
  CHECK(dnd_query(d, q, 3, idx, d2) == 1 && idx[0] == 0 && d2[0] == 5.0f && idx[1] == -1,
        "one-entry query");

  /* Max size: a full memory refuses inserts and stays consistent. */
  CHECK(dnd_set_max_size(d, 0) == 0, "unlimited");
  v[1] = 0;
  for (int i = 1; i < 100; i++) {
    k[0] = (float)i;
    CHECK(dnd_insert(d, k, v) == 0, "insert %d", i);
  }
  CHECK(dnd_set_max_size(d, 50) == GTMSM_EINVAL, "max below size accepted");
  CHECK(dnd_set_max_size(d, 100) == 0, "max == size");
  k[0] = 0.5f;
  CHECK(dnd_insert(d, k, v) == GTMSM_ERANGE, "insert past max accepted");
  CHECK(dnd_size(d) == 100, "size %zu after refused insert", dnd_size(d));
  q[0] = 0.5f, q[1] = 2.0f;
  CHECK(dnd_query(d, q, 2, idx, d2) == 2 && idx[0] == 0 && idx[1] == 1 && d2[0] == d2[1],
        "tie at 0.5 must go to the smaller index: %d %d", idx[0], idx[1]);
  dnd_free(d);
  dnd_free(NULL);

  /* V = 0: an index without payload. */
  d = dnd_new(3, 0, NULL, 0);
  float k3[3] = {0, 0, 0};
  for (int i = 0; i < 100; i++) {
    k3[2] = (float)i;
    CHECK(dnd_insert(d, k3, NULL) == 0, "V=0 insert");
  }
  float q3[3] = {0, 0, 41.9f};
  CHECK(dnd_query(d, q3, 1, idx, d2) == 1 && idx[0] == 42, "V=0 query got %d", idx[0]);
  dnd_free(d);
}

static void test_query_many(void) {
  dnd *d = build(KEYS_WALK, 2, 4, 3000, 5);
  enum { N = 64, K = 5 };
  float q[N * 2];
  int idx[N * K], one_idx[K];
  float d2[N * K], one_d2[K];
  rng_t r;
  rng_init(&r, 9, 9);
  for (int i = 0; i < N; i++) make_query(KEYS_WALK, &r, 2, i, q + 2 * i);
  CHECK(dnd_query_many(d, q, N, K, idx, d2) == K, "query_many count");
  int bad = 0;
  for (int i = 0; i < N; i++) {
    dnd_query(d, q + 2 * i, K, one_idx, one_d2);
    bad += memcmp(one_idx, idx + i * K, sizeof one_idx) != 0 ||
           memcmp(one_d2, d2 + i * K, sizeof one_d2) != 0;
  }
  CHECK(bad == 0, "%d rows of query_many differ from dnd_query", bad);
  q[2 * 5] = NAN;
  CHECK(dnd_query_many(d, q, N, K, idx, d2) == GTMSM_ENAN, "NaN row accepted");
  dnd_free(d);
}

typedef struct {
  const dnd *d;
  const float *q;      /* (NQ, 2) */
  const int *expect;   /* (NQ, 5) brute-force indices */
  int nq, mismatches;
} thread_job;

static void *thread_run(void *arg) {
  thread_job *j = arg;
  for (int rep = 0; rep < 3; rep++)
    for (int i = 0; i < j->nq; i++) {
      int idx[5];
      float d2[5];
      dnd_query(j->d, j->q + 2 * i, 5, idx, d2);
      if (memcmp(idx, j->expect + 5 * i, sizeof idx) != 0) j->mismatches++;
    }
  return NULL;
}

/* Queries only read the memory: four threads at once get the serial answers. */
static void test_concurrent(void) {
  enum { NQ = 2000, T = 4 };
  dnd *d = build(KEYS_WALK, 2, 0, 30000, 11);
  CHECK(dnd_indexed_size(d) > 0 && dnd_indexed_size(d) < dnd_size(d),
        "want a tree and a tail: %zu of %zu", dnd_indexed_size(d), dnd_size(d));
  float *q = malloc(NQ * 2 * sizeof *q);
  int *expect = malloc(NQ * 5 * sizeof *expect);
  float d2[5];
  rng_t r;
  rng_init(&r, 4, 4);
  for (int i = 0; i < NQ; i++) {
    make_query(KEYS_WALK, &r, 2, i, q + 2 * i);
    dnd_query_brute(d, q + 2 * i, 5, expect + 5 * i, d2);
  }
  pthread_t th[T];
  thread_job jobs[T];
  for (int t = 0; t < T; t++) {
    jobs[t] = (thread_job){.d = d, .q = q, .expect = expect, .nq = NQ, .mismatches = 0};
    CHECK(pthread_create(&th[t], NULL, thread_run, &jobs[t]) == 0, "pthread_create");
  }
  int bad = 0;
  for (int t = 0; t < T; t++) {
    pthread_join(th[t], NULL);
    bad += jobs[t].mismatches;
  }
  printf("concurrent: %d threads x %d queries, %d mismatches\n", T, 3 * NQ, bad);
  CHECK(bad == 0, "%d concurrent mismatches", bad);
  free(q);
  free(expect);
  dnd_free(d);
}

/* An independent bitwise CRC-32 (IEEE) to check the header and to forge
 * buffers whose only defect is the one under test. */
static uint32_t crc32_bitwise(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static void reseal(uint8_t *buf, size_t len) {
  uint32_t crc = crc32_bitwise(crc32_bitwise(0, buf, 20), buf + 24, len - 24);
  for (int i = 0; i < 4; i++) buf[20 + i] = (uint8_t)(crc >> (8 * i));
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int expect_reject(const uint8_t *buf, size_t len, int code, const char *needle,
                         const char *what) {
  char err[256] = "";
  dnd *out = (dnd *)&err; /* must be reset to NULL */
  int rc = dnd_deserialize(buf, len, &out, err, sizeof err);
  CHECK(rc == code && out == NULL && (!needle || strstr(err, needle)),
        "%s: rc %d (want %d), out %p, message '%s'", what, rc, code, (void *)out, err);
  return rc;
}

static void test_serialize(void) {
  char err[256] = "";
  uint8_t crc_check[] = "123456789";
  CHECK(crc32_bitwise(0, crc_check, 9) == 0xCBF43926u, "reference CRC is wrong");

  /* Round trip of a memory with a tail: equal entries, equal answers. */
  dnd *d = build(KEYS_WALK, 3, 5, 1500, 21);
  uint8_t *buf = NULL;
  size_t len = 0;
  CHECK(dnd_serialize(d, &buf, &len) == 0, "serialize");
  CHECK(len == 32 + 1500 * (3 + 5) * 4, "length %zu", len);
  CHECK(memcmp(buf, "GTMSMDND", 8) == 0 && le32(buf + 8) == 1 && le32(buf + 12) == 3 &&
            le32(buf + 16) == 5 && le32(buf + 24) == 1500 && le32(buf + 28) == 0,
        "header fields");
  CHECK(le32(buf + 20) == crc32_bitwise(crc32_bitwise(0, buf, 20), buf + 24, len - 24),
        "header CRC differs from the reference CRC");
  float k0 = dnd_key(d, 0)[0];
  uint32_t k0bits;
  memcpy(&k0bits, &k0, 4);
  CHECK(le32(buf + 32) == k0bits, "first key not little-endian float32");
  dnd *e = NULL;
  CHECK(dnd_deserialize(buf, len, &e, err, sizeof err) == 0, "deserialize: %s", err);
  if (e) {
    CHECK(dnd_size(e) == 1500 && dnd_key_size(e) == 3 && dnd_value_size(e) == 5, "shape");
    CHECK(dnd_indexed_size(e) == 1500, "deserialised memory not indexed");
    int diff = 0;
    for (size_t i = 0; i < 1500; i++)
      diff += memcmp(dnd_key(d, i), dnd_key(e, i), 3 * sizeof(float)) != 0 ||
              memcmp(dnd_value(d, i), dnd_value(e, i), 5 * sizeof(float)) != 0;
    CHECK(diff == 0, "%d entries differ after the round trip", diff);
    rng_t r;
    rng_init(&r, 1, 1);
    int qdiff = 0;
    for (int t = 0; t < 200; t++) {
      float q[3];
      int i1[5], i2[5];
      float d1[5], d2[5];
      make_query(KEYS_WALK, &r, 3, t, q);
      dnd_query(d, q, 5, i1, d1);
      dnd_query(e, q, 5, i2, d2);
      qdiff += memcmp(i1, i2, sizeof i1) != 0 || memcmp(d1, d2, sizeof d1) != 0;
    }
    CHECK(qdiff == 0, "%d queries differ after the round trip", qdiff);
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    CHECK(dnd_serialize(e, &buf2, &len2) == 0 && len2 == len && memcmp(buf, buf2, len) == 0,
          "re-serialisation differs");
    free(buf2);
  }
  dnd_free(e);
  free(buf);
  dnd_free(d);

  /* Empty memory. */
  d = dnd_new(2, 32, NULL, 0);
  CHECK(dnd_serialize(d, &buf, &len) == 0 && len == 32, "empty length %zu", len);
  e = NULL;
  CHECK(dnd_deserialize(buf, len, &e, err, sizeof err) == 0 && e && dnd_size(e) == 0,
        "empty round trip: %s", err);
  dnd_free(e);
  free(buf);
  dnd_free(d);

  /* A small buffer: every strict prefix and every single-byte change fails. */
  d = build(KEYS_UNIFORM, 2, 3, 6, 3);
  CHECK(dnd_serialize(d, &buf, &len) == 0 && len == 32 + 6 * 5 * 4, "small length %zu", len);
  for (size_t p = 0; p < len; p++) {
    e = NULL;
    int rc = dnd_deserialize(buf, p, &e, err, sizeof err);
    if (rc != GTMSM_EFORMAT || e != NULL) {
      CHECK(0, "prefix of %zu bytes: rc %d", p, rc);
      dnd_free(e);
    }
  }
  uint8_t *mut = malloc(len + 1);
  for (size_t p = 0; p < len; p++)
    for (int bit = 0; bit < 8; bit += 3) {
      memcpy(mut, buf, len);
      mut[p] ^= (uint8_t)(1u << bit);
      e = NULL;
      int rc = dnd_deserialize(mut, len, &e, err, sizeof err);
      if (rc >= 0 || e != NULL) {
        CHECK(0, "byte %zu bit %d flipped: accepted", p, bit);
        dnd_free(e);
      }
    }
  /* Each defect alone (CRC resealed), with its message. */
  memcpy(mut, buf, len);
  memcpy(mut, "GTMSMDNE", 8);
  expect_reject(mut, len, GTMSM_EFORMAT, "magic", "bad magic");
  memcpy(mut, buf, len);
  mut[8] = 2;
  reseal(mut, len);
  expect_reject(mut, len, GTMSM_EFORMAT, "version 2", "version");
  memcpy(mut, buf, len);
  mut[12] = 0;
  reseal(mut, len);
  expect_reject(mut, len, GTMSM_EFORMAT, "S=0", "S = 0");
  memcpy(mut, buf, len);
  mut[12] = 3, mut[16] = 2; /* S and V swapped: same length, so only the CRC can tell */
  expect_reject(mut, len, GTMSM_EFORMAT, "checksum", "S/V swapped");
  memcpy(mut, buf, len);
  mut[31] = 0x80; /* n = 2^63 + 6 */
  reseal(mut, len);
  expect_reject(mut, len, GTMSM_EFORMAT, "too large", "huge n");
  memcpy(mut, buf, len);
  mut[24] = 7;
  reseal(mut, len);
  expect_reject(mut, len, GTMSM_EFORMAT, "implies", "n does not match the length");
  memcpy(mut, buf, len);
  mut[len] = 0;
  reseal(mut, len + 1);
  expect_reject(mut, len + 1, GTMSM_EFORMAT, "implies", "trailing byte");
  memcpy(mut, buf, len);
  float nan = NAN;
  memcpy(mut + 32 + 4 * 5, &nan, 4); /* key 2, coordinate 1 (host is little-endian) */
  reseal(mut, len);
  expect_reject(mut, len, GTMSM_ENAN, "key of entry 2", "NaN key");
  memcpy(mut, buf, len);
  float inf = INFINITY;
  memcpy(mut + 32 + 4 * 12 + 4 * 7, &inf, 4); /* value 2, element 1 */
  reseal(mut, len);
  expect_reject(mut, len, GTMSM_ENAN, "value of entry 2", "Inf value");
  expect_reject(NULL, 0, GTMSM_EFORMAT, "shorter", "NULL buffer");
  free(mut);
  free(buf);
  dnd_free(d);
}

int main(void) {
  test_basics();
  test_against_reference();
  test_interleaved();
  test_query_many();
  test_concurrent();
  test_serialize();
  return test_finish("test_dnd");
}
