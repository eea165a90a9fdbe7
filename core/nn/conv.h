/* 2-D convolution and transposed convolution over NCHW batches, as im2col /
 * col2im plus cblas_sgemm into a workspace the caller owns (darknet style).
 * Weights follow PyTorch: conv (OC, IC, K, K), transposed conv (IC, OC, K, K),
 * so a transposed conv with the same weights is the exact adjoint of a conv.
 * Square kernels, strides and padding; H and W are always the INPUT sizes.
 * Forward overwrites its output; backward accumulates (+=) into din, dw, db,
 * each of which may be NULL. Nothing here allocates. */
#ifndef GTMSM_NN_CONV_H
#define GTMSM_NN_CONV_H

#include <stddef.h>

/* Output size of a conv along one axis: (H + 2 pad - K) / stride + 1 (floor). */
static inline int conv2d_out_size(int H, int K, int stride, int pad) {
  return (H + 2 * pad - K) / stride + 1;
}
/* Output size of a transposed conv (no output padding): (H - 1) stride - 2 pad + K.
 * conv2d_out_size of this is H again, which is what makes the two adjoint. */
static inline int conv_transpose2d_out_size(int H, int K, int stride, int pad) {
  return (H - 1) * stride - 2 * pad + K;
}

/* 1 when the layers run every image of any batch through GEMMs of its own
 * (grids of grid_pixels: a conv's output grid, a transposed conv's input
 * grid): an image's result then does not depend on the batch it came in,
 * bit for bit. Smaller grids share GEMMs between images of a chunk. */
int conv_images_independent(int grid_pixels);

/* For tests and benchmarks: 0 makes the 4x4 stride-2 layers run im2col and
 * col2im through phase planes like every other layer, 1 (the default) through
 * their row kernels; the bits are the same. Not thread-safe: set it before
 * any work starts. */
void conv_set_row_copies(int on);

/* 1 when the layers compute this shape on this CPU without a GEMM, where
 * vecmath runs AVX2: 4x4 stride-2 pad-1 layers between 3 channels and a grid
 * whose width is a multiple of 16 (a conv from 3 channels of even H and W a
 * multiple of 32, a transposed conv to 3 channels of input width W a
 * multiple of 16), and 3x3 stride-1 pad-1 convs from 3 channels or to 3
 * channels of W a multiple of 32. Their results are then the same to float
 * rounding, not the GEMM path's bits. For tests and benchmarks. */
int conv2d_direct(int IC, int OC, int K, int stride, int pad, int H, int W);
int conv_transpose2d_direct(int OC, int K, int stride, int pad, int W);
/* Floats of workspace that conv2d_forward/backward need for any batch <= B. */
size_t conv2d_workspace_floats(int B, int IC, int H, int W, int OC, int K, int stride, int pad);

/* out (B, OC, OH, OW) = conv(in (B, IC, H, W), w (OC, IC, K, K)) + b (OC);
 * b may be NULL. col_ws (conv2d_workspace_floats) is scratch, borrowed. */
void conv2d_forward(float *out, float *col_ws, const float *in, const float *w, const float *b,
                    int B, int IC, int H, int W, int OC, int K, int stride, int pad);
/* From dout (B, OC, OH, OW) accumulates din (B, IC, H, W), dw (OC, IC, K, K),
 * db (OC); any may be NULL. in and w are as in the forward. */
void conv2d_backward(float *din, float *dw, float *db, float *col_ws, const float *dout,
                     const float *in, const float *w, int B, int IC, int H, int W, int OC, int K,
                     int stride, int pad);

/* Floats of workspace that conv_transpose2d_forward/backward need for any batch <= B. */
size_t conv_transpose2d_workspace_floats(int B, int IC, int H, int W, int OC, int K, int stride,
                                         int pad);

/* out (B, OC, OH, OW) = convT(in (B, IC, H, W), w (IC, OC, K, K)) + b (OC) with
 * OH = conv_transpose2d_out_size(H, ...); b may be NULL. */
void conv_transpose2d_forward(float *out, float *col_ws, const float *in, const float *w,
                              const float *b, int B, int IC, int H, int W, int OC, int K,
                              int stride, int pad);
/* From dout (B, OC, OH, OW) accumulates din (B, IC, H, W), dw (IC, OC, K, K),
 * db (OC); any may be NULL. */
void conv_transpose2d_backward(float *din, float *dw, float *db, float *col_ws, const float *dout,
                               const float *in, const float *w, int B, int IC, int H, int W,
                               int OC, int K, int stride, int pad);

#endif
