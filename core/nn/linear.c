/* Fully connected layer on cblas_sgemm, and its row-independent inference
 * form on vecmath's dense kernel (linear.h). */
#include "nn/linear.h"

#include <cblas.h>
#include <string.h>

#include "nn/vecmath_internal.h"

void linear_forward(float *out, const float *in, const float *w, const float *b, int B, int IN,
                    int OUT) {
  if (b) {
    for (int i = 0; i < B; i++) memcpy(out + (size_t)i * OUT, b, (size_t)OUT * sizeof(float));
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, in, IN, w, IN,
              b ? 1.0f : 0.0f, out, OUT);
}

void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, int B, int IN, int OUT) {
  if (din) /* (B, IN) += (B, OUT) @ (OUT, IN) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f, dout, OUT, w, IN,
                1.0f, din, IN);
  if (dw) /* (OUT, IN) += (B, OUT)^T @ (B, IN) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, B, 1.0f, dout, OUT, in, IN,
                1.0f, dw, IN);
  if (db)
    for (int i = 0; i < B; i++) {
      const float *d = dout + (size_t)i * OUT;
      for (int o = 0; o < OUT; o++) db[o] += d[o];
    }
}

size_t linear_infer_floats(int IN, int OUT) {
  const size_t panels = (size_t)(OUT + VM_DENSE_COLS - 1) / VM_DENSE_COLS;
  return panels * VM_DENSE_COLS * (size_t)(IN + 1);
}

void linear_infer_pack(float *pk, const float *w, const float *b, int IN, int OUT) {
  memset(pk, 0, sizeof(float) * linear_infer_floats(IN, OUT));
  for (int o = 0; o < OUT; o++) {
    float *col = pk + (size_t)(o / VM_DENSE_COLS) * VM_DENSE_COLS * (IN + 1) + o % VM_DENSE_COLS;
    col[0] = b ? b[o] : 0.0f;
    for (int k = 0; k < IN; k++) col[(size_t)(k + 1) * VM_DENSE_COLS] = w[(size_t)o * IN + k];
  }
}

void linear_infer(float *out, const float *in, const float *pk, int B, int IN, int OUT) {
  vm_kernels_in_use()->dense(out, in, pk, B, IN, OUT);
}
