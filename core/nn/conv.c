/* Conv2d and transposed conv2d as im2col / col2im + cblas_sgemm.
 *
 * Layout of the GEMMs. A conv maps an image (C, H, W) to a grid (OH, OW); its
 * im2col matrix col (C*K*K, OH*OW) has row (c, ki, kj) and column (oh, ow)
 * holding img[c, oh*stride - pad + ki, ow*stride - pad + kj] (zero in the
 * padding). Then conv = w (OC, C*K*K) @ col. A transposed conv is the adjoint:
 * col = w^T @ in, then col2im scatters (adds) col back onto the larger image.
 *
 * Phase planes. im2col reads every input pixel K*K times, with stride-s gaps;
 * done directly that is a scalar gather per element (it was the largest cost
 * after the GEMMs). Instead each channel is first split once into s*s phase
 * planes, plane (pi, pj) (PH, PW) holding the zero-padded image at rows
 * y*s + pi and columns x*s + pj. The im2col row (ki, kj) is then plane
 * (ki % s, kj % s) shifted by (ki / s, kj / s): OH contiguous copies of OW
 * floats. col2im is the same in reverse: rows are added into zeroed planes,
 * which are then interleaved back onto the image once.
 *
 * Batching. With one OpenBLAS thread (how every caller runs it) a GEMM over
 * one image's grid is as fast as a wide one once the grid has a few hundred
 * pixels, and then every GEMM reads and writes the (B, C, H, W) tensors in
 * place: no gather or scatter copies, and col is one image's (C*K*K, OH*OW),
 * which stays in L2. Smaller grids (8x8) make sgemm slow when alone, so G
 * images go into one GEMM: col becomes (C*K*K, G*N) and the other operand is
 * gathered from (G, C, N) into (C, G*N) in a second workspace area, then
 * scattered back. G is picked by conv_chunk() from the shapes alone, so the
 * workspace size helpers and the layers always agree on it.
 *
 * Row kernels. The layers that halve or double the image (4x4, stride 2,
 * padding 1, even sizes: every such layer of GTMSM's conv VAE) skip the
 * phase planes: each image row is split into its even and odd columns once
 * and stored straight into the 8 col rows it feeds, and col2im sums those 8
 * rows into the image row in one pass (im2col_s2k4, col2im_s2k4; SSE2, and
 * AVX2 where vecmath runs AVX2). The same bits as the planes.
 *
 * Without a GEMM. Those layers between 3 channels and a grid of width a
 * multiple of 16 (an encoder's first conv, a decoder's last transposed conv)
 * are computed by FMA kernels of their own where vecmath runs AVX2: no
 * im2col, col2im or packing ("layers between 3 channels and a grid"); so are
 * the 3x3 stride-1 convs from and to 3 channels, width a multiple of 32 (the
 * conv VAE's first and last layers: "3x3 layers between 3 channels and a
 * grid"). Not the GEMM path's bits: a 3-D model's numbers differ in their
 * last bits between CPUs with and without AVX2, as they do between BLAS
 * cores; on one machine they are deterministic and each image's the same
 * alone as in any batch.
 *
 * Streamed outputs. A conv forward whose output is larger than the caches
 * (CONV_STREAM_BYTES) runs each image's GEMM into the workspace and writes
 * the result plus the bias to out with non-temporal stores: out is then
 * written once instead of read (for ownership), filled with the bias, read
 * by the GEMM and written back.
 *
 * Also: the bias gradient is summed image by image inside the GEMM loop (one
 * read of dout); a stride-1 conv with OC <= IC computes its input gradient as
 * a conv of dout with the flipped kernel (conv2d_flip_backward); GEMMs that
 * overwrite their output get memset + beta = 1 (zero_floats).
 *
 * Determinism. Every sum outside sgemm (dw over images, col2im adds, the bias
 * sums) runs in an order fixed by the shapes alone, so results are the same
 * from run to run. They are not the same bits for one and two OpenBLAS
 * threads, because sgemm 0.3.21 itself rounds differently when it splits a
 * GEMM over threads (on its Zen kernels, for nearly every shape; the old code
 * was no different); GTMSM runs OpenBLAS with one thread. */
#include "nn/conv.h"

#include <assert.h>
#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "nn/vecmath.h"

/* Columns per GEMM that batching aims for. Measured with bench/bench_nn.c at
 * one thread: 16x16 grids run best one image per GEMM (chunks of 2 cost more
 * in gather/scatter than the wider GEMM saves); 8x8 grids one at a time were
 * ~5-10% slower overall than in chunks of 4. */
#define CONV_GEMM_COLS 256

/* Images per GEMM for a batch of B images with N output (grid) pixels each. */
static int conv_chunk(int B, int N) {
  int G = (CONV_GEMM_COLS + N - 1) / N;
  if (G > B) G = B;
  return G < 1 ? 1 : G;
}

int conv_images_independent(int grid_pixels) { return conv_chunk(2, grid_pixels) == 1; }

/* ---- geometry ---- */

/* One im2col: images (C, H, W) read by K x K windows at stride s, padding p,
 * on the grid (OH, OW); phase planes are (s, s, PH, PW). */
typedef struct {
  int C, H, W, K, s, p, OH, OW, PH, PW;
} geom;

static geom geom_make(int C, int H, int W, int K, int s, int p, int OH, int OW) {
  /* PH*s covers the padded image, and the furthest window row read,
   * (OH-1) + (K-1)/s, is <= (H + 2p - 1)/s < PH (same for columns). */
  geom g = {C, H, W, K, s, p, OH, OW, (H + 2 * p + s - 1) / s, (W + 2 * p + s - 1) / s};
  return g;
}

static size_t geom_plane_floats(const geom *g) { return (size_t)g->s * g->s * g->PH * g->PW; }
/* scratch one im2col or col2im needs: the planes of one channel */
static size_t geom_scratch_floats(const geom *g) { return geom_plane_floats(g); }

/* Row kernels. These are the loops im2col and col2im spend their time in, on
 * rows of 8-32 floats, so they are written with SSE2 (the x86-64 baseline, no
 * flags needed), with plain loops elsewhere. Copies move two vectors per
 * iteration: GCC -O2 turns a one-vector copy loop into a memcpy call, which
 * costs more than the copy at these lengths. */
#if defined(__SSE2__)
#include <emmintrin.h>
#define CONV_SSE2 1
#else
#define CONV_SSE2 0
#endif
/* AVX2 versions of the row kernels, compiled for AVX2 function by function
 * and run only when vecmath runs its AVX2 path (the CPU has it). */
#if CONV_SSE2 && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define CONV_AVX2 1
#define AVX2_FN __attribute__((target("avx2")))
#else
#define CONV_AVX2 0
#endif

/* d (n) = s (n) */
static inline void copy_row(float *restrict d, const float *restrict s, int n) {
  int i = 0;
#if CONV_SSE2
  for (; i + 8 <= n; i += 8) {
    __m128 a = _mm_loadu_ps(s + i), b = _mm_loadu_ps(s + i + 4);
    _mm_storeu_ps(d + i, a);
    _mm_storeu_ps(d + i + 4, b);
  }
  if (i + 4 <= n) {
    _mm_storeu_ps(d + i, _mm_loadu_ps(s + i));
    i += 4;
  }
  /* at most 3 left; unrolled, or GCC makes this loop a memcpy call too */
  if (i + 2 <= n) {
    d[i] = s[i], d[i + 1] = s[i + 1];
    i += 2;
  }
  if (i < n) d[i] = s[i];
#else
  for (; i < n; i++) d[i] = s[i];
#endif
}

/* d (n) += s (n) */
static inline void add_row(float *restrict d, const float *restrict s, int n) {
  int i = 0;
#if CONV_SSE2
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(d + i, _mm_add_ps(_mm_loadu_ps(d + i), _mm_loadu_ps(s + i)));
#endif
  for (; i < n; i++) d[i] += s[i];
}

/* d (n) = s (n) + v */
static inline void copy_row_plus(float *restrict d, const float *restrict s, float v, int n) {
  int i = 0;
#if CONV_SSE2
  __m128 vv = _mm_set1_ps(v);
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(d + i, _mm_add_ps(_mm_loadu_ps(s + i), vv));
#endif
  for (; i < n; i++) d[i] = s[i] + v;
}

/* d (n) = v */
static inline void fill_row(float *d, float v, int n) {
  int i = 0;
#if CONV_SSE2
  __m128 vv = _mm_set1_ps(v);
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(d + i, vv);
#endif
  for (; i < n; i++) d[i] = v;
}

/* Stride 2: column c of the padded row (c - p of the image row) belongs to
 * phase (c + p) & 1 at x = (c + p) >> 1. split_row2 stores row (W) into its
 * two phase rows d[0], d[1] (every column inside the image; the padding
 * positions are left alone), merge_row2 is the adjoint: row[c] += its phase
 * element, or row[c] = it + bias when overwrite is 1. Both go through row in
 * windows of 8 columns from c = 0, whose even columns are 4 consecutive
 * elements of one phase row and odd columns 4 of the other; only W % 8 columns
 * are left to scalar code. They work on the image row in place: staging it in a
 * padded copy made every load straddle two just-written stores (a
 * store-forwarding stall). */
