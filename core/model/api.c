/* Per-session memory, observation and prediction on a trained model. */
#include "model/api.h"

#include <math.h>
#include <pthread.h>
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "img/image.h"
#include "model/gtmsm_internal.h"
#include "model/par.h"
#include "nn/rng.h"

static const char MEM_MAGIC[8] = {'G', 'T', 'M', 'S', 'M', 'M', 'E', 'M'};
#define MEM_HEADER (8 + 4 + 4 + 8)

/* Inference runs the networks on blocks of rows, the last one zero-padded:
 * BLAS kernels may round differently for different matrix heights, and for
 * different row positions inside a block (OpenBLAS's Haswell/Zen SGEMM does),
 * so a frame's encoding (stored in memory) or a predicted frame must sit at a
 * row position that does not depend on how many others came in the same
 * request. The rule: observed frames sit at row (step mod ROW_BLOCK) of a
 * block of ROW_BLOCK rows, step counted from the memory's first observation;
 * predicted frames at row (t mod ROW_BLOCK) of the request.
 *
 * A whole block makes one interactive step (one frame in, one out) cost
 * ROW_BLOCK frames, and small blocks make long requests slow (GEMMs of few
 * rows). Where the kernels give every row of a block of d rows (d dividing
 * ROW_BLOCK) the same bits as at its position of the full block, blocks of d
 * rows give exactly the rule's bits; gtmsm_infer_rows measures, once per
 * model and bit for bit on the running kernels, which divisors d do, and
 * each run of rows then takes the smallest verified block that holds it
 * (a single frame the smallest, 48 consecutive frames the full block).
 * ROW_BLOCK is 48 = lcm(12, 16) because OpenBLAS 0.3.21's Haswell/Zen SGEMM
 * computes rows in tiles of 12 (12 and 24 pass there: blocks of 64 left a
 * partial tile and nothing smaller passed), its SSE3 and Sandy Bridge
 * kernels in tiles of 2 or 1. Layers that do not put frames in GEMM rows
 * (the conv VAE's convolutions at 32x32) skip the padding: gtmsm_encode_rows,
 * gtmsm_decode_mean_first. A VAE with an inference encoder (encode_infer: the
 * fc VAE, on linear_infer) needs no blocks to encode: each frame's encoding
 * is a function of the frame alone, so observations are encoded in runs of
 * any rows (enc_pack); the decoders keep the rule. */
#define ROW_BLOCK 48

/* Encodes x (ROW_BLOCK, D) as ROW_BLOCK / q blocks of q consecutive rows and compares
 * every row's (mu, lv) with the encoding of the whole block; the same for
 * the decoder from z (ROW_BLOCK, Z). 1 when all are bit-identical. buf holds
 * q (D + 2 Z) + q D floats. */
static int blocks_agree(const gtmsm_model *m, int q, const float *x, const float *z, const float *mu_ref,
                        const float *lv_ref, const float *out_ref, float *buf) {
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z;
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, q, 0);
  if (!ws) return 0;
  float *mu = buf, *lv = mu + (size_t)q * Z, *out = lv + (size_t)q * Z;
  int ok = 1;
  for (int b0 = 0; b0 < ROW_BLOCK && ok; b0 += q) {
    gtmsm_encode(m, ws, x + (size_t)b0 * D, q, mu, lv);
    gtmsm_decode_mean(m, ws, z + (size_t)b0 * Z, q, out);
    ok = memcmp(mu, mu_ref + (size_t)b0 * Z, sizeof(float) * (size_t)q * Z) == 0 &&
         memcmp(lv, lv_ref + (size_t)b0 * Z, sizeof(float) * (size_t)q * Z) == 0 &&
         memcmp(out, out_ref + (size_t)b0 * D, sizeof(float) * (size_t)q * D) == 0;
  }
  gtmsm_ws_free(ws);
  return ok;
}

/* The verified block sizes of m as a mask (bit d: blocks of d rows give the
 * full block's bits; bit ROW_BLOCK always). The cache holds the mask and, in
 * its top byte, the OpenBLAS thread count it was measured with: a GEMM split
 * over threads splits the rows by the matrix height, so a measurement holds
 * for its thread count only; under another, only the full block is used. */
static uint64_t infer_blocks(const gtmsm_model *m) {
  const uint64_t full = 1ULL << ROW_BLOCK;
  const int threads = openblas_get_num_threads();
  uint64_t cached = __atomic_load_n(&m->infer_blocks, __ATOMIC_ACQUIRE);
  if (cached) return (int)(cached >> 56) == threads ? cached & ((1ULL << 56) - 1) : full;
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z;
  size_t nx = (size_t)ROW_BLOCK * D, nz = (size_t)ROW_BLOCK * Z;
  float *x = malloc(sizeof(float) * (2 * nx + 3 * nz)), *buf = malloc(sizeof(float) * (nx + 2 * nz));
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, ROW_BLOCK, 0);
  uint64_t mask = full;
  if (x && buf && ws) {
    float *z = x + nx, *mu = z + nz, *lv = mu + nz, *out = lv + nz;
    rng_t r;
    rng_init(&r, 0x6c6f636bULL, 0x726f7773ULL);
    for (size_t i = 0; i < nx; i++) x[i] = rng_uniform(&r); /* frames in [0, 1), latents N(0, 1) */
    rng_normal_fill(&r, z, nz);
    gtmsm_encode(m, ws, x, ROW_BLOCK, mu, lv);
    gtmsm_decode_mean(m, ws, z, ROW_BLOCK, out);
    for (int d = 1; d < ROW_BLOCK; d++)
      if (ROW_BLOCK % d == 0 && blocks_agree(m, d, x, z, mu, lv, out, buf)) mask |= 1ULL << d;
  }
  gtmsm_ws_free(ws);
  free(x);
  free(buf);
  /* a cache (m is otherwise read-only here): every thread measures the same value */
  __atomic_store_n(&((gtmsm_model *)m)->infer_blocks, mask | (uint64_t)threads << 56, __ATOMIC_RELEASE);
  return mask;
}

