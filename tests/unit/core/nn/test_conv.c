/* Tests of core/nn/conv: conv2d and transposed conv2d forward against direct
 * nested-loop references in double (random shapes over stride 1..3, padding
 * 0..2, several GEMM chunks) and against hand-worked tiny cases; the backward
 * (din, dw, db) of both against direct loops in double on random shapes
 * (odd sizes, stride 1 and 2, pad 0 and 1, K 1..5, batches of one image and
 * of several GEMM chunks, more and fewer output than input channels, which
 * picks conv2d's flipped-kernel input gradient); the transposed conv as the
 * adjoint of the conv; finite-difference gradchecks of din, dw and db for
 * both, with gradients pre-filled so that accumulation (+=) and the
 * NULL-gradient paths are what gets checked; the same bits from run to run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "nn/conv.h"
#include "nn/rng.h"
#include "nn/vecmath.h"
#include "testlib.h"

typedef struct {
  int B, IC, H, W, OC, K, stride, pad;
} conv_cfg;

static float *alloc_floats(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

static float *alloc_nan(size_t n) { // so a forward that fails to overwrite shows up
  float *p = alloc_floats(n);
  for (size_t i = 0; i < n; i++) p[i] = NAN;
  return p;
}

/* out (B, OC, OH, OW) = b + direct conv of in (B, IC, H, W) with w (OC, IC, K, K), in double. */
static void ref_conv(double *out, const float *in, const float *w, const float *b, conv_cfg c) {
  int OH = conv2d_out_size(c.H, c.K, c.stride, c.pad), OW = conv2d_out_size(c.W, c.K, c.stride, c.pad);
  for (int n = 0; n < c.B; n++)
    for (int o = 0; o < c.OC; o++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          double s = b ? b[o] : 0.0;
          for (int i = 0; i < c.IC; i++)
            for (int ki = 0; ki < c.K; ki++)
              for (int kj = 0; kj < c.K; kj++) {
                int ih = oh * c.stride - c.pad + ki, iw = ow * c.stride - c.pad + kj;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                s += (double)in[((size_t)(n * c.IC + i) * c.H + ih) * c.W + iw] *
                     w[((size_t)(o * c.IC + i) * c.K + ki) * c.K + kj];
              }
          out[((size_t)(n * c.OC + o) * OH + oh) * OW + ow] = s;
        }
}

/* out (B, OC, OH, OW) = b + transposed conv of in (B, IC, H, W) with w (IC, OC, K, K):
 * every input pixel scatters a weighted kernel onto the output, in double. */
static void ref_convT(double *out, const float *in, const float *w, const float *b, conv_cfg c) {
  int OH = conv_transpose2d_out_size(c.H, c.K, c.stride, c.pad);
  int OW = conv_transpose2d_out_size(c.W, c.K, c.stride, c.pad);
  for (int n = 0; n < c.B; n++)
    for (int o = 0; o < c.OC; o++)
      for (int p = 0; p < OH * OW; p++) out[(size_t)(n * c.OC + o) * OH * OW + p] = b ? b[o] : 0.0;
  for (int n = 0; n < c.B; n++)
    for (int i = 0; i < c.IC; i++)
      for (int ih = 0; ih < c.H; ih++)
        for (int iw = 0; iw < c.W; iw++) {
          double x = in[((size_t)(n * c.IC + i) * c.H + ih) * c.W + iw];
          for (int o = 0; o < c.OC; o++)
            for (int ki = 0; ki < c.K; ki++)
              for (int kj = 0; kj < c.K; kj++) {
                int oh = ih * c.stride - c.pad + ki, ow = iw * c.stride - c.pad + kj;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                out[((size_t)(n * c.OC + o) * OH + oh) * OW + ow] +=
                    x * w[((size_t)(i * c.OC + o) * c.K + ki) * c.K + kj];
              }
        }
}

/* ---- hand-worked cases ---- */

static void test_hand_worked(void) {
  /* in (1,1,3,3) = 1..9 row-major, kernel (1,1,2,2) = [[1,2],[3,4]].
   * stride 1, pad 0, bias 0.5: each output is the 2x2 window dotted with the kernel,
   *   (0,0): 1*1 + 2*2 + 4*3 + 5*4 = 37,  (0,1): 2 + 6 + 15 + 24 = 47,
   *   (1,0): 4 + 10 + 21 + 32 = 67,       (1,1): 5 + 12 + 24 + 36 = 77;  plus 0.5.
   * stride 2, pad 1, no bias: windows of the zero-padded 5x5 at rows/cols {0, 2},
   *   (0,0): [[0,0],[0,1]] -> 1*4 = 4,     (0,1): [[0,0],[2,3]] -> 2*3 + 3*4 = 18,
   *   (1,0): [[0,4],[0,7]] -> 4*2 + 7*4 = 36, (1,1): [[5,6],[8,9]] -> 77. */
  float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, b[1] = {0.5f}, out[4];
  float ws[64];
  CHECK(conv2d_out_size(3, 2, 1, 0) == 2 && conv2d_out_size(3, 2, 2, 1) == 2, "out sizes");
  CHECK(conv2d_workspace_floats(1, 1, 3, 3, 1, 2, 1, 0) <= 64, "workspace too big for the test");
  conv2d_forward(out, ws, in, w, b, 1, 1, 3, 3, 1, 2, 1, 0);
  const float e1[4] = {37.5f, 47.5f, 67.5f, 77.5f};
  for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], e1[i], 0, 0, "hand conv s1 p0");
  conv2d_forward(out, ws, in, w, NULL, 1, 1, 3, 3, 1, 2, 2, 1);
  const float e2[4] = {4, 18, 36, 77};
  for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], e2[i], 0, 0, "hand conv s2 p1");

  /* Transposed, in (1,1,2,2) = [[1,2],[3,4]], same kernel, stride 1, pad 0 -> 3x3:
   * out[i+ki][j+kj] += in[i][j] * k[ki][kj], the full 2-D convolution,
   *   [[1*1, 1*2 + 2*1, 2*2],            [[1,  4,  4],
   *    [1*3 + 3*1, 1*4+2*3+3*2+4*1, 2*4 + 4*2],  = [6, 20, 16],
   *    [3*3, 3*4 + 4*3, 4*4]]             [9, 24, 16]].
   * stride 2, pad 0, kernel of ones -> 4x4: every input pixel becomes a 2x2 block. */
  float x[4] = {1, 2, 3, 4}, t[16];
  CHECK(conv_transpose2d_out_size(2, 2, 1, 0) == 3 && conv_transpose2d_out_size(2, 2, 2, 0) == 4,
        "transposed out sizes");
  conv_transpose2d_forward(t, ws, x, w, NULL, 1, 1, 2, 2, 1, 2, 1, 0);
  const float e3[9] = {1, 4, 4, 6, 20, 16, 9, 24, 16};
  for (int i = 0; i < 9; i++) CHECK_NEAR(t[i], e3[i], 0, 0, "hand convT s1 p0");
  float ones[4] = {1, 1, 1, 1};
  conv_transpose2d_forward(t, ws, x, ones, b, 1, 1, 2, 2, 1, 2, 2, 0);
  const float e4[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
  for (int i = 0; i < 16; i++) CHECK_NEAR(t[i], e4[i] + 0.5f, 0, 0, "hand convT s2 p0 + bias");
  printf("hand-worked conv and transposed conv cases compared exactly\n");
}

