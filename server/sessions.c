/* The session cache: hash table + LRU list under one mutex, a lock per
 * session, cold loads (stored entries re-inserted), observe-then-commit (see
 * sessions.h). */
#include "sessions.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "log.h"
#include "util.h"

#define N_BUCKETS 4096

struct sessions {
  store *db;
  const model_registry *models;
  long long max_sessions, cache_bytes;
  int leases;         /* store_leases(db) */
  double lease_trust; /* seconds a taken or renewed lease is trusted without asking */
  pthread_mutex_t mu; /* guards everything below and every entry's refs, bytes, links */
  session *buckets[N_BUCKETS];
  session *lru_head, *lru_tail; /* head = most recently used */
  long long count, bytes;
  unsigned long long gen; /* bumped whenever an entry leaves the table */
  atomic_llong hot, loads, evictions, expired;
};

static uint32_t hash_id(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h % N_BUCKETS;
}

int sessions_new(sessions **out, store *db, const model_registry *models,
                 const server_config *cfg) {
  sessions *c = calloc(1, sizeof *c);
  *out = NULL;
  if (!c) return GTMSM_ENOMEM;
  c->db = db;
  c->models = models;
  c->max_sessions = cfg->max_sessions;
  c->cache_bytes = cfg->cache_bytes;
  c->leases = store_leases(db);
  /* A margin for the time the statement took to reach the database and for
   * clock rate differences: the lease's own expiry is later than this. */
  c->lease_trust = 0.75e-3 * (double)cfg->lease_ttl_ms;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return 0;
}

static void entry_free(sessions *c, session *s) {
  if (s->mem) atomic_fetch_sub(&c->hot, 1);
  gtmsm_memory_free(s->mem);
  pthread_cond_destroy(&s->lock_cv);
  pthread_mutex_destroy(&s->lock_mu);
  free(s);
}

