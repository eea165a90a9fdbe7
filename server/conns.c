/* The connection table: admission, eviction and the reaper (see conns.h). */
#include "conns.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "base/err.h"
#include "log.h"
#include "signals.h"
#include "util.h"

typedef enum { CONN_HEAD, CONN_BODY, CONN_BUSY } conn_state;

struct conn_slot {
  int fd;
  conn_state state;
  int cut;               /* shut down by the table: no longer counted */
  double since;          /* CONN_HEAD: when the wait for a head began (eviction order) */
  double deadline;       /* CONN_HEAD: when the head must be complete */
  atomic_llong last_us;  /* CONN_BODY: when body bytes last arrived (monotonic microseconds) */
  conn_slot *prev, *next; /* in heads (oldest first) or busy */
};

typedef struct {
  conn_slot *first, *last;
} conn_list;

struct conns {
  conns_config cfg;
  pthread_mutex_t mu;   /* guards everything below and every slot's state, cut and links */
  conn_list heads;      /* CONN_HEAD slots, by since (appended in time order) */
  conn_list busy;       /* CONN_BODY and CONN_BUSY slots */
  conns_stats st;
  long long logged_cuts; /* evicted + timeouts at the last log line */
  double logged_at;
  pthread_cond_t wake;  /* signals the reaper to stop */
  int stopping;
  pthread_t reaper;
  int reaper_started;
};

static long long now_us(void) { return (long long)(util_mono_seconds() * 1e6); }

static void list_push(conn_list *l, conn_slot *c) {
  c->prev = l->last;
  c->next = NULL;
  if (l->last) l->last->next = c;
  else l->first = c;
  l->last = c;
}

static void list_remove(conn_list *l, conn_slot *c) {
  if (c->prev) c->prev->next = c->next;
  else l->first = c->next;
  if (c->next) c->next->prev = c->prev;
  else l->last = c->prev;
  c->prev = c->next = NULL;
}

static conn_list *list_of(conns *t, const conn_slot *c) {
  return c->state == CONN_HEAD ? &t->heads : &t->busy;
}

/* Shuts c down and stops counting it (t->mu held). */
static void cut_locked(conns *t, conn_slot *c) {
  if (c->cut) return;
  list_remove(list_of(t, c), c);
  c->cut = 1;
  t->st.open--;
  shutdown(c->fd, SHUT_RDWR);
}

static void reap_locked(conns *t, double now) {
  for (conn_slot *c = t->heads.first, *next; c; c = next) {
    next = c->next;
    if (now > c->deadline) {
      cut_locked(t, c);
      t->st.head_timeouts++;
    }
  }
  const long long limit_us = (long long)(t->cfg.body_timeout * 1e6), now_u = (long long)(now * 1e6);
  for (conn_slot *c = t->busy.first, *next; c; c = next) {
    next = c->next;
    if (c->state == CONN_BODY && now_u - atomic_load(&c->last_us) > limit_us) {
      cut_locked(t, c);
      t->st.body_timeouts++;
    }
  }
  const long long cuts = t->st.evicted + t->st.head_timeouts + t->st.body_timeouts;
  if (cuts != t->logged_cuts && now - t->logged_at >= 1.0) {
    log_at(LOG_LEVEL_WARN, NULL, "connections", "{s:s, s:I, s:I, s:I, s:I, s:I}", "msg",
           "slow or idle connections cut (totals since start)", "open", (json_int_t)t->st.open,
           "evicted", (json_int_t)t->st.evicted, "head_timeouts", (json_int_t)t->st.head_timeouts,
           "body_timeouts", (json_int_t)t->st.body_timeouts, "refused", (json_int_t)t->st.refused);
    t->logged_cuts = cuts;
    t->logged_at = now;
  }
}

