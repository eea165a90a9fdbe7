/* Fully connected layer over a batch: out = in @ w^T + b (sgemm), and its
 * row-independent inference form (linear_infer). */
#ifndef GTMSM_NN_LINEAR_H
#define GTMSM_NN_LINEAR_H

#include <stddef.h>

/* out (B, OUT) = in (B, IN) @ w (OUT, IN)^T + b (OUT); b may be NULL. Overwrites out. */
void linear_forward(float *out, const float *in, const float *w, const float *b, int B, int IN,
                    int OUT);
/* Accumulates (+=) din (B, IN), dw (OUT, IN), db (OUT) from dout (B, OUT);
 * any of din, dw, db may be NULL to skip it. */
void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, int B, int IN, int OUT);

/* The same layer for inference, without BLAS and row by row: each output row
 * is a function of its input row alone (the same bits whatever the batch,
 * the row's place in it or the CPU's vector path: vecmath's no-FMA rule),
 * summed over IN in order from the bias. BLAS kernels give a row bits that
 * depend on the batch's height and the row's place in it; this does not,
 * and a batch of a few rows costs a few rows (no packing of w per call).
 * Not the bits of linear_forward. pk holds w and b packed:
 * linear_infer_floats(IN, OUT) floats, written by linear_infer_pack (b may
 * be NULL: zero). */
size_t linear_infer_floats(int IN, int OUT);
void linear_infer_pack(float *pk, const float *w, const float *b, int IN, int OUT);
/* out (B, OUT) from in (B, IN); out must not alias in. */
void linear_infer(float *out, const float *in, const float *pk, int B, int IN, int OUT);

#endif
