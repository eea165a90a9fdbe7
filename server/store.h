/* The durable store of gtmsmd: sessions (model, model version, steps, state)
 * and every observation with its raw frame and memory entry, on one of two
 * backends behind this one interface (store.c picks by the target, see
 * store_open): an SQLite file in WAL mode (store_sqlite.c, the embedded
 * default) or a PostgreSQL database (store_pg.c), with the same schema
 * meaning on both. Schema versioned with ordered migrations (PRAGMA
 * user_version; the gtmsm_schema table in PostgreSQL); prepared statements
 * only; every multi-row write is one transaction, and a function that writes
 * returns only after COMMIT.
 *
 * Memory: with each observation its DND entry is stored (the key and value
 * floats gtmsm_observe inserted, as float32 bytes), and with the session its
 * state after the last observation. A session's memory is exactly its
 * entries re-inserted in order plus that state, so a commit writes O(batch)
 * bytes whatever the memory size, and a reload is bit-identical without
 * re-encoding a frame. The raw frames stay, so a memory can be rebuilt (with
 * another model version, say) from what was observed.
 *
 * Thread safety: one connection behind a mutex; every function may be called
 * from any thread. Appends are group-committed (see store_append). */
#ifndef GTMSMD_STORE_H
#define GTMSMD_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store;

/* Positive outcomes that are not errors; errors are negative GTMSM_E* codes
 * or one of the two below. */
enum { STORE_OK = 0, STORE_NOTFOUND = 1, STORE_EXISTS = 2 };

/* Storage failures (negative, beside the GTMSM_E* codes): the disk is full
 * (507 for a client), or the database cannot be written or read for now
 * (read-only, I/O errors, locked by another process; on PostgreSQL the
 * server unreachable, shutting down, read-only or out of connections: 503). After a full disk,
 * a read-only database or an I/O error every write fails at once with the
 * same code until a probe (at most once a second, on the next write or
 * store_writable) writes again, so that a replica which cannot take writes
 * says so instead of trying each one; reads go on. */
enum { STORE_EFULL = -100, STORE_EUNAVAILABLE = -101 };
/* An append (or a lease renewal) refused by the fence: the session's lease
 * has another owner or epoch now, so another replica may have written it
 * (see the leases below). Not a storage failure: that append alone failed. */
enum { STORE_EFENCED = -102 };
/* Free bytes the disk must have again before writes resume after a full disk. */
#define STORE_FREE_MIN ((long long)1 << 20)

/* The schema version this build migrates to. */
#define STORE_SCHEMA_VERSION 5

typedef struct {
  int64_t sid;            /* row id */
  char id[65];
  char model[65];
  char model_version[17];
  int64_t steps;          /* observations stored: the next t */
  long long created_ms, updated_ms;
  /* The session's own idle TTL (schema 4; the nullable sessions.ttl_s):
   * STORE_TTL_DEFAULT (0, the column NULL, so a zeroed row means it) follows
   * the daemon's --session-ttl; STORE_TTL_NEVER (the column 0) never expires;
   * 1..STORE_TTL_MAX seconds its own. */
  long long ttl_s;
} store_session;
#define STORE_TTL_DEFAULT 0
#define STORE_TTL_NEVER (-1)
#define STORE_TTL_MAX 315360000LL /* ten years, as --session-ttl's maximum */

/* Opens target and migrates it, then proves that it can write (a database
 * left read-only, say by a crash on a read-only folder or mount, is refused
 * here rather than found out on the first write). target is a PostgreSQL
 * connection URL (postgresql://... or postgres://..., libpq's syntax) or
 * else an SQLite file path (the file and its folder are created if needed);
 * another scheme:// is GTMSM_EINVAL. synchronous is config_sync (0 full,
 * 1 normal, 2 off): SQLite's PRAGMA synchronous, PostgreSQL's
 * synchronous_commit (on, on, off: the server's own fsync settings rule the
 * rest). *out is new (free with store_close). Returns 0 or GTMSM_EIO /
 * GTMSM_EFORMAT (a schema version outside 0..STORE_SCHEMA_VERSION) /
 * STORE_EUNAVAILABLE (the PostgreSQL server cannot be reached) with a
 * message. */
int store_open(store **out, const char *target, int synchronous, char *err, size_t errlen);
/* 1 when target names a PostgreSQL database (postgresql:// or postgres://). */
int store_is_url(const char *target);
/* target with any password replaced by "***" (the URL's user:password@ and a
 * password=... option), for logs, into out. */
void store_redact(char *out, size_t outlen, const char *target);
/* "sqlite" or "postgresql" (static). */
const char *store_backend_name(store *s);
/* Finalises statements (SQLite: checkpoints the WAL) and closes; s may be NULL. */
void store_close(store *s);
/* The schema version of the open database. */
int store_schema_version(store *s);
/* 0 when writes can succeed, else STORE_EFULL or STORE_EUNAVAILABLE with a
 * message; with probe = 1 a failed store is probed again when a second has
 * passed (see above); with probe = 0 no write is tried (on PostgreSQL a lost
 * connection may still be re-opened, once a second). */