/* ---- forward against the direct loops ---- */

/* Shapes: strides 1..3, padding 0..2, K from 1 to larger than the padded image's
 * leftover, non-square images, the GTMSM k4 s2 p1 layers, and batches large enough
 * to need several GEMM chunks (B * OH * OW well above any sensible chunk width). */
static const conv_cfg FWD_CASES[] = {
    {2, 3, 5, 5, 4, 3, 1, 0},  {2, 3, 5, 5, 4, 3, 1, 1},   {2, 3, 6, 6, 4, 3, 2, 0},
    {2, 3, 6, 6, 4, 3, 2, 1},  {3, 2, 7, 5, 3, 2, 2, 1},   {1, 4, 8, 8, 5, 4, 2, 1},
    {2, 3, 3, 3, 2, 4, 1, 1},  {2, 2, 9, 7, 3, 3, 3, 2},   {2, 5, 4, 4, 3, 1, 1, 0},
    {40, 3, 16, 16, 4, 3, 1, 1}, {70, 3, 32, 32, 8, 4, 2, 1},
    /* transposed to 3 channels, W a multiple of 16: the direct path where the CPU has it
     * (one, two and three column blocks, one and two input rows, channel blocks with a rest) */
    {5, 8, 16, 16, 3, 4, 2, 1},  {2, 7, 4, 32, 3, 4, 2, 1},  {3, 13, 3, 48, 3, 4, 2, 1},
    {1, 1, 2, 16, 3, 4, 2, 1},
};

static void test_forward_vs_direct(void) {
  double worst_conv = 0, worst_convT = 0;
  for (size_t t = 0; t < sizeof FWD_CASES / sizeof *FWD_CASES; t++) {
    conv_cfg c = FWD_CASES[t];
    char what[96];
    /* conv2d */
    int OH = conv2d_out_size(c.H, c.K, c.stride, c.pad), OW = conv2d_out_size(c.W, c.K, c.stride, c.pad);
    size_t nin = (size_t)c.B * c.IC * c.H * c.W, nw = (size_t)c.OC * c.IC * c.K * c.K;
    size_t nout = (size_t)c.B * c.OC * OH * OW;
    float *in = alloc_floats(nin), *w = alloc_floats(nw), *b = alloc_floats((size_t)c.OC);
    float *out = alloc_nan(nout);
    float *ws = alloc_floats(conv2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad));
    double *ref = malloc(nout * sizeof(double));
    test_fill_uniform(in, nin, -1, 1, 100 + t);
    test_fill_uniform(w, nw, -1, 1, 200 + t);
    test_fill_uniform(b, (size_t)c.OC, -1, 1, 300 + t);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      const float *bb = with_bias ? b : NULL;
      conv2d_forward(out, ws, in, w, bb, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
      ref_conv(ref, in, w, bb, c);
      snprintf(what, sizeof what, "conv case %zu (B%d IC%d %dx%d OC%d K%d s%d p%d) bias %d", t, c.B,
               c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad, with_bias);
      double e = 0;
      for (size_t i = 0; i < nout; i++) e = fmax(e, fabs(out[i] - ref[i]));
      if (!(e <= 2e-5)) e = INFINITY; // NaN (an element not written) counts as a failure
      CHECK(e <= 2e-5, "%s: max abs err %.3g", what, e);
      worst_conv = fmax(worst_conv, e);
    }
    free(out), free(ws), free(ref);

    /* transposed conv with the same shape numbers: IC in, OC out, w (IC, OC, K, K) */
    int TH = conv_transpose2d_out_size(c.H, c.K, c.stride, c.pad);
    int TW = conv_transpose2d_out_size(c.W, c.K, c.stride, c.pad);
    if (TH > 0 && TW > 0) {
      size_t ntout = (size_t)c.B * c.OC * TH * TW;
      float *tout = alloc_nan(ntout);
      float *tws = alloc_floats(
          conv_transpose2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad));
      double *tref = malloc(ntout * sizeof(double));
      for (int with_bias = 0; with_bias < 2; with_bias++) {
        const float *bb = with_bias ? b : NULL;
        conv_transpose2d_forward(tout, tws, in, w, bb, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride,
                                 c.pad);
        ref_convT(tref, in, w, bb, c);
        double e = 0;
        for (size_t i = 0; i < ntout; i++) e = fmax(e, fabs(tout[i] - tref[i]));
        if (!(e <= 2e-5)) e = INFINITY;
        CHECK(e <= 2e-5, "convT case %zu bias %d: max abs err %.3g", t, with_bias, e);
        worst_convT = fmax(worst_convT, e);
      }
      free(tout), free(tws), free(tref);
    }
    free(in), free(w), free(b);
  }
  /* Inputs and weights are in [-1, 1] with at most IC*K*K = 48 terms per output, so
   * float rounding stays near 1e-6; 2e-5 leaves room without hiding a wrong tap. */
  printf("forward vs direct loops: conv max abs err %.3g, convT max abs err %.3g (tol 2e-5)\n",
         worst_conv, worst_convT);
}

/* ---- backward against the direct loops ---- */

/* The backward's three gradients in double, each as the sum and as the sum of
 * |terms| (the scale of float rounding in any summation order): din (B, IC, H,
 * W), dw (weights' shape), db (OC). transposed selects the conv transpose, whose
 * weights are (IC, OC, K, K); otherwise (OC, IC, K, K). Both are the same
 * pairing of an input pixel, a weight and an output pixel, summed differently. */
