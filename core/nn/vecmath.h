/* Vectorised elementwise math in float, for the activations and densities:
 * exp, expm1, tanh, sigmoid, softplus and the derivatives their backward
 * passes use, computed from the input x (not from y = f(x), where 1 - y^2 or
 * y (1 - y) cancel), with din += f'(x) dout fused for the activations.
 *
 * Accuracy: within 2 ulp of the correctly rounded result over the whole float
 * range (tests/unit/core/nn/test_vecmath.c measures it against libm in double
 * and prints the table); NaN in -> NaN out, +-inf and the overflow/underflow
 * edges give the limits. Determinism: every kernel exists once per
 * instruction set (a generic build and, on x86, an AVX2 build of the same
 * source, vecmath_kernels.h), and the two give the same bits for every input
 * (no FMA, no tables, no float/int conversions, the tail of an array through
 * the same vector code), so results do not depend on the CPU, the path, the
 * array length or the thread count. The path is chosen once at load from the
 * CPU features that blas_core.h reads (cpuid), overridable with
 * GTMSM_VECMATH=generic|avx2 in the environment, or by vm_set_isa (tests).
 *
 * Arrays: y may alias x; din must not alias dout or x. */
#ifndef GTMSM_NN_VECMATH_H
#define GTMSM_NN_VECMATH_H

#include <stddef.h>

void vm_exp(float *y, const float *x, size_t n);      /* e^x */
void vm_expm1(float *y, const float *x, size_t n);    /* e^x - 1 */
void vm_tanh(float *y, const float *x, size_t n);
void vm_sech2(float *y, const float *x, size_t n);    /* tanh'(x) = 1 - tanh^2(x) */
void vm_sigmoid(float *y, const float *x, size_t n);  /* 1 / (1 + e^-x) */
void vm_dsigmoid(float *y, const float *x, size_t n); /* sigmoid'(x) */
void vm_softplus(float *y, const float *x, size_t n); /* log(1 + e^x) */
/* ELU: y = x > 0 ? x : alpha (e^x - 1) */
void vm_elu(float *y, const float *x, size_t n, float alpha);
/* din (n) += f'(x) dout: ELU' = x > 0 ? 1 : alpha e^x; tanh' = sech^2;
 * sigmoid'; softplus' = sigmoid. */
void vm_elu_backward(float *din, const float *dout, const float *x, size_t n, float alpha);
void vm_tanh_backward(float *din, const float *dout, const float *x, size_t n);
void vm_sigmoid_backward(float *din, const float *dout, const float *x, size_t n);
void vm_softplus_backward(float *din, const float *dout, const float *x, size_t n);

/* One value, the same bits as the array functions (scalar call sites). */
float vm_expf(float x);
float vm_tanhf(float x);
float vm_sech2f(float x);
float vm_sigmoidf(float x);
float vm_dsigmoidf(float x);
float vm_softplusf(float x);

typedef enum {
  VM_ISA_GENERIC = 0, /* portable vector code (SSE2 on x86-64) */
  VM_ISA_AVX2,        /* x86 AVX2 (8 floats per vector) */
} vm_isa;

/* The path in use, its name ("generic", "avx2"), whether this CPU can run a
 * path, and a switch for tests and benchmarks: returns 0, or -1 (path kept)
 * when the CPU cannot run it. Not thread-safe: call before any work starts. */
vm_isa vm_get_isa(void);
const char *vm_isa_name(vm_isa isa);
int vm_isa_supported(vm_isa isa);
int vm_set_isa(vm_isa isa);

#endif