/* The smallest verified block of a mask. */
static int smallest_block(uint64_t mask) {
  int d = 1;
  while (!(mask >> d & 1)) d++;
  return d;
}

int gtmsm_infer_rows(const gtmsm_model *m) { return smallest_block(infer_blocks(m)); }

/* Rows of the smallest verified block that holds positions [p0, p0 + n) of
 * the full block in one of its aligned pieces (0 <= p0, p0 + n <= ROW_BLOCK). */
static int block_for(uint64_t mask, int p0, int n) {
  for (int d = 1; d < ROW_BLOCK; d++)
    if (mask >> d & 1 && p0 / d == (p0 + n - 1) / d) return d;
  return ROW_BLOCK;
}

/* Inference workspaces kept in the model between calls: the VAE's for a
 * whole block (every call runs blocks of at most ROW_BLOCK rows), a block's
 * padded frames and latents, and the prior's. A call takes one (or makes one)
 * and gives it back; concurrent calls on one model each hold their own, so
 * the pool grows to the most calls at once. Allocating them per call was
 * about a tenth of a 256-step prediction (docs/BENCHMARKS.md). */
typedef struct pooled {
  gtmsm_ws *ws;
  float *buf; /* (ROW_BLOCK, D + 2Z) */
  void *pws;
  struct pooled *next;
} pooled;
struct gtmsm_ws_pool {
  pooled *free;
  void *enc_pack; /* the VAE's inference encoder's packed weights (infer_new), made at the first observation */
};
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;

static void pooled_free(const gtmsm_model *m, pooled *p) {
  if (!p) return;
  gtmsm_ws_free(p->ws);
  free(p->buf);
  if (p->pws) m->prior->ws_free(p->pws);
  free(p);
}

static pooled *pool_take(const gtmsm_model *m) {
  pooled *p = NULL;
  pthread_mutex_lock(&pool_mu);
  if (m->ws_pool && (p = m->ws_pool->free)) m->ws_pool->free = p->next;
  pthread_mutex_unlock(&pool_mu);
  if (p) return p;
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z;
  if (!(p = calloc(1, sizeof *p))) return NULL;
  p->ws = gtmsm_ws_new(&m->cfg, ROW_BLOCK, 0);
  p->buf = malloc(sizeof(float) * ROW_BLOCK * (size_t)(D + 2 * Z));
  p->pws = m->prior->ws_new(&m->cfg, 1, 0);
  if (!p->ws || !p->buf || !p->pws) {
    pooled_free(m, p);
    return NULL;
  }
  return p;
}

static void pool_give(const gtmsm_model *m, pooled *p) {
  if (!p) return;
  gtmsm_model *mm = (gtmsm_model *)m; /* a cache in the model, as infer_blocks */
  pthread_mutex_lock(&pool_mu);
  if (!mm->ws_pool) __atomic_store_n(&mm->ws_pool, calloc(1, sizeof *mm->ws_pool), __ATOMIC_RELEASE); /* enc_pack */
  if (mm->ws_pool) {
    p->next = mm->ws_pool->free;
    mm->ws_pool->free = p;
    p = NULL;
  }
  pthread_mutex_unlock(&pool_mu);
  pooled_free(m, p); /* no pool (out of memory): not kept */
}

void gtmsm_ws_pool_free(gtmsm_model *m) {
  if (!m->ws_pool) return;
  if (m->ws_pool->enc_pack) m->vae->infer_free(m->ws_pool->enc_pack);
  for (pooled *p = m->ws_pool->free, *next; p; p = next) {
    next = p->next;
    pooled_free(m, p);
  }
  free(m->ws_pool);
  m->ws_pool = NULL;
}

/* The VAE's inference encoder for m (*pk; NULL when the VAE has none: its
 * observations are encoded in blocks); 0, or 1 when out of memory. Made once
 * per model and kept in it, as the workspaces, so the model's weights must
 * not change after its first observation (training does not observe). */
static int enc_pack(const gtmsm_model *m, const void **pk) {
  *pk = NULL;
  if (!m->vae->encode_infer) return 0;
  gtmsm_model *mm = (gtmsm_model *)m;
  struct gtmsm_ws_pool *pool = __atomic_load_n(&mm->ws_pool, __ATOMIC_ACQUIRE);
  if (pool && (*pk = __atomic_load_n(&pool->enc_pack, __ATOMIC_ACQUIRE))) return 0; /* made: no lock */
  pthread_mutex_lock(&pool_mu);
  if (!mm->ws_pool) __atomic_store_n(&mm->ws_pool, calloc(1, sizeof *mm->ws_pool), __ATOMIC_RELEASE);
  if (mm->ws_pool && !mm->ws_pool->enc_pack)
    __atomic_store_n(&mm->ws_pool->enc_pack, m->vae->infer_new(m), __ATOMIC_RELEASE);
  if (mm->ws_pool) *pk = mm->ws_pool->enc_pack;
  pthread_mutex_unlock(&pool_mu);
  return *pk == NULL;
}

/* One call's blocks as the pieces of a par_job (par.h): run k of an
 * observation's encoding (frames within one full block, rows step mod
 * ROW_BLOCK) or block k of a prediction's decoding (frame t at row t mod
 * ROW_BLOCK), each in the smallest verified block that holds it. A piece
 * takes a workspace of its own from the pool, so pieces run on any thread;
 * they write disjoint rows of the outputs. */
typedef struct {
  const gtmsm_model *m;
  uint64_t mask;
  const float *in; /* encoding: frames x (n, D); decoding: latents z (n, Z) */
  int n;
  long step0;      /* encoding: the step x's first frame was observed at */
  float *out;      /* encoding: mu (n, Z); decoding: frames (n, D), clamped to [0, 1], or NULL */
  float *out2;     /* encoding: lv (n, Z) */
  uint8_t *pix;    /* decoding (when out is NULL): the frames as bytes (n, D) */
  const float *heads; /* decoding in tails (else NULL): each block's decoder head, (blocks * ROW_BLOCK, hf) */
  size_t hf;          /* floats per row of a head */
  int failed;      /* a piece found no workspace (out of memory); written under no lock, only ever to 1 */
  const void *pk;  /* encoding: the inference encoder (enc_pack), or NULL: blocks */
} blocked_job;

