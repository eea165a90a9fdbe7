/* Conv2d and transposed conv2d as im2col / col2im + cblas_sgemm.
 *
 * Layout of the GEMMs. A conv maps an image (C, H, W) to a grid (OH, OW); its
 * im2col matrix col (C*K*K, OH*OW) has row (c, ki, kj) and column (oh, ow)
 * holding img[c, oh*stride - pad + ki, ow*stride - pad + kj] (zero in the
 * padding). Then conv = w (OC, C*K*K) @ col. A transposed conv is the adjoint:
 * col = w^T @ in, then col2im scatters (adds) col back onto the larger image.
 *
 * Batching. A 16x16 output is only 256 GEMM columns, too narrow for sgemm to
 * reach speed (and to be worth threading), so G images go into one GEMM: col
 * becomes (C*K*K, G*OH*OW) and the other operand is gathered from (G, C, N)
 * into (C, G*N) in a second workspace area, then scattered back. G is picked
 * by conv_chunk() from the shapes alone, so the workspace size helpers and the
 * layers always agree on it. */
#include "nn/conv.h"

#include <assert.h>
#include <cblas.h>
#include <string.h>

/* Columns per GEMM that batching aims for: large enough that sgemm runs near
 * its peak and splits over threads, small enough that col stays a few MB.
 * Measured with bench/bench_nn.c (batch 288, 2 cores): one image per GEMM (256
 * columns) was 1.5-3x slower; 1024, 2048 and 4096 were equal within noise;
 * 16384 was no faster. */
#define CONV_GEMM_COLS 2048

/* Images per GEMM for a batch of B images with N output (grid) pixels each. */
static int conv_chunk(int B, int N) {
  int G = (CONV_GEMM_COLS + N - 1) / N;
  if (G > B) G = B;
  return G < 1 ? 1 : G;
}

/* Smallest o >= 0 with o * stride >= v (v may be negative). */
static int first_at_least(int v, int stride) { return v <= 0 ? 0 : (v + stride - 1) / stride; }

/* Range [lo, hi) of grid positions o in [0, OG) whose image coordinate
 * o*stride - pad + k falls inside [0, S). */