void sessions_free(sessions *c) {
  if (!c) return;
  for (int b = 0; b < N_BUCKETS; b++)
    for (session *s = c->buckets[b], *next; s; s = next) {
      next = s->hash_next;
      entry_free(c, s);
    }
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* ---- table and LRU (c->mu held) ----------------------------------------- */

static session *find_locked(sessions *c, const char *id) {
  for (session *s = c->buckets[hash_id(id)]; s; s = s->hash_next)
    if (strcmp(s->id, id) == 0) return s;
  return NULL;
}

static void lru_unlink(sessions *c, session *s) {
  if (s->lru_prev) s->lru_prev->lru_next = s->lru_next;
  else c->lru_head = s->lru_next;
  if (s->lru_next) s->lru_next->lru_prev = s->lru_prev;
  else c->lru_tail = s->lru_prev;
  s->lru_prev = s->lru_next = NULL;
}

static void lru_push_front(sessions *c, session *s) {
  s->lru_prev = NULL;
  s->lru_next = c->lru_head;
  if (c->lru_head) c->lru_head->lru_prev = s;
  c->lru_head = s;
  if (!c->lru_tail) c->lru_tail = s;
}

/* Removes s from the table and the LRU list (it stays allocated). */
static void table_remove(sessions *c, session *s) {
  session **pp = &c->buckets[hash_id(s->id)];
  while (*pp && *pp != s) pp = &(*pp)->hash_next;
  if (*pp) {
    c->gen++;
    *pp = s->hash_next;
    lru_unlink(c, s);
    c->count--;
    c->bytes -= (long long)s->bytes;
  }
  s->hash_next = NULL;
}

/* Evicts least recently used entries nobody holds until the cache is within
 * its bounds, keeping room for `room` more entries. */
static void evict_locked(sessions *c, int room) {
  session *s = c->lru_tail;
  while (s && (c->bytes > c->cache_bytes || c->count + room > c->max_sessions)) {
    session *prev = s->lru_prev;
    if (s->refs == 0) {
      table_remove(c, s);
      if (s->mem) atomic_fetch_add(&c->evictions, 1);
      entry_free(c, s);
    }
    s = prev;
  }
}

static size_t entry_bytes(const session *s) {
  return sizeof *s + (s->mem ? gtmsm_memory_bytes(s->mem) : 0);
}

/* Re-accounts s's bytes after its memory changed, then evicts. */
static void account(sessions *c, session *s) {
  pthread_mutex_lock(&c->mu);
  if (find_locked(c, s->id) == s) { /* still in the table (not deleted) */
    c->bytes += (long long)entry_bytes(s) - (long long)s->bytes;
    s->bytes = entry_bytes(s);
  }
  evict_locked(c, 0);
  pthread_mutex_unlock(&c->mu);
}

/* ---- acquire / release --------------------------------------------------- */

/* The live entry for id (c->mu held); an entry found deleted (its row
 * vanished under a load) leaves the table, freed now if nobody holds it. */
static session *find_live_locked(sessions *c, const char *id) {
  session *s = find_locked(c, id);
  if (s && s->deleted) {
    table_remove(c, s);
    if (s->refs == 0) entry_free(c, s);
    s = NULL;
  }
  return s;
}

int sessions_acquire(sessions *c, const char *id, session **out, char *err, size_t errlen) {
  *out = NULL;
retry:
  pthread_mutex_lock(&c->mu);
  session *s = find_live_locked(c, id);
  if (s) {
    s->refs++;
    lru_unlink(c, s);
    lru_push_front(c, s);
    pthread_mutex_unlock(&c->mu);
    *out = s;
    return SESSIONS_OK;
  }
  /* The row is read without the mutex; if an entry leaves the table meanwhile
   * (evicted after a commit, or deleted), the row may predate that commit or
   * that delete, so it is read again rather than cached stale. */
  unsigned long long gen = c->gen;
  pthread_mutex_unlock(&c->mu);

  store_session row;
  int rc = store_session_get(c->db, id, &row, err, errlen);
  if (rc) return rc == STORE_NOTFOUND ? SESSIONS_NOTFOUND : rc;
  session *n = calloc(1, sizeof *n);
  if (!n) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  memcpy(n->id, row.id, sizeof n->id);
  n->sid = row.sid;
  memcpy(n->model_name, row.model, sizeof n->model_name);
  memcpy(n->model_version, row.model_version, sizeof n->model_version);
  n->created_ms = row.created_ms;
  n->ttl_s = row.ttl_s;
  n->updated_ms = row.updated_ms;
  n->steps = row.steps;
  n->model = models_find_version(c->models, row.model, row.model_version);
  pthread_mutex_init(&n->lock_mu, NULL);
  pthread_cond_init(&n->lock_cv, NULL);
  n->refs = 1;
  n->bytes = entry_bytes(n);

  pthread_mutex_lock(&c->mu);
  s = find_live_locked(c, id);
  if (s) { /* another thread loaded it meanwhile */
    s->refs++;
    lru_unlink(c, s);
    lru_push_front(c, s);
    pthread_mutex_unlock(&c->mu);
    entry_free(c, n);
    *out = s;
    return SESSIONS_OK;
  }
  if (c->gen != gen) {
    pthread_mutex_unlock(&c->mu);
    entry_free(c, n);
    goto retry;
  }
  evict_locked(c, 1);
  if (c->count + 1 > c->max_sessions) {
    pthread_mutex_unlock(&c->mu);
    entry_free(c, n);
    return SESSIONS_BUSY;
  }
  uint32_t b = hash_id(id);
  n->hash_next = c->buckets[b];
  c->buckets[b] = n;
  lru_push_front(c, n);
  c->count++;
  c->bytes += (long long)n->bytes;
  pthread_mutex_unlock(&c->mu);
  *out = n;
  return SESSIONS_OK;
}

void sessions_release(sessions *c, session *s) {
  if (!s) return;
  pthread_mutex_lock(&c->mu);
  int gone = --s->refs == 0 && s->deleted;
  if (gone && find_locked(c, s->id) == s) table_remove(c, s); /* deleted under a load */
  if (!gone) evict_locked(c, 0);
  pthread_mutex_unlock(&c->mu);
  if (gone) entry_free(c, s);
}

/* ---- memory entries <-> bytes -------------------------------------------- */

/* Bytes of one stored memory entry: key (S) then value (V) as float32. */
static size_t entry_size(const gtmsm_memory *mem) {
  return sizeof(float) * (size_t)(dnd_key_size(mem->mem) + dnd_value_size(mem->mem));
}

/* Copies entries from .. from + n - 1 of mem into out (n, entry_size). */
static void pack_entries(const gtmsm_memory *mem, size_t from, size_t n, uint8_t *out) {
  const size_t ks = sizeof(float) * (size_t)dnd_key_size(mem->mem), es = entry_size(mem);
  for (size_t i = 0; i < n; i++) {
    memcpy(out + i * es, dnd_key(mem->mem, from + i), ks);
    memcpy(out + i * es + ks, dnd_value(mem->mem, from + i), es - ks);
  }
}

/* ---- loading -------------------------------------------------------------- */

typedef struct {
  const gtmsm_model *m;
  gtmsm_memory *mem;
  int64_t next_t;
  float *entry; /* (S + V) scratch: blobs need not be float-aligned */
  char *err;
  size_t errlen;
} loader;

static int load_entry(void *ctx, int64_t t, const uint8_t *entry, size_t len) {
  loader *l = ctx;
  const int S = dnd_key_size(l->mem->mem);
  if (t != l->next_t || !entry || len != entry_size(l->mem))
    return gtmsm_fail(l->err, l->errlen, GTMSM_EFORMAT,
                      "stored memory entry at t=%lld is missing or has %zu bytes (expected %zu)",
                      (long long)t, len, entry_size(l->mem));
  memcpy(l->entry, entry, len);
  int rc = gtmsm_memory_insert_entry(l->m, l->mem, l->entry, l->entry + S);
  if (rc) return gtmsm_fail(l->err, l->errlen, rc, "stored memory entry at t=%lld refused", (long long)t);
  l->next_t++;
  return 0;
}

/* Loads s->mem from the store (exclusive lock held): the entries in order,
 * then the state; nothing is re-encoded. */
static int load_memory(sessions *c, session *s, char *err, size_t errlen) {
  const gtmsm_model *m = s->model->m;
  gtmsm_memory *mem = gtmsm_memory_new(m);
  loader l = {m, mem, 0, NULL, err, errlen};
  int rc = 0;
  if (!mem || !(l.entry = malloc(entry_size(mem)))) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = store_entries_each(c->db, s->sid, load_entry, &l, err, errlen))) goto done;
  int present = 0;
  float belief[GTMSM_BELIEF_MAX] = {0};
  rc = store_state_get(c->db, s->sid, (uint8_t *)belief, sizeof(float) * (size_t)gtmsm_belief_floats(mem, m->cfg.S),
                       &present, err, errlen);
  if (!rc && gtmsm_belief_set(mem, m->cfg.S, belief))
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "session %s: its stored state is not finite", s->id);
  if (rc == STORE_NOTFOUND) { /* the row went away: deleted is written under both locks */
    pthread_mutex_lock(&c->mu);
    s->deleted = 1;
    pthread_mutex_unlock(&c->mu);
    rc = SESSIONS_NOTFOUND;
    goto done;
  }
  if (rc) goto done;
  /* A zero state is right before the first observation only: after it, a
   * NULL state is a damaged row, and serving zeros would predict from the
   * origin as if nothing had been seen. */
  if (!present && s->steps > 0) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "session %s: its stored state is missing (NULL) "
                    "after %lld steps: the database row is damaged", s->id, (long long)s->steps);
    goto done;
  }
  if (l.next_t != s->steps) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "session %s: %lld memory entries stored for %lld steps",
                    s->id, (long long)l.next_t, (long long)s->steps);
    goto done;
  }
  mem->steps = (long)s->steps;
  if (dnd_indexed_size(mem->mem) < dnd_size(mem->mem)) dnd_reindex(mem->mem); /* index it all */
  if (mem->rev && dnd_indexed_size(mem->rev) < dnd_size(mem->rev)) dnd_reindex(mem->rev);
  s->mem = mem;
  mem = NULL;
  atomic_fetch_add(&c->hot, 1);
  atomic_fetch_add(&c->loads, 1);
  log_at(LOG_LEVEL_DEBUG, NULL, "session_load", "{s:s, s:I}", "id", s->id, "steps", (json_int_t)s->steps);
