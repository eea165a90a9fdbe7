/* The vecmath kernels on 8-float vectors, compiled with -mavx2 (and without
 * FMA: see vecmath_kernels.h) and only called when the CPU has AVX2. */
#if defined(__x86_64__) || defined(__i386__)
#ifndef __AVX2__
#error "vecmath_avx2.c must be compiled with -mavx2 (core/CMakeLists.txt)"
#endif
#ifdef __FMA__
#error "vecmath_avx2.c must be compiled without FMA: results must equal the generic path's"
#endif
#define VM_LANES 8
#define VM_NAME(f) vm_##f##_avx2
#include "nn/vecmath_kernels.h"
#else
typedef int vecmath_avx2_empty; /* ISO C: a translation unit must not be empty */
#endif
