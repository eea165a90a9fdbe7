/* The vecmath kernels on 4-float vectors, for any CPU (SSE2 on x86-64). */
#define VM_LANES 4
#define VM_NAME(f) vm_##f##_generic
#include "nn/vecmath_kernels.h"