done:
  gtmsm_memory_free(mem);
  free(l.entry);
  return rc;
}

/* Drops s's memory (exclusive lock held): the next use reloads it. */
static void drop_memory(sessions *c, session *s) {
  if (!s->mem) return;
  gtmsm_memory_free(s->mem);
  s->mem = NULL;
  atomic_fetch_sub(&c->hot, 1);
  account(c, s); /* its bytes left with the memory */
}

static void mark_deleted(sessions *c, session *s) {
  pthread_mutex_lock(&c->mu);
  s->deleted = 1;
  pthread_mutex_unlock(&c->mu);
}

/* Takes or renews s's lease (exclusive lock held, see sessions_lock): under
 * a new epoch another replica may have written the session since our copy,
 * so the memory goes and the row (steps, times) is read again, after the
 * lease is ours: nobody else can commit to it from then on. */
static int lease_refresh(sessions *c, session *s, char *err, size_t errlen) {
  const double t0 = util_mono_seconds();
  store_lease l;
  int rc = store_lease_take(c->db, s->sid, s->lease_epoch, &l, err, errlen);
  if (rc == STORE_LEASED) {
    atomic_store(&s->lease_wait_ms, l.wait_ms);
    return SESSIONS_LEASED;
  }
  if (rc == STORE_NOTFOUND) {
    mark_deleted(c, s);
    return SESSIONS_NOTFOUND;
  }
  if (rc) return rc;
  if (l.epoch != s->lease_epoch) {
    drop_memory(c, s);
    store_session row;
    s->lease_epoch = 0;
    rc = store_session_get(c->db, s->id, &row, err, errlen);
    if (rc == STORE_NOTFOUND || (!rc && row.sid != s->sid)) { /* deleted (and made again) */
      mark_deleted(c, s);
      return SESSIONS_NOTFOUND;
    }
    if (rc) return rc;
    if (s->steps != row.steps)
      log_at(LOG_LEVEL_INFO, NULL, "lease", "{s:s, s:I, s:I, s:I}", "msg", "the session moved "
             "here: reloaded", "id", s->id, "epoch", (json_int_t)l.epoch, "steps",
             (json_int_t)row.steps);
    s->steps = row.steps;
    s->updated_ms = row.updated_ms;
    s->lease_epoch = l.epoch;
  }
  s->lease_until = t0 + c->lease_trust;
  return 0;
}

