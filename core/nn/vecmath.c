/* Dispatch of the vecmath kernels (see vecmath.h) to the path the CPU runs. */
#include "nn/vecmath.h"

#include <stdlib.h>
#include <string.h>

#include "nn/blas_core.h"
#include "nn/vecmath_internal.h"

static const vm_kernels KERNELS_GENERIC = VM_TABLE(generic);
#ifdef VM_HAVE_AVX2
static const vm_kernels KERNELS_AVX2 = VM_TABLE(avx2);
#endif

static const vm_kernels *kern = &KERNELS_GENERIC;
static vm_isa isa_in_use = VM_ISA_GENERIC;

int vm_isa_supported(vm_isa isa) {
  if (isa == VM_ISA_GENERIC) return 1;
#ifdef VM_HAVE_AVX2
  /* the CPU detection OpenBLAS's kernel selection uses (AVX2 and FMA, with
   * the OS saving YMM state); the kernels use AVX2 only */
  static int avx2 = -1; /* cpuid once: in a VM it traps to the hypervisor */
  if (avx2 < 0) avx2 = blas_cpu_detect().avx2_fma;
  if (isa == VM_ISA_AVX2) return avx2;
#endif
  return 0;
}

int vm_set_isa(vm_isa isa) {
  if (!vm_isa_supported(isa)) return -1;
#ifdef VM_HAVE_AVX2
  kern = isa == VM_ISA_AVX2 ? &KERNELS_AVX2 : &KERNELS_GENERIC;
#else
  kern = &KERNELS_GENERIC;
#endif
  isa_in_use = isa;
  return 0;
}

vm_isa vm_get_isa(void) { return isa_in_use; }

const vm_kernels *vm_kernels_in_use(void) { return kern; }

const char *vm_isa_name(vm_isa isa) { return isa == VM_ISA_AVX2 ? "avx2" : "generic"; }

/* Before main: the best path of this CPU, or the one GTMSM_VECMATH names (an
 * unknown name or a path the CPU lacks keeps the best one). */
__attribute__((constructor)) static void vm_select(void) {
  const char *e = getenv("GTMSM_VECMATH");
  if (!e || strcmp(e, "generic") != 0) vm_set_isa(VM_ISA_AVX2); /* stays generic without AVX2 */
}

void vm_exp(float *y, const float *x, size_t n) { kern->exp(y, x, n); }
void vm_expm1(float *y, const float *x, size_t n) { kern->expm1(y, x, n); }
void vm_tanh(float *y, const float *x, size_t n) { kern->tanh(y, x, n); }
void vm_sech2(float *y, const float *x, size_t n) { kern->sech2(y, x, n); }
void vm_sigmoid(float *y, const float *x, size_t n) { kern->sigmoid(y, x, n); }
void vm_dsigmoid(float *y, const float *x, size_t n) { kern->dsigmoid(y, x, n); }
void vm_softplus(float *y, const float *x, size_t n) { kern->softplus(y, x, n); }
void vm_elu(float *y, const float *x, size_t n, float alpha) { kern->elu(y, x, n, alpha); }
void vm_elu_backward(float *din, const float *dout, const float *x, size_t n, float alpha) {
  kern->elu_backward(din, dout, x, n, alpha);
}
void vm_tanh_backward(float *din, const float *dout, const float *x, size_t n) {
  kern->tanh_backward(din, dout, x, n, 0);
}
void vm_sigmoid_backward(float *din, const float *dout, const float *x, size_t n) {
  kern->sigmoid_backward(din, dout, x, n, 0);
}
void vm_softplus_backward(float *din, const float *dout, const float *x, size_t n) {
  kern->softplus_backward(din, dout, x, n, 0);
}

#define VM_SCALAR(name)          \
  float vm_##name##f(float x) {  \
    float y;                     \
    kern->name(&y, &x, 1);       \
    return y;                    \
  }
VM_SCALAR(exp)
VM_SCALAR(tanh)
VM_SCALAR(sech2)
VM_SCALAR(sigmoid)
VM_SCALAR(dsigmoid)
VM_SCALAR(softplus)