int store_writable(store *s, int probe, char *err, size_t errlen);

/* The session with this id into *out: STORE_OK or STORE_NOTFOUND. */
int store_session_get(store *s, const char *id, store_session *out, char *err, size_t errlen);
/* Creates the session with idle TTL ttl_s (store_session's encoding) unless
 * it exists; either way *out is the stored row (an existing one keeps its
 * TTL) and *created says which (all strings borrowed). */
int store_session_create(store *s, const char *id, const char *model, const char *version,
                         long long now_ms, long long ttl_s, store_session *out, int *created,
                         char *err, size_t errlen);
/* Deletes the session and its observations in one transaction. */
int store_session_delete(store *s, int64_t sid, int64_t epoch, char *err, size_t errlen);
/* Number of stored sessions. */
int store_session_count(store *s, int64_t *n);
/* A page of the stored sessions in order of row id (the order they were
 * created or imported in): up to limit (1..STORE_LIST_MAX) rows with
 * sid > after_sid, and model == model unless model is NULL, into out (limit
 * rows, caller's); *n gets how many. A keyset seek, so any page costs
 * O(limit) whatever after_sid is. */
#define STORE_LIST_MAX 1000
int store_session_list(store *s, const char *model, int64_t after_sid, int limit,
                       store_session *out, int *n, char *err, size_t errlen);
/* Up to limit (1..STORE_LIST_MAX) sessions idle past their TTL at now_ms,
 * oldest write (updated_ms) first, into out; *n gets how many. A session
 * with its own TTL is idle when updated_ms < now_ms - ttl_s * 1000; one
 * with STORE_TTL_DEFAULT when default_ttl_ms > 0 and updated_ms < now_ms -
 * default_ttl_ms; a STORE_TTL_NEVER one never. For the idle expiry: a scan
 * of the sessions table (no index on updated_ms). */
int store_session_idle(store *s, long long now_ms, long long default_ttl_ms, int limit,
                       store_session *out, int *n, char *err, size_t errlen);
/* Replaces, in one transaction, the memory of session sid with one built by
 * another model version: every observation's entry (entries: steps rows of
 * entry_bytes, borrowed; row t gets entries[t]), the state (state_bytes)
 * and the model version (borrowed), and sets updated_ms. The frames and
 * actions stay. The session must still have exactly `steps` observations
 * (the caller holds its exclusive lock): otherwise STORE_NOTFOUND and
 * nothing changes. */
int store_session_rebuild(store *s, int64_t sid, const char *version, int64_t steps,
                          const uint8_t *entries, size_t entry_bytes, const uint8_t *state,
                          size_t state_bytes, long long now_ms, char *err, size_t errlen);

/* The stored state (state_len bytes copied into state). A NULL (or empty)
 * state gives zeros and *present = 0: right while the session has no
 * observation, a damaged row otherwise (the caller knows its steps). */
int store_state_get(store *s, int64_t sid, uint8_t *state, size_t state_len, int *present,
                    char *err, size_t errlen);
/* Calls fn with each memory entry (len bytes, borrowed) of the session in
 * order of t; a non-zero return from fn stops and is returned. */
typedef int (*store_entry_fn)(void *ctx, int64_t t, const uint8_t *entry, size_t len);
int store_entries_each(store *s, int64_t sid, store_entry_fn fn, void *ctx, char *err,
                       size_t errlen);

/* Calls fn for each observation with t >= from_t in order of t; frame
 * (len bytes) is borrowed for the call. A non-zero return from fn stops and
 * is returned. */
typedef int (*store_frame_fn)(void *ctx, int64_t t, int action, const uint8_t *frame, size_t len);
int store_frames_each(store *s, int64_t sid, int64_t from_t, store_frame_fn fn, void *ctx,
                      char *err, size_t errlen);
/* The observation at t: its action and frame (frame_len bytes copied into
 * frame). STORE_OK, STORE_NOTFOUND, or GTMSM_EFORMAT if its size differs. */
int store_frame_get(store *s, int64_t sid, int64_t t, int *action, uint8_t *frame,
                    size_t frame_len, char *err, size_t errlen);

/* One append: n observations t0 .. t0 + n - 1 (actions (n), frames (n,
 * frame_bytes), memory entries (n, entry_bytes), all borrowed) and the
 * session's new steps, state (state_bytes) and updated time. */
typedef struct {
  int64_t sid, t0;
  int n;
  const int *actions;
  const uint8_t *frames;
  size_t frame_bytes;
  const uint8_t *entries;
  size_t entry_bytes;
  const uint8_t *state;
  size_t state_bytes;
  int64_t steps;
  long long now_ms;
  int64_t epoch; /* the lease epoch it is written under (fenced); 0: unfenced (SQLite) */
} store_append_req;