/* The session lock's primitives (see session.lock_mu). */
static void rdlock(session *s) {
  pthread_mutex_lock(&s->lock_mu);
  while (s->writer) pthread_cond_wait(&s->lock_cv, &s->lock_mu);
  s->readers++;
  pthread_mutex_unlock(&s->lock_mu);
}

static void wrlock(session *s) {
  pthread_mutex_lock(&s->lock_mu);
  while (s->writer || s->readers) pthread_cond_wait(&s->lock_cv, &s->lock_mu);
  s->writer = 1;
  pthread_mutex_unlock(&s->lock_mu);
}

static void unlock(session *s) {
  pthread_mutex_lock(&s->lock_mu);
  if (s->writer) s->writer = 0;
  else s->readers--;
  if (!s->readers) pthread_cond_broadcast(&s->lock_cv);
  pthread_mutex_unlock(&s->lock_mu);
}

int sessions_lock(sessions *c, session *s, int write, int load, char *err, size_t errlen) {
  for (int attempt = 0;; attempt++) {
    if (write) wrlock(s);
    else rdlock(s);
    if (s->deleted) {
      unlock(s);
      return SESSIONS_NOTFOUND;
    }
    if (c->leases && util_mono_seconds() >= s->lease_until) {
      if (!write) { /* renewing needs the exclusive lock */
        unlock(s);
        wrlock(s);
      }
      int rc = s->deleted ? SESSIONS_NOTFOUND
               : util_mono_seconds() >= s->lease_until ? lease_refresh(c, s, err, errlen) : 0;
      if (rc) {
        unlock(s);
        return rc;
      }
      if (!write) { /* and take it shared again */
        unlock(s);
        if (attempt == 3) return gtmsm_fail(err, errlen, GTMSM_EIO, "session %s keeps losing its lease", s->id);
        continue;
      }
    }
    if (!load || s->mem) return SESSIONS_OK;
    /* A reload (SIGHUP) may have brought its version since the entry was
     * made (versions are never unloaded: once found it stays found); the
     * pointer is set under the exclusive lock only. */
    if (!s->model && !models_find_version(c->models, s->model_name, s->model_version)) {
      unlock(s);
      return SESSIONS_VERSION;
    }
    if (!write) { /* loading needs the exclusive lock */
      unlock(s);
      wrlock(s);
    }
    int rc = 0;
    if (s->deleted) {
      rc = SESSIONS_NOTFOUND;
    } else if (!s->mem) {
      if (!s->model) s->model = models_find_version(c->models, s->model_name, s->model_version);
      rc = load_memory(c, s, err, errlen);
    }
    if (!rc) account(c, s); /* under the exclusive lock: s->mem is stable */
    if (rc || write) {
      if (rc) unlock(s);
      return rc;
    }
    unlock(s); /* and take it shared again */
    if (attempt == 3) return gtmsm_fail(err, errlen, GTMSM_EIO, "session %s keeps unloading", s->id);
  }
}

