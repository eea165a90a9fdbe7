/* One option table per subcommand drives parsing, validation and --help. */
#ifndef GTMSM_TOOLS_OPTS_H
#define GTMSM_TOOLS_OPTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { OPT_INT, OPT_U64, OPT_DOUBLE, OPT_STRING, OPT_FLAG, OPT_LIST } opt_type;

/* The values of a list option (--episodes a.ndjson b.ndjson): every argument
 * after the flag up to the next one that starts with "--"; the flag may be
 * repeated and its values add up. v (n) borrows argv; free with opt_list_free. */
typedef struct {
  const char **v;
  int n;
} opt_list;
void opt_list_free(opt_list *l);

typedef struct {
  const char *name;  /* without the leading "--" */
  opt_type type;
  void *ptr;         /* int*, uint64_t*, double*, const char**, int* (flag), opt_list* */
  double min, max;   /* numeric range (ignored when min > max) */
  const char *help;
} opt_def;

/* Parses argv[1..] against defs (terminated by a NULL name). Prints usage and
 * returns 1 for --help, prints a message and returns 2 on a bad option. */
int opts_parse(const char *cmd, const char *summary, const opt_def *defs, int argc, char **argv);

/* Creates the folder path and its missing parents (mkdir -p), mode 0755.
 * Returns 0, or -1 with a message naming the folder in err. */
int opts_mkdir_p(const char *path, char *err, size_t errlen);
/* opts_mkdir_p of the folder that holds the file path (nothing for a bare name). */
int opts_mkdir_parent(const char *path, char *err, size_t errlen);

/* Monotonic seconds. */
double opts_now(void);
/* A human duration like "1h02m" or "35s" into buf. */
const char *opts_duration(double seconds, char *buf, int n);

#endif
