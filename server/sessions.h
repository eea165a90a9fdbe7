/* Sessions: the hot-session cache, per-session locks, and the operations that
 * keep a session's memory and its stored rows in step. Handlers reach the
 * store only through here.
 *
 * A session in the cache is hot (its memory loaded) or cold (only its row);
 * the cache holds at most max-sessions entries and cache-bytes of memory, and
 * evicts the least recently used entries nobody holds. A cold session loads
 * on demand: its stored memory entries re-inserted in order and its stored
 * state, so a reload is bit-identical (see store.h).
 *
 * Use: sessions_acquire (a counted reference, the entry stays while held) ->
 * sessions_lock (shared for predict/export/info, exclusive for
 * observe/delete; optionally loading the memory) -> read or change ->
 * sessions_unlock -> sessions_release. Different sessions never share a lock;
 * no lock is held across HTTP callbacks. */
#ifndef GTMSMD_SESSIONS_H
#define GTMSMD_SESSIONS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "model/api.h"
#include "models.h"
#include "store.h"

/* Outcomes (errors are negative GTMSM_E* codes). */
enum {
  SESSIONS_OK = 0,
  SESSIONS_NOTFOUND = 1, /* no such session (or deleted meanwhile) */
  SESSIONS_BUSY = 2,     /* every cache slot is held: retry later (503) */
  SESSIONS_VERSION = 3,  /* its model (name and version) is not loaded (409) */
  SESSIONS_EXISTS = 4,   /* import: the id is taken (409) */
  SESSIONS_LEASED = 5,   /* another replica holds the session's lease (503, see lease_wait_ms) */
};

typedef struct session session;
struct session {
  /* Fixed after acquire: */
  char id[65];
  int64_t sid;
  /* Written under the exclusive lock (a rebuild, or its version loaded by a
   * reload), read under either: */
  const model_entry *model; /* NULL when the session's model version is not loaded */
  char model_name[65];
  char model_version[17]; /* changed by a rebuild only, under the exclusive lock */
  long long created_ms;
  long long ttl_s; /* its own idle TTL (store_session's encoding), fixed at creation */
  /* Read under the session lock (shared or exclusive), written under the
   * exclusive lock: */
  gtmsm_memory *mem; /* NULL while cold */
  int64_t steps;
  long long updated_ms;
  int deleted; /* written under the exclusive lock and the cache mutex */
  /* The lease on a shared store (store_leases): the epoch our copy (steps,
   * memory) was loaded under (0: none yet) and the monotonic time until
   * which we may trust it without asking the database. Read under the
   * session lock, written under the exclusive lock. */
  int64_t lease_epoch;
  double lease_until;
  atomic_llong lease_wait_ms; /* after SESSIONS_LEASED: until the holder's lease lapses */
  /* Private to sessions.c: the session lock (shared or exclusive; readers
   * first, as pthread's rwlock; any thread may release it, so an exclusive
   * lock can pass to the writer thread's completion of an async observe). */
  pthread_mutex_t lock_mu;
  pthread_cond_t lock_cv;
  int readers, writer;
  int refs;
  size_t bytes;
  session *lru_prev, *lru_next, *hash_next;
};

typedef struct sessions sessions;

typedef struct {
  long long hot;       /* entries with their memory loaded */
  long long entries;   /* entries in the cache (hot or cold) */
  long long bytes;     /* accounted bytes */
  long long loads;     /* cold loads since start */
  long long evictions; /* entries evicted since start */
  long long expired;   /* sessions deleted by sessions_expire since start */
} sessions_stats;

/* A cache over db and models (all borrowed, outliving it) with cfg's limits. */
int sessions_new(sessions **out, store *db, const model_registry *models,
                 const server_config *cfg);
/* Frees every entry (none may be held) and the cache; c may be NULL. */
void sessions_free(sessions *c);

/* A counted reference to session id in *out: SESSIONS_OK, SESSIONS_NOTFOUND,
 * SESSIONS_BUSY, or an error with a message. */
int sessions_acquire(sessions *c, const char *id, session **out, char *err, size_t errlen);
/* Drops the reference (s may be NULL). */
void sessions_release(sessions *c, session *s);

/* Locks s shared (write = 0) or exclusive (write = 1); with load = 1 its
 * memory is loaded first. On a store with leases the copy is proved current
 * first: while our lease is fresh (taken or renewed less than 3/4 of its TTL
 * ago, on our monotonic clock) at no cost, else by taking or renewing it, and
 * a copy loaded under another epoch is dropped and its row read again.
 * SESSIONS_OK (locked), SESSIONS_NOTFOUND (deleted: not locked),
 * SESSIONS_VERSION (load needed but the model is not loaded: not locked),
 * SESSIONS_LEASED (another replica holds the lease: not locked, wait in
 * s->lease_wait_ms) or an error (not locked): GTMSM_EFORMAT when the
 * session's stored rows are damaged (missing entries or state; that session
 * only). */