void sessions_unlock(sessions *c, session *s) {
  (void)c;
  unlock(s);
}

/* ---- changes ------------------------------------------------------------- */

int sessions_create(sessions *c, const char *id, const model_entry *me, long long ttl_s,
                    store_session *row, int *created, char *err, size_t errlen) {
  return store_session_create(c->db, id, me->name, me->m->content_hash, util_now_ms(), ttl_s, row,
                              created, err, errlen);
}

int sessions_delete(sessions *c, session *s, char *err, size_t errlen) {
  /* fenced by the lease sessions_lock took (PostgreSQL with replicas) */
  int rc = store_session_delete(c->db, s->sid, c->leases ? s->lease_epoch : 0, err, errlen);
  if (rc == STORE_EFENCED) { /* another replica holds it now: our copy is stale */
    drop_memory(c, s);
    s->lease_epoch = 0;
    s->lease_until = 0;
  }
  if (rc) return rc;
  pthread_mutex_lock(&c->mu);
  table_remove(c, s);
  s->deleted = 1;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

int sessions_stored_frame(sessions *c, session *s, int64_t t, int *action, uint8_t *pix,
                          char *err, size_t errlen) {
  const gtmsm_config *cfg = &s->model->m->cfg;
  int rc = store_frame_get(c->db, s->sid, t, action, pix, (size_t)gtmsm_config_D(cfg), err, errlen);
  if (rc == STORE_NOTFOUND)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "observation t=%lld missing from the store",
                      (long long)t);
  return rc;
}

int sessions_each_frame(sessions *c, session *s, store_frame_fn fn, void *ctx, char *err,
                        size_t errlen) {
  return store_frames_each(c->db, s->sid, 0, fn, ctx, err, errlen);
}

/* An observation between its memory step and its COMMIT: the append and
 * what it points to (the entries and the state are its own). */
typedef struct {
  sessions *c;
  session *s;
  store_append_req a;
  uint8_t *entries;
  float belief[GTMSM_BELIEF_MAX];
  double t0; /* before the append: a lease the fence renewed holds from then */
  store_done_fn fn;
  void *ctx;
} observe_op;

/* Advances the memory by the n steps and fills op's append (exclusive lock
 * held). Non-zero: the memory is unchanged. */