static void valid_range(int *lo, int *hi, int S, int OG, int k, int stride, int pad) {
  int a = first_at_least(pad - k, stride), b = first_at_least(S + pad - k, stride);
  if (a > OG) a = OG;
  if (b > OG) b = OG;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

/* col (C*K*K, G*OH*OW) from img (G, C, H, W) on the grid (OH, OW); overwrites col. */
static void im2col(float *col, const float *img, int G, int C, int H, int W, int K, int stride,
                   int pad, int OH, int OW) {
  size_t N = (size_t)OH * OW, ld = (size_t)G * N;
  for (int c = 0; c < C; c++)
    for (int ki = 0; ki < K; ki++)
      for (int kj = 0; kj < K; kj++) {
        float *row = col + ((size_t)(c * K + ki) * K + kj) * ld;
        int lo, hi;
        valid_range(&lo, &hi, W, OW, kj, stride, pad);
        for (int g = 0; g < G; g++) {
          const float *src = img + ((size_t)g * C + c) * H * W; // (H, W)
          float *dst = row + (size_t)g * N;                    // (OH, OW)
          for (int oh = 0; oh < OH; oh++) {
            int ih = oh * stride - pad + ki;
            float *d = dst + (size_t)oh * OW;
            if (ih < 0 || ih >= H) {
              memset(d, 0, (size_t)OW * sizeof(float));
              continue;
            }
            const float *s = src + (size_t)ih * W; // s[ow*stride - pad + kj] in bounds on [lo, hi)
            for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
            if (stride == 1 && hi > lo)
              memcpy(d + lo, s + (lo - pad + kj), (size_t)(hi - lo) * sizeof(float));
            else
              for (int ow = lo; ow < hi; ow++) d[ow] = s[ow * stride - pad + kj];
            for (int ow = hi; ow < OW; ow++) d[ow] = 0.0f;
          }
        }
      }
}

/* The adjoint of im2col: img (G, C, H, W) += col (C*K*K, G*OH*OW) scattered back. */
static void col2im(float *img, const float *col, int G, int C, int H, int W, int K, int stride,
                   int pad, int OH, int OW) {
  size_t N = (size_t)OH * OW, ld = (size_t)G * N;
  for (int c = 0; c < C; c++)
    for (int ki = 0; ki < K; ki++)
      for (int kj = 0; kj < K; kj++) {
        const float *row = col + ((size_t)(c * K + ki) * K + kj) * ld;
        int lo, hi;
        valid_range(&lo, &hi, W, OW, kj, stride, pad);
        for (int g = 0; g < G; g++) {
          float *dst = img + ((size_t)g * C + c) * H * W; // (H, W)
          const float *src = row + (size_t)g * N;        // (OH, OW)
          for (int oh = 0; oh < OH; oh++) {
            int ih = oh * stride - pad + ki;
            if (ih < 0 || ih >= H) continue;
            float *d = dst + (size_t)ih * W;
            const float *s = src + (size_t)oh * OW;
            for (int ow = lo; ow < hi; ow++) d[ow * stride - pad + kj] += s[ow];
          }
        }
      }
}

/* dst (C, G*N) = src (G, C, N): batch-major to channel-major for one GEMM. */
static void gather(float *dst, const float *src, int G, int C, size_t N) {
  for (int g = 0; g < G; g++)
    for (int c = 0; c < C; c++)
      memcpy(dst + ((size_t)c * G + g) * N, src + ((size_t)g * C + c) * N, N * sizeof(float));
}

/* dst (G, C, N) = src (C, G*N) + b (C) when accumulate is 0 (b may be NULL),
 * dst += src when accumulate is 1 (b unused). */
static void scatter(float *dst, const float *src, const float *b, int accumulate, int G, int C,
                    size_t N) {
  for (int g = 0; g < G; g++)
    for (int c = 0; c < C; c++) {
      float *d = dst + ((size_t)g * C + c) * N;
      const float *s = src + ((size_t)c * G + g) * N;
      if (accumulate) {
        for (size_t i = 0; i < N; i++) d[i] += s[i];
      } else {
        float bias = b ? b[c] : 0.0f;
        for (size_t i = 0; i < N; i++) d[i] = s[i] + bias;
      }
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

/* ---- conv2d ---- */

size_t conv2d_workspace_floats(int B, int IC, int H, int W, int OC, int K, int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  size_t N = (size_t)conv2d_out_size(H, K, stride, pad) * (size_t)conv2d_out_size(W, K, stride, pad);
  size_t G = (size_t)conv_chunk(B, (int)N);
  return ((size_t)IC * K * K + (size_t)OC) * G * N; // col (IC*K*K, G*N) + gathered (OC, G*N)
}

void conv2d_forward(float *out, float *col_ws, const float *in, const float *w, const float *b,
                    int B, int IC, int H, int W, int OC, int K, int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
  assert(OH > 0 && OW > 0);
  int N = OH * OW, G = conv_chunk(B, N), CKK = IC * K * K;
  float *col = col_ws;                       // (CKK, G*N)
  float *tmp = col_ws + (size_t)CKK * G * N; // (OC, G*N)
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G;
    im2col(col, in + (size_t)b0 * IC * H * W, g, IC, H, W, K, stride, pad, OH, OW);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, g * N, CKK, 1.0f, w, CKK, col,
                g * N, 0.0f, tmp, g * N);
    scatter(out + (size_t)b0 * OC * N, tmp, b, 0, g, OC, (size_t)N);
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
  float *col = col_ws;                       // (CKK, G*N): im2col(in), then dcol
  float *tmp = col_ws + (size_t)CKK * G * N; // (OC, G*N): dout gathered
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G;
    gather(tmp, dout + (size_t)b0 * OC * N, g, OC, (size_t)N);
    if (dw) { // (OC, CKK) += (OC, gN) @ (gN, CKK)
      im2col(col, in + (size_t)b0 * IC * H * W, g, IC, H, W, K, stride, pad, OH, OW);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, CKK, g * N, 1.0f, tmp, g * N, col,
                  g * N, 1.0f, dw, CKK);
    }
    if (din) { // dcol (CKK, gN) = w^T (CKK, OC) @ (OC, gN); col is free again
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, g * N, OC, 1.0f, w, CKK, tmp,
                  g * N, 0.0f, col, g * N);
      col2im(din + (size_t)b0 * IC * H * W, col, g, IC, H, W, K, stride, pad, OH, OW);
    }
  }
}