static inline void split_row2(float *restrict d0, float *restrict d1, const float *restrict row, int W,
                              int p) {
  int c = 0;
#if CONV_SSE2
  /* evens c = 8m + 2j go to phase p & 1 at 4m + j + (p >> 1), odds to the other at 4m + j + ((p + 1) >> 1) */
  float *de = (p & 1 ? d1 : d0) + (p >> 1), *dd = (p & 1 ? d0 : d1) + ((p + 1) >> 1);
  for (; c + 8 <= W; c += 8) {
    __m128 a = _mm_loadu_ps(row + c), b = _mm_loadu_ps(row + c + 4);
    _mm_storeu_ps(de + c / 2, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm_storeu_ps(dd + c / 2, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
  }
#endif
  for (; c < W; c++) {
    int q = c + p;
    (q & 1 ? d1 : d0)[q >> 1] = row[c];
  }
}

static inline void merge_row2(float *restrict row, const float *restrict d0, const float *restrict d1,
                              int W, int p, int overwrite, float bias) {
  int c = 0;
#if CONV_SSE2
  const float *de = (p & 1 ? d1 : d0) + (p >> 1), *dd = (p & 1 ? d0 : d1) + ((p + 1) >> 1);
  __m128 vb = _mm_set1_ps(bias);
  for (; c + 8 <= W; c += 8) {
    __m128 e = _mm_loadu_ps(de + c / 2), o = _mm_loadu_ps(dd + c / 2);
    __m128 lo = _mm_unpacklo_ps(e, o), hi = _mm_unpackhi_ps(e, o);
    if (overwrite) {
      _mm_storeu_ps(row + c, _mm_add_ps(lo, vb));
      _mm_storeu_ps(row + c + 4, _mm_add_ps(hi, vb));
    } else {
      _mm_storeu_ps(row + c, _mm_add_ps(_mm_loadu_ps(row + c), lo));
      _mm_storeu_ps(row + c + 4, _mm_add_ps(_mm_loadu_ps(row + c + 4), hi));
    }
  }
#endif
  for (; c < W; c++) {
    int q = c + p;
    float v = (q & 1 ? d1 : d0)[q >> 1];
    row[c] = overwrite ? v + bias : row[c] + v;
  }
}

/* d (rows, n), rows n apart, = the window s (rows, n) with rows sp apart: one
 * im2col row. The loop for whole 8-float blocks is written out: going
 * through copy_row per grid row cost ~1.7x more (its remainder branches and
 * the caller's live values spilled around them). */
static void copy_block(float *restrict d, const float *restrict s, int rows, int n, int sp) {
#if CONV_SSE2
  if (n % 8 == 0) {
    for (int r = 0; r < rows; r++, d += n, s += sp)
      for (int i = 0; i < n; i += 8) {
        __m128 a = _mm_loadu_ps(s + i), b = _mm_loadu_ps(s + i + 4);
        _mm_storeu_ps(d + i, a);
        _mm_storeu_ps(d + i + 4, b);
      }
    return;
  }
#endif
  for (int r = 0; r < rows; r++, d += n, s += sp) copy_row(d, s, n);
}

/* The window d (rows, n) with rows dp apart += s (rows, n), rows n apart. */
static void add_block(float *restrict d, const float *restrict s, int rows, int n, int dp) {
#if CONV_SSE2
  if (n % 8 == 0) {
    for (int r = 0; r < rows; r++, d += dp, s += n)
      for (int i = 0; i < n; i += 8) {
        __m128 a = _mm_add_ps(_mm_loadu_ps(d + i), _mm_loadu_ps(s + i));
        __m128 b = _mm_add_ps(_mm_loadu_ps(d + i + 4), _mm_loadu_ps(s + i + 4));
        _mm_storeu_ps(d + i, a);
        _mm_storeu_ps(d + i + 4, b);
      }
    return;
  }
#endif
  for (int r = 0; r < rows; r++, d += dp, s += n) add_row(d, s, n);
}

/* ---- prefetch ---- */

/* Software prefetch of the next GEMMs' operands, spread over the copy loops.
 * From a few hundred images on, the layer's tensors live in DRAM, and the
 * GEMMs (and the first pass over each image) wait for them; the copy loops of
 * im2col and col2im work in L1/L2 and leave the memory idle. A prefetch list
 * names up to PF_RANGES byte ranges; each of the loop's steps touches the next
 * `per` cache lines of them, so the ranges arrive while the copies run. Only
 * timing changes: no value is read through it. */
#define PF_RANGES 3
typedef struct {
  const char *p[PF_RANGES], *end[PF_RANGES];
  size_t lines;
  int n, i, per;
} prefetch;

/* Bytes one list may name: what the next GEMMs of a small layer read,
 * well inside L2; larger tensors are left to the hardware prefetcher (a
 * burst of software prefetches longer than the copies stalls them). */
#define PF_MAX_BYTES (64 * 1024)

static void pf_add(prefetch *f, const float *a, size_t floats) {
  if (!a || !floats || f->n == PF_RANGES) return;
  if ((f->lines * 64 + floats * sizeof(float)) > PF_MAX_BYTES) return;
  f->p[f->n] = (const char *)a, f->end[f->n] = (const char *)(a + floats), f->n++;
  f->lines += (floats * sizeof(float) + 63) / 64;
}

/* Spreads what was added over `steps` steps of a loop. */
static prefetch *pf_spread(prefetch *f, int steps) {
  if (steps < 1) steps = 1;
  f->per = (int)((f->lines + (size_t)steps - 1) / (size_t)steps);
  return f;
}

static inline void pf_step(prefetch *f) {
  if (!f) return;
  for (int k = 0; k < f->per && f->i < f->n; k++) {
    __builtin_prefetch(f->p[f->i], 0, 2); /* into L2 */
    f->p[f->i] += 64;
    if (f->p[f->i] >= f->end[f->i]) f->i++;
  }
}

/* Images in the chunk that starts at b1 (0 past the batch's end). */
static int next_chunk(int B, int b1, int G) { return B - b1 < G ? B - b1 : G; }

/* ---- phase planes ---- */

/* P (s, s, PH, PW) = phases of the zero-padded img (H, W). P must hold zeros
 * wherever the padding falls (phases_clear): only image pixels are written
 * here, so the zeros stay from one channel to the next. */
static void phases_from_image(float *restrict P, const float *restrict img, const geom *g) {
  int s = g->s, PW = g->PW, W = g->W, p = g->p;
  size_t plane = (size_t)g->PH * PW;
  for (int r = 0; r < g->H; r++) {
    int pr = r + p, pi = pr % s, y = pr / s;
    float *d = P + (size_t)pi * s * plane + (size_t)y * PW; // phase (pi, 0), row y
    const float *row = img + (size_t)r * W;
    if (s == 1)
      copy_row(d + p, row, W);
    else if (s == 2)
      split_row2(d, d + plane, row, W, p);
    else
      for (int c = 0; c < W; c++) d[(size_t)((c + p) % s) * plane + (c + p) / s] = row[c];
  }
}

/* Zeroes the phase planes. */
static void phases_clear(float *P, const geom *g) {
  memset(P, 0, geom_scratch_floats(g) * sizeof(float));
}

/* img (H, W) += phases P (s, s, PH, PW), or img = P + bias when overwrite is 1
 * (the padding positions of P are dropped). */
static void image_from_phases(float *restrict img, const float *restrict P, const geom *g,
                              int overwrite, float bias) {
  int s = g->s, PW = g->PW, W = g->W, p = g->p;
  size_t plane = (size_t)g->PH * PW;
  for (int r = 0; r < g->H; r++) {
    int pr = r + p, pi = pr % s, y = pr / s;
    const float *src = P + (size_t)pi * s * plane + (size_t)y * PW; // phase (pi, 0), row y
    float *row = img + (size_t)r * W;
    if (s == 1) {
      if (overwrite)
        copy_row_plus(row, src + p, bias, W);
      else
        add_row(row, src + p, W);
    } else if (s == 2) {
      merge_row2(row, src, src + plane, W, p, overwrite, bias);
    } else {
      for (int c = 0; c < W; c++) {
        float v = src[(size_t)((c + p) % s) * plane + (c + p) / s];
        row[c] = overwrite ? v + bias : row[c] + v;
      }
    }
  }
}

/* ---- row kernels: 4x4, stride 2, padding 1, even sizes (see the top) ---- */

/* Image row r (0..H-1) feeds kernel row ka = (r + 1) % 2 at grid row
 * (r + 1) / 2 (when < OH) and kernel row ka + 2 at the grid row above (when
 * >= 0); kernel rows 0 at grid row 0 and 3 at the last read the padding. In a
 * row the even image columns 2m are kernel column 1 at grid column m and
 * kernel column 3 at m - 1, the odd ones 2m + 1 kernel column 2 at m and 0 at
 * m + 1. col2im sums an element's four terms in the order the planes add
 * them, ((0 + kj 1) + kj 3 (ka)) + kj 1 + kj 3 (ka + 2) for even columns and
 * kj 0, 2 for odd ones, a missing term as +0: a sum that starts from 0 + x is
 * never -0, so adding +0 leaves it alone and the bits are the planes'. */
#define S2K4_MAX_OW 64 /* row buffers on the stack */

/* The layers conv.c computes without a GEMM where the CPU allows ("layers
 * between 3 channels and a grid, without a GEMM"): transposed 4x4 stride-2
 * layers from a C-channel grid (H, W) to 3 channels, and the convs the other
 * way (3 channels, 2H x 2W, to C). ct_workspace_floats is what they take of
 * the workspace: bias sums, dw vectors, reordered weights, a split image and
 * a grid image's copy (see ct_parts). */
static int ct_shape(int OC, int K, int stride, int pad, int W) {
  return OC == 3 && K == 4 && stride == 2 && pad == 1 && W % 16 == 0;
}
static int cd_shape(int IC, int K, int stride, int pad, int H, int W) {
  return IC == 3 && K == 4 && stride == 2 && pad == 1 && H % 2 == 0 && W % 32 == 0;
}
static size_t ct_down_weights_floats(int C) { return (size_t)(C + 5) / 6 * 48 * 6; }
/* the bias sums: doubles for the grid's C channels or the image's 3 */
static size_t ct_sums_floats(int C) { return 2 * (size_t)(C > 3 ? C : 3); }
static size_t ct_workspace_floats(int C, int H, int W) {
  return ct_sums_floats(C) + 8 + (size_t)C * 48 * 8 + ct_down_weights_floats(C) + (size_t)3 * 2 * H * 2 * (W + 8) +
         (size_t)C * H * W + 2;
}

/* The 3x3 stride-1 pad-1 layers conv.c computes without a GEMM where the CPU
 * allows ("3x3 layers between 3 channels and a grid"): a conv from 3 channels
 * to C or from C to 3 (an encoder's first layer, a decoder's last), the grid
 * width a multiple of 32. k3_workspace_floats is what they take of the
 * workspace (see k3_parts). */
static int k3_shape(int IC, int OC, int K, int stride, int pad, int W) {
  return (IC == 3 || OC == 3) && K == 3 && stride == 1 && pad == 1 && W % 32 == 0;
}
static size_t k3_stride(int W) { return (size_t)W + 8; } /* a padded 3-channel row */
static size_t k3_down_weights_floats(int C) { return (size_t)(C + 5) / 6 * 27 * 6; }
static size_t k3_workspace_floats(int C, int H, int W) {
  return ct_sums_floats(C) + 8 + (size_t)C * 27 * 8 + k3_down_weights_floats(C) + (size_t)C * 27 +
         (size_t)3 * (H + 2) * k3_stride(W) + (size_t)C * H * W + 2;
}

static int row_copies = 1; /* conv_set_row_copies */

void conv_set_row_copies(int on) { row_copies = on != 0; }

#if CONV_SSE2
static int geom_s2k4(const geom *g) {
  return row_copies && g->s == 2 && g->K == 4 && g->p == 1 && g->H == 2 * g->OH && g->W == 2 * g->OW &&
         g->OW % 4 == 0 && g->OW <= S2K4_MAX_OW;
}

/* Where in a channel's col rows the two groups image row r meets start
 * (kernel rows ka and ka + 2, their 4 kernel columns ldc apart), -1 for none. */
static inline void s2k4_rows(const geom *g, size_t ldc, int r, ptrdiff_t *a, ptrdiff_t *b) {
  int ka = (r + 1) & 1, oa = (r + 1) >> 1, ob = oa - 1;
  *a = oa < g->OH ? (ptrdiff_t)((size_t)ka * 4 * ldc + (size_t)oa * g->OW) : -1;
  *b = ob >= 0 ? (ptrdiff_t)((size_t)(ka + 2) * 4 * ldc + (size_t)ob * g->OW) : -1;
}

/* The prefetch steps due after one more of a channel's H rows: K*K = 16 per
 * channel, as the plane path takes them (acc counts in 1/H steps). */
static inline void pf_rows(prefetch *f, int *acc, int H) {
  if (!f) return;
  for (*acc += 16; *acc >= H; *acc -= H) pf_step(f);
}

/* The zero col rows of a channel: kernel row 0 at grid row 0, 3 at the last. */
static void s2k4_pad_rows(float *cc, size_t ldc, const geom *g) {
  for (int kj = 0; kj < 4; kj++) {
    fill_row(cc + (size_t)kj * ldc, 0.0f, g->OW);
    fill_row(cc + (size_t)(12 + kj) * ldc + (size_t)(g->OH - 1) * g->OW, 0.0f, g->OW);
  }
}

/* [prev3, v0, v1, v2] and [v1, v2, v3, next0] */
static inline __m128 shr1(__m128 v, __m128 prev) {
  return _mm_castsi128_ps(_mm_or_si128(_mm_slli_si128(_mm_castps_si128(v), 4),
                                       _mm_srli_si128(_mm_castps_si128(prev), 12)));
}
static inline __m128 shl1(__m128 v, __m128 next) {
  return _mm_castsi128_ps(_mm_or_si128(_mm_srli_si128(_mm_castps_si128(v), 4),
                                       _mm_slli_si128(_mm_castps_si128(next), 12)));
}
static inline __m128 load_or_zero(const float *p, size_t off) {
  return p ? _mm_loadu_ps(p + off) : _mm_setzero_ps();
}
static inline void store4(float *d, size_t ldc, size_t o, __m128 k0, __m128 k1, __m128 k2, __m128 k3) {
  _mm_storeu_ps(d + o, k0);
  _mm_storeu_ps(d + ldc + o, k1);
  _mm_storeu_ps(d + 2 * ldc + o, k2);
  _mm_storeu_ps(d + 3 * ldc + o, k3);
}

static void im2col_s2k4(float *restrict col, size_t ldc, const float *restrict img, const geom *g,
                        prefetch *f) {
  int H = g->H, W = g->W, nv = g->OW / 4, acc = 0;
  const __m128 z = _mm_setzero_ps();
  for (int c = 0; c < g->C; c++) {
    float *cc = col + (size_t)c * 16 * ldc;
    const float *im = img + (size_t)c * H * W;
    s2k4_pad_rows(cc, ldc, g);
    for (int r = 0; r < H; r++) {
      const float *src = im + (size_t)r * W;
      ptrdiff_t oa, ob;
      s2k4_rows(g, ldc, r, &oa, &ob);
      float *da = oa >= 0 ? cc + oa : NULL, *db = ob >= 0 ? cc + ob : NULL;
      __m128 E[S2K4_MAX_OW / 4], O[S2K4_MAX_OW / 4]; // even and odd columns
      for (int v = 0; v < nv; v++) {
        __m128 a = _mm_loadu_ps(src + 8 * v), b = _mm_loadu_ps(src + 8 * v + 4);
        E[v] = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        O[v] = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
      }
      for (int v = 0; v < nv; v++) {
        __m128 k0 = shr1(O[v], v ? O[v - 1] : z), k3 = shl1(E[v], v + 1 < nv ? E[v + 1] : z);
        if (da) store4(da, ldc, 4 * (size_t)v, k0, E[v], O[v], k3);
        if (db) store4(db, ldc, 4 * (size_t)v, k0, E[v], O[v], k3);
      }
      pf_rows(f, &acc, H);
    }
  }
}

static void col2im_s2k4(float *restrict img, const float *restrict col, size_t ldc, const geom *g,
                        int overwrite, const float *b, prefetch *f) {
  int H = g->H, W = g->W, nv = g->OW / 4, acc = 0;
  const __m128 z = _mm_setzero_ps();
  for (int c = 0; c < g->C; c++) {
    const float *cc = col + (size_t)c * 16 * ldc;
    float *im = img + (size_t)c * H * W;
    __m128 vb = _mm_set1_ps(b ? b[c] : 0.0f);
    for (int r = 0; r < H; r++) {
      float *row = im + (size_t)r * W;
      ptrdiff_t oa, ob;
      s2k4_rows(g, ldc, r, &oa, &ob);
      const float *pa = oa >= 0 ? cc + oa : NULL, *pb = ob >= 0 ? cc + ob : NULL;
      __m128 a3p = z, b3p = z, a0 = load_or_zero(pa, 0), b0 = load_or_zero(pb, 0);
      for (int v = 0; v < nv; v++) {
        size_t o = 4 * (size_t)v;
        __m128 a0n = v + 1 < nv ? load_or_zero(pa, o + 4) : z;
        __m128 b0n = v + 1 < nv ? load_or_zero(pb, o + 4) : z;
        __m128 a1 = load_or_zero(pa, ldc + o), a2 = load_or_zero(pa, 2 * ldc + o);
        __m128 a3 = load_or_zero(pa, 3 * ldc + o), b1 = load_or_zero(pb, ldc + o);
        __m128 b2 = load_or_zero(pb, 2 * ldc + o), b3 = load_or_zero(pb, 3 * ldc + o);
        __m128 e = _mm_add_ps(_mm_add_ps(_mm_add_ps(_mm_add_ps(z, a1), shr1(a3, a3p)), b1), shr1(b3, b3p));
        __m128 d = _mm_add_ps(_mm_add_ps(_mm_add_ps(_mm_add_ps(z, shl1(a0, a0n)), a2), shl1(b0, b0n)), b2);
        __m128 lo = _mm_unpacklo_ps(e, d), hi = _mm_unpackhi_ps(e, d);
        float *q = row + 8 * v;
        if (overwrite) {
          _mm_storeu_ps(q, _mm_add_ps(lo, vb));
          _mm_storeu_ps(q + 4, _mm_add_ps(hi, vb));
        } else {
          _mm_storeu_ps(q, _mm_add_ps(_mm_loadu_ps(q), lo));
          _mm_storeu_ps(q + 4, _mm_add_ps(_mm_loadu_ps(q + 4), hi));
        }
        a3p = a3, b3p = b3, a0 = a0n, b0 = b0n;
      }
      pf_rows(f, &acc, H);
    }
  }
}
#endif

#if CONV_AVX2
/* The same with 8 floats per vector; the grid width a multiple of 8. */
AVX2_FN static inline __m256 shr1_8(__m256 v, __m256 prev) {
  const __m256i idx = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
  return _mm256_blend_ps(_mm256_permutevar8x32_ps(v, idx), _mm256_permutevar8x32_ps(prev, idx), 0x01);
}
AVX2_FN static inline __m256 shl1_8(__m256 v, __m256 next) {
  const __m256i idx = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
  return _mm256_blend_ps(_mm256_permutevar8x32_ps(v, idx), _mm256_permutevar8x32_ps(next, idx), 0x80);
}
AVX2_FN static inline __m256 load8_or_zero(const float *p, size_t off) {
  return p ? _mm256_loadu_ps(p + off) : _mm256_setzero_ps();
}
AVX2_FN static inline void store8x4(float *d, size_t ldc, size_t o, __m256 k0, __m256 k1, __m256 k2,
                                    __m256 k3) {
  _mm256_storeu_ps(d + o, k0);
  _mm256_storeu_ps(d + ldc + o, k1);
  _mm256_storeu_ps(d + 2 * ldc + o, k2);
  _mm256_storeu_ps(d + 3 * ldc + o, k3);
}

/* The even and odd floats of a (8 floats) and b (the next 8), in order. */
AVX2_FN static inline void even_odd8(__m256 a, __m256 b, __m256 *e, __m256 *o) {
  /* shuffle within lanes, then put the 64-bit halves in order */
  *e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  *o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

AVX2_FN static void im2col_s2k4_avx2(float *restrict col, size_t ldc, const float *restrict img,
                                     const geom *g, prefetch *f) {
  int H = g->H, W = g->W, nv = g->OW / 8, acc = 0;
  const __m256 z = _mm256_setzero_ps();
  for (int c = 0; c < g->C; c++) {
    float *cc = col + (size_t)c * 16 * ldc;
    const float *im = img + (size_t)c * H * W;
    s2k4_pad_rows(cc, ldc, g);
    for (int r = 0; r < H; r++) {
      const float *src = im + (size_t)r * W;
      ptrdiff_t oa, ob;
      s2k4_rows(g, ldc, r, &oa, &ob);
      float *da = oa >= 0 ? cc + oa : NULL, *db = ob >= 0 ? cc + ob : NULL;
      __m256 E[S2K4_MAX_OW / 8], O[S2K4_MAX_OW / 8];
      for (int v = 0; v < nv; v++)
        even_odd8(_mm256_loadu_ps(src + 16 * v), _mm256_loadu_ps(src + 16 * v + 8), &E[v], &O[v]);
      for (int v = 0; v < nv; v++) {
        __m256 k0 = shr1_8(O[v], v ? O[v - 1] : z), k3 = shl1_8(E[v], v + 1 < nv ? E[v + 1] : z);
        if (da) store8x4(da, ldc, 8 * (size_t)v, k0, E[v], O[v], k3);
        if (db) store8x4(db, ldc, 8 * (size_t)v, k0, E[v], O[v], k3);
      }
      pf_rows(f, &acc, H);
    }
  }
}

AVX2_FN static void col2im_s2k4_avx2(float *restrict img, const float *restrict col, size_t ldc,
                                     const geom *g, int overwrite, const float *b, prefetch *f) {
  int H = g->H, W = g->W, nv = g->OW / 8, acc = 0;
  const __m256 z = _mm256_setzero_ps();
  for (int c = 0; c < g->C; c++) {
    const float *cc = col + (size_t)c * 16 * ldc;
    float *im = img + (size_t)c * H * W;
    __m256 vb = _mm256_set1_ps(b ? b[c] : 0.0f);
    for (int r = 0; r < H; r++) {
      float *row = im + (size_t)r * W;
      ptrdiff_t oa, ob;
      s2k4_rows(g, ldc, r, &oa, &ob);
      const float *pa = oa >= 0 ? cc + oa : NULL, *pb = ob >= 0 ? cc + ob : NULL;
      __m256 a3p = z, b3p = z, a0 = load8_or_zero(pa, 0), b0 = load8_or_zero(pb, 0);
      for (int v = 0; v < nv; v++) {
        size_t o = 8 * (size_t)v;
        __m256 a0n = v + 1 < nv ? load8_or_zero(pa, o + 8) : z;
        __m256 b0n = v + 1 < nv ? load8_or_zero(pb, o + 8) : z;
        __m256 a1 = load8_or_zero(pa, ldc + o), a2 = load8_or_zero(pa, 2 * ldc + o);
        __m256 a3 = load8_or_zero(pa, 3 * ldc + o), b1 = load8_or_zero(pb, ldc + o);
        __m256 b2 = load8_or_zero(pb, 2 * ldc + o), b3 = load8_or_zero(pb, 3 * ldc + o);
        __m256 e = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(z, a1), shr1_8(a3, a3p)), b1),
                                 shr1_8(b3, b3p));
        __m256 d = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(z, shl1_8(a0, a0n)), a2),
                                               shl1_8(b0, b0n)), b2);
        /* interleave: unpack within lanes, then the lanes in order */
        __m256 lo = _mm256_unpacklo_ps(e, d), hi = _mm256_unpackhi_ps(e, d);
        __m256 r0 = _mm256_permute2f128_ps(lo, hi, 0x20), r1 = _mm256_permute2f128_ps(lo, hi, 0x31);
        float *q = row + 16 * v;
        if (overwrite) {
          _mm256_storeu_ps(q, _mm256_add_ps(r0, vb));
          _mm256_storeu_ps(q + 8, _mm256_add_ps(r1, vb));
        } else {
          _mm256_storeu_ps(q, _mm256_add_ps(_mm256_loadu_ps(q), r0));
          _mm256_storeu_ps(q + 8, _mm256_add_ps(_mm256_loadu_ps(q + 8), r1));
        }
        a3p = a3, b3p = b3, a0 = a0n, b0 = b0n;
      }
      pf_rows(f, &acc, H);
    }
  }
}