static int observe_prepare(sessions *c, session *s, int n, const int *actions,
                           const uint8_t *frames, float *states, observe_op *op, char *err,
                           size_t errlen) {
  const gtmsm_model *m = s->model->m;
  const size_t D = (size_t)gtmsm_config_D(&m->cfg), es = entry_size(s->mem);
  const size_t size0 = dnd_size(s->mem->mem);
  op->c = c, op->s = s;
  op->entries = malloc(es * (size_t)n);
  float *x = malloc(sizeof(float) * D * (size_t)n);
  int rc = 0;
  if (!x || !op->entries) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  } else {
    image_float_from_u8(x, frames, D * (size_t)n);
    rc = gtmsm_observe_states(m, s->mem, actions, x, n, states, err, errlen);
  }
  free(x);
  if (rc) {
    free(op->entries);
    op->entries = NULL;
    return rc;
  }
  pack_entries(s->mem, size0, (size_t)n, op->entries);
  gtmsm_belief_get(s->mem, m->cfg.S, op->belief);
  op->a = (store_append_req){.sid = s->sid, .t0 = s->steps, .n = n, .actions = actions,
                             .frames = frames, .frame_bytes = D, .entries = op->entries,
                             .entry_bytes = es, .state = (const uint8_t *)op->belief,
                             .state_bytes = sizeof(float) * (size_t)gtmsm_belief_floats(s->mem, m->cfg.S),
                             .steps = s->steps + n, .now_ms = util_now_ms(), .epoch = s->lease_epoch};
  op->t0 = util_mono_seconds();
  return 0;
}

/* The session after op's append returned rc (exclusive lock held). */
static void observe_finish(observe_op *op, int rc) {
  sessions *c = op->c;
  session *s = op->s;
  free(op->entries);
  op->entries = NULL;
  if (rc) {
    /* The memory is ahead of the store: drop it; the next use reloads it.
     * With leases, the next use also takes the lease under a new epoch and
     * reads the row again (a COMMIT whose reply was lost may have landed;
     * fenced, another replica may have written). */
    if (rc == STORE_EFENCED)
      log_at(LOG_LEVEL_INFO, NULL, "lease", "{s:s, s:s, s:I}", "msg", "append fenced: another "
             "replica took the session over; dropped the cached copy", "id", s->id, "epoch",
             (json_int_t)s->lease_epoch);
    drop_memory(c, s);
    s->lease_epoch = 0;
    s->lease_until = 0;
    return;
  }
  if (c->leases) s->lease_until = op->t0 + c->lease_trust; /* the fence renewed it */
  s->steps += op->a.n;
  s->updated_ms = op->a.now_ms;
  account(c, s);
}

int sessions_observe(sessions *c, session *s, int n, const int *actions, const uint8_t *frames,
                     float *states, store_commit_info *ci, char *err, size_t errlen) {
  observe_op op;
  int rc = observe_prepare(c, s, n, actions, frames, states, &op, err, errlen);
  if (rc) return rc; /* memory unchanged */
  rc = store_append(c->db, &op.a, ci, err, errlen);
  observe_finish(&op, rc);
  return rc;
}

static void observe_done(void *ctx, int rc, const store_commit_info *ci, const char *err) {
  observe_op *op = ctx;
  observe_finish(op, rc);
  op->fn(op->ctx, rc, ci, err);
  free(op);
}

int sessions_observe_async(sessions *c, session *s, int n, const int *actions,
                           const uint8_t *frames, float *states, store_done_fn fn, void *ctx,
                           char *err, size_t errlen) {
  observe_op *op = malloc(sizeof *op);
  if (!op) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  int rc = observe_prepare(c, s, n, actions, frames, states, op, err, errlen);
  if (rc) {
    free(op);
    return rc;
  }
  op->fn = fn, op->ctx = ctx;
  rc = store_append_async(c->db, &op->a, observe_done, op, err, errlen);
  if (rc) { /* not queued: as a failed append */
    observe_finish(op, rc);
    free(op);
  }
  return rc;
}

