/* gtmsmd: the GTMSM prediction service. Reads the configuration (config.c),
 * locks an SQLite database (one daemon per file, dblock.h), opens the
 * store, loads the models, serves HTTP until SIGTERM or SIGINT, then stops
 * accepting, lets in-flight requests finish, closes the store and exits 0.
 * Exit codes: 0 clean stop, 1 runtime failure (also: another gtmsmd holds the
 * database file), 2 bad configuration. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "base/err.h"
#include "dblock.h"
#include "expiry.h"
#include "http.h"
#include "log.h"
#include "model/par.h"
#include "nn/blas_core.h"
#include "routes.h"
#include "signals.h"
#include "util.h"

static const char *env_lookup(const char *name) { return getenv(name); }

/* The metrics label of model i: the name of registry entry i (cls). A
 * request is labelled with the first entry of its model's name
 * (http_set_model), so the versions of one model share one label. */
static const char *model_label(const void *cls, int i) {
  const model_registry *r = cls;
  return i < models_count(r) ? r->v[i]->name : "";
}

static void log_config(const server_config *c) {
  json_t *j = json_object();
  for (int i = 0; i < config_count(); i++) {
    char v[CONFIG_STR_MAX];
    config_value_text(c, i, v, sizeof v);
    if (strcmp(config_name(i), "store") == 0) { /* a URL may hold a password */
      char r[CONFIG_STR_MAX];
      store_redact(r, sizeof r, v);
      snprintf(v, sizeof v, "%s", r);
    }
    json_object_set_new(j, config_name(i), json_string(v));
  }
  char core[128];
  log_at(LOG_LEVEL_INFO, NULL, "config", "{s:s, s:s, s:i, s:O}", "version", GTMSM_VERSION, "blas_core",
         blas_core_describe(core, sizeof core), "helpers", par_helpers(), "config", j);
  json_decref(j);
}

