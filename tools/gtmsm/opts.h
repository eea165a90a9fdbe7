/* One option table per subcommand drives parsing, validation and --help. */
#ifndef GTMSM_TOOLS_OPTS_H
#define GTMSM_TOOLS_OPTS_H

#include <stdint.h>

typedef enum { OPT_INT, OPT_U64, OPT_DOUBLE, OPT_STRING, OPT_FLAG } opt_type;

typedef struct {
  const char *name;  /* without the leading "--" */
  opt_type type;
  void *ptr;         /* int*, uint64_t*, double*, const char**, int* (flag) */
  double min, max;   /* numeric range (ignored when min > max) */
  const char *help;
} opt_def;

/* Parses argv[1..] against defs (terminated by a NULL name). Prints usage and
 * returns 1 for --help, prints a message and returns 2 on a bad option. */
int opts_parse(const char *cmd, const char *summary, const opt_def *defs, int argc, char **argv);

/* Monotonic seconds. */
double opts_now(void);
/* A human duration like "1h02m" or "35s" into buf. */
const char *opts_duration(double seconds, char *buf, int n);

#endif