int sessions_import(sessions *c, const store_session *meta, const gtmsm_memory *mem,
                    const int *actions, const uint8_t *frames, int64_t n, char *err,
                    size_t errlen) {
  const model_entry *me = models_find_version(c->models, meta->model, meta->model_version);
  if (!me) return gtmsm_fail(err, errlen, GTMSM_EINVAL, "model %s version %s is not loaded",
                             meta->model, meta->model_version);
  if ((size_t)n != dnd_size(mem->mem))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "%lld observations for %zu memory entries",
                      (long long)n, dnd_size(mem->mem));
  const size_t es = entry_size(mem);
  uint8_t *entries = malloc(es * (size_t)(n ? n : 1));
  if (!entries) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  pack_entries(mem, 0, (size_t)n, entries);
  float belief[GTMSM_BELIEF_MAX];
  gtmsm_belief_get(mem, me->m->cfg.S, belief);
  store_append_req a = {.n = (int)n, .actions = actions, .frames = frames,
                        .frame_bytes = (size_t)gtmsm_config_D(&me->m->cfg), .entries = entries,
                        .entry_bytes = es, .state = (const uint8_t *)belief,
                        .state_bytes = sizeof(float) * (size_t)gtmsm_belief_floats(mem, me->m->cfg.S),
                        .steps = n};
  int64_t sid = 0;
  int rc = store_import(c->db, meta, &a, &sid, err, errlen);
  free(entries);
  if (rc == STORE_EXISTS) return SESSIONS_EXISTS;
  return rc;
}

/* The raw observations of a session read back for a rebuild. */
typedef struct {
  const gtmsm_config *cfg; /* the new version's */
  int64_t n, next_t;
  int *actions;     /* (n) */
  uint8_t *frames;  /* (n, H, W, C) */
  char *err;
  size_t errlen;
} rebuild_reader;

static int rebuild_frame(void *ctx, int64_t t, int action, const uint8_t *frame, size_t len) {
  rebuild_reader *rr = ctx;
  const size_t D = (size_t)gtmsm_config_D(rr->cfg);
  if (t != rr->next_t || t >= rr->n)
    return gtmsm_fail(rr->err, rr->errlen, GTMSM_EFORMAT, "stored observation t=%lld is out of "
                      "order", (long long)t);
  if (len != D)
    return gtmsm_fail(rr->err, rr->errlen, GTMSM_EINVAL, "stored frames have %zu bytes; the new "
                      "version takes %zu", len, D);
  if (action < 0 || action >= rr->cfg->A)
    return gtmsm_fail(rr->err, rr->errlen, GTMSM_EINVAL, "stored observation t=%lld has action %d; "
                      "the new version has %d actions", (long long)t, action, rr->cfg->A);
  rr->actions[t] = action;
  memcpy(rr->frames + (size_t)t * D, frame, D);
  rr->next_t++;
  return 0;
}

int sessions_rebuild(sessions *c, session *s, const model_entry *me, char *err, size_t errlen) {
  const gtmsm_model *m = me->m;
  const gtmsm_config *cfg = &m->cfg;
  const size_t D = (size_t)gtmsm_config_D(cfg);
  const int64_t n = s->steps;
  enum { CHUNK = 256 }; /* encodings do not depend on the chunking (fixed inference blocks) */
  rebuild_reader rr = {cfg, n, 0, NULL, NULL, err, errlen};
  gtmsm_memory *mem = gtmsm_memory_new(m);
  float *x = malloc(sizeof(float) * D * CHUNK);
  uint8_t *entries = NULL;
  int rc = 0;
  rr.actions = malloc(sizeof(int) * (size_t)(n ? n : 1));
  rr.frames = malloc(D * (size_t)(n ? n : 1));
  if (!mem || !x || !rr.actions || !rr.frames) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = store_frames_each(c->db, s->sid, 0, rebuild_frame, &rr, err, errlen))) goto done;
  if (rr.next_t != n) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%lld observations stored for %lld steps",
                    (long long)rr.next_t, (long long)n);
    goto done;
  }
  for (int64_t t = 0; t < n; t += CHUNK) {
    const int k = (int)(n - t < CHUNK ? n - t : CHUNK);
    image_float_from_u8(x, rr.frames + (size_t)t * D, D * (size_t)k);
    if ((rc = gtmsm_observe(m, mem, rr.actions + t, x, k, err, errlen))) goto done;
  }
  const size_t es = entry_size(mem);
  if (!(entries = malloc(es * (size_t)(n ? n : 1)))) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  pack_entries(mem, 0, (size_t)n, entries);
  float belief[GTMSM_BELIEF_MAX];
  gtmsm_belief_get(mem, cfg->S, belief);
  const long long now = util_now_ms();
  rc = store_session_rebuild(c->db, s->sid, m->content_hash, n, entries, es, (const uint8_t *)belief,
                             sizeof(float) * (size_t)gtmsm_belief_floats(mem, cfg->S), now, err,
                             errlen);
  if (rc) goto done;
  /* Committed: the new memory replaces the old one (exclusive lock held). */
  if (s->mem) gtmsm_memory_free(s->mem);
  else atomic_fetch_add(&c->hot, 1);
  if (dnd_indexed_size(mem->mem) < dnd_size(mem->mem)) dnd_reindex(mem->mem);
  s->mem = mem;
  mem = NULL;
  s->model = me;
  memcpy(s->model_version, m->content_hash, sizeof s->model_version);
  s->updated_ms = now;
  account(c, s);
