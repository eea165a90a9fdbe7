/* gtmsm: the command-line tool. Subcommands: gen, train, eval, predict. */
#include <stdio.h>
#include <string.h>

#include "nn/blas_core.h"
#include "tools.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: gtmsm <command> [options]\n"
          "commands:\n"
          "  gen       generate an episode as NDJSON\n"
          "  train     train a model on generated or recorded episodes\n"
          "  eval      evaluate a model on generated or recorded episodes (PSNR, strips, JSON)\n"
          "  predict   predict frames offline from an episode file\n"
          "  (gtmsm <command> --help for options)\n"
          "  --version print the version\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    char core[128];
    printf("gtmsm %s\nblas_core %s\n", GTMSM_VERSION, blas_core_describe(core, sizeof core));
    return 0;
  }
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  for (const tool_command *c = TOOL_COMMANDS; c->name; c++)
    if (strcmp(c->name, cmd) == 0) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "gtmsm: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}
