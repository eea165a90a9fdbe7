/* Fully connected layer over a batch: out = in @ w^T + b (sgemm). */
#ifndef GTMSM_NN_LINEAR_H
#define GTMSM_NN_LINEAR_H

/* out (B, OUT) = in (B, IN) @ w (OUT, IN)^T + b (OUT); b may be NULL. Overwrites out. */
void linear_forward(float *out, const float *in, const float *w, const float *b, int B, int IN,
                    int OUT);
/* Accumulates (+=) din (B, IN), dw (OUT, IN), db (OUT) from dout (B, OUT);
 * any of din, dw, db may be NULL to skip it. */
void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, int B, int IN, int OUT);

#endif
