/* The configuration table of gtmsmd and everything derived from it: defaults,
 * GTMSM_* environment variables, flags, validation and --help. Adding an
 * option is one row here and one field in server_config. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

typedef enum { CONFIG_TYPE_STR, CONFIG_TYPE_INT, CONFIG_TYPE_SIZE, CONFIG_TYPE_ENUM } config_type;

typedef struct {
  const char *name;    /* flag without "--"; env is GTMSM_ + upper(name), '-' -> '_' */
  config_type type;
  const char *def;     /* default as text, parsed like user input */
  long long min, max;  /* INT and SIZE ranges */
  const char *choices; /* ENUM: "a|b|c", the value stored is the index */
  size_t offset;       /* into server_config */
  const char *help;
} config_entry;

#define OFF(f) offsetof(server_config, f)
#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

static const config_entry TABLE[] = {
    {"models", CONFIG_TYPE_STR, "./models", 0, 0, NULL, OFF(models),
     "folder of models: NAME.gtm and NAME/*.gtm (versions of NAME), loaded at start and on SIGHUP"},
    {"db", CONFIG_TYPE_STR, "./data/gtmsm.db", 0, 0, NULL, OFF(db),
     "SQLite database file (created with its folder if missing); the store unless --store is set"},
    {"store", CONFIG_TYPE_STR, "", 0, 0, NULL, OFF(store),
     "PostgreSQL database as a libpq URL (postgresql://USER:PASSWORD@HOST:PORT/DB?OPTION=VALUE, "
     "a unix socket folder as ?host=/DIR) instead of --db; empty: the SQLite file --db"},
    {"listen", CONFIG_TYPE_STR, "127.0.0.1:8080", 0, 0, NULL, OFF(listen),
     "HOST:PORT, [IPV6]:PORT or :PORT for all interfaces; port 0 picks a free port"},
    {"demo-worlds", CONFIG_TYPE_STR, "./data/worlds/test", 0, 0, NULL, OFF(demo_worlds),
     "folder of PNG photo worlds for the web viewer's demos (POST /v1/demo/episodes); "
     "missing: procedural worlds only"},
    {"api-keys", CONFIG_TYPE_STR, "", 0, 0, NULL, OFF(api_keys),
     "file of API keys, one a line ('#' comments); empty: no auth. Health paths stay open"},
    {"served-by", CONFIG_TYPE_STR, "", 0, 0, NULL, OFF(served_by),
     "X-Served-By header value; empty: the host name"},
    {"threads", CONFIG_TYPE_INT, "0", 0, 256, NULL, OFF(threads),
     "HTTP worker threads (libmicrohttpd pool); 0: twice the CPUs"},
    {"helpers", CONFIG_TYPE_INT, "-1", -1, 7, NULL, OFF(helpers),
     "helper threads a prediction or observation may decode or encode its blocks on while the "
     "cores are otherwise idle (the results do not depend on it); -1: the CPUs less one, at most 7"},
    {"max-body", CONFIG_TYPE_SIZE, "64M", 1 * KIB, 16 * GIB, NULL, OFF(max_body),
     "bytes per request body (checked while streaming); suffixes k, M, G"},
    {"max-frames", CONFIG_TYPE_INT, "65536", 1, 1LL << 30, NULL, OFF(max_frames),
     "observations per request"},
    {"max-actions", CONFIG_TYPE_INT, "1024", 1, 1 << 20, NULL, OFF(max_actions),
     "actions per prediction"},
    {"max-sessions", CONFIG_TYPE_INT, "4096", 1, 1 << 24, NULL, OFF(max_sessions),
     "sessions held in memory (hot); colder ones reload from the store"},
    {"cache-bytes", CONFIG_TYPE_SIZE, "512M", 0, 1LL << 50, NULL, OFF(cache_bytes),
     "bytes of session memory held in memory (LRU); suffixes k, M, G"},
    {"max-entries", CONFIG_TYPE_INT, "1000000", 1, 2147483647LL, NULL, OFF(max_entries),
     "memory entries (observations) per session"},
    {"max-inflight", CONFIG_TYPE_INT, "256", 1, 1 << 20, NULL, OFF(max_inflight),
     "requests in progress before new ones get 503 with Retry-After"},
    {"reserve", CONFIG_TYPE_INT, "32", 0, 1 << 20, NULL, OFF(reserve),
     "in-flight slots kept for short requests: uploads (a chunked body, or one over 64 KiB) "
     "may hold at most max-inflight minus this (at least 1); more get 503"},
    {"max-connections", CONFIG_TYPE_INT, "1024", 1, 1 << 20, NULL, OFF(max_connections),
     "open connections; a new one beyond evicts the longest wait for a request head (over 1 s), "
     "else it is refused at once"},
    {"timeout", CONFIG_TYPE_INT, "60", 1, 86400, NULL, OFF(timeout),
     "seconds a connection may wait idle for its next request (or stall reading a reply)"},
    {"header-timeout", CONFIG_TYPE_INT, "10", 1, 3600, NULL, OFF(header_timeout),
     "seconds a new connection has to send a whole request head (and any connection once its "
     "request line is in); slower ones are cut"},
    {"body-timeout", CONFIG_TYPE_INT, "30", 1, 86400, NULL, OFF(body_timeout),
     "seconds a request body may pause before the connection is cut"},
    {"shutdown-grace", CONFIG_TYPE_INT, "30", 0, 3600, NULL, OFF(shutdown_grace),
     "seconds SIGTERM waits for in-flight requests"},
    {"session-ttl", CONFIG_TYPE_INT, "0", 0, 315360000, NULL, OFF(session_ttl),
     "seconds a session may go without a write (creation, observation, rebuild) before it is "
     "deleted by a background sweep; 0: sessions never expire"},
    {"log-level", CONFIG_TYPE_ENUM, "info", 0, 0, "debug|info|warn|error", OFF(log_level),
     "lowest level logged (JSON lines on stderr)"},
    {"synchronous", CONFIG_TYPE_ENUM, "full", 0, 0, "full|normal|off", OFF(synchronous),
     "SQLite synchronous mode: full = every acknowledged commit survives power loss; on "
     "PostgreSQL full and normal set synchronous_commit on, off sets it off"},
    {"group-commit", CONFIG_TYPE_INT, "64", 1, 256, NULL, OFF(group_commit),
     "observation requests (of different sessions) that may share one store transaction and "
     "fsync; 1: a COMMIT per request"},
    {"lease-ttl-ms", CONFIG_TYPE_INT, "5000", 200, 600000, NULL, OFF(lease_ttl_ms),
     "on a PostgreSQL store shared by replicas: milliseconds a session's lease lasts without a "
     "commit or a renewal; a dead replica's sessions move after this (docs/DEPLOY.md)"},
};
#define N_ENTRIES ((int)(sizeof TABLE / sizeof TABLE[0]))