/* Decoding in tails (gtmsm_decode_mean_tail): where the VAE decodes each
 * image on its own past a first layer that mixes a block's rows (the conv
 * VAE at 32x32), the caller runs that layer (the head) once per block as it
 * rolls the block out, and a block's images are TAIL_PIECES pieces, so that a
 * short prediction is shared too; only when a helper could take them, and
 * while the heads fit HEADS_MAX_BYTES (longer predictions share whole
 * blocks). The same bits either way. */
#define TAIL_PIECES 4
#define HEADS_MAX_BYTES ((size_t)16 << 20)

/* Starts the pieces: shared with the helper threads when OpenBLAS runs one
 * thread per call (else its own threads already share the cores). */
static void blocked_begin(par_job *pj, blocked_job *j, int pieces, void (*fn)(void *ctx, int k)) {
  par_begin(pj, pieces, openblas_get_num_threads() == 1, fn, j);
}

/* Runs the pieces left and waits for all; 0 or GTMSM_ENOMEM. */
static int blocked_end(par_job *pj, blocked_job *j) {
  par_end(pj);
  return __atomic_load_n(&j->failed, __ATOMIC_RELAXED) ? GTMSM_ENOMEM : GTMSM_OK;
}

/* The first frame of encoding run k, and the run count: with the inference
 * encoder, runs of ROW_BLOCK frames; in blocks, the first run ends where
 * step0's full block does. */
static int encode_run_start(const blocked_job *j, int k) {
  const int first = j->pk ? ROW_BLOCK : ROW_BLOCK - (int)(j->step0 % ROW_BLOCK);
  return k == 0 ? 0 : first + (k - 1) * ROW_BLOCK;
}
static int encode_runs(const blocked_job *j) {
  const int first = j->pk ? ROW_BLOCK : ROW_BLOCK - (int)(j->step0 % ROW_BLOCK);
  return j->n <= first ? 1 : 1 + (j->n - first + ROW_BLOCK - 1) / ROW_BLOCK;
}