done:
  gtmsm_memory_free(mem);
  free(x);
  free(entries);
  free(rr.actions);
  free(rr.frames);
  return rc;
}

int64_t sessions_entries(const session *s) {
  return s->mem ? (int64_t)dnd_size(s->mem->mem) : s->steps;
}

void sessions_get_stats(sessions *c, sessions_stats *st) {
  pthread_mutex_lock(&c->mu);
  st->entries = c->count;
  st->bytes = c->bytes;
  pthread_mutex_unlock(&c->mu);
  st->hot = atomic_load(&c->hot);
  st->loads = atomic_load(&c->loads);
  st->evictions = atomic_load(&c->evictions);
  st->expired = atomic_load(&c->expired);
}

int sessions_expire(sessions *c, long long ttl_ms, long long now_ms, int *expired, char *err,
                    size_t errlen) {
  enum { PAGE = 64, ROUNDS = 16 };
  store_session rows[PAGE];
  *expired = 0;
  for (int round = 0; round < ROUNDS; round++) {
    int n = 0, gone = 0;
    int rc = store_session_idle(c->db, now_ms, ttl_ms, PAGE, rows, &n, err, errlen);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
      const long long own = rows[i].ttl_s;
      if (own == STORE_TTL_NEVER || (own == STORE_TTL_DEFAULT && ttl_ms <= 0)) continue;
      const long long before = now_ms - (own > 0 ? own * 1000 : ttl_ms);
      session *s = NULL;
      char msg[256] = "";
      if (sessions_acquire(c, rows[i].id, &s, msg, sizeof msg) != SESSIONS_OK) continue;
      if (sessions_lock(c, s, 1, 0, msg, sizeof msg) == SESSIONS_OK) {
        /* under its lock: a write that landed since the scan keeps it */
        if (s->updated_ms < before && sessions_delete(c, s, msg, sizeof msg) == 0) {
          gone++;
          log_at(LOG_LEVEL_INFO, NULL, "session_expired", "{s:s, s:I}", "id", s->id, "idle_ms",
                 (json_int_t)(now_ms - s->updated_ms));
        }
        sessions_unlock(c, s);
      }
      sessions_release(c, s);
    }
    *expired += gone;
    atomic_fetch_add(&c->expired, gone);
    if (n < PAGE || gone == 0) break;
  }
  return 0;
}

int sessions_list(sessions *c, const char *model, int64_t after_sid, int limit, store_session *out,
                  int *n, char *err, size_t errlen) {
  return store_session_list(c->db, model, after_sid, limit, out, n, err, errlen);
}

int sessions_stored(sessions *c, int64_t *n) { return store_session_count(c->db, n); }

int sessions_release_leases(sessions *c, char *err, size_t errlen) {
  return store_lease_release_all(c->db, err, errlen);
}
