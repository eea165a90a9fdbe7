/* DND memory: append-only key/value storage, an exact kd-tree K-nearest-key
 * search with a brute-force tail, and (de)serialisation.
 *
 * Exactness. Both query paths rank candidates by the total order (d2, index)
 * and compute d2 with the one function dnd_dist2, so they agree bit for bit.
 * The tree skips a cell only when a lower bound on the d2 of every point in it
 * is strictly greater than the current K-th d2; the bound is dnd_dist2 applied
 * to the per-dimension offsets from the query to the cell (Arya and Mount's
 * incremental distance), and since float subtraction, squaring and addition
 * are monotone, that bound can never exceed a point's computed d2 even after
 * rounding. Equal bounds are searched, so ties resolve to the smaller index. */
#include "model/dnd.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

/* Memories up to this size are only scanned, and the tail may always hold
 * this many entries. The tree is faster even here (S = 2, 64 entries: 160 ns
 * against 250 ns per query), but by so little that rebuilding it every few
 * inserts would cost more than it saves. */
#define DND_MIN_TREE 64
/* Points per leaf at most: with S = 2 in bench_dnd, 16 queried as fast as 8
 * (and faster than 4 or 32) and builds 10-20% faster, having half the nodes. */
#define DND_LEAF_MAX 16

static const uint8_t DND_MAGIC[8] = {'G', 'T', 'M', 'S', 'M', 'D', 'N', 'D'};
#define DND_VERSION 1u
#define DND_HEADER 32u

typedef struct {
  float split;   /* internal: coordinate of the splitting plane */
  int32_t dim;   /* internal: split dimension; -1 for a leaf */
  int32_t a, b;  /* internal: left and right child; leaf: [a, b) in the permuted arrays */
} dnd_node;

struct dnd {
  int S, V;
  size_t n, cap;     /* entries, allocated entries */
  size_t max_size;   /* 0: INT_MAX */
  float *keys;       /* (cap, S) in insertion order */
  float *values;     /* (cap, V) */
  /* kd-tree over entries [0, tree_n); the tail [tree_n, n) is scanned. */
  size_t tree_n;
  float *tkeys;      /* (tree_n, S) keys in leaf order, so a leaf is contiguous */
  int32_t *tidx;     /* (tree_n) entry index of each row of tkeys */
  dnd_node *nodes;   /* (n_nodes) preorder; node 0 is the root */
  size_t n_nodes;
};

/* The one squared-distance function of both query paths (and of the pruning
 * bound), so that their float rounding is identical. The square is its own
 * statement because C allows fusing a multiply-add only within an expression
 * (clang does by default on FMA hardware): this way every compiler rounds
 * twice, as callers computing distances themselves will. */
static inline float dnd_dist2(const float *a, const float *b, int S) {
  float acc = 0.0f;
  for (int j = 0; j < S; j++) {
    float t = a[j] - b[j];
    float t2 = t * t;
    acc += t2;
  }
  return acc;
}

static inline int dnd_all_finite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* ---------------------------------------------------------------- storage */

dnd *dnd_new(int S, int V, char *err, size_t errlen) {
  if (S < 1 || S > DND_MAX_S) {
    gtmsm_fail(err, errlen, GTMSM_EINVAL, "dnd: key size S=%d outside [1, %d]", S, DND_MAX_S);
    return NULL;
  }
  if (V < 0 || V > DND_MAX_V) {
    gtmsm_fail(err, errlen, GTMSM_EINVAL, "dnd: value size V=%d outside [0, %d]", V, DND_MAX_V);
    return NULL;
  }
  dnd *d = calloc(1, sizeof *d);
  if (!d) {
    gtmsm_fail(err, errlen, GTMSM_ENOMEM, "dnd: out of memory");
    return NULL;
  }
  d->S = S;
  d->V = V;
  return d;
}

static void dnd_drop_tree(dnd *d) {
  free(d->tkeys);
  free(d->tidx);
  free(d->nodes);
  d->tkeys = NULL;
  d->tidx = NULL;
  d->nodes = NULL;
  d->tree_n = 0;
  d->n_nodes = 0;
}

void dnd_free(dnd *d) {
  if (!d) return;
  dnd_drop_tree(d);
  free(d->keys);
  free(d->values);
  free(d);
}