static int s2k4_avx2(const geom *g) { return g->OW % 8 == 0 && vm_get_isa() == VM_ISA_AVX2; }

/* ---- layers between 3 channels and a grid, without a GEMM ----
 *
 * A 4x4 stride-2 pad-1 transposed conv from a C-channel grid (H, W) to 3
 * channels (an image decoder's last layer, to RGB), and a conv the other way
 * (an encoder's first), are short GEMMs (48 rows or columns) with im2col or
 * col2im around them, and much of their time went to those copies, to
 * clearing col and to sgemm's own packing. Where vecmath runs AVX2 (FMA) and
 * the grid's width is a multiple of 16 they are computed directly, from three
 * kernels that serve both layers (a conv is the transposed conv's adjoint with
 * the same weight layout, (C, 3, 4, 4)):
 *   up    grid -> 3 channels: the transposed forward, the conv's din (ct_up)
 *   down  3 channels -> grid: the transposed din, the conv's forward (ct_down)
 *   dw    both layers' weight gradient (ct_dw)
 * "up": output pixel (2Y + ph, 2X + pw) takes grid rows Y + dy and columns
 * X + dx with kernel taps
 *   ph 0: (dy 0, kh 1), (dy -1, kh 3);  ph 1: (dy 1, kh 0), (dy 0, kh 2)
 * (pw, dx, kw the same). ct_block computes 32 columns of one output row of
 * the 3 channels in 12 accumulators: per grid channel and kernel row, six
 * shifted vectors of the grid row times 12 broadcast weights (24 FMAs on 18
 * loads). Sums run over the kernel rows, then the channels, in a fixed
 * order: deterministic, but not the GEMM's bits. */
static int ct_direct(int OC, int K, int stride, int pad, int W) {
  return ct_shape(OC, K, stride, pad, W) && vm_get_isa() == VM_ISA_AVX2;
}
static int cd_direct(int IC, int K, int stride, int pad, int H, int W) {
  return cd_shape(IC, K, stride, pad, H, W) && vm_get_isa() == VM_ISA_AVX2;
}
static int k3_direct(int IC, int OC, int K, int stride, int pad, int W) {
  return k3_shape(IC, OC, K, stride, pad, W) && vm_get_isa() == VM_ISA_AVX2;
}
#define CT_FN __attribute__((target("avx2,fma")))

/* acc{oc}{pw}{half} += w[ic][oc][kh][kw] (wk = w[ic][0][kh][0]) times the
 * input vectors u (columns X + dx ..) and v (X + 8 + dx ..). */
#define CT_TAP(pw, kw, u, v)                                                                         \
  do {                                                                                               \
    __m256 w_ = _mm256_broadcast_ss(wk + (kw));                                                      \
    a0##pw##0 = _mm256_fmadd_ps(w_, u, a0##pw##0), a0##pw##1 = _mm256_fmadd_ps(w_, v, a0##pw##1);     \
    w_ = _mm256_broadcast_ss(wk + 16 + (kw));                                                        \
    a1##pw##0 = _mm256_fmadd_ps(w_, u, a1##pw##0), a1##pw##1 = _mm256_fmadd_ps(w_, v, a1##pw##1);     \
    w_ = _mm256_broadcast_ss(wk + 32 + (kw));                                                        \
    a2##pw##0 = _mm256_fmadd_ps(w_, u, a2##pw##0), a2##pw##1 = _mm256_fmadd_ps(w_, v, a2##pw##1);     \
  } while (0)

/* Output row 2Y + ph, columns 2X .. 2X + 31, of the 3 channels. L / R: X is
 * the first / the last block: the column before / after the row is read and
 * replaced by the zero padding, so in must have a float before / after
 * every row (ct_up sees to it). */
CT_FN static inline __attribute__((always_inline)) void
ct_block(float *restrict out, size_t oplane, const float *restrict in, size_t plane,
         const float *restrict w, const float *b, int IC, int Y, int H, int W, int X, int ph,
         const int L, const int R, int acc) {
  const __m256 z = _mm256_setzero_ps();
  __m256 a000, a001, a010, a011, a100, a101, a110, a111, a200, a201, a210, a211;
  a000 = a001 = a010 = a011 = _mm256_set1_ps(b ? b[0] : 0.0f);
  a100 = a101 = a110 = a111 = _mm256_set1_ps(b ? b[1] : 0.0f);
  a200 = a201 = a210 = a211 = _mm256_set1_ps(b ? b[2] : 0.0f);
  for (int t = 0; t < 2; t++) {
    int dy = ph ? 1 - t : -t, kh = ph ? 2 * t : 1 + 2 * t;
    if (Y + dy < 0 || Y + dy >= H) continue;
    const float *p = in + (size_t)(Y + dy) * W + X, *wk = w + 4 * kh;
    for (int ic = 0; ic < IC; ic++, p += plane, wk += 48) {
      __m256 u = _mm256_loadu_ps(p), v = _mm256_loadu_ps(p + 8); // dx 0
      CT_TAP(0, 1, u, v);
      CT_TAP(1, 2, u, v);
      u = _mm256_loadu_ps(p - 1), v = _mm256_loadu_ps(p + 7); // dx -1
      if (L) u = _mm256_blend_ps(u, z, 0x01);
      CT_TAP(0, 3, u, v);
      u = _mm256_loadu_ps(p + 1), v = _mm256_loadu_ps(p + 9); // dx +1
      if (R) v = _mm256_blend_ps(v, z, 0x80);
      CT_TAP(1, 0, u, v);
    }
  }
  /* interleave the column phases (pw 0, pw 1) into the output row */
  float *q = out + (size_t)(2 * Y + ph) * 2 * W + 2 * X;
#define CT_STORE(q, e, d)                                                                            \
  do {                                                                                               \
    __m256 lo = _mm256_unpacklo_ps(e, d), hi = _mm256_unpackhi_ps(e, d);                             \
    __m256 r0 = _mm256_permute2f128_ps(lo, hi, 0x20), r1 = _mm256_permute2f128_ps(lo, hi, 0x31);     \
    if (acc) r0 = _mm256_add_ps(_mm256_loadu_ps(q), r0), r1 = _mm256_add_ps(_mm256_loadu_ps((q) + 8), r1); \
    _mm256_storeu_ps(q, r0);                                                                         \
    _mm256_storeu_ps((q) + 8, r1);                                                                   \
  } while (0)
  CT_STORE(q, a000, a010);
  CT_STORE(q + 16, a001, a011);
  CT_STORE(q + oplane, a100, a110);
  CT_STORE(q + oplane + 16, a101, a111);
  CT_STORE(q + 2 * oplane, a200, a210);
  CT_STORE(q + 2 * oplane + 16, a201, a211);
#undef CT_STORE
}

