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
 * workspace size helpers and the layers always agree on it. Every reduction
 * (GEMM inner sums, dw over images, col2im adds, the bias sums) runs in an
 * order fixed by the shapes alone. */
#include "nn/conv.h"

#include <assert.h>
#include <cblas.h>
#include <string.h>

/* Columns per GEMM that batching aims for. Measured with bench/bench_nn.c at
 * one thread: grids of 256 pixels (16x16) run alone as fast as in chunks of
 * 2048 columns; 8x8 grids alone lose ~15% of GEMM speed, so they are chunked. */
#define CONV_GEMM_COLS 256

/* Images per GEMM for a batch of B images with N output (grid) pixels each. */
static int conv_chunk(int B, int N) {
  int G = (CONV_GEMM_COLS + N - 1) / N;
  if (G > B) G = B;
  return G < 1 ? 1 : G;
}

/* Smallest o >= 0 with o * stride >= v (v may be negative). */
static int first_at_least(int v, int stride) { return v <= 0 ? 0 : (v + stride - 1) / stride; }

/* Range [lo, hi) of positions o in [0, n) whose coordinate o*stride + off falls in [0, S). */
static void valid_range(int *lo, int *hi, int S, int n, int off, int stride) {
  int a = first_at_least(-off, stride), b = first_at_least(S - off, stride);
  if (a > n) a = n;
  if (b > n) b = n;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

/* ---- phase planes ---- */

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

/* The 8-float blocks let GCC vectorise at -O2 (its cheap cost model needs a
 * known trip count); restrict, because the buffers never overlap. */
static inline void copy_floats(float *restrict d, const float *restrict s, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) d[i + j] = s[i + j];
  for (; i < n; i++) d[i] = s[i];
}

static inline void add_floats(float *restrict d, const float *restrict s, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) d[i + j] += s[i + j];
  for (; i < n; i++) d[i] += s[i];
}

/* P (s, s, PH, PW) = phases of the zero-padded img (H, W); overwrites P. */
static void phases_from_image(float *restrict P, const float *restrict img, const geom *g) {
  int s = g->s, PH = g->PH, PW = g->PW, W = g->W;
  size_t plane = (size_t)PH * PW;
  for (int pi = 0; pi < s; pi++)
    for (int y = 0; y < PH; y++) {
      int r = y * s + pi - g->p; // image row
      for (int pj = 0; pj < s; pj++) {
        float *d = P + (size_t)(pi * s + pj) * plane + (size_t)y * PW; // (PW)
        if (r < 0 || r >= g->H) {
          memset(d, 0, (size_t)PW * sizeof(float));
          continue;
        }
        const float *src = img + (size_t)r * W;
        int lo, hi, off = pj - g->p;
        valid_range(&lo, &hi, W, PW, off, s);
        for (int x = 0; x < lo; x++) d[x] = 0.0f;
        if (s == 1)
          copy_floats(d + lo, src + lo + off, hi - lo);
        else
          for (int x = lo; x < hi; x++) d[x] = src[x * s + off];
        for (int x = hi; x < PW; x++) d[x] = 0.0f;
      }
    }
}

/* img (H, W) += phases P (s, s, PH, PW), or img = P + bias when overwrite is 1
 * (the padding positions of P are dropped). */
static void image_from_phases(float *restrict img, const float *restrict P, const geom *g,
                              int overwrite, float bias) {
  int s = g->s, PW = g->PW, W = g->W;
  size_t plane = (size_t)g->PH * PW;
  for (int r = 0; r < g->H; r++) {
    int pr = r + g->p, pi = pr % s, y = pr / s;
    float *d = img + (size_t)r * W; // (W)
    for (int pj = 0; pj < s; pj++) {
      const float *src = P + (size_t)(pi * s + pj) * plane + (size_t)y * PW;
      /* columns c = x*s + pj - p of this phase inside [0, W) */
      int lo, hi, off = pj - g->p;
      valid_range(&lo, &hi, W, PW, off, s);
      if (s == 1) {
        if (overwrite)
          for (int x = lo; x < hi; x++) d[x + off] = src[x] + bias;
        else
          add_floats(d + lo + off, src + lo, hi - lo);
      } else if (overwrite) {
        for (int x = lo; x < hi; x++) d[x * s + off] = src[x] + bias;
      } else {
        for (int x = lo; x < hi; x++) d[x * s + off] += src[x];
      }
    }
  }
}

/* col rows (C*K*K) of OH*OW floats each, ldc apart, from img (C, H, W);
 * overwrites them. P is (s, s, PH, PW) scratch. */