int main(int argc, char **argv) {
  static app a; /* static: large, and lives for the whole process */
  char err[512] = "";
  int help = 0, version = 0, code = 1;
  http_server *srv = NULL;
  dblock lock = {.fd = -1};
  expiry *sweeper = NULL;
  if (config_load(&a.cfg, argc, argv, env_lookup, &help, &version, err, sizeof err)) {
    fprintf(stderr, "gtmsmd: %s\n", err);
    return 2;
  }
  if (help) {
    config_print_help(stdout, "gtmsmd");
    return 0;
  }
  if (version) {
    char core[128];
    printf("gtmsmd %s\nblas_core %s\n", GTMSM_VERSION, blas_core_describe(core, sizeof core));
    return 0;
  }
  log_set_level((log_level)a.cfg.log_level);
  /* Requests run in many threads; each prediction is small, so OpenBLAS's own
   * threads would only fight them for the cores. */
  openblas_set_num_threads(1);
  if (a.cfg.helpers >= 0) par_set_helpers((int)a.cfg.helpers);
  if (a.cfg.served_by[0]) snprintf(a.served_by, sizeof a.served_by, "%.255s", a.cfg.served_by);
  else if (gethostname(a.served_by, sizeof a.served_by - 1) != 0) snprintf(a.served_by, sizeof a.served_by, "gtmsmd");
  log_config(&a.cfg);

  /* SIGTERM/SIGINT only count and wake signals_wait below, on whatever
   * thread they land (signals.h says why). */
  if (signals_install(err, sizeof err)) {
    log_at(LOG_LEVEL_ERROR, NULL, "start", "{s:s}", "error", err);
    goto done;
  }

  if (auth_load(&a.auth, a.cfg.api_keys, err, sizeof err)) {
    log_at(LOG_LEVEL_ERROR, NULL, "config", "{s:s}", "error", err);
    code = 2;
    goto done;
  }
  if (auth_enabled(&a.auth))
    log_at(LOG_LEVEL_INFO, NULL, "auth", "{s:i}", "keys", a.auth.n);
  /* --store names a PostgreSQL database; without it the store is the SQLite
   * file --db */
  const char *target = a.cfg.store[0] ? a.cfg.store : a.cfg.db;
  char shown[CONFIG_STR_MAX];
  store_redact(shown, sizeof shown, target);
  if (a.cfg.store[0] && !store_is_url(a.cfg.store)) {
    log_at(LOG_LEVEL_ERROR, NULL, "config", "{s:s}", "error",
           "--store takes a postgresql:// (or postgres://) URL; an SQLite file is --db");
    code = 2;
    goto done;
  }
  /* Before the store opens (it may migrate the schema): a second daemon on
   * this SQLite file stops here, the first one untouched. (A PostgreSQL
   * database is shared by replicas on purpose.) */
  if (!a.cfg.store[0] && dblock_acquire(&lock, a.cfg.db, err, sizeof err)) {
    log_at(LOG_LEVEL_ERROR, NULL, "store", "{s:s, s:s}", "db", a.cfg.db, "error", err);
    goto done;
  }
  int src = store_open(&a.db, target, a.cfg.synchronous, err, sizeof err);
  if (src) {
    log_at(LOG_LEVEL_ERROR, NULL, "store", "{s:s, s:s}", "db", shown, "error", err);
    if (src == GTMSM_EINVAL) code = 2; /* a malformed --store URL is bad configuration */
    goto done;
  }
  store_set_group_max(a.db, (int)a.cfg.group_commit);
  {
    /* The lease owner is this process, not this host: a replica restarted
     * after kill -9 must not inherit the leases of its dead self while a
     * request of that self could still be in flight (it waits one TTL). */
    char owner[128], rnd[17];
    if (util_random_hex(rnd, 8)) snprintf(rnd, sizeof rnd, "%ld", (long)getpid());
    snprintf(owner, sizeof owner, "%.64s/%d/%s", a.served_by, (int)getpid(), rnd);
    store_lease_config(a.db, owner, a.cfg.lease_ttl_ms);
    if (store_leases(a.db))
      log_at(LOG_LEVEL_INFO, NULL, "store", "{s:s, s:s, s:I}", "msg", "session leases on",
             "owner", owner, "lease_ttl_ms", (json_int_t)a.cfg.lease_ttl_ms);
  }
  log_at(LOG_LEVEL_INFO, NULL, "store", "{s:s, s:s, s:i}", "db", shown, "backend",
         store_backend_name(a.db), "schema", store_schema_version(a.db));
  if (models_load_dir(&a.models, a.cfg.models)) {
    log_at(LOG_LEVEL_ERROR, NULL, "models", "{s:s}", "error", "out of memory");
    goto done;
  }
  /* The viewer's photo worlds are optional: without them the demo endpoint
   * still generates procedural worlds. */
  if (worldset_load(&a.demo_worlds, a.cfg.demo_worlds, err, sizeof err))
    log_at(LOG_LEVEL_WARN, NULL, "demo", "{s:s, s:s, s:s}", "dir", a.cfg.demo_worlds, "error", err,
           "msg", "no photo worlds for the demo endpoint: procedural worlds only");
  else
    log_at(LOG_LEVEL_INFO, NULL, "demo", "{s:s, s:i}", "dir", a.cfg.demo_worlds, "photo_worlds",
           a.demo_worlds.n);
  if (sessions_new(&a.cache, a.db, &a.models, &a.cfg) ||
      !(a.metrics = metrics_new(routes_count() + 1, routes_name, MODELS_MAX, model_label,
                                &a.models))) {
    log_at(LOG_LEVEL_ERROR, NULL, "start", "{s:s}", "error", "out of memory");
    goto done;
  }
  /* Always: without --session-ttl a session may still have its own ttl_seconds. */
  if (expiry_start(&sweeper, a.cache, a.cfg.session_ttl, err, sizeof err)) {
    log_at(LOG_LEVEL_ERROR, NULL, "start", "{s:s}", "error", err);
    goto done;
  }
  if (a.cfg.session_ttl > 0)
    log_at(LOG_LEVEL_INFO, NULL, "session_expired", "{s:s, s:I}", "msg",
           "sessions idle longer than --session-ttl are deleted", "ttl_s", (json_int_t)a.cfg.session_ttl);
  int port = 0;
  int rc = http_start(&srv, &a, &port, err, sizeof err);
  if (rc) {
    log_at(LOG_LEVEL_ERROR, NULL, "start", "{s:s}", "error", err);
    if (rc == GTMSM_EINVAL) code = 2;
    goto done;
  }
  atomic_store(&a.ready, models_count(&a.models) > 0);
  log_at(LOG_LEVEL_INFO, NULL, "ready", "{s:b, s:i}", "ready", models_count(&a.models) > 0,
         "models", models_count(&a.models));

  int sig;
  /* SIGHUP: new model files are loaded beside the served ones (models.h);
   * requests go on meanwhile, each on the model it started with. */
  while ((sig = signals_wait()) == SIGHUP) {
    int added = 0;
    rc = models_reload(&a.models, a.cfg.models, &added);
    log_at(rc ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO, NULL, "models", "{s:s, s:i, s:i, s:s}", "msg",
           "models folder reloaded (SIGHUP)", "added", added, "versions", models_count(&a.models),
           "error", rc == GTMSM_ENOMEM ? "out of memory" : rc ? "too many model versions" : "");
    if (models_count(&a.models) > 0 && !atomic_load(&a.stopping)) atomic_store(&a.ready, 1);
  }
  log_at(LOG_LEVEL_INFO, NULL, "shutdown", "{s:s, s:i}", "msg", "stopping: finishing in-flight requests",
         "signal", sig);
  atomic_store(&a.stopping, 1);
  atomic_store(&a.ready, 0);
  http_stop(srv, (double)a.cfg.shutdown_grace);
  srv = NULL;
  /* Every request is done: let our leases lapse now, so that the replicas
   * taking our sessions over need not wait out the TTL. */
  if (sessions_release_leases(a.cache, err, sizeof err))
    log_at(LOG_LEVEL_WARN, NULL, "shutdown", "{s:s, s:s}", "msg", "could not release the session "
           "leases (they lapse after --lease-ttl-ms)", "error", err);
  if (signals_received() > 1)
    log_at(LOG_LEVEL_WARN, NULL, "shutdown", "{s:s, s:I}", "msg", "stop signals received during "
           "the graceful stop were ignored", "signals", (json_int_t)signals_received());
  code = 0;
done:
  http_stop(srv, 0);
  expiry_stop(sweeper); /* before the cache it sweeps */
  sessions_free(a.cache);
  store_close(a.db);
  dblock_release(&lock); /* after the store: no write of ours can follow a new daemon's start */
  models_free(&a.models);
  worldset_free(&a.demo_worlds);
  metrics_free(a.metrics);
  auth_free(&a.auth);
  log_at(LOG_LEVEL_INFO, NULL, "stopped", "{s:i}", "exit", code);
  return code;
}