static void ref_backward(double *din, double *din_abs, double *dw, double *dw_abs, double *db,
                         double *db_abs, const float *dout, const float *in, const float *w,
                         conv_cfg c, int transposed) {
  int OH, OW;
  if (transposed)
    OH = conv_transpose2d_out_size(c.H, c.K, c.stride, c.pad),
    OW = conv_transpose2d_out_size(c.W, c.K, c.stride, c.pad);
  else
    OH = conv2d_out_size(c.H, c.K, c.stride, c.pad), OW = conv2d_out_size(c.W, c.K, c.stride, c.pad);
  size_t nin = (size_t)c.B * c.IC * c.H * c.W, nw = (size_t)c.OC * c.IC * c.K * c.K;
  memset(din, 0, nin * sizeof(double)), memset(din_abs, 0, nin * sizeof(double));
  memset(dw, 0, nw * sizeof(double)), memset(dw_abs, 0, nw * sizeof(double));
  memset(db, 0, (size_t)c.OC * sizeof(double)), memset(db_abs, 0, (size_t)c.OC * sizeof(double));
  for (int n = 0; n < c.B; n++)
    for (int o = 0; o < c.OC; o++)
      for (int y = 0; y < OH; y++)
        for (int x = 0; x < OW; x++) {
          double g = dout[((size_t)(n * c.OC + o) * OH + y) * OW + x];
          db[o] += g, db_abs[o] += fabs(g);
        }
  /* conv: output (oh, ow) reads input (oh*s - p + ki, ow*s - p + kj);
   * transposed: input (ih, iw) writes output (ih*s - p + ki, iw*s - p + kj). */
  int GH = transposed ? c.H : OH, GW = transposed ? c.W : OW; // the strided grid
  for (int n = 0; n < c.B; n++)
    for (int o = 0; o < c.OC; o++)
      for (int i = 0; i < c.IC; i++)
        for (int ki = 0; ki < c.K; ki++)
          for (int kj = 0; kj < c.K; kj++) {
            size_t wi = transposed ? ((size_t)(i * c.OC + o) * c.K + ki) * c.K + kj
                                   : ((size_t)(o * c.IC + i) * c.K + ki) * c.K + kj;
            for (int gy = 0; gy < GH; gy++)
              for (int gx = 0; gx < GW; gx++) {
                int ty = gy * c.stride - c.pad + ki, tx = gx * c.stride - c.pad + kj;
                int iy = transposed ? gy : ty, ix = transposed ? gx : tx;
                int oy = transposed ? ty : gy, ox = transposed ? tx : gx;
                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W || oy < 0 || oy >= OH || ox < 0 ||
                    ox >= OW)
                  continue;
                size_t ii = ((size_t)(n * c.IC + i) * c.H + iy) * c.W + ix;
                double g = dout[((size_t)(n * c.OC + o) * OH + oy) * OW + ox];
                double a = g * w[wi], b = g * in[ii];
                din[ii] += a, din_abs[ii] += fabs(a);
                dw[wi] += b, dw_abs[wi] += fabs(b);
              }
          }
}

/* max over elements of |got - g0 - ref| / (|g0| + |terms| + 1e-6): how far the
 * accumulated gradient is from the reference, relative to its rounding scale
 * (the float sums, and adding them onto the pre-filled g0). */
static double rel_err(const float *got, const float *g0, const double *ref, const double *abs_ref,
                      size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - g0[i] - ref[i]) / (fabs(g0[i]) + abs_ref[i] + 1e-6);
    if (!(d == d)) return INFINITY; // NaN
    if (d > e) e = d;
  }
  return e;
}

static void backward_case(conv_cfg c, int transposed, uint64_t seed, double *worst) {
  int OH = transposed ? conv_transpose2d_out_size(c.H, c.K, c.stride, c.pad)
                      : conv2d_out_size(c.H, c.K, c.stride, c.pad);
  int OW = transposed ? conv_transpose2d_out_size(c.W, c.K, c.stride, c.pad)
                      : conv2d_out_size(c.W, c.K, c.stride, c.pad);
  size_t nin = (size_t)c.B * c.IC * c.H * c.W, nw = (size_t)c.OC * c.IC * c.K * c.K;
  size_t nb = (size_t)c.OC, nout = (size_t)c.B * c.OC * OH * OW;
  size_t nws = transposed ? conv_transpose2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad)
                          : conv2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
  float *in = alloc_floats(nin), *w = alloc_floats(nw), *dout = alloc_floats(nout);
  float *ws = alloc_nan(nws); // the layers must not read workspace they did not write
  float *din = alloc_floats(nin), *dw = alloc_floats(nw), *db = alloc_floats(nb);
  float *din0 = alloc_floats(nin), *dw0 = alloc_floats(nw), *db0 = alloc_floats(nb);
  double *r[6] = {malloc(nin * sizeof(double)), malloc(nin * sizeof(double)), malloc(nw * sizeof(double)),
                  malloc(nw * sizeof(double)),  malloc(nb * sizeof(double)),  malloc(nb * sizeof(double))};
  test_fill_uniform(in, nin, -1, 1, seed);
  test_fill_uniform(w, nw, -1, 1, seed + 1);
  test_fill_uniform(dout, nout, -1, 1, seed + 2);
  test_fill_uniform(din0, nin, -1, 1, seed + 3);
  test_fill_uniform(dw0, nw, -1, 1, seed + 4);
  test_fill_uniform(db0, nb, -1, 1, seed + 5);
  memcpy(din, din0, nin * sizeof(float)), memcpy(dw, dw0, nw * sizeof(float));
  memcpy(db, db0, nb * sizeof(float));
  if (transposed)
    conv_transpose2d_backward(din, dw, db, ws, dout, in, w, c.B, c.IC, c.H, c.W, c.OC, c.K,
                              c.stride, c.pad);
  else
    conv2d_backward(din, dw, db, ws, dout, in, w, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
  ref_backward(r[0], r[1], r[2], r[3], r[4], r[5], dout, in, w, c, transposed);
  double e_in = rel_err(din, din0, r[0], r[1], nin), e_w = rel_err(dw, dw0, r[2], r[3], nw);
  double e_b = rel_err(db, db0, r[4], r[5], nb), e = fmax(e_in, fmax(e_w, e_b));
  /* float sums of up to a few thousand terms: rounding stays below ~1e-6 of
   * the sum of |terms|; a wrong or missing tap is of the order of one term. */
  CHECK(e <= 1e-5, "%s backward B%d IC%d %dx%d OC%d K%d s%d p%d: rel err din %.3g dw %.3g db %.3g",
        transposed ? "convT" : "conv", c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad, e_in, e_w,
        e_b);
  if (e > *worst) *worst = e;
  free(in), free(w), free(dout), free(ws), free(din), free(dw), free(db);
  free(din0), free(dw0), free(db0);
  for (int i = 0; i < 6; i++) free(r[i]);
}