static void im2col(float *restrict col, size_t ldc, const float *restrict img, float *restrict P,
                   const geom *g) {
  int s = g->s, K = g->K, OH = g->OH, OW = g->OW, PW = g->PW;
  size_t plane = (size_t)g->PH * PW;
  for (int c = 0; c < g->C; c++) {
    phases_from_image(P, img + (size_t)c * g->H * g->W, g);
    for (int ki = 0; ki < K; ki++)
      for (int kj = 0; kj < K; kj++) {
        const float *src = P + (size_t)((ki % s) * s + kj % s) * plane + (size_t)(ki / s) * PW + kj / s;
        float *dst = col + (size_t)((c * K + ki) * K + kj) * ldc; // (OH, OW)
        for (int oh = 0; oh < OH; oh++) copy_floats(dst + (size_t)oh * OW, src + (size_t)oh * PW, OW);
      }
  }
}

/* The adjoint of im2col: img (C, H, W) += col rows scattered back; with
 * overwrite 1, img = that scatter + b (C) instead (b may be NULL). */
static void col2im(float *restrict img, const float *restrict col, size_t ldc, float *restrict P,
                   const geom *g, int overwrite, const float *b) {
  int s = g->s, K = g->K, OH = g->OH, OW = g->OW, PW = g->PW;
  size_t plane = (size_t)g->PH * PW;
  for (int c = 0; c < g->C; c++) {
    memset(P, 0, geom_plane_floats(g) * sizeof(float));
    for (int ki = 0; ki < K; ki++)
      for (int kj = 0; kj < K; kj++) {
        float *dst = P + (size_t)((ki % s) * s + kj % s) * plane + (size_t)(ki / s) * PW + kj / s;
        const float *src = col + (size_t)((c * K + ki) * K + kj) * ldc; // (OH, OW)
        for (int oh = 0; oh < OH; oh++) add_floats(dst + (size_t)oh * PW, src + (size_t)oh * OW, OW);
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
        add_floats(d, s, (int)N);
      } else {
        float bias = b ? b[c] : 0.0f;
        for (size_t i = 0; i < N; i++) d[i] = s[i] + bias;
      }
    }
}

/* out (G, C, N) = b (C) broadcast, so that a GEMM with beta = 1 adds onto it. */
static void fill_bias(float *out, const float *b, int G, int C, size_t N) {
  for (int g = 0; g < G; g++)
    for (int c = 0; c < C; c++) {
      float *d = out + ((size_t)g * C + c) * N, v = b[c];
      for (size_t i = 0; i < N; i++) d[i] = v;
    }
}

/* db (C) += dout (B, C, N) summed over batch and pixels. A training batch sums
 * ~1e6 terms per channel, so rows (N <= a few thousand) are summed in float and
 * the row sums in double. Eight float partial sums per row, because one running
 * sum is bound by add latency (this was ~10% of a conv's backward). */
static void bias_backward(float *db, const float *dout, int B, int C, size_t N) {
  for (int c = 0; c < C; c++) {
    double s = 0;
    for (int b = 0; b < B; b++) {
      const float *d = dout + ((size_t)b * C + c) * N;
      float acc[8] = {0};
      size_t i = 0;
      for (; i + 8 <= N; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += d[i + j];
      float row = 0;
      for (; i < N; i++) row += d[i];
      for (int j = 0; j < 8; j++) row += acc[j];
      s += row;
    }
    db[c] += (float)s;
  }
}

static void check_shapes(int B, int IC, int H, int W, int OC, int K, int stride, int pad) {
  assert(B > 0 && IC > 0 && H > 0 && W > 0 && OC > 0);
  assert(K > 0 && stride > 0 && pad >= 0);
  (void)B, (void)IC, (void)H, (void)W, (void)OC, (void)K, (void)stride, (void)pad;
}

/* Workspace layout shared by both layers: col (CKK, G*N), then, when G > 1,
 * the gathered operand (R, G*N), then the phase planes of one channel. */
static size_t workspace_floats(int CKK, int R, size_t N, int G, const geom *g) {
  size_t n = (size_t)CKK * G * N;
  if (G > 1) n += (size_t)R * G * N;
  return n + geom_plane_floats(g);
}

/* ---- conv2d ---- */

size_t conv2d_workspace_floats(int B, int IC, int H, int W, int OC, int K, int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
  geom g = geom_make(IC, H, W, K, stride, pad, OH, OW);
  size_t N = (size_t)OH * OW;
  return workspace_floats(IC * K * K, OC, N, conv_chunk(B, (int)N), &g);
}

void conv2d_forward(float *out, float *col_ws, const float *in, const float *w, const float *b,
                    int B, int IC, int H, int W, int OC, int K, int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
  assert(OH > 0 && OW > 0);
  int N = OH * OW, G = conv_chunk(B, N), CKK = IC * K * K;
  geom gm = geom_make(IC, H, W, K, stride, pad, OH, OW);
  float *col = col_ws;                                    // (CKK, G*N)
  float *tmp = col + (size_t)CKK * G * N;                 // (OC, G*N), when G > 1
  float *P = tmp + (G > 1 ? (size_t)OC * G * N : 0);      // (s, s, PH, PW)
  size_t in_img = (size_t)IC * H * W, out_img = (size_t)OC * N;
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G, gN = g * N;
    for (int i = 0; i < g; i++)
      im2col(col + (size_t)i * N, (size_t)gN, in + (b0 + i) * in_img, P, &gm);
    float *o = out + (size_t)b0 * out_img; // (g, OC, N)
    if (G == 1) { // straight into out, onto the bias
      if (b) fill_bias(o, b, 1, OC, (size_t)N);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, N, CKK, 1.0f, w, CKK, col, N,
                  b ? 1.0f : 0.0f, o, N);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, gN, CKK, 1.0f, w, CKK, col, gN,
                  0.0f, tmp, gN);
      scatter(o, tmp, b, 0, g, OC, (size_t)N);
    }
  }
}

