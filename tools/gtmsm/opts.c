/* Option parsing from a table. */
#include "opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f, const char *cmd, const char *summary, const opt_def *defs) {
  fprintf(f, "usage: gtmsm %s [options]\n%s\noptions:\n", cmd, summary);
  for (const opt_def *d = defs; d->name; d++) {
    char def[64] = "";
    switch (d->type) {
      case OPT_INT: snprintf(def, sizeof def, " (default %d)", *(int *)d->ptr); break;
      case OPT_U64: snprintf(def, sizeof def, " (default %llu)", (unsigned long long)*(uint64_t *)d->ptr); break;
      case OPT_DOUBLE: snprintf(def, sizeof def, " (default %g)", *(double *)d->ptr); break;
      case OPT_STRING:
        if (*(const char **)d->ptr) snprintf(def, sizeof def, " (default %s)", *(const char **)d->ptr);
        break;
      default: break;
    }
    fprintf(f, "  --%-18s %s%s\n", d->name, d->help, def);
  }
}

int opts_parse(const char *cmd, const char *summary, const opt_def *defs, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout, cmd, summary, defs);
      return 1;
    }
    if (strncmp(a, "--", 2) != 0) {
      fprintf(stderr, "gtmsm %s: unexpected argument '%s'\n", cmd, a);
      return 2;
    }
    const char *name = a + 2, *val = NULL;
    const char *eq = strchr(name, '=');
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
    const opt_def *d = defs;
    for (; d->name; d++)
      if (strlen(d->name) == nl && strncmp(d->name, name, nl) == 0) break;
    if (!d->name) {
      fprintf(stderr, "gtmsm %s: unknown option '%s' (see --help)\n", cmd, a);
      return 2;
    }
    if (d->type == OPT_FLAG) {
      *(int *)d->ptr = 1;
      continue;
    }
    if (eq) val = eq + 1;
    else if (i + 1 < argc) val = argv[++i];
    else {
      fprintf(stderr, "gtmsm %s: --%s needs a value\n", cmd, d->name);
      return 2;
    }
    char *end = NULL;
    errno = 0;
    double num = 0;
    if (d->type == OPT_STRING) {
      *(const char **)d->ptr = val;
      continue;
    }
    if (d->type == OPT_U64) {
      unsigned long long u = strtoull(val, &end, 10);
      if (errno || !*val || *end || val[0] == '-') goto bad;
      *(uint64_t *)d->ptr = u;
      continue;
    }
    num = strtod(val, &end);
    if (errno || !*val || *end) goto bad;
    if (d->min <= d->max && (num < d->min || num > d->max)) {
      fprintf(stderr, "gtmsm %s: --%s %s is outside %g..%g\n", cmd, d->name, val, d->min, d->max);
      return 2;
    }
    if (d->type == OPT_INT) {
      if (num != (double)(int)num) goto bad;
      *(int *)d->ptr = (int)num;
    } else {
      *(double *)d->ptr = num;
    }
    continue;
  bad:
    fprintf(stderr, "gtmsm %s: --%s: '%s' is not a valid %s\n", cmd, d->name, val,
            d->type == OPT_INT ? "integer" : d->type == OPT_U64 ? "unsigned integer" : "number");
    return 2;
  }
  return 0;
}

double opts_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *opts_duration(double s, char *buf, int n) {
  if (!(s >= 0) || s > 1e7) snprintf(buf, (size_t)n, "?");
  else if (s < 60) snprintf(buf, (size_t)n, "%.0fs", s);
  else if (s < 3600) snprintf(buf, (size_t)n, "%dm%02ds", (int)s / 60, (int)s % 60);
  else snprintf(buf, (size_t)n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
  return buf;
}