static void test_backward_vs_direct(void) {
  /* fixed cases: the GTMSM layer types at small sizes, single images, and
   * batches over several GEMM chunks (8x8 grids are batched in chunks of a
   * few images; 17x17 grids run one image per GEMM) */
  static const conv_cfg fixed[] = {
      {1, 3, 16, 16, 8, 4, 2, 1}, {9, 4, 16, 16, 6, 4, 2, 1}, {5, 6, 8, 8, 3, 4, 2, 1},
      {1, 3, 9, 9, 5, 3, 1, 1},  {3, 6, 17, 17, 2, 3, 1, 1}, {2, 5, 7, 9, 5, 3, 1, 0},
      {6, 2, 15, 13, 3, 3, 2, 1}, {1, 4, 5, 5, 4, 1, 1, 0},  {2, 3, 6, 6, 2, 2, 1, 2},
      {9, 5, 7, 7, 3, 3, 1, 1},  {20, 3, 8, 8, 4, 4, 2, 1},
      /* transposed to 3 channels (see FWD_CASES) */
      {4, 7, 6, 16, 3, 4, 2, 1},  {2, 13, 3, 48, 3, 4, 2, 1}, {1, 1, 2, 16, 3, 4, 2, 1},
      {3, 32, 16, 16, 3, 4, 2, 1},
      /* convs from 3 channels, W a multiple of 32: the direct path where the CPU has it */
      {3, 3, 32, 32, 8, 4, 2, 1},  {2, 3, 4, 64, 5, 4, 2, 1},
  };
  double worst_conv = 0, worst_convT = 0;
  int n = 0;
  for (size_t t = 0; t < sizeof fixed / sizeof *fixed; t++, n++) {
    backward_case(fixed[t], 0, 3000 + 10 * t, &worst_conv);
    backward_case(fixed[t], 1, 4000 + 10 * t, &worst_convT);
  }
  /* random: odd and even sizes 3..17, K 1..5, stride 1 and 2, pad 0 and 1, batch 1..9 */
  rng_t r;
  rng_init(&r, 77, 0);
  for (int t = 0; t < 40; t++) {
    conv_cfg c = {1 + (int)rng_below(&r, 9), 1 + (int)rng_below(&r, 6), 3 + (int)rng_below(&r, 15),
                  3 + (int)rng_below(&r, 15), 1 + (int)rng_below(&r, 6), 1 + (int)rng_below(&r, 5),
                  1 + (int)rng_below(&r, 2), (int)rng_below(&r, 2)};
    if (conv2d_out_size(c.H, c.K, c.stride, c.pad) < 1 || conv2d_out_size(c.W, c.K, c.stride, c.pad) < 1)
      continue;
    backward_case(c, 0, 5000 + 10 * (uint64_t)t, &worst_conv);
    backward_case(c, 1, 6000 + 10 * (uint64_t)t, &worst_convT);
    n++;
  }
  printf("backward vs direct loops, %d shapes: conv max rel err %.3g, convT max rel err %.3g "
         "(relative to the sum of |terms|, tol 1e-5)\n",
         n, worst_conv, worst_convT);
}

/* ---- determinism: the same bits from run to run ---- */

/* conv2d fwd + bwd twice with the same inputs (and a workspace refilled with
 * different garbage) must give the same bits, with one and with two OpenBLAS
 * threads. Between thread counts the bits do differ, and not because of this
 * layer: OpenBLAS 0.3.21's sgemm itself rounds differently when a GEMM is
 * split over two threads (seen on its Zen kernels for nearly every shape,
 * old conv code included); every sum here outside sgemm runs in an order
 * fixed by the shapes alone. */
static void test_deterministic(void) {
  static const conv_cfg cases[] = {{24, 16, 16, 16, 32, 4, 2, 1}, {6, 32, 32, 32, 3, 3, 1, 1}};
  for (int threads = 1; threads <= 2; threads++) {
    openblas_set_num_threads(threads);
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
      conv_cfg c = cases[t];
      int OH = conv2d_out_size(c.H, c.K, c.stride, c.pad), OW = conv2d_out_size(c.W, c.K, c.stride, c.pad);
      size_t nin = (size_t)c.B * c.IC * c.H * c.W, nw = (size_t)c.OC * c.IC * c.K * c.K;
      size_t nout = (size_t)c.B * c.OC * OH * OW, nb = (size_t)c.OC;
      size_t nws = conv2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
      float *in = alloc_floats(nin), *w = alloc_floats(nw), *b = alloc_floats(nb), *ws = alloc_floats(nws);
      float *res[2][4]; // per run: out, din, dw, db
      test_fill_uniform(in, nin, -1, 1, 900 + t);
      test_fill_uniform(w, nw, -1, 1, 901 + t);
      test_fill_uniform(b, nb, -1, 1, 902 + t);
      for (int k = 0; k < 2; k++) {
        test_fill_uniform(ws, nws, -1, 1, 903 + (uint64_t)k);
        float *out = alloc_floats(nout), *din = alloc_floats(nin), *dw = alloc_floats(nw), *db = alloc_floats(nb);
        memset(din, 0, nin * sizeof(float)), memset(dw, 0, nw * sizeof(float)), memset(db, 0, nb * sizeof(float));
        conv2d_forward(out, ws, in, w, b, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
        conv2d_backward(din, dw, db, ws, out, in, w, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
        res[k][0] = out, res[k][1] = din, res[k][2] = dw, res[k][3] = db;
      }
      size_t sz[4] = {nout, nin, nw, nb};
      int same = 1;
      for (int j = 0; j < 4; j++) same &= memcmp(res[0][j], res[1][j], sz[j] * sizeof(float)) == 0;
      CHECK(same, "conv case %zu, %d OpenBLAS threads: two runs differ", t, threads);
      printf("determinism: conv case %zu fwd+bwd, %d OpenBLAS thread(s): two runs bit-identical: %s\n",
             t, threads, same ? "yes" : "NO");
      for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++) free(res[k][j]);
      free(in), free(w), free(b), free(ws);
    }
  }
  openblas_set_num_threads(1);
}

/* ---- workspace: sized once for the largest batch, enough for every smaller one ---- */