static void encode_piece(void *ctx, int k) {
  blocked_job *j = ctx;
  const gtmsm_model *m = j->m;
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z;
  const int i = encode_run_start(j, k), p0 = j->pk ? 0 : (int)((j->step0 + i) % ROW_BLOCK);
  const int rows = ROW_BLOCK - p0 < j->n - i ? ROW_BLOCK - p0 : j->n - i;
  pooled *pw = pool_take(m);
  if (!pw) {
    __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  if (j->pk) {
    gtmsm_encode_infer(m, pw->ws, j->pk, j->in + (size_t)i * D, rows, j->out + (size_t)i * Z,
                       j->out2 + (size_t)i * Z);
    pool_give(m, pw);
    return;
  }
  const int d = block_for(j->mask, p0, rows), row0 = p0 % d;
  float *xpad = pw->buf, *mu_b = xpad + (size_t)ROW_BLOCK * D, *lv_b = mu_b + (size_t)ROW_BLOCK * Z;
  memset(xpad, 0, sizeof(float) * (size_t)d * D);
  memcpy(xpad + (size_t)row0 * D, j->in + (size_t)i * D, sizeof(float) * (size_t)rows * D);
  gtmsm_encode_rows(m, pw->ws, xpad, d, row0, rows, mu_b, lv_b);
  memcpy(j->out + (size_t)i * Z, mu_b + (size_t)row0 * Z, sizeof(float) * (size_t)rows * Z);
  memcpy(j->out2 + (size_t)i * Z, lv_b + (size_t)row0 * Z, sizeof(float) * (size_t)rows * Z);
  pool_give(m, pw);
}

/* Block b's latents (from z (n, Z)) in zpad (*d, Z), zero-padded to its
 * verified block of *d rows. */
static void block_latents(const blocked_job *j, int b, float *zpad, int *d) {
  const int Z = j->m->cfg.Z, b0 = b * ROW_BLOCK, rows = j->n - b0 < ROW_BLOCK ? j->n - b0 : ROW_BLOCK;
  *d = block_for(j->mask, 0, rows);
  memset(zpad, 0, sizeof(float) * (size_t)*d * Z);
  memcpy(zpad, j->in + (size_t)b0 * Z, sizeof(float) * (size_t)rows * Z);
}

/* Piece k: block k, or with heads the k % TAIL_PIECES-th quarter of block
 * k / TAIL_PIECES. */
static void decode_piece(void *ctx, int k) {
  blocked_job *j = ctx;
  const gtmsm_model *m = j->m;
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z, b = j->heads ? k / TAIL_PIECES : k;
  const int b0 = b * ROW_BLOCK, rows = j->n - b0 < ROW_BLOCK ? j->n - b0 : ROW_BLOCK;
  const int each = ROW_BLOCK / TAIL_PIECES, r0 = j->heads ? k % TAIL_PIECES * each : 0;
  const int cnt = !j->heads ? rows : rows - r0 < each ? rows - r0 : each;
  if (cnt <= 0) return; /* a quarter past a short block's end */
  pooled *pw = pool_take(m);
  if (!pw) {
    __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  float *zpad = pw->buf, *out_b = zpad + (size_t)ROW_BLOCK * Z;
  if (j->heads)
    gtmsm_decode_mean_tail(m, pw->ws, j->heads + (size_t)(b0 + r0) * j->hf, cnt, out_b);
  else {
    int d;
    block_latents(j, b, zpad, &d);
    gtmsm_decode_mean_first(m, pw->ws, zpad, d, rows, out_b);
  }
  if (j->out) {
    float *out = j->out + (size_t)(b0 + r0) * D;
    for (size_t i = 0; i < (size_t)cnt * D; i++) {
      float v = out_b[i];
      out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  } else /* the same bytes as from the clamped floats: the conversion clamps (and takes NaN to 0) */
    image_u8_from_float(j->pix + (size_t)(b0 + r0) * D, out_b, (size_t)cnt * D, NULL, 0);
  pool_give(m, pw);
}

/* ---- single frames of concurrent calls, encoded in shared blocks ---- */

/* (VAEs without an inference encoder: the conv VAE. With one, a frame costs
 * one frame's encoding and is encoded at once.) */
/* A block's GEMMs cost about as much for one frame as for all its rows (the
 * others are zero padding), and an interactive client observes one frame per
 * call. So a one-frame observation queues its frame, and a call that finds no
 * batch running encodes every queued frame of its model that fits one block
 * (the full block at most), each at a row of its own position modulo the
 * smallest verified block d (row q + d j for position q mod d): by the rule
 * above, every frame gets the bits it gets alone. The other callers wait for
 * the batch that holds their frame; a lone call encodes its frame at once. */
typedef struct enc_item {
  const gtmsm_model *m;
  uint64_t mask;  /* infer_blocks(m) */
  long step;      /* the memory's step of this observation */
  const float *x; /* (D) */
  float *mu, *lv; /* (Z) each */
  int done, failed;
  pthread_cond_t cv; /* this caller waits on it */
  struct enc_item *next;
} enc_item;

static struct {
  pthread_mutex_t mu;
  enc_item *head; /* queued, oldest first */
  int busy;       /* a batch is being encoded */
  long long batches, frames;
} encq = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0};

static int gather_us; /* gtmsm_shared_encode_set_gather_us; read under encq.mu */

void gtmsm_shared_encode_set_gather_us(int us) {
  pthread_mutex_lock(&encq.mu);
  gather_us = us > 0 ? us : 0;
  pthread_mutex_unlock(&encq.mu);
}

void gtmsm_shared_encode_stats(long long *batches, long long *frames) {
  pthread_mutex_lock(&encq.mu);
  *batches = encq.batches, *frames = encq.frames;
  pthread_mutex_unlock(&encq.mu);
}

/* Encodes b[0..n) (one model's) at rows row[0..n) of the smallest verified
 * block of at least top rows; 0, or 1 when out of memory. */
static int encode_batch(enc_item **b, const int *row, int n, int top) {
  const gtmsm_model *m = b[0]->m;
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z;
  int R = top;
  while (!(b[0]->mask >> R & 1)) R++; /* bit ROW_BLOCK is always set */
  pooled *pw = pool_take(m);
  if (!pw) return 1;
  float *xpad = pw->buf, *mu_b = xpad + (size_t)ROW_BLOCK * D, *lv_b = mu_b + (size_t)ROW_BLOCK * Z;
  int lo = R, hi = 0;
  memset(xpad, 0, sizeof(float) * (size_t)R * D);
  for (int i = 0; i < n; i++) {
    memcpy(xpad + (size_t)row[i] * D, b[i]->x, sizeof(float) * (size_t)D);
    if (row[i] < lo) lo = row[i];
    if (row[i] > hi) hi = row[i];
  }
  gtmsm_encode_rows(m, pw->ws, xpad, R, lo, hi - lo + 1, mu_b, lv_b);
  for (int i = 0; i < n; i++) {
    memcpy(b[i]->mu, mu_b + (size_t)row[i] * Z, sizeof(float) * (size_t)Z);
    memcpy(b[i]->lv, lv_b + (size_t)row[i] * Z, sizeof(float) * (size_t)Z);
  }
  pool_give(m, pw);
  return 0;
}

/* Encodes me's frame, in a batch with whatever else is queued; 0 or 1 (out
 * of memory). Each waiting call sleeps on its own condition variable: a batch
 * wakes its frames' callers and, when its leader is done too, the queue's new
 * head, which leads the next batch (not every waiting thread). */
static int encode_shared(enc_item *me) {
  pthread_cond_init(&me->cv, NULL);
  pthread_mutex_lock(&encq.mu);
  enc_item **pp = &encq.head;
  while (*pp) pp = &(*pp)->next;
  *pp = me;
  int gathered = 0;
  while (!me->done) {
    if (encq.busy) {
      pthread_cond_wait(&me->cv, &encq.mu);
      continue;
    }
    if (gather_us && !gathered) { /* tests: hold the queue while others arrive (they wait as for a batch) */
      const struct timespec ts = {0, 1000L * gather_us};
      gathered = encq.busy = 1;
      pthread_mutex_unlock(&encq.mu);
      nanosleep(&ts, NULL);
      pthread_mutex_lock(&encq.mu);
      encq.busy = 0;
    }
    /* take, oldest first, the head's model's frames while their rows are free */
    const gtmsm_model *m = encq.head->m;
    const int d = smallest_block(encq.head->mask), per = ROW_BLOCK / d;
    enc_item *b[ROW_BLOCK];
    int row[ROW_BLOCK], used[ROW_BLOCK] = {0}, n = 0, top = 0;
    for (pp = &encq.head; *pp && n < ROW_BLOCK;) {
      enc_item *it = *pp;
      const int q = (int)(it->step % ROW_BLOCK) % d;
      if (it->m != m || used[q] == per) {
        pp = &it->next;
        continue;
      }
      row[n] = q + d * used[q]++;
      if (row[n] + 1 > top) top = row[n] + 1;
      b[n++] = it;
      *pp = it->next;
    }
    encq.busy = 1;
    pthread_mutex_unlock(&encq.mu);
    const int failed = encode_batch(b, row, n, top);
    pthread_mutex_lock(&encq.mu);
    for (int i = 0; i < n; i++) { /* the others return once we unlock: b[i] is not touched after */
      b[i]->failed = failed, b[i]->done = 1;
      if (b[i] != me) pthread_cond_signal(&b[i]->cv);
    }
    encq.batches++, encq.frames += n;
    encq.busy = 0;
    if (me->done && encq.head) pthread_cond_signal(&encq.head->cv); /* else we lead again */
  }
  const int failed = me->failed;
  pthread_mutex_unlock(&encq.mu);
  pthread_cond_destroy(&me->cv);
  return failed;
}

static int has_landmarks(const gtmsm_model *m) { return m->cfg.infer == GTMSM_INFER_LANDMARK; }

/* A memory value: mu, logvar (2Z), the prior's extra, and with landmarks one
 * more float, the stop slot: the action of a move that failed at this step
 * (the view did not change, an identical encoding, and the inferred state
 * covered less than half of the transition's move), or -1. Predictions of
 * that action from near there fail too. */
static int value_size(const gtmsm_model *m) {
  return 2 * m->cfg.Z + m->prior->value_extra(&m->cfg) + has_landmarks(m);
}
#define STOP_NONE (-1.0f)
#define STOP_STAYED 0.25f /* a move failed when the inferred state covered less than half of it (squared) */
#define STOP_NEAR 0.04f   /* a predicted move fails within a fifth of a move (squared) of a recorded stop: the
                             memorized states are off by a few percent of a move, and at half a move the
                             states of neighbouring places that the memory put too close matched too */
#define STOP_SAME_VIEW 1e-6f /* squared distance of two encodings of the same view (they are bit-identical) */

gtmsm_memory *gtmsm_memory_new(const gtmsm_model *m) {
  gtmsm_memory *mem = calloc(1, sizeof *mem);
  if (!mem) return NULL;
  mem->H = m->trans->hidden_size(&m->cfg);
  mem->mem = dnd_new(gtmsm_key_size(&m->cfg), value_size(m), NULL, 0);
  if (has_landmarks(m)) mem->rev = dnd_new(m->cfg.Z, m->cfg.S, NULL, 0);
  if (!mem->mem || (has_landmarks(m) && !mem->rev)) {
    gtmsm_memory_free(mem);
    return NULL;
  }
  return mem;
}

void gtmsm_memory_free(gtmsm_memory *mem) {
  if (!mem) return;
  dnd_free(mem->mem);
  dnd_free(mem->rev);
  free(mem);
}

/* The state of a stored entry: the key itself (identity keys) or the prior's
 * extra (the learned prior stores s after mu, lv); gtmsm_config_check
 * allows landmarks only where one of them holds. */
static const float *entry_state(const gtmsm_model *m, const float *key, const float *value) {
  return m->cfg.keymap == GTMSM_KEYMAP_IDENTITY ? key : value + 2 * m->cfg.Z;
}

int gtmsm_memory_insert_entry(const gtmsm_model *m, gtmsm_memory *mem, const float *key, const float *value) {
  int rc = dnd_insert(mem->mem, key, value);
  if (rc || !mem->rev) return rc;
  /* the reverse entry: latent mean -> state */
  if ((rc = dnd_insert(mem->rev, value, entry_state(m, key, value))))
    dnd_truncate(mem->mem, dnd_size(mem->mem) - 1);
  return rc;
}

int gtmsm_action_index(const gtmsm_model *m, const char *name) {
  for (int i = 0; i < m->cfg.A; i++)
    if (strcmp(m->cfg.action_names[i], name) == 0) return i;
  return -1;
}

static int check_actions(const gtmsm_model *m, const int *actions, int n, char *err, size_t errlen) {
  for (int i = 0; i < n; i++)
    if (actions[i] < 0 || actions[i] >= m->cfg.A)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "action %d at %d out of range 0..%d", actions[i], i,
                        m->cfg.A - 1);
  return GTMSM_OK;
}

int gtmsm_observe(const gtmsm_model *m, gtmsm_memory *mem, const int *actions, const float *frames,
                  int n, char *err, size_t errlen) {
  return gtmsm_observe_states(m, mem, actions, frames, n, NULL, err, errlen);
}

int gtmsm_observe_states(const gtmsm_model *m, gtmsm_memory *mem, const int *actions, const float *frames, int n,
                         float *states_out, char *err, size_t errlen) {
  const int S = m->cfg.S, Z = m->cfg.Z, H = m->trans->hidden_size(&m->cfg);
  int rc = GTMSM_OK;
  if (n <= 0) return GTMSM_OK;
  if ((rc = check_actions(m, actions, n, err, errlen))) return rc;
  float *mu = malloc((size_t)n * Z * sizeof(float)), *lv = malloc((size_t)n * Z * sizeof(float));
  float *val = malloc((size_t)value_size(m) * sizeof(float));
  size_t size0 = dnd_size(mem->mem), rev0 = mem->rev ? dnd_size(mem->rev) : 0;
  float state0[GTMSM_MAX_S], hidden0[GTMSM_MAX_H];
  long steps0 = mem->steps;
  memcpy(state0, mem->state, sizeof state0);
  memcpy(hidden0, mem->hidden, sizeof hidden0);
  if (!mu || !lv || !val) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  const void *pk;
  if (enc_pack(m, &pk)) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  if (n == 1 && !pk) { /* with the inference encoder a frame costs one frame's encoding: nothing to share */
    enc_item one = {.m = m, .mask = infer_blocks(m), .step = mem->steps, .x = frames, .mu = mu, .lv = lv};
    if (encode_shared(&one)) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
      goto done;
    }
  } else {
    blocked_job enc = {m, infer_blocks(m), frames, n, mem->steps, mu, lv, NULL, NULL, 0, 0, pk};
    par_job pj;
    blocked_begin(&pj, &enc, encode_runs(&enc), encode_piece);
    if (blocked_end(&pj, &enc)) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
      goto done;
    }
  }
  const int extra = m->prior->value_extra(&m->cfg);
  for (int i = 0; i < n; i++) {
    float stop = STOP_NONE;
    if (mem->steps > 0) {
      float next[GTMSM_MAX_S], next_h[GTMSM_MAX_H], mu_p[GTMSM_MAX_S];
      rc = m->infer->observe(m, mem->state, mem->hidden, actions[i], mu + (size_t)i * Z, mem->rev, next, next_h,
                             mu_p);
      if (rc) {
        rc = gtmsm_fail(err, errlen, rc, "landmark query failed at observation %d (non-finite encoding)", i);
        goto done;
      }
      if (has_landmarks(m)) { /* did the move the transition predicts fail? */
        const float *prev_mu = i > 0 ? mu + (size_t)(i - 1) * Z : dnd_value(mem->mem, dnd_size(mem->mem) - 1);
        float want = 0, got = 0, view = 0;
        for (int k = 0; k < S; k++) {
          want += (mu_p[k] - mem->state[k]) * (mu_p[k] - mem->state[k]);
          got += (next[k] - mem->state[k]) * (next[k] - mem->state[k]);
        }
        for (int k = 0; k < Z; k++) view += (mu[(size_t)i * Z + k] - prev_mu[k]) * (mu[(size_t)i * Z + k] - prev_mu[k]);
        if (want > 0 && got < STOP_STAYED * want && view < STOP_SAME_VIEW) stop = (float)actions[i];
      }
      memcpy(mem->state, next, (size_t)S * sizeof(float));
      memcpy(mem->hidden, next_h, (size_t)H * sizeof(float));
    }
    float key[DND_MAX_S];
    m->keymap->forward(m, mem->state, 1, key);
    memcpy(val, mu + (size_t)i * Z, (size_t)Z * sizeof(float));
    memcpy(val + Z, lv + (size_t)i * Z, (size_t)Z * sizeof(float));
    memcpy(val + 2 * Z, mem->state, (size_t)extra * sizeof(float)); /* the prior's extra: s */
    if (has_landmarks(m)) val[2 * Z + extra] = stop;
    rc = gtmsm_memory_insert_entry(m, mem, key, val);
    if (rc) {
      rc = gtmsm_fail(err, errlen, rc, "memory insert failed at observation %d (%s)", i,
                      rc == GTMSM_ENAN ? "non-finite encoding" : rc == GTMSM_ERANGE ? "memory full" : "out of memory");
      goto done;
    }
    if (states_out) memcpy(states_out + (size_t)i * S, mem->state, (size_t)S * sizeof(float));
    mem->steps++;
  }
