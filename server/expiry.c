/* The idle-expiry sweeper (see expiry.h). */
#include "expiry.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "base/err.h"
#include "log.h"
#include "signals.h"
#include "util.h"

struct expiry {
  sessions *cache;
  long long ttl_ms, interval_ms;
  pthread_mutex_t mu;
  pthread_cond_t wake; /* signalled by expiry_stop */
  int stopping;
  pthread_t thread;
};

static void *sweeper_main(void *arg) {
  expiry *e = arg;
  pthread_mutex_lock(&e->mu);
  while (!e->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(e->interval_ms / 1000);
    ts.tv_nsec += (long)(e->interval_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&e->wake, &e->mu, &ts);
    if (e->stopping) break;
    pthread_mutex_unlock(&e->mu); /* a sweep never holds the sweeper's mutex */
    char err[256] = "";
    int gone = 0;
    int rc = sessions_expire(e->cache, e->ttl_ms, util_now_ms(), &gone, err, sizeof err);
    if (rc)
      log_at(LOG_LEVEL_WARN, NULL, "session_expired", "{s:s, s:s}", "msg",
             "the expiry sweep failed (tried again at the next one)", "error", err);
    pthread_mutex_lock(&e->mu);
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

int expiry_start(expiry **out, sessions *c, long long default_ttl_s, char *err, size_t errlen) {
  *out = NULL;
  expiry *e = calloc(1, sizeof *e);
  if (!e) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  e->cache = c;
  e->ttl_ms = default_ttl_s > 0 ? default_ttl_s * 1000 : 0;
  const long long every = default_ttl_s > 0 ? default_ttl_s / 4 : EXPIRY_INTERVAL_MAX_S;
  e->interval_ms = 1000 * (every < 1                       ? 1
                           : every > EXPIRY_INTERVAL_MAX_S ? EXPIRY_INTERVAL_MAX_S
                                                           : every);
  pthread_mutex_init(&e->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* a wall-clock jump neither skips nor floods */
  pthread_cond_init(&e->wake, &ca);
  pthread_condattr_destroy(&ca);
  sigset_t old;
  signals_block_thread(&old); /* signals go to main (signals.h) */
  int rc = pthread_create(&e->thread, NULL, sweeper_main, e);
  signals_unblock_thread(&old);
  if (rc != 0) {
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->mu);
    free(e);
    return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot start the expiry thread");
  }
  *out = e;
  return 0;
}

void expiry_stop(expiry *e) {
  if (!e) return;
  pthread_mutex_lock(&e->mu);
  e->stopping = 1;
  pthread_cond_signal(&e->wake);
  pthread_mutex_unlock(&e->mu);
  pthread_join(e->thread, NULL);
  pthread_cond_destroy(&e->wake);
  pthread_mutex_destroy(&e->mu);
  free(e);
}