static void test_workspace_any_batch(void) {
  const conv_cfg c = {64, 3, 16, 16, 8, 4, 2, 1};
  int monotone = 1;
  for (int b = 1; b < 300; b++) {
    monotone &= conv2d_workspace_floats(b, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad) <=
                conv2d_workspace_floats(b + 1, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
    monotone &= conv_transpose2d_workspace_floats(b, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad) <=
                conv_transpose2d_workspace_floats(b + 1, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
  }
  CHECK(monotone, "workspace size decreases with a larger batch");
  /* The workspace of B = 64, exactly sized (ASan sees any overrun), used for B = 13. */
  int OH = conv2d_out_size(c.H, c.K, c.stride, c.pad), b = 13;
  size_t nin = (size_t)c.B * c.IC * c.H * c.W, nw = (size_t)c.OC * c.IC * c.K * c.K;
  float *in = alloc_floats(nin), *w = alloc_floats(nw), *out = alloc_nan((size_t)b * c.OC * OH * OH);
  float *ws = alloc_floats(conv2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad));
  double *ref = malloc((size_t)b * c.OC * OH * OH * sizeof(double));
  test_fill_uniform(in, nin, -1, 1, 700);
  test_fill_uniform(w, nw, -1, 1, 701);
  conv2d_forward(out, ws, in, w, NULL, b, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
  conv_cfg cb = c;
  cb.B = b;
  ref_conv(ref, in, w, NULL, cb);
  double e = 0;
  for (size_t i = 0; i < (size_t)b * c.OC * OH * OH; i++) e = fmax(e, fabs(out[i] - ref[i]));
  CHECK(e <= 2e-5, "batch 13 in a batch-64 workspace: max abs err %g", e);
  free(in), free(w), free(out), free(ws), free(ref);
}

/* ---- adjointness: <conv(x), y> == <x, convT(y)> with the same weights ---- */

static void test_adjoint(void) {
  /* x (B, C1, HH, WW) -> conv with w (C2, C1, K, K) -> (B, C2, H, W); the transposed conv
   * of y (B, C2, H, W) with w read as (IC=C2, OC=C1, K, K) is (B, C1, HH, WW) again when
   * (HH + 2 pad - K) is a multiple of the stride. */
  static const conv_cfg cases[] = {
      {2, 3, 7, 5, 4, 3, 1, 1}, {2, 3, 8, 8, 4, 4, 2, 1}, {3, 2, 9, 7, 3, 3, 2, 0},
      {1, 4, 11, 8, 2, 2, 3, 0}, {20, 3, 32, 32, 6, 4, 2, 1},
  };
  for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
    conv_cfg c = cases[t];
    int H = conv2d_out_size(c.H, c.K, c.stride, c.pad), W = conv2d_out_size(c.W, c.K, c.stride, c.pad);
    CHECK(conv_transpose2d_out_size(H, c.K, c.stride, c.pad) == c.H &&
              conv_transpose2d_out_size(W, c.K, c.stride, c.pad) == c.W,
          "adjoint case %zu shapes do not round-trip", t);
    size_t nx = (size_t)c.B * c.IC * c.H * c.W, ny = (size_t)c.B * c.OC * H * W;
    size_t nw = (size_t)c.OC * c.IC * c.K * c.K;
    float *x = alloc_floats(nx), *y = alloc_floats(ny), *w = alloc_floats(nw);
    float *cx = alloc_nan(ny), *ty = alloc_nan(nx);
    float *ws1 = alloc_floats(conv2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad));
    float *ws2 = alloc_floats(conv_transpose2d_workspace_floats(c.B, c.OC, H, W, c.IC, c.K, c.stride, c.pad));
    test_fill_uniform(x, nx, -1, 1, 400 + t);
    test_fill_uniform(y, ny, -1, 1, 500 + t);
    test_fill_uniform(w, nw, -1, 1, 600 + t);
    conv2d_forward(cx, ws1, x, w, NULL, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
    conv_transpose2d_forward(ty, ws2, y, w, NULL, c.B, c.OC, H, W, c.IC, c.K, c.stride, c.pad);
    double lhs = test_dot(cx, y, ny), rhs = test_dot(ty, x, nx);
    double scale = 0; // sum of |terms|: the size of the float rounding in either side
    for (size_t i = 0; i < ny; i++) scale += fabs((double)cx[i] * y[i]);
    printf("adjoint case %zu: <conv(x), y> = %.9g, <x, convT(y)> = %.9g, diff/scale %.2e\n", t, lhs,
           rhs, fabs(lhs - rhs) / scale);
    CHECK(fabs(lhs - rhs) <= 1e-5 * scale, "adjoint case %zu: %.9g vs %.9g", t, lhs, rhs);
    free(x), free(y), free(w), free(cx), free(ty), free(ws1), free(ws2);
  }
}

/* ---- gradchecks ---- */

typedef struct {
  conv_cfg c;
  int transposed;
  float *in, *w, *b, *out, *r, *ws; // r (out shape): the loss is <op(in, w, b), r>
  size_t nout;
} gc_ctx;

static double conv_loss(void *p) {
  gc_ctx *g = p;
  conv_cfg c = g->c;
  if (g->transposed)
    conv_transpose2d_forward(g->out, g->ws, g->in, g->w, g->b, c.B, c.IC, c.H, c.W, c.OC, c.K,
                             c.stride, c.pad);
  else
    conv2d_forward(g->out, g->ws, g->in, g->w, g->b, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride,
                   c.pad);
  return test_dot(g->out, g->r, g->nout);
}

static void backward(gc_ctx *g, float *din, float *dw, float *db) {
  conv_cfg c = g->c;
  if (g->transposed)
    conv_transpose2d_backward(din, dw, db, g->ws, g->r, g->in, g->w, c.B, c.IC, c.H, c.W, c.OC,
                              c.K, c.stride, c.pad);
  else
    conv2d_backward(din, dw, db, g->ws, g->r, g->in, g->w, c.B, c.IC, c.H, c.W, c.OC, c.K,
                    c.stride, c.pad);
}

/* Gradient buffers start from g0 (random) and the analytic gradient is what the
 * backward added, so a backward that overwrites instead of accumulating fails. */
static float *accumulated(float *g, const float *g0, size_t n) {
  for (size_t i = 0; i < n; i++) g[i] -= g0[i];
  return g;
}

static void gradcheck_case(conv_cfg c, int transposed, uint64_t seed) {
  int OH = transposed ? conv_transpose2d_out_size(c.H, c.K, c.stride, c.pad)
                      : conv2d_out_size(c.H, c.K, c.stride, c.pad);
  int OW = transposed ? conv_transpose2d_out_size(c.W, c.K, c.stride, c.pad)
                      : conv2d_out_size(c.W, c.K, c.stride, c.pad);
  size_t nin = (size_t)c.B * c.IC * c.H * c.W, nw = (size_t)c.OC * c.IC * c.K * c.K;
  size_t nb = (size_t)c.OC, nout = (size_t)c.B * c.OC * OH * OW;
  size_t nws = transposed ? conv_transpose2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad)
                          : conv2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
  gc_ctx g = {.c = c, .transposed = transposed, .nout = nout};
  g.in = alloc_floats(nin), g.w = alloc_floats(nw), g.b = alloc_floats(nb);
  g.out = alloc_floats(nout), g.r = alloc_floats(nout), g.ws = alloc_floats(nws);
  test_fill_uniform(g.in, nin, -1, 1, seed);
  test_fill_uniform(g.w, nw, -1, 1, seed + 1);
  test_fill_uniform(g.b, nb, -1, 1, seed + 2);
  test_fill_uniform(g.r, nout, -1, 1, seed + 3);
  float *din0 = alloc_floats(nin), *dw0 = alloc_floats(nw), *db0 = alloc_floats(nb);
  test_fill_uniform(din0, nin, -1, 1, seed + 4);
  test_fill_uniform(dw0, nw, -1, 1, seed + 5);
  test_fill_uniform(db0, nb, -1, 1, seed + 6);
  /* One backward per gradient with the other two NULL, and one with all three. */
  float *din = alloc_floats(nin), *dw = alloc_floats(nw), *db = alloc_floats(nb);
  float *din_all = alloc_floats(nin), *dw_all = alloc_floats(nw), *db_all = alloc_floats(nb);
  memcpy(din, din0, nin * sizeof(float)), memcpy(din_all, din0, nin * sizeof(float));
  memcpy(dw, dw0, nw * sizeof(float)), memcpy(dw_all, dw0, nw * sizeof(float));
  memcpy(db, db0, nb * sizeof(float)), memcpy(db_all, db0, nb * sizeof(float));
  backward(&g, din, NULL, NULL);
  backward(&g, NULL, dw, NULL);
  backward(&g, NULL, NULL, db);
  backward(&g, din_all, dw_all, db_all);
  int same = memcmp(din, din_all, nin * sizeof(float)) == 0 &&
             memcmp(dw, dw_all, nw * sizeof(float)) == 0 && memcmp(db, db_all, nb * sizeof(float)) == 0;
  CHECK(same, "backward with all gradients differs from one gradient at a time");

  /* The loss is linear in each of in, w, b, so central differences are exact up to
   * float rounding of the forward whatever eps is; a large eps (0.25) makes that
   * rounding small against the difference. A wrong tap or index gives O(1) errors,
   * so tol 1e-3 is loose enough for rounding and far too tight for a bug. The floor
   * 1e-2 keeps near-zero gradients (border pixels) from dividing rounding noise by ~0. */
  gc_opts o = gc_default();
  o.eps = 0.25, o.tol = 1e-3, o.floor = 1e-2, o.max_checks = 150, o.seed = seed;
  char label[96];
  const char *op = transposed ? "convT" : "conv";
  snprintf(label, sizeof label, "%s K%d s%d p%d din", op, c.K, c.stride, c.pad);
  gradcheck(label, g.in, accumulated(din, din0, nin), nin, conv_loss, &g, &o);
  snprintf(label, sizeof label, "%s K%d s%d p%d dw", op, c.K, c.stride, c.pad);
  gradcheck(label, g.w, accumulated(dw, dw0, nw), nw, conv_loss, &g, &o);
  snprintf(label, sizeof label, "%s K%d s%d p%d db", op, c.K, c.stride, c.pad);
  gradcheck(label, g.b, accumulated(db, db0, nb), nb, conv_loss, &g, &o);

  free(g.in), free(g.w), free(g.b), free(g.out), free(g.r), free(g.ws);
  free(din0), free(dw0), free(db0), free(din), free(dw), free(db);
  free(din_all), free(dw_all), free(db_all);
}

