/* The OpenBLAS kernel selection: the choice table, the CPU features against
 * /proc/cpuinfo, and the re-exec path for real (this binary runs itself with
 * the test hook that pretends OpenBLAS picked the SSE3 fallback). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/blas_core.h"
#include "testlib.h"

static void test_choose(void) {
  blas_cpu sse = {0}, avx2 = {.avx2_fma = 1, .family = 6}, zen = {.amd = 1, .family = 0x19, .avx2_fma = 1},
           zen1 = {.amd = 1, .family = 0x17, .avx2_fma = 1},
           other_amd = {.amd = 1, .family = 0x15, .avx2_fma = 1},
           x512 = {.avx2_fma = 1, .avx512 = 1, .family = 6};
  struct {
    const blas_cpu *cpu;
    const char *current, *want;
  } cases[] = {
      {&x512, "Prescott", "SkylakeX"}, {&x512, "Haswell", "SkylakeX"},  {&x512, "SkylakeX", NULL},
      {&x512, "Cooperlake", NULL},     {&avx2, "Prescott", "Haswell"},  {&avx2, "Sandybridge", "Haswell"},
      {&avx2, "Haswell", NULL},        {&avx2, "Zen", NULL},            {&zen, "Prescott", "Zen"},
      {&zen1, "Nehalem", "Zen"},       {&zen, "Zen", NULL},             {&other_amd, "Bulldozer", "Haswell"},
      {&sse, "Prescott", NULL},        {&x512, "SomeFutureCore", NULL}, {&avx2, NULL, NULL},
      {&x512, "prescott", "SkylakeX"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *got = blas_core_choose(cases[i].cpu, cases[i].current);
    int ok = (got == NULL && cases[i].want == NULL) ||
             (got && cases[i].want && strcmp(got, cases[i].want) == 0);
    CHECK(ok, "case %zu: current %s: got %s, expected %s", i, cases[i].current ? cases[i].current : "(null)",
          got ? got : "keep", cases[i].want ? cases[i].want : "keep");
  }
  printf("choose: %zu cases\n", sizeof cases / sizeof *cases);
}

/* The kernel's own view of the flags (it also checks the OS saves the state). */
static int cpuinfo_has(const char *flag) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return -1;
  char line[8192];
  int found = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "flags", 5) == 0) {
      char pat[64];
      snprintf(pat, sizeof pat, " %s", flag);
      char *p = strstr(line, pat);
      found = p && (p[strlen(pat)] == ' ' || p[strlen(pat)] == '\n');
      break;
    }
  fclose(f);
  return found;
}

static void test_detect(void) {
  blas_cpu c = blas_cpu_detect();
  int avx2 = cpuinfo_has("avx2"), fma = cpuinfo_has("fma"), f512 = cpuinfo_has("avx512f");
  printf("cpu: amd %d family 0x%x avx2+fma %d avx512 %d (cpuinfo avx2 %d fma %d avx512f %d)\n", c.amd,
         c.family, c.avx2_fma, c.avx512, avx2, fma, f512);
  if (avx2 >= 0) {
    CHECK(c.avx2_fma == (avx2 && fma), "cpuid avx2+fma %d vs cpuinfo %d", c.avx2_fma, avx2 && fma);
    if (!f512) CHECK(!c.avx512, "AVX-512 detected without avx512f in cpuinfo");
  }
}

/* Runs this binary with `env` added (and OPENBLAS_CORETYPE / the hook removed
 * first) in report mode; its one output line goes into out. */
static int run_self(const char *self, const char *const *env, char *out, size_t len) {
  int fd[2];
  if (pipe(fd)) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("GTMSM_BLAS_CORE_FROM");
    unsetenv("GTMSM_BLAS_CORE_PRETEND");
    for (int i = 0; env[i]; i += 2) setenv(env[i], env[i + 1], 1);
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    execl(self, self, "--report", (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  ssize_t n = read(fd[0], out, len - 1);
  close(fd[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  out[n > 0 ? n : 0] = 0;
  out[strcspn(out, "\n")] = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_reexec(const char *self) {
  blas_cpu c = blas_cpu_detect();
  const char *want = blas_core_choose(&c, "Prescott");
  char out[512], expect[512];
  /* pretend OpenBLAS fell back: a CPU with AVX2 re-executes onto the right core */
  const char *pretend[] = {"GTMSM_BLAS_CORE_PRETEND", "Prescott", NULL};
  CHECK(run_self(self, pretend, out, sizeof out) == 0, "report run failed");
  if (want) snprintf(expect, sizeof expect, "%s|selected|Prescott", want);
  else snprintf(expect, sizeof expect, "%s|openblas|-", blas_core_name());
  printf("re-exec: %s (expected %s)\n", out, expect);
  CHECK(strcmp(out, expect) == 0, "got %s expected %s", out, expect);
  /* a user's OPENBLAS_CORETYPE is never overridden, even with the hook */
  const char *user[] = {"OPENBLAS_CORETYPE", "Prescott", "GTMSM_BLAS_CORE_PRETEND", "Prescott", NULL};
  CHECK(run_self(self, user, out, sizeof out) == 0, "report run failed");
  printf("user's choice: %s\n", out);
  CHECK(strcmp(out, "Prescott|environment|-") == 0, "got %s", out);
  /* nothing set: OpenBLAS's own pick is kept when it is as good as the CPU allows */
  const char *none[] = {NULL};
  CHECK(run_self(self, none, out, sizeof out) == 0, "report run failed");
  printf("default: %s\n", out);
  CHECK(strstr(out, "|environment|") == NULL, "got %s", out);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--report") == 0) {
    const char *from = getenv("GTMSM_BLAS_CORE_FROM");
    static const char *origins[] = {"openblas", "selected", "environment"};
    printf("%s|%s|%s\n", blas_core_name(), origins[blas_core_get_origin()], from ? from : "-");
    return 0;
  }
  char desc[128];
  printf("blas core: %s\n", blas_core_describe(desc, sizeof desc));
  test_choose();
  test_detect();
  test_reexec("/proc/self/exe");
  return test_finish("blas_core");
}