void conv2d_backward(float *din, float *dw, float *db, float *col_ws, const float *dout,
                     const float *in, const float *w, int B, int IC, int H, int W, int OC, int K,
                     int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
  assert(OH > 0 && OW > 0);
  int N = OH * OW, G = conv_chunk(B, N), CKK = IC * K * K;
  if (db) bias_backward(db, dout, B, OC, (size_t)N);
  if (!din && !dw) return;
  geom gm = geom_make(IC, H, W, K, stride, pad, OH, OW);
  float *col = col_ws;                                // (CKK, G*N): im2col(in), then dcol
  float *tmp = col + (size_t)CKK * G * N;             // (OC, G*N): dout gathered, when G > 1
  float *P = tmp + (G > 1 ? (size_t)OC * G * N : 0);  // (s, s, PH, PW)
  size_t in_img = (size_t)IC * H * W, out_img = (size_t)OC * N;
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G, gN = g * N;
    const float *d = dout + (size_t)b0 * out_img; // (OC, gN) as the GEMMs see it
    if (G > 1) {
      gather(tmp, d, g, OC, (size_t)N);
      d = tmp;
    }
    if (dw) { // (OC, CKK) += (OC, gN) @ (gN, CKK)
      for (int i = 0; i < g; i++)
        im2col(col + (size_t)i * N, (size_t)gN, in + (b0 + i) * in_img, P, &gm);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, CKK, gN, 1.0f, d, gN, col, gN, 1.0f,
                  dw, CKK);
    }
    if (din) { // dcol (CKK, gN) = w^T (CKK, OC) @ (OC, gN); col is free again
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, gN, OC, 1.0f, w, CKK, d, gN, 0.0f,
                  col, gN);
      for (int i = 0; i < g; i++)
        col2im(din + (b0 + i) * in_img, col + (size_t)i * N, (size_t)gN, P, &gm, 0, NULL);
    }
  }
}

/* ---- transposed conv2d: the conv above run from the output (OC, OH, OW) to the input grid (H, W) ---- */

size_t conv_transpose2d_workspace_floats(int B, int IC, int H, int W, int OC, int K, int stride,
                                         int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv_transpose2d_out_size(H, K, stride, pad);
  int OW = conv_transpose2d_out_size(W, K, stride, pad);
  geom g = geom_make(OC, OH, OW, K, stride, pad, H, W);
  size_t N = (size_t)H * W;
  return workspace_floats(OC * K * K, IC, N, conv_chunk(B, (int)N), &g);
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
  float *col = col_ws;                                   // (CKK, G*N)
  float *tmp = col + (size_t)CKK * G * N;                // (IC, G*N): in gathered, when G > 1
  float *P = tmp + (G > 1 ? (size_t)IC * G * N : 0);     // (s, s, PH, PW)
  size_t in_img = (size_t)IC * N, out_img = (size_t)OC * OH * OW;
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G, gN = g * N;
    const float *x = in + (size_t)b0 * in_img; // (IC, gN) as the GEMM sees it
    if (G > 1) {
      gather(tmp, x, g, IC, (size_t)N);
      x = tmp;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, gN, IC, 1.0f, w, CKK, x, gN, 0.0f,
                col, gN);
    for (int i = 0; i < g; i++) // overwrites out with the scatter plus the bias
      col2im(out + (b0 + i) * out_img, col + (size_t)i * N, (size_t)gN, P, &gm, 1, b);
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
  if (db) bias_backward(db, dout, B, OC, ON);
  if (!din && !dw) return;
  geom gm = geom_make(OC, OH, OW, K, stride, pad, H, W);
  float *col = col_ws;                               // (CKK, G*N): im2col(dout)
  float *tmp = col + (size_t)CKK * G * N;            // (IC, G*N): in gathered, then din, when G > 1
  float *P = tmp + (G > 1 ? (size_t)IC * G * N : 0); // (s, s, PH, PW)
  size_t in_img = (size_t)IC * N, out_img = (size_t)OC * ON;
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G, gN = g * N;
    for (int i = 0; i < g; i++)
      im2col(col + (size_t)i * N, (size_t)gN, dout + (b0 + i) * out_img, P, &gm);
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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, IC, gN, CKK, 1.0f, w, CKK, col, gN,
                    0.0f, tmp, gN);
        scatter(din + (size_t)b0 * in_img, tmp, NULL, 1, g, IC, (size_t)N);
      }
    }
  }
}
