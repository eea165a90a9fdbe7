/* The store's front: picks the backend by the target's scheme (a
 * postgresql:// URL, else an SQLite file path), dispatches every call to its
 * ops table, and owns what is the same on every backend: the group-commit
 * queue of store_append and its counters (see store.h, store_backend.h). */
#include "store_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "signals.h"
#include "util.h"

int store_is_url(const char *target) {
  return strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0;
}

void store_redact(char *out, size_t outlen, const char *target) {
  if (!outlen) return;
  snprintf(out, outlen, "%s", target);
  if (!store_is_url(target)) return;
  const char *p = strstr(target, "://") + 3;
  const char *end = p + strcspn(p, "/?"); /* the authority: [user[:password]@]host... */
  const char *at = memchr(p, '@', (size_t)(end - p));
  const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
  if (colon) snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - target), target, at);
  /* password=VALUE among the options */
  char tmp[2048];
  for (char *q = strstr(out, "password="); q; q = strstr(q + 1, "password=")) {
    const char *v = q + 9, *rest = v + strcspn(v, "&");
    snprintf(tmp, sizeof tmp, "%.*s***%s", (int)(v - out), out, rest);
    snprintf(out, outlen, "%s", tmp);
    q = out + (v - out); /* continue after this value */
    if ((size_t)(q - out) >= strlen(out)) break;
  }
}

const char *store_backend_name(store *s) { return s->ops->name; }

void store_base_init(store *s, const store_ops *ops) {
  s->ops = ops;
  pthread_mutex_init(&s->qmu, NULL);
  pthread_condattr_init(&s->cvattr);
  pthread_condattr_setclock(&s->cvattr, CLOCK_MONOTONIC);
  pthread_cond_init(&s->wcv, &s->cvattr);
  s->group_max = STORE_GROUP_DEFAULT;
}

void store_base_free(store *s) {
  pthread_cond_destroy(&s->wcv);
  pthread_condattr_destroy(&s->cvattr);
  pthread_mutex_destroy(&s->qmu);
}

int store_open(store **out, const char *target, int synchronous, char *err, size_t errlen) {
  *out = NULL;
  if (store_is_url(target)) return store_pg_open(out, target, synchronous, err, errlen);
  if (strstr(target, "://"))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "store '%.64s': unknown scheme (postgresql:// "
                      "or an SQLite file path)", target);
  return store_sqlite_open(out, target, synchronous, err, errlen);
}

/* The writer finishes the queue, then the backend closes. */
void store_close(store *s) {
  if (!s) return;
  pthread_mutex_lock(&s->qmu);
  s->stop = 1;
  pthread_cond_signal(&s->wcv);
  const int started = s->writer_started;
  pthread_mutex_unlock(&s->qmu);
  if (started) pthread_join(s->writer, NULL);
  s->ops->close(s);
}

int store_schema_version(store *s) { return s->ops->schema_version(s); }

int store_writable(store *s, int probe, char *err, size_t errlen) {
  return s->ops->writable(s, probe, err, errlen);
}

int store_session_get(store *s, const char *id, store_session *out, char *err, size_t errlen) {
  return s->ops->session_get(s, id, out, err, errlen);
}

int store_session_create(store *s, const char *id, const char *model, const char *version,
                         long long now_ms, long long ttl_s, store_session *out, int *created,
                         char *err, size_t errlen) {
  if (ttl_s < STORE_TTL_NEVER || ttl_s > STORE_TTL_MAX)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "session TTL %lld outside -1..%lld", ttl_s,
                      STORE_TTL_MAX);
  return s->ops->session_create(s, id, model, version, now_ms, ttl_s, out, created, err, errlen);
}

int store_session_delete(store *s, int64_t sid, int64_t epoch, char *err, size_t errlen) {
  return s->ops->session_delete(s, sid, epoch, err, errlen);
}

int store_session_count(store *s, int64_t *n) { return s->ops->session_count(s, n); }

int store_session_list(store *s, const char *model, int64_t after_sid, int limit,
                       store_session *out, int *n, char *err, size_t errlen) {
  *n = 0;
  if (limit < 1 || limit > STORE_LIST_MAX)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "list limit %d outside 1..%d", limit, STORE_LIST_MAX);
  return s->ops->session_list(s, model, after_sid, limit, out, n, err, errlen);
}