/* BLOCK(l, r) with constant edge flags (first / last block of a row), so
 * that the edge blends leave the inner loop. */
#define EDGE_CASES(BLOCK, L, R)                                                                      \
  do {                                                                                               \
    if ((L) && (R)) BLOCK(1, 1);                                                                     \
    else if (L) BLOCK(1, 0);                                                                         \
    else if (R) BLOCK(0, 1);                                                                         \
    else BLOCK(0, 0);                                                                                \
  } while (0)

/* The rows Y + 2 of in's C planes (H, W), next's first ones past the end:
 * the kernels that read a row of every channel, a plane apart, fetch the
 * rows two ahead while one is computed (the hardware prefetcher does not
 * follow such reads). Inlined as an AVX2 function: as a plain one, inlined
 * into the kernels, it cost the convT 32 -> 3 row ~10% (bench_nn). */
CT_FN static inline __attribute__((always_inline)) void
prefetch_rows_ahead(const float *in, const float *next, int Y, int C, int H, int W) {
  const size_t plane = (size_t)H * W;
  const float *ahead = Y + 2 < H ? in + (size_t)(Y + 2) * W : next ? next + (size_t)(Y + 2 - H) * W : NULL;
  if (ahead)
    for (int c = 0; c < C; c++)
      for (int x = 0; x < W; x += 16) __builtin_prefetch(ahead + (size_t)c * plane + x, 0, 3);
}

/* Image i of the batch in (B images of img floats) for kernels that read a
 * float before and after each row: in's own, but for the batch's first and
 * last images, whose outer floats have no neighbour in in: those are copied
 * into copy (img + 2 floats) with a zero float of margin each side. */
static const float *with_margin(float *copy, const float *in, int i, int B, size_t img) {
  const float *x = in + i * img;
  if (i != 0 && i != B - 1) return x;
  memcpy(copy + 1, x, img * sizeof(float));
  copy[0] = copy[img + 1] = 0.0f;
  return copy + 1;
}

/* out (3, 2H, 2W) = convT(in (IC, H, W)) + b for one image, or out += it
 * (acc; b NULL); next: the next image, fetched at the end (prefetch_rows_ahead). */
CT_FN static void ct_image(float *restrict out, const float *restrict in, const float *next,
                           const float *restrict w, const float *b, int IC, int H, int W, int acc) {
  const size_t plane = (size_t)H * W, oplane = 4 * plane;
  for (int Y = 0; Y < H; Y++) {
    prefetch_rows_ahead(in, next, Y, IC, H, W);
    for (int ph = 0; ph < 2; ph++)
      for (int X = 0; X < W; X += 16) {
        int L = X == 0, R = X + 16 == W;
#define CT_BLOCK(l, r) ct_block(out, oplane, in, plane, w, b, IC, Y, H, W, X, ph, l, r, acc)
        EDGE_CASES(CT_BLOCK, L, R);
#undef CT_BLOCK
      }
  }
}

/* The upsampling direction for image i of B: out (3, 2H, 2W) = convT(in_i
 * (IC, H, W)) + b, or out += convT(in_i) (acc, b NULL: a conv's input
 * gradient); in is the batch. The edge blocks read one float before and
 * after each row (with_margin). */
CT_FN static void ct_up(float *out, float *copy, const float *in, int i, int B, const float *w, const float *b,
                        int IC, int H, int W, int acc) {
  const size_t in_img = (size_t)IC * H * W;
  ct_image(out, with_margin(copy, in, i, B, in_img), i + 1 < B ? in + (i + 1) * in_img : NULL, w, b, IC, H, W, acc);
}

/* "down" and "dw". The 3-channel image (the transposed layer's dout, the
 * conv's input) is split once per image into its rows' even and odd columns,
 * E[X] = img[.., 2X] and O[X] = img[.., 2X + 1], stored padded so that the
 * four kernel columns of grid column X are E / O vectors at X or X + 1:
 *   kw 0: O[X - 1] = Op[X];  kw 1: E[X] = Ep[X];  kw 2: O[X] = Op[X + 1];  kw 3: E[X + 1] = Ep[X + 1]
 * (Op[0] = 0 and Ep[W] = 0 are the padding). Kernel row kh of grid row Y
 * is image row 2Y - 1 + kh. Then (ic a grid channel, oc an image channel)
 *   down: grid[ic][Y][X] += sum over (oc, kh, kw) of w[ic][oc][kh][kw] * tap(oc, kh, kw)[X]
 * runs 6 grid channels by 16 columns in 12 accumulators (per tap: 2 loads,
 * 6 broadcasts, 12 FMAs), and
 *   dw: dw[ic][oc][kh][kw] += sum over (Y, X) of grid[ic][Y][X] * tap(oc, kh, kw)[X]
 * runs 3 grid channels by the 4 kw of one (oc, kh) in 12 vector
 * accumulators kept in the workspace across the batch (per 8 columns: 7
 * loads, 12 FMAs), their lanes summed into dw once at the end. Channel blocks
 * past IC repeat the last channel (computing its sums twice). Fixed orders
 * throughout: deterministic, not the GEMM's bits. */
static size_t ct_stride(int W) { return (size_t)W + 8; }

typedef struct {
  float *sums; // the bias sums (bias_sums_*), ct_sums_floats
  float *dwv;  // (C, 3, 4 kh, 4 kw) vectors of 8, 32-byte aligned
  float *wr;   // ct_down_weights
  float *pl;   // (3, 2H rows, E / O) rows of ct_stride(W) floats
  float *copy; // a grid image (C, H, W) with a float of margin each side
} ct_ws;

/* The workspace's parts (ct_workspace_floats) for a grid of C channels (H, W). */
static ct_ws ct_parts(float *ws, int C, int H, int W) {
  ct_ws c;
  c.sums = ws;
  c.dwv = (float *)(((uintptr_t)(ws + ct_sums_floats(C)) + 31) & ~(uintptr_t)31);
  c.wr = c.dwv + (size_t)C * 48 * 8;
  c.pl = c.wr + ct_down_weights_floats(C);
  c.copy = c.pl + (size_t)3 * 2 * H * 2 * ct_stride(W);
  return c;
}

/* Splits a 3-channel image (3, 2H, 2W) into the padded E / O rows. */
CT_FN static void ct_split(float *pl, const float *img, int H, int W) {
  size_t S = ct_stride(W);
  for (int r = 0; r < 3 * 2 * H; r++) {
    const float *src = img + (size_t)r * 2 * W;
    float *E = pl + (size_t)r * 2 * S, *O = E + S;
    for (int v = 0; v < W; v += 8) {
      __m256 e, o;
      even_odd8(_mm256_loadu_ps(src + 2 * v), _mm256_loadu_ps(src + 2 * v + 8), &e, &o);
      _mm256_storeu_ps(E + v, e);
      _mm256_storeu_ps(O + 1 + v, o);
    }
    E[W] = 0.0f, O[0] = 0.0f;
  }
}

/* acc{i}{h} += the tap's weights of the block's 6 channels (wq: 6 floats) times the tap vectors d0, d1 */
#define CT_DIN_TAP(d0, d1)                                                                           \
  do {                                                                                               \
    __m256 x0 = (d0), x1 = (d1), w_;                                                                 \
    w_ = _mm256_broadcast_ss(wq), a00 = _mm256_fmadd_ps(w_, x0, a00), a01 = _mm256_fmadd_ps(w_, x1, a01);         \
    w_ = _mm256_broadcast_ss(wq + 1), a10 = _mm256_fmadd_ps(w_, x0, a10), a11 = _mm256_fmadd_ps(w_, x1, a11);     \
    w_ = _mm256_broadcast_ss(wq + 2), a20 = _mm256_fmadd_ps(w_, x0, a20), a21 = _mm256_fmadd_ps(w_, x1, a21);     \
    w_ = _mm256_broadcast_ss(wq + 3), a30 = _mm256_fmadd_ps(w_, x0, a30), a31 = _mm256_fmadd_ps(w_, x1, a31);     \
    w_ = _mm256_broadcast_ss(wq + 4), a40 = _mm256_fmadd_ps(w_, x0, a40), a41 = _mm256_fmadd_ps(w_, x1, a41);     \
    w_ = _mm256_broadcast_ss(wq + 5), a50 = _mm256_fmadd_ps(w_, x0, a50), a51 = _mm256_fmadd_ps(w_, x1, a51);     \
    wq += 6;                                                                                         \
  } while (0)

/* The 6 grid channels of a block from c0 (the last repeated past C): their
 * planes in d, their biases (0 without b). */
static void six_channels(float *d[6], float bias[6], float *grid, size_t plane, int c0, int C, const float *b) {
  for (int i = 0; i < 6; i++) {
    int c = c0 + i < C ? c0 + i : C - 1;
    d[i] = grid + (size_t)c * plane, bias[i] = b ? b[c] : 0.0f;
  }
}
/* The 12 accumulators of CT_DIN_TAP at offset o of the 6 planes: their bias
 * (overwrite) or what the planes hold; stored back (a repeated last channel
 * stores the same sum again). */
#define CT_DIN_LOAD1(i)                                                                              \
  __m256 a##i##0 = overwrite ? _mm256_set1_ps(bias[i]) : _mm256_loadu_ps(d[i] + o);                  \
  __m256 a##i##1 = overwrite ? a##i##0 : _mm256_loadu_ps(d[i] + o + 8)
#define CT_DIN_LOAD CT_DIN_LOAD1(0); CT_DIN_LOAD1(1); CT_DIN_LOAD1(2); CT_DIN_LOAD1(3); CT_DIN_LOAD1(4); CT_DIN_LOAD1(5)
#define CT_DIN_STORE1(i) _mm256_storeu_ps(d[i] + o, a##i##0), _mm256_storeu_ps(d[i] + o + 8, a##i##1)
#define CT_DIN_STORE                                                                                 \
  CT_DIN_STORE1(0), CT_DIN_STORE1(1), CT_DIN_STORE1(2), CT_DIN_STORE1(3), CT_DIN_STORE1(4), CT_DIN_STORE1(5)

/* The weights in the order ct_down takes them: per block of 6 input channels
 * (the last channel repeated past IC), per (oc, kh, kw), the 6 channels'. */
static void ct_down_weights(float *wr, const float *w, int IC) {
  for (int ic0 = 0; ic0 < IC; ic0 += 6)
    for (int k = 0; k < 48; k++)
      for (int i = 0; i < 6; i++) *wr++ = w[(size_t)(ic0 + i < IC ? ic0 + i : IC - 1) * 48 + k];
}

/* The downsampling direction for one image: grid (IC, H, W) += the sums
 * from the split 3-channel image pl (the transposed layer's input gradient),
 * or, with overwrite, grid = them + b (b may be NULL: a conv's forward); the
 * weights of ct_down_weights; f fetches ahead, a step per grid row. */
CT_FN static void ct_down(float *grid, const float *pl, const float *wr, int IC, int H, int W, prefetch *f,
                          int overwrite, const float *b) {
  const size_t plane = (size_t)H * W, S = ct_stride(W);
  for (int ic0 = 0; ic0 < IC; ic0 += 6, wr += 288) {
    float *d[6];
    float bias[6];
    six_channels(d, bias, grid, plane, ic0, IC, b);
    for (int Y = 0; Y < H; Y++, pf_step(f))
      for (int X = 0; X < W; X += 16) {
        size_t o = (size_t)Y * W + X;
        CT_DIN_LOAD;
        const float *wq = wr;
        for (int oc = 0; oc < 3; oc++)
          for (int kh = 0; kh < 4; kh++) {
            int r = 2 * Y - 1 + kh;
            if (r < 0 || r >= 2 * H) {
              wq += 24;
              continue;
            }
            const float *E = pl + ((size_t)oc * 2 * H + r) * 2 * S + X, *O = E + S;
            CT_DIN_TAP(_mm256_loadu_ps(O), _mm256_loadu_ps(O + 8));         // kw 0
            CT_DIN_TAP(_mm256_loadu_ps(E), _mm256_loadu_ps(E + 8));         // kw 1
            CT_DIN_TAP(_mm256_loadu_ps(O + 1), _mm256_loadu_ps(O + 9));     // kw 2
            CT_DIN_TAP(_mm256_loadu_ps(E + 1), _mm256_loadu_ps(E + 9));     // kw 3
          }
        CT_DIN_STORE;
      }
  }
}