int dnd_key_size(const dnd *d) { return d->S; }
int dnd_value_size(const dnd *d) { return d->V; }
size_t dnd_size(const dnd *d) { return d->n; }
size_t dnd_indexed_size(const dnd *d) { return d->tree_n; }

static size_t dnd_limit(const dnd *d) {
  return d->max_size ? d->max_size : (size_t)INT_MAX;
}

int dnd_set_max_size(dnd *d, size_t max) {
  if (max > (size_t)INT_MAX || (max && max < d->n)) return GTMSM_EINVAL;
  d->max_size = max;
  return GTMSM_OK;
}

const float *dnd_key(const dnd *d, size_t i) {
  assert(i < d->n);
  return d->keys + i * (size_t)d->S;
}

const float *dnd_value(const dnd *d, size_t i) {
  assert(i < d->n);
  return d->values + i * (size_t)d->V;
}

void dnd_truncate(dnd *d, size_t n) {
  if (n >= d->n) return;
  if (d->tree_n > n) dnd_drop_tree(d); /* the tree is optional: queries stay exact */
  d->n = n;
}

void dnd_clear(dnd *d) {
  dnd_drop_tree(d);
  d->n = 0;
}

/* Grows keys and values to hold at least need entries. Either array may end up
 * larger than d->cap records when the second realloc fails; that only wastes
 * space, and the entries are untouched. */
static int dnd_reserve(dnd *d, size_t need) {
  if (need <= d->cap) return GTMSM_OK;
  size_t cap = d->cap ? d->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : 2 * cap;
  if (cap > SIZE_MAX / sizeof(float) / (size_t)(d->S + d->V)) return GTMSM_ENOMEM;
  float *k = realloc(d->keys, cap * (size_t)d->S * sizeof(float));
  if (!k) return GTMSM_ENOMEM;
  d->keys = k;
  /* realloc(p, 0) may return NULL; V == 0 needs no value storage at all. */
  if (d->V > 0) {
    float *v = realloc(d->values, cap * (size_t)d->V * sizeof(float));
    if (!v) return GTMSM_ENOMEM;
    d->values = v;
  }
  d->cap = cap;
  return GTMSM_OK;
}

/* The tail may grow to an eighth of the memory before a rebuild, so a rebuild
 * (O(n log n)) happens every n/8 inserts: O(log n) amortised per insert, and a
 * query scans at most about n/9 tail entries. */
static size_t dnd_tail_max(size_t n) {
  size_t t = n / 8;
  return t > DND_MIN_TREE ? t : DND_MIN_TREE;
}

/* ------------------------------------------------------------- kd-tree build */

/* The builder permutes rows of a private copy of the keys together with their
 * entry indices, so every pass over a node's points reads contiguous memory
 * and the finished copy is already the leaf-ordered array the queries scan. */
typedef struct {
  float *pts;        /* (n, S) keys, permuted as the tree is built */
  int32_t *idx;      /* (n) entry index of each row of pts */
  int S;
  dnd_node *nodes;   /* (cap_nodes) */
  size_t n_nodes, cap_nodes;
} dnd_builder;

static inline void dnd_swap_rows(dnd_builder *b, size_t i, size_t j) {
  float *p = b->pts + i * (size_t)b->S, *q = b->pts + j * (size_t)b->S;
  for (int k = 0; k < b->S; k++) {
    float t = p[k];
    p[k] = q[k];
    q[k] = t;
  }
  int32_t t = b->idx[i];
  b->idx[i] = b->idx[j];
  b->idx[j] = t;
}

/* Orders rows [lo, hi) so that row m holds the point whose coordinate dim is
 * the (m - lo)-th smallest, with no larger coordinate before m and no smaller
 * after: Hoare's FIND as written by Wirth. It stops on coordinates equal to
 * the pivot from both sides, which keeps it linear when many keys are equal
 * and swaps half as often as a three-way partition. */
