/* Option parsing from a table. */
#include "opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void opt_list_free(opt_list *l) {
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* Appends val to the list; argc bounds how many values there can be. */
static int list_push(opt_list *l, const char *val, int argc) {
  if (!l->v && !(l->v = malloc(sizeof(char *) * (size_t)argc))) return -1;
  l->v[l->n++] = val;
  return 0;
}

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
    char name[64];
    snprintf(name, sizeof name, "%s%s", d->name, d->type == OPT_LIST ? " ..." : "");
    fprintf(f, "  --%-18s %s%s\n", name, d->help, def);
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
      if (eq) {
        fprintf(stderr, "gtmsm %s: --%s takes no value\n", cmd, d->name);
        return 2;
      }
      *(int *)d->ptr = 1;
      continue;
    }
    if (d->type == OPT_LIST) {
      opt_list *l = d->ptr;
      int before = l->n;
      if (eq && *(eq + 1) && list_push(l, eq + 1, argc)) goto oom;
      while (!eq && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
        if (list_push(l, argv[++i], argc)) goto oom;
      if (l->n == before) {
        fprintf(stderr, "gtmsm %s: --%s needs at least one value\n", cmd, d->name);
        return 2;
      }
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
oom:
  fprintf(stderr, "gtmsm %s: out of memory\n", cmd);
  return 2;
}

int opts_mkdir_p(const char *path, char *err, size_t errlen) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) {
    snprintf(err, errlen, "cannot create folder '%.200s': empty or too long", path);
    return -1;
  }
  memcpy(buf, path, n + 1);
  /* each prefix ending at a '/', then the whole path */
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char keep = buf[i];
    buf[i] = '\0';
    struct stat sb;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
      snprintf(err, errlen, "cannot create folder %s: %s", buf, strerror(errno));
      return -1;
    }
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      snprintf(err, errlen, "cannot create folder %s: a file of that name is in the way", buf);
      return -1;
    }
    buf[i] = keep;
  }
  return 0;
}

int opts_mkdir_parent(const char *path, char *err, size_t errlen) {
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path) return 0;
  char dir[4096];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  return opts_mkdir_p(dir, err, errlen);
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