int config_count(void) { return N_ENTRIES; }
const char *config_name(int i) { return i >= 0 && i < N_ENTRIES ? TABLE[i].name : NULL; }

void config_env_name(char *out, size_t outlen, const char *name) {
  size_t j = (size_t)snprintf(out, outlen, "GTMSM_");
  for (size_t i = 0; name[i] && j + 1 < outlen; i++, j++)
    out[j] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
  if (j < outlen) out[j] = '\0';
}

static const config_entry *find(const char *name, size_t len) {
  for (int i = 0; i < N_ENTRIES; i++)
    if (strlen(TABLE[i].name) == len && strncmp(TABLE[i].name, name, len) == 0) return &TABLE[i];
  return NULL;
}

/* Parses a decimal integer with an optional k/M/G suffix (binary multiples). */
static int parse_number(const char *v, int allow_suffix, long long *out) {
  errno = 0;
  char *end = NULL;
  if (!*v || isspace((unsigned char)*v)) return -1;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v) return -1;
  long long mult = 1;
  if (allow_suffix && *end) {
    switch (*end) {
      case 'k': case 'K': mult = KIB; break;
      case 'm': case 'M': mult = MIB; break;
      case 'g': case 'G': mult = GIB; break;
      default: return -1;
    }
    end++;
    if (*end == 'B' || *end == 'b') end++;
  }
  if (*end) return -1;
  if (x > LLONG_MAX / mult || x < LLONG_MIN / mult) return -1;
  *out = x * mult;
  return 0;
}

static int set_entry(server_config *c, const config_entry *e, const char *value, char *err,
                     size_t errlen) {
  char *base = (char *)c + e->offset;
  switch (e->type) {
    case CONFIG_TYPE_STR:
      if (strlen(value) >= CONFIG_STR_MAX)
        return gtmsm_fail(err, errlen, GTMSM_EINVAL, "--%s: value longer than %d bytes", e->name,
                          CONFIG_STR_MAX - 1);
      memcpy(base, value, strlen(value) + 1);
      return 0;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_SIZE: {
      long long x;
      if (parse_number(value, e->type == CONFIG_TYPE_SIZE, &x) || x < e->min || x > e->max)
        return gtmsm_fail(err, errlen, GTMSM_EINVAL, "--%s: '%.64s' is not %s in %lld..%lld",
                          e->name, value,
                          e->type == CONFIG_TYPE_SIZE ? "a byte size (k/M/G suffixes)" : "an integer",
                          e->min, e->max);
      memcpy(base, &x, sizeof x);
      return 0;
    }
    case CONFIG_TYPE_ENUM: {
      const char *p = e->choices;
      for (int idx = 0; *p; idx++) {
        size_t n = strcspn(p, "|");
        if (strlen(value) == n && strncmp(p, value, n) == 0) {
          memcpy(base, &idx, sizeof idx);
          return 0;
        }
        p += n + (p[n] == '|');
      }
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "--%s: '%.64s' is not one of %s", e->name, value,
                        e->choices);
    }
  }
  return GTMSM_EINVAL;
}