int sessions_lock(sessions *c, session *s, int write, int load, char *err, size_t errlen);
void sessions_unlock(sessions *c, session *s);

/* Lets this replica's leases lapse now (clean shutdown; none may be held). */
int sessions_release_leases(sessions *c, char *err, size_t errlen);

/* Creates session id on model me with idle TTL ttl_s (store_session's
 * encoding) unless it exists; *created says which and *row gets the stored
 * row (model name, version and TTL of the existing one). */
int sessions_create(sessions *c, const char *id, const model_entry *me, long long ttl_s,
                    store_session *row, int *created, char *err, size_t errlen);
/* Deletes s (held with the exclusive lock) from the store and the cache. */
int sessions_delete(sessions *c, session *s, char *err, size_t errlen);

/* The stored observation at t < s->steps (exclusive or shared lock held):
 * action and pixels (H * W * C bytes into pix). */
int sessions_stored_frame(sessions *c, session *s, int64_t t, int *action, uint8_t *pix,
                          char *err, size_t errlen);
/* Calls fn for every stored observation of s in order (lock held). */
int sessions_each_frame(sessions *c, session *s, store_frame_fn fn, void *ctx, char *err,
                        size_t errlen);

/* Observes n new steps t = s->steps .. s->steps + n - 1 (exclusive lock held,
 * memory loaded): actions (n) and frames (n, H, W, C) bytes, borrowed. The
 * memory advances, the rows with their new memory entries and the state are
 * committed in one transaction (group-committed with other sessions' appends,
 * see store_append), and only then does it return 0. On a store failure the
 * memory is dropped (the session reloads from the store next time) and the
 * error returned. states (n, S) (may be NULL) receive the states the steps
 * are stored under (the inferred trajectory). *ci (may be NULL) gets the
 * COMMIT's duration and group. */
int sessions_observe(sessions *c, session *s, int n, const int *actions, const uint8_t *frames,
                     float *states, store_commit_info *ci, char *err, size_t errlen);
/* sessions_observe without waiting for the COMMIT: the memory advances and
 * states are filled before it returns 0; the append is queued and fn(ctx,
 * rc, ci, err) runs once on the store's writer thread after it (rc as
 * sessions_observe would return, s already updated), with the exclusive
 * lock still held for fn to release (with sessions_unlock: from that
 * thread). actions and frames stay borrowed until fn runs. Non-zero: as a
 * failed sessions_observe; fn will not run and the lock is still the
 * caller's. */
int sessions_observe_async(sessions *c, session *s, int n, const int *actions,
                           const uint8_t *frames, float *states, store_done_fn fn, void *ctx,
                           char *err, size_t errlen);

/* Creates a whole session from a dump: meta (id, model, version, steps,
 * times), the memory mem (borrowed; its entries and state are stored) and n
 * observations (n must equal the memory's entries). SESSIONS_EXISTS if the
 * id is taken. */
int sessions_import(sessions *c, const store_session *meta, const gtmsm_memory *mem,
                    const int *actions, const uint8_t *frames, int64_t n, char *err,
                    size_t errlen);

/* Re-encodes every stored observation of s (held with the exclusive lock)
 * with model version me (same name; frames of its size), then commits the
 * new memory entries, state and version in one transaction (store_session_
 * rebuild); only then does s's memory become the new one, so a failure at
 * any point leaves the old memory and version serving. GTMSM_EINVAL when a
 * stored action is outside me's actions, GTMSM_EFORMAT for damaged rows,
 * STORE_NOTFOUND when the row went away, else a store error. */
int sessions_rebuild(sessions *c, session *s, const model_entry *me, char *err, size_t errlen);

/* Memory entries of s (lock held): the loaded memory's size, else its steps. */
int64_t sessions_entries(const session *s);

/* Deletes the sessions idle past their TTL at now_ms (at most 1,024 a call,
 * oldest first): one with its own TTL (ttl_s > 0) when last written before
 * now_ms - ttl_s * 1000, one with STORE_TTL_DEFAULT when ttl_ms > 0 (the
 * daemon's --session-ttl) and last written before now_ms - ttl_ms, one with
 * STORE_TTL_NEVER never. Each goes under its own exclusive lock after
 * checking again that it is still idle, so a request that wrote it
 * meanwhile keeps it; no other lock is held, so requests of other sessions
 * go on. *expired gets how many went. Returns 0 or the store's failure. */
int sessions_expire(sessions *c, long long ttl_ms, long long now_ms, int *expired, char *err,
                    size_t errlen);

/* A page of the stored sessions (store_session_list's contract): rows with
 * sid > after_sid of model (NULL: any), up to limit, into out. */
int sessions_list(sessions *c, const char *model, int64_t after_sid, int limit, store_session *out,
                  int *n, char *err, size_t errlen);

void sessions_get_stats(sessions *c, sessions_stats *st);
/* Stored sessions (a COUNT in SQLite). */
int sessions_stored(sessions *c, int64_t *n);

#endif