static void dnd_select(dnd_builder *b, int dim, size_t lo, size_t hi, size_t m) {
  const size_t S = (size_t)b->S;
#define COORD(i) b->pts[(size_t)(i) * S + (size_t)dim]
  /* Signed: j steps to l - 1 when l is 0. */
  ptrdiff_t l = (ptrdiff_t)lo, r = (ptrdiff_t)hi - 1, k = (ptrdiff_t)m;
  while (l < r) {
    /* Median of three as the pivot avoids the quadratic case on sorted input
     * (a trajectory is nearly sorted along its direction of travel); being a
     * coordinate in the range, it also stops both scans. */
    ptrdiff_t mid = l + (r - l) / 2;
    float x = COORD(l), y = COORD(mid), z = COORD(r);
    float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
    ptrdiff_t i = l, j = r;
    do {
      while (COORD(i) < pivot) i++;
      while (pivot < COORD(j)) j--;
      if (i <= j) dnd_swap_rows(b, (size_t)i++, (size_t)j--);
    } while (i <= j);
    /* Now [l, j] <= pivot, [i, r] >= pivot, and rows strictly between equal it. */
    if (k <= j) r = j;
    else if (k >= i) l = i;
    else break;
  }
#undef COORD
}

/* Builds the subtree over rows [lo, hi) and returns its node index. */
static int32_t dnd_build_node(dnd_builder *b, size_t lo, size_t hi) {
  assert(b->n_nodes < b->cap_nodes);
  int32_t self = (int32_t)b->n_nodes++;
  dnd_node *nd = &b->nodes[self];
  nd->dim = -1;
  nd->split = 0.0f;
  nd->a = (int32_t)lo;
  nd->b = (int32_t)hi;
  if (hi - lo <= DND_LEAF_MAX) return self;
  /* Split the widest dimension of the points' bounding box (tighter than the
   * cell's, which matters for clustered trajectories). */
  const int S = b->S;
  int best = 0;
  float lo_c[DND_MAX_S], hi_c[DND_MAX_S];
  const float *p = b->pts + lo * (size_t)S;
  for (int j = 0; j < S; j++) lo_c[j] = hi_c[j] = p[j];
  for (size_t i = lo + 1; i < hi; i++) {
    p = b->pts + i * (size_t)S;
    for (int j = 0; j < S; j++) {
      if (p[j] < lo_c[j]) lo_c[j] = p[j];
      if (p[j] > hi_c[j]) hi_c[j] = p[j];
    }
  }
  float width = -1.0f;
  for (int j = 0; j < S; j++)
    if (hi_c[j] - lo_c[j] > width) width = hi_c[j] - lo_c[j], best = j;
  /* All points equal: splitting cannot prune, so the bucket stays one leaf. */
  if (!(width > 0.0f)) return self;
  size_t m = lo + (hi - lo) / 2;
  dnd_select(b, best, lo, hi, m);
  float split = b->pts[m * (size_t)S + (size_t)best];
  int32_t left = dnd_build_node(b, lo, m);
  int32_t right = dnd_build_node(b, m, hi);
  nd->dim = best;
  nd->split = split;
  nd->a = left;
  nd->b = right;
  return self;
}

/* Builds a tree over all current entries into new arrays and swaps it in only
 * when every allocation succeeded, so a failure leaves the old tree usable. */
int dnd_reindex(dnd *d) {
  size_t n = d->n, S = (size_t)d->S;
  if (n == 0) {
    dnd_drop_tree(d);
    return GTMSM_OK;
  }
  /* Splits happen only above DND_LEAF_MAX points and halve them, so each leaf
   * holds at least (DND_LEAF_MAX + 1) / 2 points: this bounds the leaves. */
  size_t leaves = n / ((DND_LEAF_MAX + 1) / 2) + 1;
  dnd_builder b = {.S = d->S, .cap_nodes = 2 * leaves};
  b.pts = malloc(n * S * sizeof *b.pts);
  b.idx = malloc(n * sizeof *b.idx);
  b.nodes = malloc(b.cap_nodes * sizeof *b.nodes);
  if (!b.pts || !b.idx || !b.nodes) {
    free(b.pts);
    free(b.idx);
    free(b.nodes);
    return GTMSM_ENOMEM;
  }
  memcpy(b.pts, d->keys, n * S * sizeof *b.pts);
  for (size_t i = 0; i < n; i++) b.idx[i] = (int32_t)i;
  dnd_build_node(&b, 0, n);
  dnd_drop_tree(d);
  d->tkeys = b.pts;
  d->tidx = b.idx;
  d->nodes = b.nodes;
  d->n_nodes = b.n_nodes;
  d->tree_n = n;
  return GTMSM_OK;
}