/* ---- transposed conv2d: the conv above run from the output (OC, OH, OW) to the input grid (H, W) ---- */

size_t conv_transpose2d_workspace_floats(int B, int IC, int H, int W, int OC, int K, int stride,
                                         int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  size_t N = (size_t)H * W, G = (size_t)conv_chunk(B, (int)N);
  return ((size_t)OC * K * K + (size_t)IC) * G * N; // col (OC*K*K, G*N) + gathered (IC, G*N)
}

void conv_transpose2d_forward(float *out, float *col_ws, const float *in, const float *w,
                              const float *b, int B, int IC, int H, int W, int OC, int K,
                              int stride, int pad) {
  check_shapes(B, IC, H, W, OC, K, stride, pad);
  int OH = conv_transpose2d_out_size(H, K, stride, pad);
  int OW = conv_transpose2d_out_size(W, K, stride, pad);
  assert(OH > 0 && OW > 0);
  int N = H * W, G = conv_chunk(B, N), CKK = OC * K * K;
  size_t ON = (size_t)OH * OW;
  float *col = col_ws;                       // (CKK, G*N)
  float *tmp = col_ws + (size_t)CKK * G * N; // (IC, G*N)
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G;
    float *o = out + (size_t)b0 * OC * ON; // (g, OC, OH, OW)
    gather(tmp, in + (size_t)b0 * IC * N, g, IC, (size_t)N);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, g * N, IC, 1.0f, w, CKK, tmp, g * N,
                0.0f, col, g * N);
    for (int i = 0; i < g; i++) // col2im adds, so start from the bias
      for (int c = 0; c < OC; c++) {
        float *d = o + ((size_t)i * OC + c) * ON, bias = b ? b[c] : 0.0f;
        for (size_t j = 0; j < ON; j++) d[j] = bias;
      }
    col2im(o, col, g, OC, OH, OW, K, stride, pad, H, W);
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
  float *col = col_ws;                       // (CKK, G*N): im2col(dout)
  float *tmp = col_ws + (size_t)CKK * G * N; // (IC, G*N): in gathered, then din
  for (int b0 = 0; b0 < B; b0 += G) {
    int g = B - b0 < G ? B - b0 : G;
    im2col(col, dout + (size_t)b0 * OC * ON, g, OC, OH, OW, K, stride, pad, H, W);
    if (dw) { // (IC, CKK) += (IC, gN) @ (gN, CKK)
      gather(tmp, in + (size_t)b0 * IC * N, g, IC, (size_t)N);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, IC, CKK, g * N, 1.0f, tmp, g * N, col,
                  g * N, 1.0f, dw, CKK);
    }
    if (din) { // (IC, gN) = w (IC, CKK) @ (CKK, gN), then added into din (g, IC, H, W)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, IC, g * N, CKK, 1.0f, w, CKK, col,
                  g * N, 0.0f, tmp, g * N);
      scatter(din + (size_t)b0 * IC * N, tmp, NULL, 1, g, IC, (size_t)N);
    }
  }
}