static void test_gradients(void) {
  static const conv_cfg cases[] = {
      {2, 3, 5, 5, 4, 3, 1, 0}, {2, 3, 5, 6, 4, 3, 1, 1}, {2, 3, 8, 8, 4, 4, 2, 1},
      {2, 2, 7, 7, 3, 3, 2, 0}, {3, 2, 6, 5, 2, 2, 3, 1},
      /* fewer output than input channels at stride 1: conv2d's flipped-kernel din */
      {2, 5, 6, 5, 3, 3, 1, 1}, {2, 4, 5, 5, 2, 2, 1, 0}, {1, 3, 4, 6, 3, 4, 1, 2},
      /* a transposed conv to 3 channels and a conv from 3 on the direct path (where the CPU has it) */
      {2, 7, 3, 16, 3, 4, 2, 1}, {2, 3, 4, 32, 7, 4, 2, 1},
  };
  for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
    gradcheck_case(cases[t], 0, 1000 + 10 * t);
    gradcheck_case(cases[t], 1, 2000 + 10 * t);
  }
}


/* ---- the row kernels and the streamed output: the bits of the plain paths ---- */

/* One forward and backward (dout fixed) into fresh buffers: r = out, din, dw, db;
 * the workspace (exactly sized, NaN-filled) starts ws_shift floats past a
 * malloc'd address (the layers must not depend on its alignment). */
static void fwd_bwd_at(float *r[4], conv_cfg c, int transposed, const float *in, const float *w,
                       const float *b, const float *dout, int ws_shift);
