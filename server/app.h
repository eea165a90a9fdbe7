/* The daemon's shared state, built once in main and passed (borrowed) to
 * every request: configuration, models, store, session cache, metrics, keys.
 * Everything here is either read-only after start or synchronised inside
 * its own module; the atomics are the only fields written at run time. */
#ifndef GTMSMD_APP_H
#define GTMSMD_APP_H

#include <stdatomic.h>

#include "auth.h"
#include "config.h"
#include "metrics.h"
#include "models.h"
#include "sessions.h"
#include "sim/worldset.h"
#include "store.h"

typedef struct app {
  server_config cfg;
  model_registry models;
  worldset demo_worlds; /* the photo worlds of the demo endpoint (n = 0 when unavailable) */
  store *db;
  sessions *cache;
  metrics *metrics;
  auth_keys auth;
  char served_by[256];
  atomic_int ready;     /* store open, >= 1 model, not stopping */
  atomic_int stopping;  /* SIGTERM received */
  atomic_long inflight; /* requests between their first callback and completion */
  atomic_long uploads;  /* of those, uploads (a chunked or long body): see --reserve */
} app;

#endif