done:
  if (rc) { /* the memory is as before the call */
    dnd_truncate(mem->mem, size0);
    if (mem->rev) dnd_truncate(mem->rev, rev0);
    memcpy(mem->state, state0, sizeof state0);
    memcpy(mem->hidden, hidden0, sizeof hidden0);
    mem->steps = steps0;
  }
  free(mu);
  free(lv);
  free(val);
  return rc;
}

/* The memory's recorded stops (landmark models: the entries whose stop slot
 * holds an action), gathered once per prediction: new (caller frees), *n
 * of them; NULL with *n = 0 when there are none (or no memory for the list:
 * then predictions go as from the actions). */
typedef struct {
  const float *s; /* where the move failed (the entry's state) */
  int a;
} stop_entry;

static stop_entry *stops_of(const gtmsm_model *m, const gtmsm_memory *mem, int *n) {
  const int slot = value_size(m) - 1;
  stop_entry *v = NULL;
  *n = 0;
  if (!has_landmarks(m)) return NULL;
  int cap = 0;
  for (size_t i = 0; i < dnd_size(mem->mem); i++) {
    const float *val = dnd_value(mem->mem, i);
    if (val[slot] == STOP_NONE) continue;
    if (*n == cap) {
      stop_entry *g = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 16));
      if (!g) break; /* the stops gathered so far still apply */
      v = g;
    }
    v[(*n)++] = (stop_entry){entry_state(m, dnd_key(mem->mem, i), val), (int)val[slot]};
  }
  return v;
}