int dnd_insert(dnd *d, const float *key, const float *value) {
  size_t S = (size_t)d->S, V = (size_t)d->V;
  if (!dnd_all_finite(key, S) || (V && !dnd_all_finite(value, V))) return GTMSM_ENAN;
  if (d->n >= dnd_limit(d)) return GTMSM_ERANGE;
  int rc = dnd_reserve(d, d->n + 1);
  if (rc) return rc;
  memcpy(d->keys + d->n * S, key, S * sizeof(float));
  if (V) memcpy(d->values + d->n * V, value, V * sizeof(float));
  d->n++;
  /* A failed rebuild is not an insert failure: the old tree plus a longer
   * tail still answers exactly, and the next insert tries again. */
  if (d->n > DND_MIN_TREE && d->n - d->tree_n > dnd_tail_max(d->n)) (void)dnd_reindex(d);
  return GTMSM_OK;
}

/* ------------------------------------------------------------------- query */

/* Is (da, ia) ranked before (db, ib)? The total order both paths share. */
static inline int dnd_before(float da, int32_t ia, float db, int32_t ib) {
  return da < db || (da == db && ia < ib);
}

typedef struct {
  const float *q;   /* (S) */
  int S, K, count;
  int *idx;         /* (K) the best so far, sorted */
  float *d2;        /* (K) */
  float worst;      /* d2[K - 1] once K are found, +inf before */
  float off[DND_MAX_S];  /* per-dimension offset from q to the current cell */
  float zero[DND_MAX_S];
} dnd_search;

/* Offers candidate i at squared distance dist to the sorted best list. */
static inline void dnd_offer(dnd_search *s, int32_t i, float dist) {
  /* The common case in a scan: rejected by one comparison in a register. */
  if (dist > s->worst) return;
  int j = s->count;
  if (j == s->K) {
    if (!dnd_before(dist, i, s->d2[j - 1], s->idx[j - 1])) return;
    j--;
  } else {
    s->count++;
  }
  while (j > 0 && dnd_before(dist, i, s->d2[j - 1], s->idx[j - 1])) {
    s->d2[j] = s->d2[j - 1];
    s->idx[j] = s->idx[j - 1];
    j--;
  }
  s->d2[j] = dist;
  s->idx[j] = i;
  if (s->count == s->K) s->worst = s->d2[s->K - 1];
}

/* Offers rows [lo, hi) of rows (., S) whose entry indices are ids[r], or r
 * itself when ids is NULL (the tail, in insertion order). Inlined with S a
 * constant, the distance loop unrolls and the query and the K-th distance stay
 * in registers; the float operations and their order are those of dnd_dist2
 * whatever S is, so results do not depend on which copy runs. */
static inline __attribute__((always_inline)) void dnd_scan_rows(dnd_search *s, const float *rows,
                                                                const int32_t *ids, size_t lo,
                                                                size_t hi, int S) {
  float q[DND_MAX_S];
  for (int j = 0; j < S; j++) q[j] = s->q[j];
  float worst = s->worst;
  for (size_t r = lo; r < hi; r++) {
    float dist = dnd_dist2(q, rows + r * (size_t)S, S);
    if (dist > worst) continue;
    dnd_offer(s, ids ? ids[r] : (int32_t)r, dist);
    worst = s->worst;
  }
}

static void dnd_scan(dnd_search *s, const float *rows, const int32_t *ids, size_t lo, size_t hi) {
  switch (s->S) {
  case 2: dnd_scan_rows(s, rows, ids, lo, hi, 2); break;
  case 3: dnd_scan_rows(s, rows, ids, lo, hi, 3); break;
  case 4: dnd_scan_rows(s, rows, ids, lo, hi, 4); break;
  case 5: dnd_scan_rows(s, rows, ids, lo, hi, 5); break;
  default: dnd_scan_rows(s, rows, ids, lo, hi, s->S); break;
  }
}

static void dnd_search_node(const dnd *d, dnd_search *s, int32_t node) {
  const dnd_node *nd = &d->nodes[node];
  if (nd->dim < 0) {
    dnd_scan(s, d->tkeys, d->tidx, (size_t)nd->a, (size_t)nd->b);
    return;
  }
  int dim = nd->dim;
  float diff = s->q[dim] - nd->split;
  /* Points equal to split may sit on either side; each side's offset is still
   * a lower bound for it, see the file comment. */
  int32_t near = diff < 0.0f ? nd->a : nd->b, far = diff < 0.0f ? nd->b : nd->a;
  dnd_search_node(d, s, near);
  float old = s->off[dim];
  s->off[dim] = diff;
  float bound = dnd_dist2(s->off, s->zero, s->S);
  if (bound <= s->worst) dnd_search_node(d, s, far);
  s->off[dim] = old;
}

