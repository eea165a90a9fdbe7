/* The daemon's configuration: one table (config.c) from which defaults,
 * environment variables (GTMSM_<NAME>), command-line flags (--name VALUE or
 * --name=VALUE), validation and --help all come. Precedence: flag > env >
 * default. Unknown flags are errors. */
#ifndef GTMSMD_CONFIG_H
#define GTMSMD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CONFIG_STR_MAX 1024

typedef enum { CONFIG_SYNC_FULL = 0, CONFIG_SYNC_NORMAL = 1, CONFIG_SYNC_OFF = 2 } config_sync;

typedef struct {
  char models[CONFIG_STR_MAX];    /* folder of *.gtm files */
  char db[CONFIG_STR_MAX];        /* SQLite file */
  char store[CONFIG_STR_MAX];     /* PostgreSQL URL; empty: the SQLite file db */
  char listen[CONFIG_STR_MAX];    /* HOST:PORT, [V6]:PORT or :PORT (all interfaces); port 0 = any */
  char demo_worlds[CONFIG_STR_MAX]; /* folder of PNG photo worlds for /v1/demo/episodes */
  char api_keys[CONFIG_STR_MAX];  /* file of bearer keys, one a line; empty: no auth */
  char served_by[CONFIG_STR_MAX]; /* X-Served-By value; empty: the host name */
  long long threads;              /* HTTP worker threads; 0: 2 x CPUs */
  long long helpers;              /* model/par.h's helper threads; -1: the CPUs less one */
  long long max_body;             /* bytes per request body */
  long long max_frames;           /* observations per request */
  long long max_actions;          /* actions per prediction */
  long long max_sessions;         /* sessions held in memory */
  long long cache_bytes;          /* bytes of session memory held in memory */
  long long max_entries;          /* memory entries (observations) per session */
  long long max_inflight;         /* requests in progress before 503 */
  long long max_connections;      /* open connections */
  long long timeout;              /* idle connection timeout, seconds */
  long long header_timeout;       /* seconds to deliver a request head */
  long long body_timeout;         /* seconds a request body may pause */
  long long reserve;              /* in-flight slots uploads may not take */
  long long shutdown_grace;       /* seconds to finish in-flight requests on SIGTERM */
  long long group_commit;         /* observation requests per store transaction at most */
  long long session_ttl;          /* idle seconds before a session is deleted; 0: never */
  long long lease_ttl_ms;         /* a session lease's time to live on a shared store */
  int log_level;                  /* log_level */
  int synchronous;                /* config_sync */
} server_config;

/* A lookup for environment variables (getenv in the daemon; tests pass their
 * own). Returns a borrowed string or NULL. */
typedef const char *(*config_env_fn)(const char *name);

/* Fills c from the table's defaults. Returns 0 (the defaults are valid). */
int config_defaults(server_config *c);

/* Sets one option by its table name ("max-body") from text, with validation
 * (ranges, size suffixes k/M/G, enum choices). Returns 0 or GTMSM_EINVAL with
 * a message naming the option and what it accepts. */
int config_set(server_config *c, const char *name, const char *value, char *err, size_t errlen);

/* Defaults, then env (may be NULL), then argv[1..argc-1]. Sets *help when
 * --help was given (and *version for --version); both may be NULL. Returns 0
 * or GTMSM_EINVAL with a message (unknown flag, missing value, bad value). */
int config_load(server_config *c, int argc, char **argv, config_env_fn env, int *help,
                int *version, char *err, size_t errlen);

/* Writes the usage text: every option, its env variable, default and help. */
void config_print_help(FILE *f, const char *prog);

/* The name of the env variable of an option ("max-body" -> "GTMSM_MAX_BODY")
 * into out (outlen bytes). */
void config_env_name(char *out, size_t outlen, const char *name);

/* Number of options and their names (for tests and logs). */
int config_count(void);
const char *config_name(int i);
/* The option's current value as text into out. */
void config_value_text(const server_config *c, int i, char *out, size_t outlen);

#endif