/* The COMMIT that covered an append. */
typedef struct {
  double seconds; /* its duration */
  int group;      /* appends it covered (1 when nothing else was waiting) */
  int first;      /* 1 for exactly one append of each COMMIT: count commits by this */
} store_commit_info;

/* Writes a, all or nothing, and returns 0 only once a COMMIT covering it
 * returned. Group commit: appends queue (from any threads, so of other
 * sessions: a caller holds its session's lock) and the store's writer thread
 * writes up to the group limit of them in one transaction and one fsync,
 * each inside its own SAVEPOINT, while the next ones queue. An append whose
 * own statements fail (a constraint, say) is rolled back alone and gets its
 * error; the others commit. A storage failure (full disk, unwritable
 * database: see above) at BEGIN, in a statement or at COMMIT fails every
 * append of the group with the same code and message. *ci (may be NULL)
 * describes the COMMIT. a is borrowed until return; no two appends of one
 * session may be in flight at once (the session lock orders them). */
int store_append(store *s, const store_append_req *a, store_commit_info *ci, char *err,
                 size_t errlen);
/* store_append without waiting: fn(ctx, rc, ci, err) runs once, on the
 * store's writer thread, after the COMMIT that covered a (rc 0) or with what
 * store_append would have returned; it must not wait for another append. a
 * and what it points to stay borrowed until fn runs. Returns 0 (fn will
 * run), or non-zero with err set (it will not: out of memory, no writer). */
typedef void (*store_done_fn)(void *ctx, int rc, const store_commit_info *ci, const char *err);
int store_append_async(store *s, const store_append_req *a, store_done_fn fn, void *ctx,
                       char *err, size_t errlen);
/* Appends per transaction: 1 commits each on its own (no grouping); clamped
 * to 1..STORE_GROUP_MAX. Default STORE_GROUP_DEFAULT. */
#define STORE_GROUP_MAX 256
#define STORE_GROUP_DEFAULT 64
void store_set_group_max(store *s, int n);
/* One group as store_append writes it, for tests and for callers with several
 * appends at hand: items[i].req (borrowed) each in its own SAVEPOINT of one
 * transaction; items[i].rc and .err get each one's outcome. Returns 0 when
 * the transaction committed (some items may still have failed alone), else
 * the storage failure every item got. n is 1..STORE_GROUP_MAX. */
typedef struct {
  const store_append_req *req;
  int rc;
  char err[256];
} store_group_item;
int store_append_group(store *s, store_group_item *items, int n, double *commit_seconds);
/* Observation COMMITs run and appends they committed, since open. */
void store_group_stats(store *s, long long *commits, long long *appends);

/* Creates a whole session in one transaction: meta's id, model, version,
 * steps, times and TTL, and its observations 0 .. n - 1 as in store_append (a->sid
 * and a->t0 are ignored; a->steps must be n). STORE_EXISTS if the id is
 * taken. *sid_out gets the new row id. */
int store_import(store *s, const store_session *meta, const store_append_req *a, int64_t *sid_out,
                 char *err, size_t errlen);

/* ---- leases (issue 14; docs/DEPLOY.md has the protocol) -------------------
 * On a PostgreSQL that several replicas share, one replica at a time may
 * serve a session: the one holding its row in session_leases (owner, epoch,
 * expires_at on the database's clock). Taking a lease that another owner
 * let lapse raises its epoch; every append carries the epoch it was loaded
 * under and is fenced by it (its first statement renews the lease only
 * WHERE owner and epoch still match, else the append fails alone with
 * STORE_EFENCED), so a replica that lost the lease can never write again.
 * SQLite has no leases (one process owns the file): store_leases is 0 and
 * the other calls are never made. */
/* A positive outcome of store_lease_take: another owner's lease is live. */
enum { STORE_LEASED = 3 };
typedef struct {
  int64_t epoch;        /* STORE_OK: the lease's epoch now */
  long long wait_ms;    /* STORE_LEASED: until the holder's lease lapses, at least 1 */
} store_lease;
/* 1 when s fences sessions with leases (PostgreSQL after store_lease_config). */
int store_leases(store *s);
/* This process's owner name (copied; unique per process: a restarted replica
 * is another owner) and the lease time to live; on PostgreSQL turns leases
 * on. Call once after store_open, before serving. */
void store_lease_config(store *s, const char *owner, long long ttl_ms);
/* Takes or renews the lease of session sid for ttl_ms on the database's
 * clock. epoch is the one our cached copy was loaded under (0: none). STORE_OK
 * with out->epoch == epoch: we held it and nobody took it since, our copy is
 * current; another out->epoch: reload the session. STORE_LEASED: another
 * owner holds a live lease (out->wait_ms). STORE_NOTFOUND: no such session. */
int store_lease_take(store *s, int64_t sid, int64_t epoch, store_lease *out, char *err,
                     size_t errlen);
/* Lets every lease of this owner lapse now (clean shutdown): another replica
 * may take them at once. */
int store_lease_release_all(store *s, char *err, size_t errlen);

#endif