int config_set(server_config *c, const char *name, const char *value, char *err, size_t errlen) {
  const config_entry *e = find(name, strlen(name));
  if (!e) return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown option --%.64s (see --help)", name);
  return set_entry(c, e, value, err, errlen);
}

int config_defaults(server_config *c) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < N_ENTRIES; i++)
    if (set_entry(c, &TABLE[i], TABLE[i].def, NULL, 0)) return GTMSM_EINVAL; /* a bad table row */
  return 0;
}

int config_load(server_config *c, int argc, char **argv, config_env_fn env, int *help,
                int *version, char *err, size_t errlen) {
  if (help) *help = 0;
  if (version) *version = 0;
  if (config_defaults(c)) return gtmsm_fail(err, errlen, GTMSM_EINVAL, "bad default in the table");
  if (env) {
    for (int i = 0; i < N_ENTRIES; i++) {
      char name[64];
      config_env_name(name, sizeof name, TABLE[i].name);
      const char *v = env(name);
      if (v && set_entry(c, &TABLE[i], v, err, errlen)) {
        size_t n = err ? strlen(err) : 0;
        if (err && n + 1 < errlen) snprintf(err + n, errlen - n, " (from %s)", name);
        return GTMSM_EINVAL;
      }
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      if (help) *help = 1;
      continue;
    }
    if (strcmp(a, "--version") == 0) {
      if (version) *version = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unexpected argument '%.64s' (see --help)", a);
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const config_entry *e = find(name, nlen);
    if (!e)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown option --%.*s (see --help)",
                        (int)(nlen > 64 ? 64 : nlen), name);
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
      if (i + 1 >= argc) return gtmsm_fail(err, errlen, GTMSM_EINVAL, "--%s needs a value", e->name);
      value = argv[++i];
    }
    if (set_entry(c, e, value, err, errlen)) return GTMSM_EINVAL;
  }
  return 0;
}

void config_value_text(const server_config *c, int i, char *out, size_t outlen) {
  const config_entry *e = &TABLE[i];
  const char *base = (const char *)c + e->offset;
  switch (e->type) {
    case CONFIG_TYPE_STR: snprintf(out, outlen, "%s", base); break;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_SIZE: {
      long long x;
      memcpy(&x, base, sizeof x);
      snprintf(out, outlen, "%lld", x);
      break;
    }
    case CONFIG_TYPE_ENUM: {
      int idx;
      memcpy(&idx, base, sizeof idx);
      const char *p = e->choices;
      for (int k = 0; k < idx && *p; k++) p += strcspn(p, "|") + 1;
      snprintf(out, outlen, "%.*s", (int)strcspn(p, "|"), p);
      break;
    }
  }
}

void config_print_help(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [--OPTION VALUE]...\n"
          "gtmsmd serves GTMSM models over HTTP (API: proto/openapi.yaml, guide: docs/SERVER.md).\n"
          "Every option can also be set by its environment variable; flags win.\n\n",
          prog);
  for (int i = 0; i < N_ENTRIES; i++) {
    const config_entry *e = &TABLE[i];
    char env[64], arg[48];
    config_env_name(env, sizeof env, e->name);
    switch (e->type) {
      case CONFIG_TYPE_STR: snprintf(arg, sizeof arg, "TEXT"); break;
      case CONFIG_TYPE_INT: snprintf(arg, sizeof arg, "N"); break;
      case CONFIG_TYPE_SIZE: snprintf(arg, sizeof arg, "BYTES"); break;
      case CONFIG_TYPE_ENUM: snprintf(arg, sizeof arg, "%s", e->choices); break;
    }
    fprintf(f, "  --%s %s\n      %s\n      env %s, default '%s'", e->name, arg, e->help, env, e->def);
    if (e->type == CONFIG_TYPE_INT || e->type == CONFIG_TYPE_SIZE)
      fprintf(f, ", range %lld..%lld", e->min, e->max);
    fputc('\n', f);
  }
  fprintf(f, "  --help     this text\n  --version  print the version\n");
}