/* dwv += the weight gradient of one image pair, grid (IC, H, W) and the
 * split 3-channel image pl, as vectors; f fetches ahead. */
CT_FN static void ct_dw(float *dwv, const float *pl, const float *grid, int IC, int H, int W, prefetch *f) {
  const size_t plane = (size_t)H * W, S = ct_stride(W);
  for (int ic0 = 0; ic0 < IC; ic0 += 3) {
    int c0 = ic0, c1 = ic0 + 1 < IC ? ic0 + 1 : IC - 1, c2 = ic0 + 2 < IC ? ic0 + 2 : IC - 1;
    const float *x0p = grid + c0 * plane, *x1p = grid + c1 * plane, *x2p = grid + c2 * plane;
    for (int oc = 0; oc < 3; oc++)
      for (int kh = 0; kh < 4; kh++, pf_step(f)) {
        float *v0 = dwv + (((size_t)c0 * 3 + oc) * 4 + kh) * 32, *v1 = dwv + (((size_t)c1 * 3 + oc) * 4 + kh) * 32;
        float *v2 = dwv + (((size_t)c2 * 3 + oc) * 4 + kh) * 32;
        __m256 a00 = _mm256_load_ps(v0), a01 = _mm256_load_ps(v0 + 8), a02 = _mm256_load_ps(v0 + 16), a03 = _mm256_load_ps(v0 + 24);
        __m256 a10 = _mm256_load_ps(v1), a11 = _mm256_load_ps(v1 + 8), a12 = _mm256_load_ps(v1 + 16), a13 = _mm256_load_ps(v1 + 24);
        __m256 a20 = _mm256_load_ps(v2), a21 = _mm256_load_ps(v2 + 8), a22 = _mm256_load_ps(v2 + 16), a23 = _mm256_load_ps(v2 + 24);
        for (int Y = 0; Y < H; Y++) {
          int r = 2 * Y - 1 + kh;
          if (r < 0 || r >= 2 * H) continue;
          const float *E = pl + ((size_t)oc * 2 * H + r) * 2 * S, *O = E + S;
          size_t row = (size_t)Y * W;
          for (int X = 0; X < W; X += 8) {
            __m256 x0 = _mm256_loadu_ps(x0p + row + X), x1 = _mm256_loadu_ps(x1p + row + X);
            __m256 x2 = _mm256_loadu_ps(x2p + row + X), t;
            t = _mm256_loadu_ps(O + X); // kw 0
            a00 = _mm256_fmadd_ps(x0, t, a00), a10 = _mm256_fmadd_ps(x1, t, a10), a20 = _mm256_fmadd_ps(x2, t, a20);
            t = _mm256_loadu_ps(E + X); // kw 1
            a01 = _mm256_fmadd_ps(x0, t, a01), a11 = _mm256_fmadd_ps(x1, t, a11), a21 = _mm256_fmadd_ps(x2, t, a21);
            t = _mm256_loadu_ps(O + X + 1); // kw 2
            a02 = _mm256_fmadd_ps(x0, t, a02), a12 = _mm256_fmadd_ps(x1, t, a12), a22 = _mm256_fmadd_ps(x2, t, a22);
            t = _mm256_loadu_ps(E + X + 1); // kw 3
            a03 = _mm256_fmadd_ps(x0, t, a03), a13 = _mm256_fmadd_ps(x1, t, a13), a23 = _mm256_fmadd_ps(x2, t, a23);
          }
        }
        /* a repeated last channel stores the same sums twice */
        _mm256_store_ps(v0, a00), _mm256_store_ps(v0 + 8, a01), _mm256_store_ps(v0 + 16, a02), _mm256_store_ps(v0 + 24, a03);
        _mm256_store_ps(v1, a10), _mm256_store_ps(v1 + 8, a11), _mm256_store_ps(v1 + 16, a12), _mm256_store_ps(v1 + 24, a13);
        _mm256_store_ps(v2, a20), _mm256_store_ps(v2 + 8, a21), _mm256_store_ps(v2 + 16, a22), _mm256_store_ps(v2 + 24, a23);
      }
  }
}

/* The 8 lanes of a vector sum, in lane order. */
static float lanes_sum(const float *v) {
  float s = 0;
  for (int l = 0; l < 8; l++) s += v[l];
  return s;
}

/* dw (IC, 3, 4, 4) += the lanes of the vector sums. */
static void ct_dw_finish(float *dw, const ct_ws *c, int IC) {
  for (size_t k = 0; k < (size_t)IC * 48; k++) dw[k] += lanes_sum(c->dwv + 8 * k);
}

/* ---- 3x3 layers between 3 channels and a grid, without a GEMM ----
 *
 * A 3x3 stride-1 pad-1 conv between a 3-channel image X (3, H, W) and a
 * C-channel grid G (C, H, W) of the same size relates the two through 27 taps
 * per grid channel: G[g][y][x] with X[t][y + ky - 1][x + kx - 1]. The conv
 * 3 -> C (an encoder's first layer) runs its forward from X to G and its
 * input gradient from G to X, the conv C -> 3 (a decoder's last) the other
 * way round, the input gradients with the kernel flipped (tap k -> 8 - k).
 * These GEMMs have 27 as a side; as for the 4x4 layers above, im2col and
 * sgemm's packing took much of their time. Three kernels serve both layers:
 *   down  X -> G (k3_down): 6 grid channels by 16 columns in 12
 *         accumulators; per tap 2 loads of X with a border of zeros (k3_pad),
 *         6 broadcasts, 12 FMAs (CT_DIN_TAP)
 *   up    G -> X (k3_block): 32 columns of the 3 channels in 12
 *         accumulators; per grid channel and tap 4 loads of the grid row,
 *         shifted, 3 broadcasts, 12 FMAs; the padding by skipping rows and
 *         blending the end columns, the batch's first and last images from a
 *         copy (as ct_up)
 *   dw    (k3_dw): 4 grid channels by the 3 kx of one (t, ky) in 12 vector
 *         accumulators kept in the workspace across the batch (per 8 columns
 *         7 loads, 12 FMAs), their lanes summed at the end.
 * Sums run in fixed orders: deterministic, an image's out and din the same
 * bits alone as in any batch; not the GEMM path's bits. */
typedef struct {
  float *sums; // the bias sums (bias_sums_*), ct_sums_floats
  float *dv;   // (C, 3, 9) vectors of 8, 32-byte aligned: the dw sums
  float *wd;   // k3_down_weights
  float *wu;   // k3_up_weights
  float *xp;   // (3, H + 2, k3_stride(W)): the 3-channel image with its border
  float *copy; // a grid image (C, H, W) with a float of margin each side
} k3_ws;

static k3_ws k3_parts(float *ws, int C, int H, int W) {
  k3_ws c;
  c.sums = ws;
  c.dv = (float *)(((uintptr_t)(ws + ct_sums_floats(C)) + 31) & ~(uintptr_t)31);
  c.wd = c.dv + (size_t)C * 27 * 8;
  c.wu = c.wd + k3_down_weights_floats(C);
  c.xp = c.wu + (size_t)C * 27;
  c.copy = c.xp + (size_t)3 * (H + 2) * k3_stride(W);
  return c;
}

/* The weight between grid channel g and image channel t at tap k = 3 ky + kx:
 * w[g][t][k] of the conv 3 -> C (grid_out; w (C, 3, 3, 3)), w[t][g][k] of
 * the conv C -> 3 (w (3, C, 3, 3)); flip: at tap 8 - k. */
static float k3_w(const float *w, int C, int grid_out, int flip, int g, int t, int k) {
  if (flip) k = 8 - k;
  return grid_out ? w[((size_t)g * 3 + t) * 9 + k] : w[((size_t)t * C + g) * 9 + k];
}

/* In k3_down's order: per block of 6 grid channels (the last repeated past
 * C), per (t, k), the 6 channels'. */
static void k3_down_weights(float *wd, const float *w, int C, int grid_out, int flip) {
  for (int g0 = 0; g0 < C; g0 += 6)
    for (int t = 0; t < 3; t++)
      for (int k = 0; k < 9; k++)
        for (int i = 0; i < 6; i++) *wd++ = k3_w(w, C, grid_out, flip, g0 + i < C ? g0 + i : C - 1, t, k);
}

/* In k3_block's order: per grid channel, per k, the 3 image channels'. */
static void k3_up_weights(float *wu, const float *w, int C, int grid_out, int flip) {
  for (int g = 0; g < C; g++)
    for (int k = 0; k < 9; k++)
      for (int t = 0; t < 3; t++) *wu++ = k3_w(w, C, grid_out, flip, g, t, k);
}

/* xp[t][r][c] = x[t][r - 1][c - 1], zero outside x (3, H, W). */
static void k3_pad(float *xp, const float *x, int H, int W) {
  const size_t S = k3_stride(W);
  for (int t = 0; t < 3; t++) {
    float *p = xp + (size_t)t * (H + 2) * S;
    memset(p, 0, S * sizeof(float));
    memset(p + (size_t)(H + 1) * S, 0, S * sizeof(float));
    for (int r = 0; r < H; r++) {
      float *d = p + (size_t)(r + 1) * S;
      d[0] = 0.0f;
      memcpy(d + 1, x + ((size_t)t * H + r) * W, (size_t)W * sizeof(float));
      memset(d + W + 1, 0, (S - (size_t)W - 1) * sizeof(float));
    }
  }
}

/* grid (C, H, W) += the taps of the bordered image xp, or, with overwrite,
 * grid = them + b (b may be NULL); weights of k3_down_weights; f fetches
 * ahead, a step per grid row. */
CT_FN static void k3_down(float *grid, const float *xp, const float *wd, int C, int H, int W, prefetch *f,
                          int overwrite, const float *b) {
  const size_t plane = (size_t)H * W, S = k3_stride(W), tplane = (size_t)(H + 2) * S;
  for (int g0 = 0; g0 < C; g0 += 6, wd += 27 * 6) {
    float *d[6];
    float bias[6];
    six_channels(d, bias, grid, plane, g0, C, b);
    for (int Y = 0; Y < H; Y++, pf_step(f))
      for (int X = 0; X < W; X += 16) {
        size_t o = (size_t)Y * W + X;
        CT_DIN_LOAD;
        const float *wq = wd;
        for (int t = 0; t < 3; t++)
          for (int ky = 0; ky < 3; ky++) {
            const float *r = xp + t * tplane + (size_t)(Y + ky) * S + X;
            CT_DIN_TAP(_mm256_loadu_ps(r), _mm256_loadu_ps(r + 8));      // kx 0
            CT_DIN_TAP(_mm256_loadu_ps(r + 1), _mm256_loadu_ps(r + 9));  // kx 1
            CT_DIN_TAP(_mm256_loadu_ps(r + 2), _mm256_loadu_ps(r + 10)); // kx 2
          }
        CT_DIN_STORE;
      }
  }
}

/* a{t}{j} += w{t} times v (the j-th vector of the block) for the 3 image channels */
#define K3_FMA3(j)                                                                                   \
  a0##j = _mm256_fmadd_ps(w0, v, a0##j), a1##j = _mm256_fmadd_ps(w1, v, a1##j),                     \
  a2##j = _mm256_fmadd_ps(w2, v, a2##j)

/* Row Y, columns X .. X + 31, of the 3-channel image out (3, H, W) from the
 * grid in (C, H, W), weights wu (k3_up_weights), onto b (may be NULL), or
 * added to out (acc). L / R: the block is the row's first / last: the column
 * before / after the row is read and replaced by the zero padding, so in
 * must have a float before / after every row (k3_up sees to it). */