static void fwd_bwd(float *r[4], conv_cfg c, int transposed, const float *in, const float *w,
                    const float *b, const float *dout) {
  fwd_bwd_at(r, c, transposed, in, w, b, dout, 0);
}
static void fwd_bwd_at(float *r[4], conv_cfg c, int transposed, const float *in, const float *w,
                       const float *b, const float *dout, int ws_shift) {
  int OH = transposed ? conv_transpose2d_out_size(c.H, c.K, c.stride, c.pad)
                      : conv2d_out_size(c.H, c.K, c.stride, c.pad);
  int OW = transposed ? conv_transpose2d_out_size(c.W, c.K, c.stride, c.pad)
                      : conv2d_out_size(c.W, c.K, c.stride, c.pad);
  size_t nin = (size_t)c.B * c.IC * c.H * c.W, nw = (size_t)c.OC * c.IC * c.K * c.K;
  size_t nout = (size_t)c.B * c.OC * OH * OW;
  size_t nws = transposed ? conv_transpose2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad)
                          : conv2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
  float *ws0 = alloc_nan(nws + (size_t)ws_shift), *ws = ws0 + ws_shift;
  r[0] = alloc_nan(nout), r[1] = calloc(nin, sizeof(float)), r[2] = calloc(nw, sizeof(float));
  r[3] = calloc((size_t)c.OC, sizeof(float));
  if (transposed) {
    conv_transpose2d_forward(r[0], ws, in, w, b, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
    conv_transpose2d_backward(r[1], r[2], r[3], ws, dout, in, w, c.B, c.IC, c.H, c.W, c.OC, c.K,
                              c.stride, c.pad);
  } else {
    conv2d_forward(r[0], ws, in, w, b, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
    conv2d_backward(r[1], r[2], r[3], ws, dout, in, w, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
  }
  free(ws0);
}

/* The 4x4 stride-2 layers' row kernels against the phase planes, on the
 * generic (SSE2) and, where the CPU has it, the AVX2 path: grid widths 16
 * and 8 (AVX2 and SSE2 row kernels), 12 and 4 (SSE2 only), one image per
 * GEMM and chunks with a short last one; out, din, dw, db to the bit. */
static void test_row_copies(void) {
  static const struct {
    conv_cfg c;
    int transposed;
  } cases[] = {
      {{3, 3, 32, 32, 8, 4, 2, 1}, 0}, {{5, 4, 16, 16, 6, 4, 2, 1}, 0}, {{2, 2, 24, 24, 5, 4, 2, 1}, 0},
      {{3, 2, 8, 8, 3, 4, 2, 1}, 0},   {{3, 8, 16, 16, 3, 4, 2, 1}, 1}, {{5, 6, 8, 8, 4, 4, 2, 1}, 1},
      {{2, 3, 6, 6, 2, 4, 2, 1}, 1},   {{2, 5, 4, 4, 3, 4, 2, 1}, 1},
  };
  vm_isa isa0 = vm_get_isa();
  for (int isa = VM_ISA_GENERIC; isa <= VM_ISA_AVX2; isa++) {
    if (vm_set_isa((vm_isa)isa) != 0) continue;
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
      conv_cfg c = cases[t].c;
      int tr = cases[t].transposed;
      int OH = tr ? conv_transpose2d_out_size(c.H, c.K, c.stride, c.pad) : conv2d_out_size(c.H, c.K, c.stride, c.pad);
      int OW = tr ? conv_transpose2d_out_size(c.W, c.K, c.stride, c.pad) : conv2d_out_size(c.W, c.K, c.stride, c.pad);
      size_t nin = (size_t)c.B * c.IC * c.H * c.W, nw = (size_t)c.OC * c.IC * c.K * c.K;
      size_t nout = (size_t)c.B * c.OC * OH * OW, sz[4] = {nout, nin, nw, (size_t)c.OC};
      float *in = alloc_floats(nin), *w = alloc_floats(nw), *b = alloc_floats((size_t)c.OC);
      float *dout = alloc_floats(nout);
      test_fill_uniform(in, nin, -1, 1, 1500 + t);
      test_fill_uniform(w, nw, -1, 1, 1501 + t);
      test_fill_uniform(b, (size_t)c.OC, -1, 1, 1502 + t);
      test_fill_uniform(dout, nout, -1, 1, 1503 + t);
      float *rows[4], *planes[4];
      conv_set_row_copies(1);
      fwd_bwd(rows, c, tr, in, w, b, dout);
      conv_set_row_copies(0);
      fwd_bwd(planes, c, tr, in, w, b, dout);
      conv_set_row_copies(1);
      static const char *names[4] = {"out", "din", "dw", "db"};
      for (int j = 0; j < 4; j++)
        CHECK(memcmp(rows[j], planes[j], sz[j] * sizeof(float)) == 0,
              "%s %dx%dx%d -> %d ch, %s path: row kernels' %s differs from the planes'", tr ? "convT" : "conv",
              c.IC, c.H, c.W, c.OC, vm_isa_name((vm_isa)isa), names[j]);
      for (int j = 0; j < 4; j++) free(rows[j]), free(planes[j]);
      free(in), free(w), free(b), free(dout);
    }
    printf("row kernels (%s path): %zu layers' fwd + bwd bit-identical to the phase planes\n",
           vm_isa_name((vm_isa)isa), sizeof cases / sizeof *cases);
  }
  vm_set_isa(isa0);
}

/* A forward whose output is large enough to be streamed (>= 4 MB: 130
 * images of 32x16x16 and of 8x32x32) gives the bits of the same images in
 * two batches too small to be. 4 input channels: the GEMM path on any CPU
 * (from 3 the direct path would run where it can). */
static void test_streamed_output(void) {
  static const conv_cfg cases[] = {{130, 4, 32, 32, 32, 4, 2, 1}, {130, 4, 32, 32, 8, 3, 1, 1}};
  for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
    conv_cfg c = cases[t];
    int OH = conv2d_out_size(c.H, c.K, c.stride, c.pad), OW = conv2d_out_size(c.W, c.K, c.stride, c.pad);
    CHECK(conv_images_independent(OH * OW), "case %zu: images share GEMMs", t);
    size_t in_img = (size_t)c.IC * c.H * c.W, out_img = (size_t)c.OC * OH * OW;
    size_t nw = (size_t)c.OC * c.IC * c.K * c.K;
    float *in = alloc_floats(c.B * in_img), *w = alloc_floats(nw), *b = alloc_floats((size_t)c.OC);
    float *whole = alloc_nan(c.B * out_img), *halves = alloc_nan(c.B * out_img);
    float *ws = alloc_floats(conv2d_workspace_floats(c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad));
    test_fill_uniform(in, c.B * in_img, -1, 1, 1600 + t);
    test_fill_uniform(w, nw, -1, 1, 1601 + t);
    test_fill_uniform(b, (size_t)c.OC, -1, 1, 1602 + t);
    conv2d_forward(whole, ws, in, w, b, c.B, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
    int h = c.B / 2;
    conv2d_forward(halves, ws, in, w, b, h, c.IC, c.H, c.W, c.OC, c.K, c.stride, c.pad);
    conv2d_forward(halves + h * out_img, ws, in + h * in_img, w, b, c.B - h, c.IC, c.H, c.W, c.OC, c.K,
                   c.stride, c.pad);
    CHECK(memcmp(whole, halves, c.B * out_img * sizeof(float)) == 0,
          "case %zu: the streamed output differs from the one written in place", t);
    printf("streamed output: %d images of %dx%dx%d (%.1f MB) equal to two batches of %d\n", c.B, c.OC,
           OH, OW, c.B * out_img * sizeof(float) / 1e6, h);
    free(in), free(w), free(b), free(whole), free(halves), free(ws);
  }
}

/* ---- layers between 3 channels and a grid: the direct path against the GEMM path ---- */

/* Where the CPU runs the direct path (conv2d_direct, conv_transpose2d_direct),
 * out, din, dw, db against the GEMM path's (vecmath's generic ISA, which
 * turns it off) to float rounding; two runs, and runs with the workspace at
 * any float alignment, bit-identical; each image's out
 * and din the same bits in a batch as alone (the transposed layers' first and
 * last images run from a copy, the others read their neighbours' edge floats). */
static void test_direct(void) {
  static const struct {
    conv_cfg c;
    int transposed;
  } cases[] = {
      {{6, 32, 16, 16, 3, 4, 2, 1}, 1}, {{3, 13, 5, 48, 3, 4, 2, 1}, 1}, {{2, 1, 2, 16, 3, 4, 2, 1}, 1},
      {{6, 3, 32, 32, 32, 4, 2, 1}, 0}, {{3, 3, 6, 96, 13, 4, 2, 1}, 0}, {{2, 3, 2, 32, 1, 4, 2, 1}, 0},
      /* 3x3 stride 1: from 3 channels, to 3 channels (channel counts off the kernels' blocks of 6 and 4) */
      {{5, 3, 32, 32, 32, 3, 1, 1}, 0}, {{3, 3, 7, 64, 13, 3, 1, 1}, 0}, {{2, 3, 1, 32, 1, 3, 1, 1}, 0},
      {{5, 32, 32, 32, 3, 3, 1, 1}, 0}, {{3, 13, 6, 64, 3, 3, 1, 1}, 0}, {{2, 1, 3, 32, 3, 3, 1, 1}, 0},
      {{3, 3, 4, 32, 3, 3, 1, 1}, 0},
  };
  if (!conv_transpose2d_direct(3, 4, 2, 1, 16)) {
    printf("direct layers: not on this CPU (vecmath %s), skipped\n", vm_isa_name(vm_get_isa()));
    return;
  }
  CHECK(!conv_transpose2d_direct(4, 4, 2, 1, 16) && !conv_transpose2d_direct(3, 4, 2, 1, 8) &&
            !conv_transpose2d_direct(3, 3, 2, 1, 16) && !conv2d_direct(4, 8, 4, 2, 1, 32, 32) &&
            !conv2d_direct(3, 8, 4, 2, 1, 31, 32) && !conv2d_direct(3, 8, 4, 2, 1, 32, 16) && conv2d_direct(3, 8, 4, 2, 1, 32, 32) &&
            !conv2d_direct(3, 8, 3, 1, 1, 32, 16) && !conv2d_direct(4, 8, 3, 1, 1, 32, 32) && !conv2d_direct(8, 4, 3, 1, 1, 32, 32) &&
            !conv2d_direct(3, 8, 3, 2, 1, 32, 32) && !conv2d_direct(3, 8, 3, 1, 0, 32, 32) && conv2d_direct(3, 8, 3, 1, 1, 5, 32) &&
            conv2d_direct(8, 3, 3, 1, 1, 32, 64),
        "the direct path's shapes");
  double worst = 0;
  for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
    conv_cfg c = cases[t].c;
    int tr = cases[t].transposed;
    CHECK(tr ? conv_transpose2d_direct(c.OC, c.K, c.stride, c.pad, c.W) : conv2d_direct(c.IC, c.OC, c.K, c.stride, c.pad, c.H, c.W),
          "case %zu is not on the direct path", t);
    int OH = tr ? conv_transpose2d_out_size(c.H, c.K, c.stride, c.pad) : conv2d_out_size(c.H, c.K, c.stride, c.pad);
    int OW = tr ? conv_transpose2d_out_size(c.W, c.K, c.stride, c.pad) : conv2d_out_size(c.W, c.K, c.stride, c.pad);
    size_t in_img = (size_t)c.IC * c.H * c.W, out_img = (size_t)c.OC * OH * OW;
    size_t nin = c.B * in_img, nw = (size_t)c.OC * c.IC * c.K * c.K, nout = c.B * out_img;
    size_t sz[4] = {nout, nin, nw, (size_t)c.OC};
    float *in = alloc_floats(nin), *w = alloc_floats(nw), *b = alloc_floats((size_t)c.OC), *dout = alloc_floats(nout);
    test_fill_uniform(in, nin, -1, 1, 1700 + t);
    test_fill_uniform(w, nw, -1, 1, 1701 + t);
    test_fill_uniform(b, (size_t)c.OC, -1, 1, 1702 + t);
    test_fill_uniform(dout, nout, -1, 1, 1703 + t);
    float *direct[4], *again[4], *gemm[4];
    fwd_bwd(direct, c, tr, in, w, b, dout);
    for (int shift = 1; shift < 8; shift++) { // the workspace at every float alignment
      fwd_bwd_at(again, c, tr, in, w, b, dout, shift);
      int same = 1;
      for (int j = 0; j < 4; j++) same &= memcmp(direct[j], again[j], sz[j] * sizeof(float)) == 0;
      CHECK(same, "case %zu: the workspace %d floats further on changes the results", t, shift);
      for (int j = 0; j < 4; j++) free(again[j]);
    }
    fwd_bwd(again, c, tr, in, w, b, dout);
    vm_isa isa0 = vm_get_isa();
    vm_set_isa(VM_ISA_GENERIC);
    CHECK(!conv_transpose2d_direct(3, 4, 2, 1, 16) && !conv2d_direct(3, 8, 4, 2, 1, 32, 32) &&
              !conv2d_direct(3, 32, 3, 1, 1, 32, 32) && !conv2d_direct(32, 3, 3, 1, 1, 32, 32),
          "direct path on with the generic ISA");
    fwd_bwd(gemm, c, tr, in, w, b, dout);
    vm_set_isa(isa0);
    static const char *names[4] = {"out", "din", "dw", "db"};
    /* dw and db sum over the batch's grid or image pixels, terms of size <= 1: relative to that */
    int pixels = tr ? c.H * c.W : OH * OW;
    double tols[4] = {2e-5, 2e-5, 2e-6 * c.B * pixels, 2e-6 * c.B * (tr ? OH * OW : pixels)};
    for (int j = 0; j < 4; j++) {
      CHECK(memcmp(direct[j], again[j], sz[j] * sizeof(float)) == 0, "case %zu: two runs' %s differ", t, names[j]);
      double e = 0;
      for (size_t i = 0; i < sz[j]; i++) e = fmax(e, fabs(direct[j][i] - gemm[j][i]));
      if (!(e <= tols[j])) e = INFINITY;
      CHECK(e <= tols[j], "case %zu: direct %s vs GEMM path: max abs err %.3g (tol %.3g)", t, names[j], e, tols[j]);
      worst = fmax(worst, e / tols[j]);
    }
    /* image by image: out and din the batch's bits */
    conv_cfg one = c;
    one.B = 1;
    int alone = 1;
    for (int i = 0; i < c.B; i++) {
      float *r[4];
      fwd_bwd(r, one, tr, in + i * in_img, w, b, dout + i * out_img);
      alone &= memcmp(r[0], direct[0] + i * out_img, out_img * sizeof(float)) == 0;
      alone &= memcmp(r[1], direct[1] + i * in_img, in_img * sizeof(float)) == 0;
      for (int j = 0; j < 4; j++) free(r[j]);
    }
    CHECK(alone, "case %zu: an image's out or din differs alone and in the batch", t);
    for (int j = 0; j < 4; j++) free(direct[j]), free(again[j]), free(gemm[j]);
    free(in), free(w), free(b), free(dout);
  }
  printf("direct layers: %zu layers' fwd + bwd within %.2f of the tolerance of the GEMM path's, "
         "deterministic, images independent of the batch\n",
         sizeof cases / sizeof *cases, worst);
}

int main(void) {
  test_hand_worked();
  test_forward_vs_direct();
  test_workspace_any_batch();
  test_backward_vs_direct();
  test_adjoint();
  test_gradients();
  test_deterministic();
  test_row_copies();
  test_streamed_output();
  test_direct();
  return test_finish("test_conv");
}