/* Whether a recorded stop of action a lies within a fifth of the move
 * s -> next of where s is. */
static int stopped_here(int S, const stop_entry *stops, int n, const float *s, const float *next, int a) {
  float move = 0;
  for (int k = 0; k < S; k++) move += (next[k] - s[k]) * (next[k] - s[k]);
  for (int i = 0; i < n && move > 0; i++) {
    if (stops[i].a != a) continue;
    float d = 0;
    for (int k = 0; k < S; k++) d += (stops[i].s[k] - s[k]) * (stops[i].s[k] - s[k]);
    if (d < STOP_NEAR * move) return 1;
  }
  return 0;
}

/* gtmsm_predict into frames_out, or (frames_out NULL) gtmsm_predict_u8 into pix_out. */
static int predict_into(const gtmsm_model *m, const gtmsm_memory *mem, const int *actions, int n,
                        gtmsm_predict_mode mode, uint64_t seed, float *frames_out, uint8_t *pix_out,
                        float *states_out, char *err, size_t errlen) {
  const int S = m->cfg.S, Z = m->cfg.Z;
  const int K = m->cfg.K;
  int rc = GTMSM_OK;
  if (n <= 0) return GTMSM_OK;
  if ((rc = check_actions(m, actions, n, err, errlen))) return rc;
  float *z = calloc((size_t)n * Z, sizeof(float)), *heads = NULL;
  stop_entry *stops = NULL;
  pooled *pw = pool_take(m);
  void *pws = pw ? pw->pws : NULL;
  if (!z || !pw) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  rng_t r;
  rng_init(&r, seed, 0x5eed);
  const int H = m->trans->hidden_size(&m->cfg);
  float st[GTMSM_MAX_S], h[GTMSM_MAX_H];
  memcpy(st, mem->state, sizeof st);
  memcpy(h, mem->hidden, sizeof h);
  int idx[GTMSM_MAX_K], nstops = 0;
  float d2[GTMSM_MAX_K];
  const float *values[GTMSM_MAX_K];
  stops = stops_of(m, mem, &nstops);
  /* a block's frames are decoded (on a helper, if one is idle) while the next is rolled out */
  const int blocks = (n + ROW_BLOCK - 1) / ROW_BLOCK;
  blocked_job dec = {m, infer_blocks(m), z, n, 0, frames_out, NULL, pix_out, NULL, gtmsm_decode_head_floats(m),
                     0, NULL};
  if (dec.hf && dec.hf <= HEADS_MAX_BYTES / sizeof(float) / ROW_BLOCK / (size_t)blocks && par_may_share() &&
      openblas_get_num_threads() == 1)
    dec.heads = heads = malloc(sizeof(float) * (size_t)blocks * ROW_BLOCK * dec.hf); /* NULL: whole blocks */
  par_job pj;
  blocked_begin(&pj, &dec, dec.heads ? blocks * TAIL_PIECES : blocks, decode_piece);
  for (int t = 0; t < n; t++) {
    float next[GTMSM_MAX_S], next_h[GTMSM_MAX_H], key[DND_MAX_S];
    m->trans->step(m, st, h, actions[t], next, next_h, NULL, 0);
    if (stopped_here(S, stops, nstops, st, next, actions[t])) memcpy(next, st, sizeof next);
    memcpy(st, next, sizeof st);
    memcpy(h, next_h, (size_t)H * sizeof(float));
    if (mode == GTMSM_PREDICT_SAMPLE)
      for (int k = 0; k < S; k++) st[k] += m->cfg.trans_std * rng_normal(&r);
    if (states_out) memcpy(states_out + (size_t)t * S, st, (size_t)S * sizeof(float));
    float *zt = z + (size_t)t * Z;
    m->keymap->forward(m, st, 1, key);
    int found = dnd_query(mem->mem, key, K, idx, d2);
    if (found <= 0) { /* empty memory: the standard normal prior */
      if (mode == GTMSM_PREDICT_SAMPLE)
        for (int k = 0; k < Z; k++) zt[k] = rng_normal(&r);
    } else {
      for (int j2 = 0; j2 < found; j2++) values[j2] = dnd_value(mem->mem, (size_t)idx[j2]);
      m->prior->predict(m, pws, st, d2, values, found, mode == GTMSM_PREDICT_SAMPLE, &r, zt);
    }
    if ((t + 1) % ROW_BLOCK == 0 || t + 1 == n) { /* a block rolled out */
      const int b = t / ROW_BLOCK;
      if (heads) {
        int d;
        block_latents(&dec, b, pw->buf, &d);
        gtmsm_decode_head(m, pw->ws, pw->buf, d, heads + (size_t)b * ROW_BLOCK * dec.hf);
      }
      par_ready(&pj, heads ? (b + 1) * TAIL_PIECES : b + 1);
    }
  }
  pool_give(m, pw); /* before the rest of the decoding, whose pieces on this thread take it again */
  pw = NULL;
  if (blocked_end(&pj, &dec)) rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
done:
  pool_give(m, pw);
  free(stops);
  free(heads);
  free(z);
  return rc;
}