/* Validates the arguments and fills the unused slots; returns min(K, n) or an
 * error code. */
static int dnd_query_begin(const dnd *d, const float *q, int K, int *idx_out, float *d2_out) {
  if (K < 0) return GTMSM_EINVAL;
  if (!dnd_all_finite(q, (size_t)d->S)) return GTMSM_ENAN;
  for (int k = 0; k < K; k++) {
    idx_out[k] = -1;
    d2_out[k] = INFINITY;
  }
  return d->n < (size_t)K ? (int)d->n : K;
}

static void dnd_search_init(dnd_search *s, const dnd *d, const float *q, int K, int *idx_out,
                            float *d2_out) {
  s->q = q;
  s->S = d->S;
  s->K = K;
  s->count = 0;
  s->idx = idx_out;
  s->d2 = d2_out;
  s->worst = INFINITY;
  for (int j = 0; j < d->S; j++) s->off[j] = s->zero[j] = 0.0f;
}

int dnd_query_brute(const dnd *d, const float *q, int K, int *idx_out, float *d2_out) {
  int found = dnd_query_begin(d, q, K, idx_out, d2_out);
  if (found <= 0) return found;
  dnd_search s;
  dnd_search_init(&s, d, q, K, idx_out, d2_out);
  dnd_scan(&s, d->keys, NULL, 0, d->n);
  assert(s.count == found);
  return found;
}

int dnd_query(const dnd *d, const float *q, int K, int *idx_out, float *d2_out) {
  int found = dnd_query_begin(d, q, K, idx_out, d2_out);
  if (found <= 0) return found;
  dnd_search s;
  dnd_search_init(&s, d, q, K, idx_out, d2_out);
  /* The tail first: recent entries are usually near the agent, so they make
   * the K-th distance small before the tree is entered. */
  dnd_scan(&s, d->keys, NULL, d->tree_n, d->n);
  if (d->tree_n > 0) dnd_search_node(d, &s, 0);
  assert(s.count == found);
  return found;
}

int dnd_query_many(const dnd *d, const float *q, int N, int K, int *idx, float *d2) {
  if (N < 0 || K < 0) return GTMSM_EINVAL;
  int found = d->n < (size_t)K ? (int)d->n : K;
  for (int i = 0; i < N; i++) {
    size_t r = (size_t)i;
    /* With K == 0 the outputs may be NULL, and NULL + 0 is undefined. */
    int *ir = K ? idx + r * (size_t)K : idx;
    float *dr = K ? d2 + r * (size_t)K : d2;
    int rc = dnd_query(d, q + r * (size_t)d->S, K, ir, dr);
    if (rc < 0) return rc;
  }
  return found;
}

/* ---------------------------------------------------------- serialisation */

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320) with a 16-entry table: no global
 * state to initialise, and fast enough for memories of a few megabytes. */
static uint32_t dnd_crc32(uint32_t crc, const uint8_t *p, size_t n) {
  static const uint32_t tab[16] = {
      0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
      0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
      0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    crc = (crc >> 4) ^ tab[crc & 15u];
    crc = (crc >> 4) ^ tab[crc & 15u];
  }
  return ~crc;
}

/* The checksum covers every byte but its own field [20, 24). */
static uint32_t dnd_buffer_crc(const uint8_t *buf, size_t len) {
  uint32_t crc = dnd_crc32(0, buf, 20);
  return dnd_crc32(crc, buf + 24, len - 24);
}

static void dnd_put_u32(uint8_t *p, uint32_t x) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(x >> (8 * i));
}

static void dnd_put_u64(uint8_t *p, uint64_t x) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i));
}

static uint32_t dnd_get_u32(const uint8_t *p) {
  uint32_t x = 0;
  for (int i = 0; i < 4; i++) x |= (uint32_t)p[i] << (8 * i);
  return x;
}

static uint64_t dnd_get_u64(const uint8_t *p) {
  uint64_t x = 0;
  for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
  return x;
}

static void dnd_put_floats(uint8_t *p, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &x[i], 4);
    dnd_put_u32(p + 4 * i, u);
  }
}

