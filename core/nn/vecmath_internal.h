/* The kernels behind vecmath.h, one set per instruction set (vecmath_generic.c,
 * vecmath_avx2.c, both from vecmath_kernels.h), and the table vecmath.c
 * dispatches through. Internal to core/nn. */
#ifndef GTMSM_NN_VECMATH_INTERNAL_H
#define GTMSM_NN_VECMATH_INTERNAL_H

#include <stddef.h>

typedef struct {
  void (*exp)(float *y, const float *x, size_t n);
  void (*expm1)(float *y, const float *x, size_t n);
  void (*tanh)(float *y, const float *x, size_t n);
  void (*sech2)(float *y, const float *x, size_t n);
  void (*sigmoid)(float *y, const float *x, size_t n);
  void (*dsigmoid)(float *y, const float *x, size_t n);
  void (*softplus)(float *y, const float *x, size_t n);
  void (*elu)(float *y, const float *x, size_t n, float alpha);
  /* din += f'(x) dout */
  void (*elu_backward)(float *din, const float *dout, const float *x, size_t n, float alpha);
  void (*tanh_backward)(float *din, const float *dout, const float *x, size_t n, float alpha);
  void (*sigmoid_backward)(float *din, const float *dout, const float *x, size_t n, float alpha);
  void (*softplus_backward)(float *din, const float *dout, const float *x, size_t n, float alpha);
  /* out (B, OUT) = in (B, IN) @ w^T + b, w and b packed (linear.c: linear_infer) */
  void (*dense)(float *out, const float *in, const float *pk, int B, int IN, int OUT);
} vm_kernels;

/* The packed weights of the dense kernel: panels of VM_DENSE_COLS outputs,
 * each the bias (VM_DENSE_COLS floats) then input k's weights for k = 0 ..
 * IN - 1 (VM_DENSE_COLS floats each), outputs past OUT zero. */
#define VM_DENSE_COLS 16

/* The kernel table of the path in use (vecmath.c). */
const vm_kernels *vm_kernels_in_use(void);

#define VM_DECLARE(sfx)                                                                         \
  void vm_exp_##sfx(float *y, const float *x, size_t n);                                        \
  void vm_expm1_##sfx(float *y, const float *x, size_t n);                                      \
  void vm_tanh_##sfx(float *y, const float *x, size_t n);                                       \
  void vm_sech2_##sfx(float *y, const float *x, size_t n);                                      \
  void vm_sigmoid_##sfx(float *y, const float *x, size_t n);                                    \
  void vm_dsigmoid_##sfx(float *y, const float *x, size_t n);                                   \
  void vm_softplus_##sfx(float *y, const float *x, size_t n);                                   \
  void vm_elu_##sfx(float *y, const float *x, size_t n, float alpha);                           \
  void vm_elu_backward_##sfx(float *din, const float *dout, const float *x, size_t n, float a); \
  void vm_tanh_backward_##sfx(float *din, const float *dout, const float *x, size_t n, float a); \
  void vm_sigmoid_backward_##sfx(float *din, const float *dout, const float *x, size_t n,       \
                                 float a);                                                      \
  void vm_softplus_backward_##sfx(float *din, const float *dout, const float *x, size_t n,      \
                                  float a);                                                    \
  void vm_dense_##sfx(float *out, const float *in, const float *pk, int B, int IN, int OUT);

VM_DECLARE(generic)
#if defined(__x86_64__) || defined(__i386__)
#define VM_HAVE_AVX2 1
VM_DECLARE(avx2)
#endif

#define VM_TABLE(sfx)                                                                        \
  {vm_exp_##sfx, vm_expm1_##sfx, vm_tanh_##sfx, vm_sech2_##sfx, vm_sigmoid_##sfx,           \
   vm_dsigmoid_##sfx, vm_softplus_##sfx, vm_elu_##sfx, vm_elu_backward_##sfx,               \
   vm_tanh_backward_##sfx, vm_sigmoid_backward_##sfx, vm_softplus_backward_##sfx, vm_dense_##sfx}

#endif