int gtmsm_predict(const gtmsm_model *m, const gtmsm_memory *mem, const int *actions, int n,
                  gtmsm_predict_mode mode, uint64_t seed, float *frames_out, float *states_out,
                  char *err, size_t errlen) {
  return predict_into(m, mem, actions, n, mode, seed, frames_out, NULL, states_out, err, errlen);
}

int gtmsm_predict_u8(const gtmsm_model *m, const gtmsm_memory *mem, const int *actions, int n,
                     gtmsm_predict_mode mode, uint64_t seed, uint8_t *pix_out, float *states_out,
                     char *err, size_t errlen) {
  return predict_into(m, mem, actions, n, mode, seed, NULL, pix_out, states_out, err, errlen);
}

/* Little-endian fields, whatever the host, like the DND's own serialisation:
 * a dump must load on any replica. */
static void put_u32(uint8_t *p, uint32_t x) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t x) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  uint32_t x = 0;
  for (int i = 0; i < 4; i++) x |= (uint32_t)p[i] << (8 * i);
  return x;
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t x = 0;
  for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
  return x;
}
static void put_f32(uint8_t *p, float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  put_u32(p, x);
}
static float get_f32(const uint8_t *p) {
  uint32_t x = get_u32(p);
  float f;
  memcpy(&f, &x, 4);
  return f;
}

int gtmsm_memory_serialize(const gtmsm_memory *mem, int S, uint8_t **buf, size_t *len) {
  const int H = mem->H, v3 = mem->rev != NULL;
  uint8_t *db = NULL, *rb = NULL;
  size_t dl = 0, rl = 0;
  *buf = NULL;
  *len = 0;
  if (dnd_serialize(mem->mem, &db, &dl) || (v3 && dnd_serialize(mem->rev, &rb, &rl))) {
    free(db);
    return GTMSM_ENOMEM;
  }
  /* version 1 has no transition state; version 2 appends u32 H and H floats;
   * version 3 always has them, then the forward DND's length, it, and the
   * reverse DND */
  size_t extra = H || v3 ? 4 + (size_t)H * 4 : 0, fwd_len = v3 ? 8 : 0;
  size_t total = MEM_HEADER + (size_t)S * 4 + extra + fwd_len + dl + rl;
  uint8_t *b = malloc(total);
  if (!b) {
    free(db);
    free(rb);
    return GTMSM_ENOMEM;
  }
  memcpy(b, MEM_MAGIC, 8);
  put_u32(b + 8, v3 ? 3u : H ? 2u : 1u);
  put_u32(b + 12, (uint32_t)S);
  put_u64(b + 16, (uint64_t)mem->steps);
  for (int k = 0; k < S; k++) put_f32(b + MEM_HEADER + 4 * k, mem->state[k]);
  if (extra) {
    put_u32(b + MEM_HEADER + (size_t)S * 4, (uint32_t)H);
    for (int k = 0; k < H; k++) put_f32(b + MEM_HEADER + (size_t)S * 4 + 4 + 4 * k, mem->hidden[k]);
  }
  uint8_t *p = b + MEM_HEADER + (size_t)S * 4 + extra;
  if (v3) {
    put_u64(p, (uint64_t)dl);
    p += 8;
  }
  memcpy(p, db, dl);
  if (v3) memcpy(p + dl, rb, rl);
  free(db);
  free(rb);
  *buf = b;
  *len = total;
  return GTMSM_OK;
}