static void *reaper_main(void *arg) {
  conns *t = arg;
  pthread_mutex_lock(&t->mu);
  while (!t->stopping) {
    reap_locked(t, util_mono_seconds());
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(CONNS_TICK * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->wake, &t->mu, &ts);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

int conns_new(conns **out, const conns_config *cfg) {
  *out = NULL;
  conns *t = calloc(1, sizeof *t);
  if (!t) return GTMSM_ENOMEM;
  t->cfg = *cfg;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->wake, NULL);
  sigset_t old;
  signals_block_thread(&old);
  int rc = pthread_create(&t->reaper, NULL, reaper_main, t);
  signals_unblock_thread(&old);
  if (rc != 0) {
    conns_free(t);
    return GTMSM_EIO;
  }
  t->reaper_started = 1;
  *out = t;
  return 0;
}

static void list_free(conn_list *l) {
  for (conn_slot *c = l->first, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  l->first = l->last = NULL;
}

void conns_free(conns *t) {
  if (!t) return;
  if (t->reaper_started) {
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->reaper, NULL);
  }
  list_free(&t->heads);
  list_free(&t->busy);
  pthread_cond_destroy(&t->wake);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

int conns_admit(conns *t) {
  pthread_mutex_lock(&t->mu);
  int ok = t->st.open < t->cfg.max_connections;
  if (!ok) {
    conn_slot *oldest = t->heads.first;
    if (oldest && util_mono_seconds() - oldest->since >= CONNS_EVICT_AGE) {
      cut_locked(t, oldest);
      t->st.evicted++;
      ok = 1;
    } else {
      t->st.refused++;
    }
  }
  pthread_mutex_unlock(&t->mu);
  return ok;
}

conn_slot *conns_open(conns *t, int fd) {
  conn_slot *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->fd = fd;
  c->state = CONN_HEAD;
  c->since = util_mono_seconds();
  c->deadline = c->since + t->cfg.header_timeout;
  pthread_mutex_lock(&t->mu);
  list_push(&t->heads, c);
  t->st.open++;
  pthread_mutex_unlock(&t->mu);
  return c;
}

void conns_close(conns *t, conn_slot *c) {
  if (!c) return;
  pthread_mutex_lock(&t->mu);
  if (!c->cut) {
    list_remove(list_of(t, c), c);
    t->st.open--;
  }
  pthread_mutex_unlock(&t->mu);
  free(c);
}

/* Moves c to state s (t->mu held; c not cut). */
static void set_state(conns *t, conn_slot *c, conn_state s) {
  if (list_of(t, c) != (s == CONN_HEAD ? &t->heads : &t->busy)) {
    list_remove(list_of(t, c), c);
    c->state = s;
    list_push(list_of(t, c), c);
  }
  c->state = s;
}

void conns_head_begun(conns *t, conn_slot *c) {
  if (!c) return;
  const double due = util_mono_seconds() + t->cfg.header_timeout;
  pthread_mutex_lock(&t->mu);
  if (!c->cut && c->state == CONN_HEAD && due < c->deadline) c->deadline = due;
  pthread_mutex_unlock(&t->mu);
}

void conns_request(conns *t, conn_slot *c, int body) {
  if (!c) return;
  atomic_store(&c->last_us, now_us());
  pthread_mutex_lock(&t->mu);
  if (!c->cut) set_state(t, c, body ? CONN_BODY : CONN_BUSY);
  pthread_mutex_unlock(&t->mu);
}

void conns_body(conn_slot *c) {
  if (c) atomic_store(&c->last_us, now_us());
}

void conns_body_done(conns *t, conn_slot *c) {
  if (!c) return;
  pthread_mutex_lock(&t->mu);
  if (!c->cut && c->state == CONN_BODY) set_state(t, c, CONN_BUSY);
  pthread_mutex_unlock(&t->mu);
}

void conns_idle(conns *t, conn_slot *c) {
  if (!c) return;
  pthread_mutex_lock(&t->mu);
  if (!c->cut) { /* appended: the head list stays in order of the waits' starts */
    list_remove(list_of(t, c), c);
    c->state = CONN_HEAD;
    c->since = util_mono_seconds();
    c->deadline = c->since + t->cfg.idle_timeout;
    list_push(&t->heads, c);
  }
  pthread_mutex_unlock(&t->mu);
}

void conns_get_stats(conns *t, conns_stats *st) {
  pthread_mutex_lock(&t->mu);
  *st = t->st;
  pthread_mutex_unlock(&t->mu);
}