static void dnd_get_floats(float *x, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u = dnd_get_u32(p + 4 * i);
    memcpy(&x[i], &u, 4);
  }
}

int dnd_serialize(const dnd *d, uint8_t **buf, size_t *len) {
  size_t nk = d->n * (size_t)d->S, nv = d->n * (size_t)d->V;
  size_t total = DND_HEADER + 4 * (nk + nv);
  *buf = NULL;
  *len = 0;
  uint8_t *p = malloc(total);
  if (!p) return GTMSM_ENOMEM;
  memcpy(p, DND_MAGIC, 8);
  dnd_put_u32(p + 8, DND_VERSION);
  dnd_put_u32(p + 12, (uint32_t)d->S);
  dnd_put_u32(p + 16, (uint32_t)d->V);
  dnd_put_u64(p + 24, (uint64_t)d->n);
  dnd_put_floats(p + DND_HEADER, d->keys, nk);
  dnd_put_floats(p + DND_HEADER + 4 * nk, d->values, nv);
  dnd_put_u32(p + 20, dnd_buffer_crc(p, total));
  *buf = p;
  *len = total;
  return GTMSM_OK;
}

int dnd_deserialize(const uint8_t *buf, size_t len, dnd **out, char *err, size_t errlen) {
  int rc = GTMSM_OK;
  dnd *d = NULL;
  *out = NULL;
  if (!buf || len < DND_HEADER) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "dnd: buffer of %zu bytes is shorter than the %u-byte header", len,
                    DND_HEADER);
    goto done;
  }
  if (memcmp(buf, DND_MAGIC, 8) != 0) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "dnd: bad magic (not a serialised DND memory)");
    goto done;
  }
  uint32_t version = dnd_get_u32(buf + 8), S = dnd_get_u32(buf + 12), V = dnd_get_u32(buf + 16);
  uint64_t n = dnd_get_u64(buf + 24);
  if (version != DND_VERSION) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "dnd: unsupported version %u (expected %u)",
                    version, DND_VERSION);
    goto done;
  }
  if (S < 1 || S > DND_MAX_S || V > DND_MAX_V) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "dnd: sizes S=%u V=%u outside S in [1, %d], V in [0, %d]", S, V, DND_MAX_S,
                    DND_MAX_V);
    goto done;
  }
  size_t row = 4 * ((size_t)S + V); /* bytes per entry */
  if (n > (uint64_t)INT_MAX || n > (SIZE_MAX - DND_HEADER) / row) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "dnd: entry count %llu too large",
                    (unsigned long long)n);
    goto done;
  }
  size_t expect = DND_HEADER + (size_t)n * row;
  if (len != expect) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "dnd: buffer is %zu bytes but the header (n=%llu, S=%u, V=%u) implies %zu",
                    len, (unsigned long long)n, S, V, expect);
    goto done;
  }
  uint32_t stored = dnd_get_u32(buf + 20), crc = dnd_buffer_crc(buf, len);
  if (stored != crc) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "dnd: checksum mismatch (stored %08x, computed %08x): corrupt buffer", stored,
                    crc);
    goto done;
  }
  d = dnd_new((int)S, (int)V, err, errlen);
  if (!d) {
    rc = GTMSM_ENOMEM;
    goto done;
  }
  if (n > 0 && dnd_reserve(d, (size_t)n)) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "dnd: out of memory for %llu entries",
                    (unsigned long long)n);
    goto done;
  }
  size_t nk = (size_t)n * S, nv = (size_t)n * V;
  dnd_get_floats(d->keys, buf + DND_HEADER, nk);
  dnd_get_floats(d->values, buf + DND_HEADER + 4 * nk, nv);
  for (size_t i = 0; i < (size_t)n; i++) {
    if (!dnd_all_finite(d->keys + i * S, S)) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENAN, "dnd: key of entry %zu is not finite", i);
      goto done;
    }
    if (V && !dnd_all_finite(d->values + i * V, V)) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENAN, "dnd: value of entry %zu is not finite", i);
      goto done;
    }
  }
  d->n = (size_t)n;
  if (d->n > DND_MIN_TREE && dnd_reindex(d)) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "dnd: out of memory indexing %zu entries", d->n);
    goto done;
  }
  *out = d;
  d = NULL;
done:
  dnd_free(d);
  return rc;
}