int store_session_idle(store *s, long long now_ms, long long default_ttl_ms, int limit,
                       store_session *out, int *n, char *err, size_t errlen) {
  *n = 0;
  if (limit < 1 || limit > STORE_LIST_MAX)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "idle limit %d outside 1..%d", limit, STORE_LIST_MAX);
  return s->ops->session_idle(s, now_ms, default_ttl_ms, limit, out, n, err, errlen);
}

int store_session_rebuild(store *s, int64_t sid, const char *version, int64_t steps,
                          const uint8_t *entries, size_t entry_bytes, const uint8_t *state,
                          size_t state_bytes, long long now_ms, char *err, size_t errlen) {
  return s->ops->session_rebuild(s, sid, version, steps, entries, entry_bytes, state, state_bytes,
                                 now_ms, err, errlen);
}

int store_state_get(store *s, int64_t sid, uint8_t *state, size_t state_len, int *present,
                    char *err, size_t errlen) {
  return s->ops->state_get(s, sid, state, state_len, present, err, errlen);
}

int store_entries_each(store *s, int64_t sid, store_entry_fn fn, void *ctx, char *err,
                       size_t errlen) {
  return s->ops->entries_each(s, sid, fn, ctx, err, errlen);
}

int store_frames_each(store *s, int64_t sid, int64_t from_t, store_frame_fn fn, void *ctx,
                      char *err, size_t errlen) {
  return s->ops->frames_each(s, sid, from_t, fn, ctx, err, errlen);
}

int store_frame_get(store *s, int64_t sid, int64_t t, int *action, uint8_t *frame,
                    size_t frame_len, char *err, size_t errlen) {
  return s->ops->frame_get(s, sid, t, action, frame, frame_len, err, errlen);
}

int store_import(store *s, const store_session *meta, const store_append_req *a, int64_t *sid_out,
                 char *err, size_t errlen) {
  return s->ops->import(s, meta, a, sid_out, err, errlen);
}

int store_leases(store *s) { return s->leases; }

void store_lease_config(store *s, const char *owner, long long ttl_ms) {
  snprintf(s->owner, sizeof s->owner, "%s", owner);
  s->lease_ttl_ms = ttl_ms;
  s->leases = s->ops->lease_take != NULL;
}

int store_lease_take(store *s, int64_t sid, int64_t epoch, store_lease *out, char *err,
                     size_t errlen) {
  if (!s->leases) return gtmsm_fail(err, errlen, GTMSM_EINVAL, "this store has no leases");
  return s->ops->lease_take(s, sid, epoch, out, err, errlen);
}

int store_lease_release_all(store *s, char *err, size_t errlen) {
  return s->leases ? s->ops->lease_release_all(s, err, errlen) : 0;
}

int store_append_group(store *s, store_group_item *items, int n, double *commit_seconds) {
  store_group_item *ptrs[STORE_GROUP_MAX];
  if (n < 1 || n > STORE_GROUP_MAX) return GTMSM_EINVAL;
  for (int i = 0; i < n; i++) ptrs[i] = &items[i];
  int rc = s->ops->write_group(s, ptrs, n, commit_seconds);
  pthread_mutex_lock(&s->qmu);
  s->commits++;
  for (int i = 0; i < n; i++) s->appends += items[i].rc == 0;
  pthread_mutex_unlock(&s->qmu);
  return rc;
}

void store_set_group_max(store *s, int n) {
  pthread_mutex_lock(&s->qmu);
  s->group_max = n < 1 ? 1 : n > STORE_GROUP_MAX ? STORE_GROUP_MAX : n;
  pthread_mutex_unlock(&s->qmu);
}

void store_group_stats(store *s, long long *commits, long long *appends) {
  pthread_mutex_lock(&s->qmu);
  *commits = s->commits;
  *appends = s->appends;
  pthread_mutex_unlock(&s->qmu);
}

/* The writer (under qmu), about to take a group, that finds fewer appends
 * queued than the last group plus those that waited behind it waits for the
 * rest, until half the last write's time has passed since it ended. The
 * last group's clients were just acknowledged and most send their next
 * append within that time; written at once, a few clients split into
 * cohorts that take turns, each group half of them (one commits while the
 * other's replies go out). Arrivals wake the writer once the target is
 * queued. */
static void gather_wait(store *s) {
  int target = s->last_n + s->last_q;
  if (target > s->group_max) target = s->group_max;
  if (s->qlen >= target || s->stop) return;
  double deadline = s->last_end + 0.5 * s->last_secs;
  if (util_mono_seconds() >= deadline) return;
  struct timespec ts = {.tv_sec = (time_t)deadline};
  ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
  s->wwait = 2, s->gather_target = target;
  while (s->qlen < target && !s->stop)
    if (pthread_cond_timedwait(&s->wcv, &s->qmu, &ts) == ETIMEDOUT) break;
  s->wwait = 0;
}

