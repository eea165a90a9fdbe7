/* OpenBLAS kernel selection before main (see blas_core.h). */
#include "nn/blas_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define BLAS_CORE_X86 1
#endif

char *openblas_get_corename(void);
char *openblas_get_config(void);

/* Referenced from the link line of every program (core/CMakeLists.txt) so the
 * linker keeps this object, and with it the constructor, in each of them. */
int blas_core_link_anchor;

/* Set in the re-executed process: the core OpenBLAS had picked by itself. */
#define ENV_FROM "GTMSM_BLAS_CORE_FROM"
/* Test hook: pretend OpenBLAS picked this core (only while OPENBLAS_CORETYPE
 * is unset), so the re-exec path can be exercised on a CPU OpenBLAS knows. */
#define ENV_PRETEND "GTMSM_BLAS_CORE_PRETEND"

/* Vector level of every x86-64 core name OpenBLAS 0.3.21 uses. Unknown names
 * are left alone by blas_core_choose. */
static const struct {
  const char *name;
  int level; /* 0 SSE, 1 AVX, 2 AVX2+FMA, 3 AVX-512 */
} CORES[] = {
    {"Katmai", 0},     {"Coppermine", 0}, {"Northwood", 0},  {"Prescott", 0},   {"Banias", 0},
    {"Atom", 0},       {"Core2", 0},      {"Penryn", 0},     {"Dunnington", 0}, {"Nehalem", 0},
    {"Athlon", 0},     {"Opteron", 0},    {"Opteron_SSE3", 0}, {"Barcelona", 0}, {"Nano", 0},
    {"Bobcat", 0},     {"Sandybridge", 1}, {"Bulldozer", 1}, {"Piledriver", 1}, {"Steamroller", 1},
    {"Excavator", 1},  {"Haswell", 2},    {"Zen", 2},        {"SkylakeX", 3},   {"Cooperlake", 3},
    {"SapphireRapids", 3},
};

static int core_level(const char *name) {
  if (!name) return -1;
  for (size_t i = 0; i < sizeof CORES / sizeof *CORES; i++)
    if (strcasecmp(CORES[i].name, name) == 0) return CORES[i].level;
  return -1;
}

blas_cpu blas_cpu_detect(void) {
  blas_cpu c = {0};
#ifdef BLAS_CORE_X86
  unsigned a, b, cx, d;
  if (!__get_cpuid(0, &a, &b, &cx, &d)) return c;
  unsigned max_leaf = a;
  c.amd = b == 0x68747541u && d == 0x69746e65u && cx == 0x444d4163u; /* "AuthenticAMD" */
  if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
  c.family = (int)((a >> 8) & 0xf);
  if (c.family == 0xf) c.family += (int)((a >> 20) & 0xff);
  int fma = (cx >> 12) & 1, avx = (cx >> 28) & 1, osxsave = (cx >> 27) & 1;
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = ((unsigned long long)hi << 32) | lo;
  }
  int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
  if (max_leaf < 7) return c;
  __cpuid_count(7, 0, a, b, cx, d);
  int avx2 = (b >> 5) & 1;
  int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  c.avx2_fma = avx && avx2 && fma && ymm;
  c.avx512 = c.avx2_fma && f && dq && bw && vl && zmm;
#endif
  return c;
}

const char *blas_core_choose(const blas_cpu *cpu, const char *current) {
  const char *want = NULL;
  if (cpu->avx512) want = "SkylakeX";
  else if (cpu->avx2_fma) want = cpu->amd && (cpu->family == 0x17 || cpu->family == 0x19) ? "Zen" : "Haswell";
  if (!want) return NULL;
  int have = core_level(current);
  if (have < 0 || have >= core_level(want)) return NULL;
  return want;
}

const char *blas_core_name(void) { return openblas_get_corename(); }

blas_core_origin blas_core_get_origin(void) {
  if (!getenv("OPENBLAS_CORETYPE")) return BLAS_CORE_OPENBLAS;
  return getenv(ENV_FROM) ? BLAS_CORE_SELECTED : BLAS_CORE_ENVIRONMENT;
}

const char *blas_core_describe(char *buf, size_t len) {
  const char *name = blas_core_name();
  switch (blas_core_get_origin()) {
  case BLAS_CORE_SELECTED:
    snprintf(buf, len, "%s (selected: OpenBLAS picked %s)", name, getenv(ENV_FROM));
    break;
  case BLAS_CORE_ENVIRONMENT:
    snprintf(buf, len, "%s (OPENBLAS_CORETYPE)", name);
    break;
  default:
    snprintf(buf, len, "%s (OpenBLAS's choice)", name);
  }
  return buf;
}

/* Runs after the shared libraries' constructors (OpenBLAS has chosen its core)
 * and before main. glibc passes argc, argv and envp to ELF constructors. */
__attribute__((constructor)) static void blas_core_select(int argc, char **argv, char **envp) {
  (void)argc;
  (void)envp;
  if (getenv("OPENBLAS_CORETYPE") || !argv || !argv[0]) return;
  const char *config = openblas_get_config();
  if (!config || !strstr(config, "DYNAMIC_ARCH")) return; /* one kernel set built in */
  const char *current = getenv(ENV_PRETEND) ? getenv(ENV_PRETEND) : openblas_get_corename();
  blas_cpu cpu = blas_cpu_detect();
  const char *want = blas_core_choose(&cpu, current);
  if (!want) return;
  if (setenv(ENV_FROM, current, 1) || setenv("OPENBLAS_CORETYPE", want, 1)) return;
  unsetenv(ENV_PRETEND);
  fflush(NULL);
  execv("/proc/self/exe", argv);
  /* no /proc: go on with OpenBLAS's choice, and say so through the origin */
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(ENV_FROM);
}