int gtmsm_memory_deserialize(const gtmsm_model *m, const uint8_t *buf, size_t len,
                             gtmsm_memory **out, char *err, size_t errlen) {
  *out = NULL;
  const int S = m->cfg.S, H = m->trans->hidden_size(&m->cfg), KS = gtmsm_key_size(&m->cfg),
            V = value_size(m);
  if (len < MEM_HEADER || memcmp(buf, MEM_MAGIC, 8) != 0)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "not a serialised GTMSM memory");
  uint32_t version, s;
  uint64_t steps;
  version = get_u32(buf + 8);
  s = get_u32(buf + 12);
  steps = get_u64(buf + 16);
  /* a landmark model writes version 3, and reads the older ones too (its
   * reverse index rebuilt from the entries) */
  uint32_t want = H ? 2u : 1u;
  const int v3 = version == 3u;
  if (version != want && !(v3 && has_landmarks(m)))
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "memory format version %u, this model's is %u", version,
                      has_landmarks(m) ? 3u : want);
  size_t extra = H || v3 ? 4 + (size_t)H * 4 : 0, head = MEM_HEADER + (size_t)S * 4 + extra + (v3 ? 8 : 0);
  if ((int)s != S || len < head)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "memory state size %u does not match the model's %d", s, S);
  size_t fwd_end = len;
  if (v3) {
    uint64_t dl = get_u64(buf + head - 8);
    if (dl > len - head)
      return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "memory: forward index of %llu bytes in %zu",
                        (unsigned long long)dl, len - head);
    fwd_end = head + (size_t)dl;
  }
  if (extra && get_u32(buf + MEM_HEADER + (size_t)S * 4) != (uint32_t)H)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "memory transition state size %u, the model's is %d",
                      get_u32(buf + MEM_HEADER + (size_t)S * 4), H);
  gtmsm_memory *mem = calloc(1, sizeof *mem);
  if (!mem) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  for (int k = 0; k < S; k++) mem->state[k] = get_f32(buf + MEM_HEADER + 4 * k);
  mem->H = H;
  for (int k = 0; k < H; k++) mem->hidden[k] = get_f32(buf + MEM_HEADER + (size_t)S * 4 + 4 + 4 * k);
  for (int k = 0; k < S + H; k++)
    if (!isfinite(k < S ? mem->state[k] : mem->hidden[k - S])) {
      free(mem);
      return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "memory state is not finite");
    }
  mem->steps = (long)steps;
  int rc = dnd_deserialize(buf + head, fwd_end - head, &mem->mem, err, errlen);
  if (rc) {
    free(mem);
    return rc;
  }
  if (v3 && (rc = dnd_deserialize(buf + fwd_end, len - fwd_end, &mem->rev, err, errlen))) {
    gtmsm_memory_free(mem);
    return rc;
  }
  if (dnd_key_size(mem->mem) != KS || dnd_value_size(mem->mem) != V ||
      dnd_size(mem->mem) != (size_t)steps) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "memory shape (key %d, value %d, %zu entries for %llu steps) does not match the "
                    "model (key %d, value %d)",
                    dnd_key_size(mem->mem), dnd_value_size(mem->mem), dnd_size(mem->mem),
                    (unsigned long long)steps, KS, V);
    gtmsm_memory_free(mem);
    return rc;
  }
  if (has_landmarks(m) && !v3) { /* an older memory: the reverse index from its entries */
    if (!(mem->rev = dnd_new(m->cfg.Z, S, err, errlen))) {
      gtmsm_memory_free(mem);
      return GTMSM_ENOMEM;
    }
    for (size_t i = 0; i < dnd_size(mem->mem) && !rc; i++)
      rc = dnd_insert(mem->rev, dnd_value(mem->mem, i), entry_state(m, dnd_key(mem->mem, i), dnd_value(mem->mem, i)));
    if (rc) {
      gtmsm_memory_free(mem);
      return gtmsm_fail(err, errlen, rc, "memory: rebuilding the reverse index failed");
    }
  }
  if (mem->rev && (dnd_key_size(mem->rev) != m->cfg.Z || dnd_value_size(mem->rev) != S ||
                   dnd_size(mem->rev) != dnd_size(mem->mem))) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "memory: reverse index (key %d, value %d, %zu entries) does not match the model (key %d, "
                    "value %d) and the %zu entries",
                    dnd_key_size(mem->rev), dnd_value_size(mem->rev), dnd_size(mem->rev), m->cfg.Z, S,
                    dnd_size(mem->mem));
    gtmsm_memory_free(mem);
    return rc;
  }
  *out = mem;
  return GTMSM_OK;
}

int gtmsm_belief_floats(const gtmsm_memory *mem, int S) { return S + mem->H; }

void gtmsm_belief_get(const gtmsm_memory *mem, int S, float *out) {
  memcpy(out, mem->state, sizeof(float) * (size_t)S);
  memcpy(out + S, mem->hidden, sizeof(float) * (size_t)mem->H);
}

int gtmsm_belief_set(gtmsm_memory *mem, int S, const float *in) {
  for (int k = 0; k < S + mem->H; k++)
    if (!isfinite(in[k])) return GTMSM_EFORMAT;
  memcpy(mem->state, in, sizeof(float) * (size_t)S);
  memcpy(mem->hidden, in + S, sizeof(float) * (size_t)mem->H);
  return GTMSM_OK;
}

size_t gtmsm_memory_bytes(const gtmsm_memory *mem) {
  size_t n = dnd_size(mem->mem);
  int S = dnd_key_size(mem->mem), V = dnd_value_size(mem->mem);
  if (mem->rev) S += dnd_key_size(mem->rev) + dnd_value_size(mem->rev);
  /* entries plus the kd-tree's permutation and nodes, roughly */
  return sizeof *mem + n * ((size_t)(S + V) * sizeof(float) * 2 + 16);
}