/* The writer thread: takes the queue's head (up to group_max appends),
 * writes it, marks each done (waking store_append's callers, calling
 * store_append_async's functions once qmu is released) and goes on until
 * the store closes with the queue empty. The queue is FIFO, so nothing
 * waits longer than the groups ahead of it. */
static void *writer_main(void *p) {
  store *s = p;
  pthread_mutex_lock(&s->qmu);
  for (;;) {
    while (!s->qhead && !s->stop) {
      s->wwait = 1;
      pthread_cond_wait(&s->wcv, &s->qmu);
      s->wwait = 0;
    }
    if (!s->qhead) break;
    gather_wait(s);
    store_append_op *group[STORE_GROUP_MAX];
    store_group_item *items[STORE_GROUP_MAX];
    int n = 0;
    while (s->qhead && n < s->group_max) {
      group[n] = s->qhead;
      items[n] = &s->qhead->item;
      n++;
      s->qhead = s->qhead->next;
    }
    if (!s->qhead) s->qtail = NULL;
    s->qlen -= n;
    pthread_mutex_unlock(&s->qmu);
    double seconds = 0;
    s->ops->write_group(s, items, n, &seconds);
    pthread_mutex_lock(&s->qmu);
    s->last_n = n, s->last_q = s->qlen, s->last_end = util_mono_seconds(), s->last_secs = seconds;
    s->commits++;
    int async = 0;
    for (int i = 0; i < n; i++) {
      store_append_op *op = group[i];
      s->appends += op->item.rc == 0;
      op->ci = (store_commit_info){seconds, n, i == 0};
      if (op->fn) {
        group[async++] = op;
      } else {
        op->done = 1; /* op may return (and its stack go) once qmu is released */
        pthread_cond_signal(&op->cv);
      }
    }
    if (async) {
      pthread_mutex_unlock(&s->qmu);
      for (int i = 0; i < async; i++) {
        store_append_op *op = group[i];
        op->fn(op->ctx, op->item.rc, &op->ci, op->item.err);
        free(op);
      }
      pthread_mutex_lock(&s->qmu);
    }
  }
  pthread_mutex_unlock(&s->qmu);
  return NULL;
}

/* Queues op (qmu held), starting the writer with the first one. */
static int enqueue(store *s, store_append_op *op, char *err, size_t errlen) {
  if (s->stop) return gtmsm_fail(err, errlen, GTMSM_EIO, "the store is closing");
  if (!s->writer_started) {
    sigset_t old;
    signals_block_thread(&old); /* the writer inherits it: signals go to main */
    int rc = pthread_create(&s->writer, NULL, writer_main, s);
    signals_unblock_thread(&old);
    if (rc) return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot start the store's writer: %s", strerror(rc));
    s->writer_started = 1;
  }
  if (s->qtail) s->qtail->next = op;
  else s->qhead = op;
  s->qtail = op;
  s->qlen++;
  if (s->wwait == 1 || (s->wwait == 2 && s->qlen >= s->gather_target)) pthread_cond_signal(&s->wcv);
  return 0;
}

int store_append(store *s, const store_append_req *a, store_commit_info *ci, char *err,
                 size_t errlen) {
  store_append_op op = {.item = {.req = a}};
  pthread_cond_init(&op.cv, &s->cvattr);
  pthread_mutex_lock(&s->qmu);
  int rc = enqueue(s, &op, err, errlen);
  while (!rc && !op.done) pthread_cond_wait(&op.cv, &s->qmu);
  pthread_mutex_unlock(&s->qmu);
  pthread_cond_destroy(&op.cv);
  if (rc) return rc;
  if (ci) *ci = op.ci;
  if (op.item.rc) gtmsm_fail(err, errlen, op.item.rc, "%s", op.item.err);
  return op.item.rc;
}

int store_append_async(store *s, const store_append_req *a, store_done_fn fn, void *ctx,
                       char *err, size_t errlen) {
  store_append_op *op = calloc(1, sizeof *op);
  if (!op) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  *op = (store_append_op){.item = {.req = a}, .fn = fn, .ctx = ctx};
  pthread_mutex_lock(&s->qmu);
  int rc = enqueue(s, op, err, errlen);
  pthread_mutex_unlock(&s->qmu);
  if (rc) free(op);
  return rc;
}