CT_FN static inline __attribute__((always_inline)) void
k3_block(float *restrict out, const float *restrict in, const float *restrict wu, const float *b, int C, int Y,
         int H, int W, int X, const int L, const int R, int acc) {
  const size_t plane = (size_t)H * W;
  const __m256 z = _mm256_setzero_ps();
  __m256 a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23;
  a00 = a01 = a02 = a03 = _mm256_set1_ps(b ? b[0] : 0.0f);
  a10 = a11 = a12 = a13 = _mm256_set1_ps(b ? b[1] : 0.0f);
  a20 = a21 = a22 = a23 = _mm256_set1_ps(b ? b[2] : 0.0f);
  for (int ky = 0; ky < 3; ky++) {
    int y = Y + ky - 1;
    if (y < 0 || y >= H) continue;
    const float *p = in + (size_t)y * W + X, *wk = wu + 9 * ky;
    for (int g = 0; g < C; g++, p += plane, wk += 27) {
      __m256 w0 = _mm256_broadcast_ss(wk), w1 = _mm256_broadcast_ss(wk + 1), w2 = _mm256_broadcast_ss(wk + 2);
      __m256 v = _mm256_loadu_ps(p - 1); // kx 0: columns X - 1 ..
      if (L) v = _mm256_blend_ps(v, z, 0x01);
      K3_FMA3(0);
      v = _mm256_loadu_ps(p + 7), K3_FMA3(1);
      v = _mm256_loadu_ps(p + 15), K3_FMA3(2);
      v = _mm256_loadu_ps(p + 23), K3_FMA3(3);
      w0 = _mm256_broadcast_ss(wk + 3), w1 = _mm256_broadcast_ss(wk + 4), w2 = _mm256_broadcast_ss(wk + 5);
      v = _mm256_loadu_ps(p), K3_FMA3(0); // kx 1
      v = _mm256_loadu_ps(p + 8), K3_FMA3(1);
      v = _mm256_loadu_ps(p + 16), K3_FMA3(2);
      v = _mm256_loadu_ps(p + 24), K3_FMA3(3);
      w0 = _mm256_broadcast_ss(wk + 6), w1 = _mm256_broadcast_ss(wk + 7), w2 = _mm256_broadcast_ss(wk + 8);
      v = _mm256_loadu_ps(p + 1), K3_FMA3(0); // kx 2: columns X + 1 ..
      v = _mm256_loadu_ps(p + 9), K3_FMA3(1);
      v = _mm256_loadu_ps(p + 17), K3_FMA3(2);
      v = _mm256_loadu_ps(p + 25);
      if (R) v = _mm256_blend_ps(v, z, 0x80);
      K3_FMA3(3);
    }
  }
  float *q = out + (size_t)Y * W + X;
#define K3_OUT(q, a)                                                                                 \
  _mm256_storeu_ps(q, acc ? _mm256_add_ps(_mm256_loadu_ps(q), a) : a)
  K3_OUT(q, a00); K3_OUT(q + 8, a01); K3_OUT(q + 16, a02); K3_OUT(q + 24, a03);
  q += plane;
  K3_OUT(q, a10); K3_OUT(q + 8, a11); K3_OUT(q + 16, a12); K3_OUT(q + 24, a13);
  q += plane;
  K3_OUT(q, a20); K3_OUT(q + 8, a21); K3_OUT(q + 16, a22); K3_OUT(q + 24, a23);
#undef K3_OUT
}
#undef K3_FMA3

/* out (3, H, W) = the grid in (C, H, W) through the taps + b, or out += it
 * (acc; b NULL); next: the next grid image, fetched at the end
 * (prefetch_rows_ahead). */
CT_FN static void k3_image(float *restrict out, const float *restrict in, const float *next,
                           const float *restrict wu, const float *b, int C, int H, int W, int acc) {
  for (int Y = 0; Y < H; Y++) {
    prefetch_rows_ahead(in, next, Y, C, H, W);
    for (int X = 0; X < W; X += 32) {
      int L = X == 0, R = X + 32 == W;
#define K3_BLOCK(l, r) k3_block(out, in, wu, b, C, Y, H, W, X, l, r, acc)
      EDGE_CASES(K3_BLOCK, L, R);
#undef K3_BLOCK
    }
  }
}

/* The up direction for image i of the batch in (B, C, H, W): out (3, H, W)
 * = the taps of in_i + b, or out += them (acc). The edge blocks read a float
 * before and after each row (with_margin). */
CT_FN static void k3_up(float *out, float *copy, const float *in, int i, int B, const float *wu, const float *b,
                        int C, int H, int W, int acc) {
  const size_t img = (size_t)C * H * W;
  k3_image(out, with_margin(copy, in, i, B, img), i + 1 < B ? in + (i + 1) * img : NULL, wu, b, C, H, W, acc);
}

/* dv += the tap sums of one image pair, grid (C, H, W) and the bordered
 * 3-channel image xp, as vectors: dv(g, t, k) += sum over pixels of
 * grid[g][y][x] * xp[t][y + ky][x + kx]; f fetches ahead. */
CT_FN static void k3_dw(float *dv, const float *xp, const float *grid, int C, int H, int W, prefetch *f) {
  const size_t plane = (size_t)H * W, S = k3_stride(W), tplane = (size_t)(H + 2) * S;
  for (int g0 = 0; g0 < C; g0 += 4) {
    int c0 = g0, c1 = g0 + 1 < C ? g0 + 1 : C - 1, c2 = g0 + 2 < C ? g0 + 2 : C - 1, c3 = g0 + 3 < C ? g0 + 3 : C - 1;
    const float *x0p = grid + c0 * plane, *x1p = grid + c1 * plane, *x2p = grid + c2 * plane, *x3p = grid + c3 * plane;
    for (int t = 0; t < 3; t++)
      for (int ky = 0; ky < 3; ky++, pf_step(f)) {
#define K3_DV(c) (dv + (((size_t)(c) * 3 + t) * 9 + 3 * ky) * 8)
        float *v0 = K3_DV(c0), *v1 = K3_DV(c1), *v2 = K3_DV(c2), *v3 = K3_DV(c3);
#undef K3_DV
        __m256 a00 = _mm256_load_ps(v0), a01 = _mm256_load_ps(v0 + 8), a02 = _mm256_load_ps(v0 + 16);
        __m256 a10 = _mm256_load_ps(v1), a11 = _mm256_load_ps(v1 + 8), a12 = _mm256_load_ps(v1 + 16);
        __m256 a20 = _mm256_load_ps(v2), a21 = _mm256_load_ps(v2 + 8), a22 = _mm256_load_ps(v2 + 16);
        __m256 a30 = _mm256_load_ps(v3), a31 = _mm256_load_ps(v3 + 8), a32 = _mm256_load_ps(v3 + 16);
        for (int Y = 0; Y < H; Y++) {
          const float *r = xp + t * tplane + (size_t)(Y + ky) * S;
          size_t row = (size_t)Y * W;
          for (int X = 0; X < W; X += 8) {
            __m256 t0 = _mm256_loadu_ps(r + X), t1 = _mm256_loadu_ps(r + X + 1), t2 = _mm256_loadu_ps(r + X + 2), x;
            x = _mm256_loadu_ps(x0p + row + X);
            a00 = _mm256_fmadd_ps(x, t0, a00), a01 = _mm256_fmadd_ps(x, t1, a01), a02 = _mm256_fmadd_ps(x, t2, a02);
            x = _mm256_loadu_ps(x1p + row + X);
            a10 = _mm256_fmadd_ps(x, t0, a10), a11 = _mm256_fmadd_ps(x, t1, a11), a12 = _mm256_fmadd_ps(x, t2, a12);
            x = _mm256_loadu_ps(x2p + row + X);
            a20 = _mm256_fmadd_ps(x, t0, a20), a21 = _mm256_fmadd_ps(x, t1, a21), a22 = _mm256_fmadd_ps(x, t2, a22);
            x = _mm256_loadu_ps(x3p + row + X);
            a30 = _mm256_fmadd_ps(x, t0, a30), a31 = _mm256_fmadd_ps(x, t1, a31), a32 = _mm256_fmadd_ps(x, t2, a32);
          }
        }
        /* a repeated last channel stores the same sums again */
        _mm256_store_ps(v0, a00), _mm256_store_ps(v0 + 8, a01), _mm256_store_ps(v0 + 16, a02);
        _mm256_store_ps(v1, a10), _mm256_store_ps(v1 + 8, a11), _mm256_store_ps(v1 + 16, a12);
        _mm256_store_ps(v2, a20), _mm256_store_ps(v2 + 8, a21), _mm256_store_ps(v2 + 16, a22);
        _mm256_store_ps(v3, a30), _mm256_store_ps(v3 + 8, a31), _mm256_store_ps(v3 + 16, a32);
      }
  }
}

/* dw += the lanes of the vector sums, in lane order: dw (C, 3, 3, 3) of the
 * conv 3 -> C (grid_out), or (3, C, 3, 3) of the conv C -> 3, whose tap sums
 * are of the flipped kernel. */
static void k3_dw_finish(float *dw, const float *dv, int C, int grid_out) {
  for (int g = 0; g < C; g++)
    for (int t = 0; t < 3; t++)
      for (int k = 0; k < 9; k++) {
        float s = lanes_sum(dv + (((size_t)g * 3 + t) * 9 + k) * 8);
        dw[grid_out ? ((size_t)g * 3 + t) * 9 + k : ((size_t)t * C + g) * 9 + 8 - k] += s;
      }
}
#undef CT_DIN_TAP
#undef EDGE_CASES
#undef CT_DIN_LOAD1
#undef CT_DIN_LOAD
#undef CT_DIN_STORE1
#undef CT_DIN_STORE
#endif

/* col rows (C*K*K) of OH*OW floats each, ldc apart, from img (C, H, W);
 * overwrites them. P is (s, s, PH, PW) scratch. */
static void im2col(float *restrict col, size_t ldc, const float *restrict img, float *restrict P,
                   const geom *g, prefetch *f) {
  int s = g->s, K = g->K, OH = g->OH, OW = g->OW, PW = g->PW;
  size_t plane = (size_t)g->PH * PW;
#if CONV_SSE2
  if (geom_s2k4(g)) {
#if CONV_AVX2
    if (s2k4_avx2(g))
      im2col_s2k4_avx2(col, ldc, img, g, f);
    else
#endif
      im2col_s2k4(col, ldc, img, g, f);
    return;
  }
#endif
  phases_clear(P, g);
  for (int c = 0; c < g->C; c++) {
    phases_from_image(P, img + (size_t)c * g->H * g->W, g);
    for (int ki = 0; ki < K; ki++)
      for (int kj = 0; kj < K; kj++) {
        const float *src = P + (size_t)((ki % s) * s + kj % s) * plane + (size_t)(ki / s) * PW + kj / s;
        float *dst = col + (size_t)((c * K + ki) * K + kj) * ldc; // (OH, OW)
        copy_block(dst, src, OH, OW, PW);
        pf_step(f);
      }
  }
}

/* The adjoint of im2col: img (C, H, W) += col rows scattered back; with
 * overwrite 1, img = that scatter + b (C) instead (b may be NULL). */
static void col2im(float *restrict img, const float *restrict col, size_t ldc, float *restrict P,
                   const geom *g, int overwrite, const float *b, prefetch *f) {
  int s = g->s, K = g->K, OH = g->OH, OW = g->OW, PW = g->PW;
  size_t plane = (size_t)g->PH * PW;
#if CONV_SSE2
  if (geom_s2k4(g)) {
#if CONV_AVX2
    if (s2k4_avx2(g))
      col2im_s2k4_avx2(img, col, ldc, g, overwrite, b, f);
    else
#endif
      col2im_s2k4(img, col, ldc, g, overwrite, b, f);
    return;
  }
#endif
  for (int c = 0; c < g->C; c++) {
    memset(P, 0, geom_plane_floats(g) * sizeof(float)); // accumulated into
    for (int ki = 0; ki < K; ki++)
      for (int kj = 0; kj < K; kj++) {
        float *dst = P + (size_t)((ki % s) * s + kj % s) * plane + (size_t)(ki / s) * PW + kj / s;
        const float *src = col + (size_t)((c * K + ki) * K + kj) * ldc; // (OH, OW)
        add_block(dst, src, OH, OW, PW);
        pf_step(f);
      }
    image_from_phases(img + (size_t)c * g->H * g->W, P, g, overwrite, b ? b[c] : 0.0f);
  }
}

/* ---- batching copies (chunked path only) ---- */

/* dst (C, G*N) = src (G, C, N): batch-major to channel-major for one GEMM. */
static void gather(float *restrict dst, const float *restrict src, int G, int C, size_t N) {
  for (int g = 0; g < G; g++)
    for (int c = 0; c < C; c++)
      memcpy(dst + ((size_t)c * G + g) * N, src + ((size_t)g * C + c) * N, N * sizeof(float));
}

/* dst (G, C, N) = src (C, G*N) + b (C) when accumulate is 0 (b may be NULL),
 * dst += src when accumulate is 1 (b unused). */
static void scatter(float *restrict dst, const float *restrict src, const float *b, int accumulate,
                    int G, int C, size_t N) {
  for (int g = 0; g < G; g++)
    for (int c = 0; c < C; c++) {
      float *d = dst + ((size_t)g * C + c) * N;
      const float *s = src + ((size_t)c * G + g) * N;
      if (accumulate) {
        add_row(d, s, (int)N);
      } else {
        copy_row_plus(d, s, b ? b[c] : 0.0f, (int)N);
      }
    }
}

/* GEMMs that overwrite C never use beta = 0 here: OpenBLAS 0.3.21 runs it as
 * a separate pass zeroing C (sgemm_beta) that took several times as long as
 * memset on this machine (6-8% of a small conv's time). C is zeroed (or
 * filled with the bias) first and the GEMM adds with beta = 1: C = 0 + A B,
 * the same bits. */
