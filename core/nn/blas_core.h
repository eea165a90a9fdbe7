/* The OpenBLAS kernel set ("core") every program of the project runs on.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from a CPU table
 * when it loads; a CPU newer than the table falls back to the SSE3 "Prescott"
 * kernels, up to 7x slower. This module reads the CPU's features with cpuid
 * and, when OPENBLAS_CORETYPE is unset and OpenBLAS picked an older core than
 * the CPU supports, sets OPENBLAS_CORETYPE and re-executes the program before
 * main runs (OpenBLAS reads the variable only when it loads, so nothing later
 * in the same process can change its choice). A user's OPENBLAS_CORETYPE is
 * never touched. Nothing else in the project knows about this: linking
 * gtmsm_nn pulls the constructor in (see core/CMakeLists.txt), and programs
 * only ask for the name to print it. Why a re-exec: docs/ARCHITECTURE.md. */
#ifndef GTMSM_NN_BLAS_CORE_H
#define GTMSM_NN_BLAS_CORE_H

#include <stddef.h>

/* The CPU features the choice depends on (x86-64; all zero elsewhere). */
typedef struct {
  int amd;          /* vendor AuthenticAMD */
  int family;       /* display family (base + extended) */
  int avx2_fma;     /* AVX2 and FMA, with the OS saving YMM state */
  int avx512;       /* AVX-512 F, BW, DQ and VL, with the OS saving ZMM state */
} blas_cpu;

typedef enum {
  BLAS_CORE_OPENBLAS = 0, /* OpenBLAS's own choice was already the best we know */
  BLAS_CORE_SELECTED,     /* this module set OPENBLAS_CORETYPE and re-executed */
  BLAS_CORE_ENVIRONMENT,  /* OPENBLAS_CORETYPE was set by the user: untouched */
} blas_core_origin;

/* The features of this CPU. */
blas_cpu blas_cpu_detect(void);
/* The core name to select for cpu when OpenBLAS picked `current`, or NULL to
 * keep it: current is already as good, or is a name this table does not know
 * (a newer OpenBLAS may know better than we do). Pure; tested on a table. */
const char *blas_core_choose(const blas_cpu *cpu, const char *current);

/* The core in use (OpenBLAS's name, static string) and where it came from. */
const char *blas_core_name(void);
blas_core_origin blas_core_get_origin(void);
/* "Zen (OpenBLAS's choice)", "SkylakeX (selected: OpenBLAS picked Prescott)",
 * "Prescott (OPENBLAS_CORETYPE)" into buf. Returns buf. */
const char *blas_core_describe(char *buf, size_t len);

#endif
