/* Internal to the store: the ops table a backend (store_sqlite.c,
 * store_pg.c) fills, and the part of every store that store.c owns (the
 * group-commit queue and its counters). Nothing outside store*.c includes
 * this; the rest of the daemon sees store.h only.
 *
 * A backend's own struct starts with a `store` (so a store * is a pointer to
 * it), keeps one connection behind its own mutex, and implements each op with
 * the contract of the store.h function of the same name. write_group is
 * store_append_group's contract with items given by pointer; it takes and
 * releases the backend's mutex itself. */
#ifndef GTMSMD_STORE_BACKEND_H
#define GTMSMD_STORE_BACKEND_H

#include <pthread.h>

#include "store.h"

/* Rows per page of store_frames_each on both backends: the SQL's LIMIT and
 * the loops that stop at a short page are written from this one number. */
#define STORE_FRAME_PAGE 256
#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)

typedef struct store_ops {
  const char *name; /* "sqlite", "postgresql": for logs and metrics */
  void (*close)(store *s);
  int (*schema_version)(store *s);
  int (*writable)(store *s, int probe, char *err, size_t errlen);
  int (*session_get)(store *s, const char *id, store_session *out, char *err, size_t errlen);
  int (*session_create)(store *s, const char *id, const char *model, const char *version,
                        long long now_ms, long long ttl_s, store_session *out, int *created,
                        char *err, size_t errlen);
  int (*session_delete)(store *s, int64_t sid, int64_t epoch, char *err, size_t errlen);
  int (*session_count)(store *s, int64_t *n);
  int (*session_list)(store *s, const char *model, int64_t after_sid, int limit,
                      store_session *out, int *n, char *err, size_t errlen);
  int (*session_idle)(store *s, long long now_ms, long long default_ttl_ms, int limit,
                      store_session *out, int *n, char *err, size_t errlen);
  int (*session_rebuild)(store *s, int64_t sid, const char *version, int64_t steps,
                         const uint8_t *entries, size_t entry_bytes, const uint8_t *state,
                         size_t state_bytes, long long now_ms, char *err, size_t errlen);
  int (*state_get)(store *s, int64_t sid, uint8_t *state, size_t state_len, int *present,
                   char *err, size_t errlen);
  int (*entries_each)(store *s, int64_t sid, store_entry_fn fn, void *ctx, char *err,
                      size_t errlen);
  int (*frames_each)(store *s, int64_t sid, int64_t from_t, store_frame_fn fn, void *ctx,
                     char *err, size_t errlen);
  int (*frame_get)(store *s, int64_t sid, int64_t t, int *action, uint8_t *frame,
                   size_t frame_len, char *err, size_t errlen);
  int (*write_group)(store *s, store_group_item *const *items, int n, double *commit_seconds);
  int (*import)(store *s, const store_session *meta, const store_append_req *a, int64_t *sid_out,
                char *err, size_t errlen);
  /* Leases (NULL on a backend without them: SQLite). */
  int (*lease_take)(store *s, int64_t sid, int64_t epoch, store_lease *out, char *err,
                    size_t errlen);
  int (*lease_release_all)(store *s, char *err, size_t errlen);
} store_ops;

/* An append waiting in the group-commit queue: on its caller's stack
 * (store_append, which waits on cv) or on the heap with the function to call
 * when it is done (store_append_async; the writer frees it). */
typedef struct store_append_op {
  store_group_item item;
  store_commit_info ci;
  int done;
  pthread_cond_t cv; /* store_append waits on it until done */
  store_done_fn fn;  /* store_append_async's, or NULL */
  void *ctx;
  struct store_append_op *next;
} store_append_op;

struct store {
  const store_ops *ops;
  /* The group-commit queue (see store_append): guarded by qmu, which is never
   * held while a backend waits for its connection. One writer thread (started
   * with the first append) writes every group. */
  pthread_mutex_t qmu;
  store_append_op *qhead, *qtail;
  int group_max;
  long long commits, appends; /* under qmu */
  int qlen;                   /* appends queued */
  pthread_condattr_t cvattr;  /* the ops' condition variables: on CLOCK_MONOTONIC */
  pthread_cond_t wcv;         /* the writer waits on it for appends */
  pthread_t writer;
  int writer_started, stop;
  int wwait;                  /* the writer waits for: 0 nothing, 1 any append, 2 gather_target */
  int gather_target;
  int last_n, last_q;         /* the last group's appends; those queued when it was committed */
  double last_end, last_secs; /* when (CLOCK_MONOTONIC seconds), and how long its write took */
  /* Leases (store_lease_config; fixed before serving): */
  int leases;
  char owner[128];
  long long lease_ttl_ms;
};

/* Initialises the store.c part of a backend's store (ops borrowed, static). */
void store_base_init(store *s, const store_ops *ops);
/* Destroys what store_base_init made (the backend frees the memory). */
void store_base_free(store *s);

/* The backends' open functions: store_open's contract for their kind of
 * target (a file path; a postgresql:// URL). */
int store_sqlite_open(store **out, const char *path, int synchronous, char *err, size_t errlen);
int store_pg_open(store **out, const char *url, int synchronous, char *err, size_t errlen);

#endif