static void zero_floats(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

/* Outputs of at least this many bytes are larger than what the caches keep
 * for the next layer anyway: they are written with non-temporal stores (see
 * the top). Measured with bench/bench_nn.c at 288 images: the 3 -> 32
 * stride-2 conv's forward (9 MB out) ~8% faster, the 3x3 one (37 MB) ~5%. */
#define CONV_STREAM_BYTES ((size_t)4 << 20)

/* d (n) = s (n) + v with non-temporal stores where d is 16-byte aligned. */
static void stream_row_plus(float *restrict d, const float *restrict s, float v, int n) {
  int i = 0;
#if CONV_SSE2
  for (; i < n && ((uintptr_t)(d + i) & 15); i++) d[i] = s[i] + v;
  __m128 vv = _mm_set1_ps(v);
  for (; i + 4 <= n; i += 4) _mm_stream_ps(d + i, _mm_add_ps(_mm_loadu_ps(s + i), vv));
#endif
  for (; i < n; i++) d[i] = s[i] + v;
}

/* Orders the non-temporal stores before whatever follows (another thread
 * may read the output next). */
static void stream_done(void) {
#if CONV_SSE2
  _mm_sfence();
#endif
}

/* out (G, C, N) = b (C) broadcast, so that a GEMM with beta = 1 adds onto it. */
static void fill_bias(float *out, const float *b, int G, int C, size_t N) {
  for (int g = 0; g < G; g++)
    for (int c = 0; c < C; c++) {
      fill_row(out + ((size_t)g * C + c) * N, b[c], (int)N);
    }
}

/* The bias gradient db (C) += dout (B, C, N) summed over batch and pixels. A
 * training batch sums ~1e6 terms per channel, so rows (N <= a few thousand)
 * are summed in float and the row sums in double. Eight float partial sums
 * per row, because one running sum is bound by add latency. It is summed one
 * image at a time, inside the loop that runs the GEMMs on that image, so
 * dout is read from memory once instead of twice (a separate pass was 6-9% of
 * a small conv's backward); the per-channel double sums live in the workspace
 * (2 floats each, through memcpy since it is only float-aligned) and see the
 * row sums in batch order, as a channel-by-channel pass would. */
static float bias_row_sum(const float *d, size_t N) {
  float acc[8] = {0};
  size_t i = 0;
#if CONV_SSE2
  __m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps(); // acc[0..3], acc[4..7]
  for (; i + 8 <= N; i += 8) {
    a0 = _mm_add_ps(a0, _mm_loadu_ps(d + i));
    a1 = _mm_add_ps(a1, _mm_loadu_ps(d + i + 4));
  }
  _mm_storeu_ps(acc, a0);
  _mm_storeu_ps(acc + 4, a1);
#else
  for (; i + 8 <= N; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += d[i + j];
#endif
  float row = 0;
  for (; i < N; i++) row += d[i];
  for (int j = 0; j < 8; j++) row += acc[j];
  return row;
}

/* sums (2*C floats holding C doubles) = 0 */
static void bias_sums_clear(float *sums, int C) { memset(sums, 0, (size_t)C * sizeof(double)); }

/* sums += the row sums of one image's dout (C, N) */
static void bias_sums_add(float *sums, const float *dout, int C, size_t N) {
  for (int c = 0; c < C; c++) {
    double s;
    memcpy(&s, sums + 2 * c, sizeof s);
    s += bias_row_sum(dout + (size_t)c * N, N);
    memcpy(sums + 2 * c, &s, sizeof s);
  }
}

/* db (C) += sums */
static void bias_sums_finish(float *db, const float *sums, int C) {
  for (int c = 0; c < C; c++) {
    double s;
    memcpy(&s, sums + 2 * c, sizeof s);
    db[c] += (float)s;
  }
}

static void check_shapes(int B, int IC, int H, int W, int OC, int K, int stride, int pad) {
  assert(B > 0 && IC > 0 && H > 0 && W > 0 && OC > 0);
  assert(K > 0 && stride > 0 && pad >= 0);
  (void)B, (void)IC, (void)H, (void)W, (void)OC, (void)K, (void)stride, (void)pad;
}

/* Workspace layout shared by both layers: col (CKK, G*N), then, when G > 1,
 * the gathered operand (R, G*N), then the phase planes of one channel, then
 * the bias sums (2*NB floats). */
static size_t workspace_floats(int CKK, int R, size_t N, int G, const geom *g, int NB) {
  size_t n = (size_t)CKK * G * N;
  if (G > 1) n += (size_t)R * G * N;
  return n + geom_scratch_floats(g) + 2 * (size_t)NB;
}

/* ---- conv2d ---- */

/* The input gradient of a stride-1 conv is itself a stride-1 conv: of dout
 * (OC, OH, OW) with the kernel flipped and in/out channels swapped,
 * wf[ic][oc][K-1-ki][K-1-kj] = w[oc][ic][ki][kj], and padding K-1-pad, which
 * lands on the (H, W) grid again. Run that way it is im2col of dout (OC*K*K
 * rows) and a GEMM (IC, H*W, OC*K*K) adding straight into din, instead of a
 * GEMM into dcol (IC*K*K rows, inner dimension only OC) and col2im. With fewer
 * output than input channels (the decoder's last conv: 32 -> 3) that is much
 * less memory traffic and a far better GEMM shape. The flops are the same when
 * the conv keeps the image size (pad = (K-1)/2, GTMSM's 3x3 layers), and more
 * by H*W / (OH*OW) when it shrinks it (the padding's zeros get multiplied). */
static int conv2d_flip_backward(int IC, int OC, int K, int stride, int pad) {
  return stride == 1 && pad <= K - 1 && OC <= IC;
}

/* Where each piece of a conv2d's workspace lives, from the shapes alone, so
 * conv2d_workspace_floats and the layers always agree. */
typedef struct {
  int OH, OW, N, G, CKK, flip;
  geom gm;                        // in (IC, H, W) on the grid (OH, OW)
  geom gf;                        // dout (OC, OH, OW) on the grid (H, W), when flip
  size_t col, tmp, P, sums, wf;   // offsets in floats
  size_t total;
} conv2d_plan;

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static conv2d_plan conv2d_plan_make(int B, int IC, int H, int W, int OC, int K, int stride,
                                    int pad) {
  conv2d_plan q;
  q.OH = conv2d_out_size(H, K, stride, pad), q.OW = conv2d_out_size(W, K, stride, pad);
  q.N = q.OH * q.OW, q.G = conv_chunk(B, q.N), q.CKK = IC * K * K;
  q.flip = conv2d_flip_backward(IC, OC, K, stride, pad);
  q.gm = geom_make(IC, H, W, K, stride, pad, q.OH, q.OW);
  q.gf = geom_make(OC, q.OH, q.OW, K, 1, K - 1 - pad, H, W);
  size_t ncol = (size_t)q.CKK * q.G * q.N, nP = geom_scratch_floats(&q.gm);
  if (q.flip) {
    ncol = max_size(ncol, (size_t)OC * K * K * H * W); // im2col(dout) of one image
    nP = max_size(nP, geom_scratch_floats(&q.gf));
  }
  q.col = 0;                                               // (CKK, G*N), or (OC*K*K, H*W)
  q.tmp = q.col + ncol;                                    // (OC, G*N)
  q.P = q.tmp + (size_t)OC * q.G * q.N;                    // phase planes
  q.sums = q.P + nP;                                       // (OC) doubles
  q.wf = q.sums + 2 * (size_t)OC;                          // (IC, OC, K, K), when flip
  q.total = q.wf + (q.flip ? (size_t)IC * OC * K * K : 0);
  return q;
}

size_t conv2d_workspace_floats(int B, int IC, int H, int W, int OC, int K, int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  size_t n = conv2d_plan_make(B, IC, H, W, OC, K, stride, pad).total;
  if (k3_shape(IC, OC, K, stride, pad, W)) n = max_size(n, k3_workspace_floats(IC == 3 ? OC : IC, H, W));
  return cd_shape(IC, K, stride, pad, H, W) ? max_size(n, ct_workspace_floats(OC, H / 2, W / 2)) : n;
}

void conv2d_forward(float *out, float *col_ws, const float *in, const float *w, const float *b,
                    int B, int IC, int H, int W, int OC, int K, int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  conv2d_plan q = conv2d_plan_make(B, IC, H, W, OC, K, stride, pad);
  assert(q.OH > 0 && q.OW > 0);
  int N = q.N, G = q.G, CKK = q.CKK;
  float *col = col_ws + q.col; // (CKK, G*N)
  float *tmp = col_ws + q.tmp; // (OC, G*N): the GEMM's result when G > 1 or streamed
  float *P = col_ws + q.P;     // (s, s, PH, PW)
  size_t in_img = (size_t)IC * H * W, out_img = (size_t)OC * N;
#if CONV_AVX2
  if (cd_direct(IC, K, stride, pad, H, W)) { // ct_down: the split image to the grid, onto the bias
    ct_ws c = ct_parts(col_ws, OC, H / 2, W / 2);
    ct_down_weights(c.wr, w, OC);
    for (int i = 0; i < B; i++) {
      ct_split(c.pl, in + i * in_img, H / 2, W / 2);
      ct_down(out + i * out_img, c.pl, c.wr, OC, H / 2, W / 2, NULL, 1, b);
    }
    return;
  }
  if (k3_direct(IC, OC, K, stride, pad, W)) {
    if (IC == 3) { // k3_down: the bordered image to the grid, onto the bias
      k3_ws c = k3_parts(col_ws, OC, H, W);
      k3_down_weights(c.wd, w, OC, 1, 0);
      for (int i = 0; i < B; i++) {
        k3_pad(c.xp, in + i * in_img, H, W);
        k3_down(out + i * out_img, c.xp, c.wd, OC, H, W, NULL, 1, b);
      }
    } else { // k3_up: the grid to the 3 channels
      k3_ws c = k3_parts(col_ws, IC, H, W);
      k3_up_weights(c.wu, w, IC, 0, 0);
      for (int i = 0; i < B; i++) k3_up(out + i * out_img, c.copy, in, i, B, c.wu, b, IC, H, W, 0);
    }
    return;
  }
#endif
  int stream = (size_t)B * out_img * sizeof(float) >= CONV_STREAM_BYTES;
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G, gN = g * N, g1 = next_chunk(B, b0 + g, G);
    float *o = out + (size_t)b0 * out_img; // (g, OC, N)
    prefetch f = {0}; // while the copies run: the next chunk's in
    pf_add(&f, in + (b0 + g) * in_img, g1 * in_img);
    pf_spread(&f, g * CKK);
    for (int i = 0; i < g; i++)
      im2col(col + (size_t)i * N, (size_t)gN, in + (b0 + i) * in_img, P, &q.gm, &f);
    if (G == 1 && stream) { // into tmp, then streamed to out with the bias
      zero_floats(tmp, out_img);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, N, CKK, 1.0f, w, CKK, col, N,
                  1.0f, tmp, N);
      for (int c = 0; c < OC; c++)
        stream_row_plus(o + (size_t)c * N, tmp + (size_t)c * N, b ? b[c] : 0.0f, N);
    } else if (G == 1) { // straight into out, onto the bias
      if (b)
        fill_bias(o, b, 1, OC, (size_t)N);
      else
        zero_floats(o, out_img);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, N, CKK, 1.0f, w, CKK, col, N,
                  1.0f, o, N);
    } else {
      zero_floats(tmp, (size_t)OC * gN);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, gN, CKK, 1.0f, w, CKK, col, gN,
                  1.0f, tmp, gN);
      scatter(o, tmp, b, 0, g, OC, (size_t)N);
    }
  }
  if (stream) stream_done();
}

void conv2d_backward(float *din, float *dw, float *db, float *col_ws, const float *dout,
                     const float *in, const float *w, int B, int IC, int H, int W, int OC, int K,
                     int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  conv2d_plan q = conv2d_plan_make(B, IC, H, W, OC, K, stride, pad);
  assert(q.OH > 0 && q.OW > 0);
  int N = q.N, G = q.G, CKK = q.CKK, OKK = OC * K * K, HW = H * W;
  float *col = col_ws + q.col;   // (CKK, G*N): im2col(in), then dcol or im2col(dout)
  float *tmp = col_ws + q.tmp;   // (OC, G*N): dout gathered, when G > 1
  float *P = col_ws + q.P;       // (s, s, PH, PW)
  float *sums = col_ws + q.sums; // (OC) doubles
  float *wf = col_ws + q.wf;     // (IC, OC, K, K) flipped, when q.flip
  size_t in_img = (size_t)IC * HW, out_img = (size_t)OC * N;
#if CONV_AVX2
  if (cd_direct(IC, K, stride, pad, H, W)) { // din as ct_up accumulating, dw as ct_dw with the roles swapped
    int h = H / 2, hw = W / 2;
    ct_ws c = ct_parts(col_ws, OC, h, hw);
    sums = c.sums;
    if (dw) memset(c.dwv, 0, (size_t)OC * 48 * 8 * sizeof(float));
    if (db) bias_sums_clear(sums, OC);
    for (int i = 0; i < B; i++) {
      const float *d = dout + i * out_img;
      if (db) bias_sums_add(sums, d, OC, (size_t)N);
      if (din) ct_up(din + i * in_img, c.copy, dout, i, B, w, NULL, OC, h, hw, 1);
      if (dw) {
        prefetch f = {0}; // the next image's dout, while this one's run
        pf_add(&f, i + 1 < B ? d + out_img : NULL, out_img);
        pf_spread(&f, (OC + 2) / 3 * 12);
        ct_split(c.pl, in + i * in_img, h, hw);
        ct_dw(c.dwv, c.pl, d, OC, h, hw, &f);
      }
    }
    if (dw) ct_dw_finish(dw, &c, OC);
    if (db) bias_sums_finish(db, sums, OC);
    return;
  }
  if (k3_direct(IC, OC, K, stride, pad, W)) {
    /* the grid is dout and the 3 channels in (conv 3 -> C), or the other way round */
    const int grid_out = IC == 3, C = grid_out ? OC : IC;
    k3_ws c = k3_parts(col_ws, C, H, W);
    if (dw) memset(c.dv, 0, (size_t)C * 27 * 8 * sizeof(float));
    if (db) bias_sums_clear(c.sums, OC);
    if (din && grid_out) k3_up_weights(c.wu, w, C, 1, 1);
    if (din && !grid_out) k3_down_weights(c.wd, w, C, 0, 1);
    for (int i = 0; i < B; i++) {
      const float *d = dout + i * out_img, *x = in + i * in_img;
      if (db) bias_sums_add(c.sums, d, OC, (size_t)N);
      if (!din && !dw) continue;
      prefetch f = {0}; // the next image's grid (and din), while this one's run
      int n1 = i + 1 < B;
      pf_add(&f, n1 ? (grid_out ? d + out_img : x + in_img) : NULL, n1 * (size_t)C * HW);
      pf_add(&f, din && !grid_out && n1 ? din + (i + 1) * in_img : NULL, n1 * in_img);
      pf_spread(&f, (din && !grid_out ? (C + 5) / 6 * H : 0) + (dw ? (C + 3) / 4 * 9 : 0));
      if (grid_out) {
        if (din) k3_up(din + i * in_img, c.copy, dout, i, B, c.wu, NULL, C, H, W, 1);
        if (dw) k3_pad(c.xp, x, H, W), k3_dw(c.dv, c.xp, d, C, H, W, &f);
      } else {
        k3_pad(c.xp, d, H, W);
        if (din) k3_down(din + i * in_img, c.xp, c.wd, C, H, W, &f, 0, NULL);
        if (dw) k3_dw(c.dv, c.xp, x, C, H, W, &f);
      }
    }
    if (dw) k3_dw_finish(dw, c.dv, C, grid_out);
    if (db) bias_sums_finish(db, c.sums, OC);
    return;
  }
#endif
  if (db) bias_sums_clear(sums, OC);
  if (din && q.flip)
    for (int o = 0; o < OC; o++)
      for (int i = 0; i < IC; i++)
        for (int k = 0; k < K * K; k++) // (ki, kj) -> (K-1-ki, K-1-kj) is k -> K*K-1-k
          wf[((size_t)i * OC + o) * K * K + (K * K - 1 - k)] = w[((size_t)o * IC + i) * K * K + k];
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G, gN = g * N, g1 = next_chunk(B, b0 + g, G);
    const float *d = dout + (size_t)b0 * out_img; // (OC, gN) as the GEMMs see it
    if (db)
      for (int i = 0; i < g; i++) bias_sums_add(sums, d + i * out_img, OC, (size_t)N);
    if (!din && !dw) continue;
    if (G > 1) {
      gather(tmp, d, g, OC, (size_t)N);
      d = tmp;
    }
    /* while the copies run: this chunk's din, the next chunk's dout and in */
    prefetch f = {0};
    pf_add(&f, din ? din + (size_t)b0 * in_img : NULL, g * in_img);
    pf_add(&f, dout + (b0 + g) * out_img, g1 * out_img);
    pf_add(&f, in + (b0 + g) * in_img, g1 * in_img);
    pf_spread(&f, g * ((dw ? CKK : 0) + (din ? (q.flip ? OKK : CKK) : 0)));
    if (dw) { // (OC, CKK) += (OC, gN) @ (gN, CKK)
      for (int i = 0; i < g; i++)
        im2col(col + (size_t)i * N, (size_t)gN, in + (b0 + i) * in_img, P, &q.gm, &f);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, CKK, gN, 1.0f, d, gN, col, gN, 1.0f,
                  dw, CKK);
    }
    if (din && q.flip) { // per image: din (IC, HW) += wf (IC, OKK) @ im2col(dout) (OKK, HW)
      for (int i = 0; i < g; i++) {
        im2col(col, (size_t)HW, dout + (b0 + i) * out_img, P, &q.gf, &f);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, IC, HW, OKK, 1.0f, wf, OKK, col, HW,
                    1.0f, din + (b0 + i) * in_img, HW);
      }
    } else if (din) { // dcol (CKK, gN) = w^T (CKK, OC) @ (OC, gN); col is free again
      zero_floats(col, (size_t)CKK * gN); // then beta = 1, see zero_floats
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, gN, OC, 1.0f, w, CKK, d, gN, 1.0f,
                  col, gN);
      for (int i = 0; i < g; i++)
        col2im(din + (b0 + i) * in_img, col + (size_t)i * N, (size_t)gN, P, &q.gm, 0, NULL, &f);
    }
  }
  if (db) bias_sums_finish(db, sums, OC);
}

/* ---- transposed conv2d: the conv above run from the output (OC, OH, OW) to the input grid (H, W) ---- */

int conv2d_direct(int IC, int OC, int K, int stride, int pad, int H, int W) {
#if CONV_AVX2
  return cd_direct(IC, K, stride, pad, H, W) || k3_direct(IC, OC, K, stride, pad, W);
#else
  (void)IC, (void)OC, (void)K, (void)stride, (void)pad, (void)H, (void)W;
  return 0;
#endif
}

int conv_transpose2d_direct(int OC, int K, int stride, int pad, int W) {
#if CONV_AVX2
  return ct_direct(OC, K, stride, pad, W);
#else
  (void)OC, (void)K, (void)stride, (void)pad, (void)W;
  return 0;
#endif
}

size_t conv_transpose2d_workspace_floats(int B, int IC, int H, int W, int OC, int K, int stride,
                                         int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv_transpose2d_out_size(H, K, stride, pad);
  int OW = conv_transpose2d_out_size(W, K, stride, pad);
  geom g = geom_make(OC, OH, OW, K, stride, pad, H, W);
  size_t N = (size_t)H * W;
  size_t n = workspace_floats(OC * K * K, IC, N, conv_chunk(B, (int)N), &g, OC);
  return ct_shape(OC, K, stride, pad, W) ? max_size(n, ct_workspace_floats(IC, H, W)) : n;
}

void conv_transpose2d_forward(float *out, float *col_ws, const float *in, const float *w,
                              const float *b, int B, int IC, int H, int W, int OC, int K,
                              int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv_transpose2d_out_size(H, K, stride, pad);
  int OW = conv_transpose2d_out_size(W, K, stride, pad);
  assert(OH > 0 && OW > 0);
  int N = H * W, G = conv_chunk(B, N), CKK = OC * K * K;
  geom gm = geom_make(OC, OH, OW, K, stride, pad, H, W); // the output image, read on the input grid
#if CONV_AVX2
  if (ct_direct(OC, K, stride, pad, W)) {
    ct_ws c = ct_parts(col_ws, IC, H, W);
    for (int i = 0; i < B; i++) ct_up(out + i * (size_t)OC * OH * OW, c.copy, in, i, B, w, b, IC, H, W, 0);
    return;
  }
#endif
  float *col = col_ws;                                   // (CKK, G*N)
  float *tmp = col + (size_t)CKK * G * N;                // (IC, G*N): in gathered, when G > 1
  float *P = tmp + (G > 1 ? (size_t)IC * G * N : 0);     // (s, s, PH, PW)
  size_t in_img = (size_t)IC * N, out_img = (size_t)OC * OH * OW;
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G, gN = g * N, g1 = next_chunk(B, b0 + g, G);
    const float *x = in + (size_t)b0 * in_img; // (IC, gN) as the GEMM sees it
    if (G > 1) {
      gather(tmp, x, g, IC, (size_t)N);
      x = tmp;
    }
    zero_floats(col, (size_t)CKK * gN); // then beta = 1, see zero_floats
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, gN, IC, 1.0f, w, CKK, x, gN, 1.0f,
                col, gN);
    prefetch f = {0}; // while the copies run: the next chunk's in and out
    pf_add(&f, in + (b0 + g) * in_img, g1 * in_img);
    pf_add(&f, out + (b0 + g) * out_img, g1 * out_img);
    pf_spread(&f, g * CKK);
    for (int i = 0; i < g; i++) // overwrites out with the scatter plus the bias
      col2im(out + (b0 + i) * out_img, col + (size_t)i * N, (size_t)gN, P, &gm, 1, b, &f);
  }
}

void conv_transpose2d_backward(float *din, float *dw, float *db, float *col_ws, const float *dout,
                               const float *in, const float *w, int B, int IC, int H, int W,
                               int OC, int K, int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv_transpose2d_out_size(H, K, stride, pad);
  int OW = conv_transpose2d_out_size(W, K, stride, pad);
  assert(OH > 0 && OW > 0);
  int N = H * W, G = conv_chunk(B, N), CKK = OC * K * K;
  size_t ON = (size_t)OH * OW;
  geom gm = geom_make(OC, OH, OW, K, stride, pad, H, W);
  float *col = col_ws;                               // (CKK, G*N): im2col(dout)
  float *tmp = col + (size_t)CKK * G * N;            // (IC, G*N): in gathered, then din, when G > 1
  float *P = tmp + (G > 1 ? (size_t)IC * G * N : 0); // (s, s, PH, PW)
  float *sums = P + geom_scratch_floats(&gm);        // (OC) doubles
  size_t in_img = (size_t)IC * N, out_img = (size_t)OC * ON;
#if CONV_AVX2
  if (ct_direct(OC, K, stride, pad, W)) {
    ct_ws c = ct_parts(col_ws, IC, H, W);
    sums = c.sums;
    if (dw) memset(c.dwv, 0, (size_t)IC * 48 * 8 * sizeof(float));
    if (din) ct_down_weights(c.wr, w, IC);
    if (db) bias_sums_clear(sums, OC);
    for (int i = 0; i < B; i++) {
      const float *d = dout + i * out_img;
      if (db) bias_sums_add(sums, d, OC, ON);
      if (!din && !dw) continue;
      prefetch f = {0}; // the next image's din and in, while this one's run
      int n1 = i + 1 < B;
      pf_add(&f, din ? din + (i + 1) * in_img : NULL, n1 * in_img);
      pf_add(&f, dw ? in + (i + 1) * in_img : NULL, n1 * in_img);
      pf_spread(&f, (din ? ((IC + 5) / 6) * H : 0) + (dw ? ((IC + 2) / 3) * 12 : 0));
      ct_split(c.pl, d, H, W);
      if (din) ct_down(din + i * in_img, c.pl, c.wr, IC, H, W, &f, 0, NULL);
      if (dw) ct_dw(c.dwv, c.pl, in + i * in_img, IC, H, W, &f);
    }
    if (dw) ct_dw_finish(dw, &c, IC);
    if (db) bias_sums_finish(db, sums, OC);
    return;
  }
#endif
  if (db) bias_sums_clear(sums, OC);
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G, gN = g * N, g1 = next_chunk(B, b0 + g, G);
    if (db)
      for (int i = 0; i < g; i++) bias_sums_add(sums, dout + (b0 + i) * out_img, OC, ON);
    if (!din && !dw) continue;
    prefetch f = {0}; // while the copies run: this chunk's in and din, the next chunk's dout
    pf_add(&f, dw ? in + (size_t)b0 * in_img : NULL, g * in_img);
    pf_add(&f, din ? din + (size_t)b0 * in_img : NULL, g * in_img);
    pf_add(&f, dout + (b0 + g) * out_img, g1 * out_img);
    pf_spread(&f, g * CKK);
    for (int i = 0; i < g; i++)
      im2col(col + (size_t)i * N, (size_t)gN, dout + (b0 + i) * out_img, P, &gm, &f);
    if (dw) { // (IC, CKK) += (IC, gN) @ (gN, CKK)
      const float *x = in + (size_t)b0 * in_img;
      if (G > 1) {
        gather(tmp, x, g, IC, (size_t)N);
        x = tmp;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, IC, CKK, gN, 1.0f, x, gN, col, gN, 1.0f,
                  dw, CKK);
    }
    if (din) { // (IC, gN) = w (IC, CKK) @ (CKK, gN), added into din (g, IC, H, W)
      if (G == 1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, IC, N, CKK, 1.0f, w, CKK, col, N,
                    1.0f, din + (size_t)b0 * in_img, N);
      } else {
        zero_floats(tmp, (size_t)IC * gN);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, IC, gN, CKK, 1.0f, w, CKK, col, gN,
                    1.0f, tmp, gN);
        scatter(din + (size_t)b0 * in_img, tmp, NULL, 1, g, IC, (size_t)N);
      }
    }
  }
  if (db) bias_sums_finish(db, sums, OC);
}
