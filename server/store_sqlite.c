/* The SQLite backend of the store (see store.h, store_backend.h): one file in
 * WAL mode, schema version in PRAGMA user_version with ordered migrations,
 * prepared statements, transactions. */
#include "store_backend.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "base/err.h"
#include "log.h"
#include "util.h"

/* Ordered migrations: MIGRATIONS[i] takes the schema from version i to i + 1.
 * Never edit a released entry; append a new one. */
static const char *const MIGRATIONS[STORE_SCHEMA_VERSION] = {
    /* 1: sessions and their observations (raw frames as H*W*C bytes) */
    "CREATE TABLE sessions ("
    "  sid INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  model TEXT NOT NULL,"
    "  model_version TEXT NOT NULL,"
    "  steps INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE observations ("
    "  sid INTEGER NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,"
    "  t INTEGER NOT NULL,"
    "  action INTEGER NOT NULL,"
    "  frame BLOB NOT NULL,"
    "  PRIMARY KEY (sid, t)) WITHOUT ROWID;",
    /* 2: the memory: each observation's DND entry (key then value, float32)
     * and the state after the session's last observation */
    "ALTER TABLE observations ADD COLUMN entry BLOB;"
    "ALTER TABLE sessions ADD COLUMN state BLOB;",
    /* 3: the session leases of replicas sharing a database (store.h). SQLite
     * is never shared (one process owns the file) and leaves it empty; it
     * exists so that a schema version means the same tables on both. */
    "CREATE TABLE session_leases ("
    "  sid INTEGER PRIMARY KEY REFERENCES sessions(sid) ON DELETE CASCADE,"
    "  owner TEXT NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL);",
    /* 4: a session's own idle TTL in seconds (NULL: the daemon's
     * --session-ttl; 0: never expires; store.h's store_session.ttl_s) */
    "ALTER TABLE sessions ADD COLUMN ttl_s INTEGER;",
    /* 5: observations in arrival order (a rowid table) with a unique (sid, t)
     * index, no longer clustered by (sid, t). A COMMIT of observations of g
     * sessions wrote each one's own full leaf page of rows (~340 bytes each,
     * 11 per page), often splitting and rebalancing its neighbours as well;
     * now the rows of a group fill one or two pages at the end of the table,
     * and only the small index entries (~350 per page) land in g places.
     * docs/BENCHMARKS.md has the figures. */
    "CREATE TABLE observations_v5 ("
    "  sid INTEGER NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,"
    "  t INTEGER NOT NULL,"
    "  action INTEGER NOT NULL,"
    "  frame BLOB NOT NULL,"
    "  entry BLOB);"
    "INSERT INTO observations_v5 (sid, t, action, frame, entry) "
    "  SELECT sid, t, action, frame, entry FROM observations ORDER BY sid, t;"
    "DROP TABLE observations;"
    "ALTER TABLE observations_v5 RENAME TO observations;"
    "CREATE UNIQUE INDEX observations_sid_t ON observations (sid, t);",
};

enum {
  ST_GET,
  ST_INSERT_SESSION,
  ST_DELETE_OBS,
  ST_DELETE_SESSION,
  ST_COUNT,
  ST_STATE,
  ST_ENTRIES,
  ST_FRAMES_FROM,
  ST_FRAME_AT,
  ST_INSERT_OBS,
  ST_UPDATE_SESSION,
  ST_LIST,
  ST_SET_ENTRY,
  ST_REBUILD_SESSION,
  ST_IDLE,
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_SAVEPOINT,
  ST_RELEASE,
  ST_ROLLBACK_TO,
  ST_N
};

static const char *const SQL[ST_N] = {
    [ST_GET] = "SELECT sid, id, model, model_version, steps, created_ms, updated_ms, ttl_s "
               "FROM sessions WHERE id = ?1",
    [ST_INSERT_SESSION] = "INSERT INTO sessions (id, model, model_version, steps, created_ms, "
                          "updated_ms, state, ttl_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_DELETE_OBS] = "DELETE FROM observations WHERE sid = ?1",
    [ST_DELETE_SESSION] = "DELETE FROM sessions WHERE sid = ?1",
    [ST_COUNT] = "SELECT count(*) FROM sessions",
    [ST_STATE] = "SELECT state FROM sessions WHERE sid = ?1",
    [ST_ENTRIES] = "SELECT t, entry FROM observations WHERE sid = ?1 ORDER BY t",
    [ST_FRAMES_FROM] = "SELECT t, action, frame FROM observations WHERE sid = ?1 AND t >= ?2 "
                       "ORDER BY t LIMIT " STORE_STR(STORE_FRAME_PAGE),
    [ST_FRAME_AT] = "SELECT action, frame FROM observations WHERE sid = ?1 AND t = ?2",
    [ST_INSERT_OBS] = "INSERT INTO observations (sid, t, action, frame, entry) "
                      "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_UPDATE_SESSION] = "UPDATE sessions SET steps = ?2, updated_ms = ?3, state = ?4 WHERE sid = ?1",
    [ST_LIST] = "SELECT sid, id, model, model_version, steps, created_ms, updated_ms, ttl_s "
                "FROM sessions WHERE sid > ?1 AND (?2 IS NULL OR model = ?2) ORDER BY sid LIMIT ?3",
    [ST_IDLE] = "SELECT sid, id, model, model_version, steps, created_ms, updated_ms, ttl_s "
                "FROM sessions WHERE (ttl_s IS NULL AND ?2 > 0 AND updated_ms < ?1 - ?2) OR "
                "(ttl_s > 0 AND updated_ms < ?1 - ttl_s * 1000) ORDER BY updated_ms, sid LIMIT ?3",
    [ST_SET_ENTRY] = "UPDATE observations SET entry = ?3 WHERE sid = ?1 AND t = ?2",
    [ST_REBUILD_SESSION] = "UPDATE sessions SET model_version = ?2, state = ?3, updated_ms = ?4 "
                           "WHERE sid = ?1 AND steps = ?5",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT append",
    [ST_RELEASE] = "RELEASE append",
    [ST_ROLLBACK_TO] = "ROLLBACK TO append",
};

typedef struct {
  store base; /* first: a store * points here */
  sqlite3 *db;
  sqlite3_stmt *st[ST_N];
  pthread_mutex_t mu;
  int version;
  char dir[4096];   /* the database's folder, for statvfs */
  int failed;       /* 0, or STORE_EFULL / STORE_EUNAVAILABLE: writes fail at once */
  double probed_at; /* monotonic seconds of the failure or the last probe */
  char failure[256];
  int serving;      /* open finished: failures now put the store into the failed state */
} sqlite_store;

/* Maps an SQLite result code to ours; a full disk, a read-only database or an
 * I/O error also puts the store into the failed state (caller holds the mutex
 * or owns the store). */
static int classify(sqlite_store *s, int code) {
  const int primary = code & 0xff;
  int rc = GTMSM_EIO, sticky = 1;
  if (primary == SQLITE_FULL) rc = STORE_EFULL;
  else if (primary == SQLITE_READONLY || primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN)
    rc = STORE_EUNAVAILABLE;
  else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
    rc = STORE_EUNAVAILABLE, sticky = 0; /* another process holds the lock: not our disk */
  if (rc != GTMSM_EIO && sticky && s->serving) {
    if (!s->failed)
      log_at(LOG_LEVEL_ERROR, NULL, "store", "{s:s, s:s}", "msg", rc == STORE_EFULL
             ? "the disk is full: writes refused and not ready until space returns"
             : "the database cannot be written: writes refused and not ready until it can",
             "error", sqlite3_errstr(code));
    s->failed = rc;
    s->probed_at = util_mono_seconds();
    snprintf(s->failure, sizeof s->failure, "%s", sqlite3_errstr(code));
  }
  return rc;
}

static int db_fail_code(sqlite_store *s, int code, char *err, size_t errlen, const char *what) {
  const int rc = classify(s, code);
  return gtmsm_fail(err, errlen, rc, "sqlite: %s: %s", what, sqlite3_errmsg(s->db));
}

static int db_fail(sqlite_store *s, char *err, size_t errlen, const char *what) {
  return db_fail_code(s, sqlite3_extended_errcode(s->db), err, errlen, what);
}

/* Runs a statement that returns no rows; resets it. */
static int step_done(sqlite_store *s, sqlite3_stmt *st, char *err, size_t errlen, const char *what) {
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) rc = db_fail_code(s, sqlite3_extended_errcode(s->db), err, errlen, what);
  else rc = 0;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

static int exec_sql(sqlite_store *s, const char *sql, char *err, size_t errlen) {
  char *msg = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = classify(s, sqlite3_extended_errcode(s->db));
    gtmsm_fail(err, errlen, rc, "sqlite: %s", msg ? msg : "error");
    sqlite3_free(msg);
    return rc;
  }
  return 0;
}

/* One small committed write (the schema version rewritten: a WAL frame), to
 * prove that writes reach the disk. */
static int probe_write(sqlite_store *s, char *err, size_t errlen) {
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", s->version);
  int rc = exec_sql(s, "BEGIN IMMEDIATE", err, errlen);
  if (!rc) rc = exec_sql(s, sql, err, errlen);
  if (!rc) rc = exec_sql(s, "COMMIT", err, errlen);
  if (rc) exec_sql(s, "ROLLBACK", NULL, 0);
  return rc;
}

/* The gate of every write (mutex held): 0, or the failure while the store is
 * failed. A second after the failure (or the last probe) it probes: after a
 * full disk, STORE_FREE_MIN bytes must be free, then a probe write must
 * commit. */
static int writable_locked(sqlite_store *s, int probe, char *err, size_t errlen) {
  if (!s->failed) return 0;
  const double now = util_mono_seconds();
  if (probe && now - s->probed_at >= 1.0) {
    s->probed_at = now;
    struct statvfs fs;
    if (s->failed == STORE_EFULL && statvfs(s->dir, &fs) == 0 &&
        (long long)fs.f_bavail * (long long)fs.f_frsize < STORE_FREE_MIN) {
      snprintf(s->failure, sizeof s->failure, "%lld bytes free, %lld needed to resume",
               (long long)fs.f_bavail * (long long)fs.f_frsize, STORE_FREE_MIN);
    } else {
      char msg[256] = "";
      if (probe_write(s, msg, sizeof msg) == 0) { /* a failing probe updates s->failed */
        s->failed = 0;
        log_at(LOG_LEVEL_INFO, NULL, "store", "{s:s}", "msg", "the database is writable again");
        return 0;
      }
    }
  }
  return gtmsm_fail(err, errlen, s->failed, "%s: %s",
                    s->failed == STORE_EFULL ? "the disk holding the database is full"
                                             : "the database cannot be written now",
                    s->failure);
}

static int sq_writable(store *base, int probe, char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  int rc = writable_locked(s, probe, err, errlen);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int pragma_int(sqlite_store *s, const char *sql, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) *out = sqlite3_column_int(st, 0);
  else rc = SQLITE_ERROR;
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? 0 : GTMSM_EIO;
}

static int migrate(sqlite_store *s, char *err, size_t errlen) {
  int v = 0;
  if (pragma_int(s, "PRAGMA user_version", &v)) return db_fail(s, err, errlen, "user_version");
  /* v indexes MIGRATIONS: anything outside 0..STORE_SCHEMA_VERSION (a newer
   * gtmsmd's file, or a corrupt or hand-edited header) is refused untouched. */
  if (v > STORE_SCHEMA_VERSION)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                      "database schema version %d is newer than this gtmsmd's %d", v,
                      STORE_SCHEMA_VERSION);
  if (v < 0)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                      "database schema version %d is not one gtmsmd writes (0..%d): a corrupt or "
                      "edited file header (PRAGMA user_version)", v, STORE_SCHEMA_VERSION);
  for (; v < STORE_SCHEMA_VERSION; v++) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
    int rc = exec_sql(s, "BEGIN IMMEDIATE", err, errlen);
    if (!rc) rc = exec_sql(s, MIGRATIONS[v], err, errlen);
    if (!rc) rc = exec_sql(s, sql, err, errlen);
    if (!rc) rc = exec_sql(s, "COMMIT", err, errlen);
    if (rc) {
      exec_sql(s, "ROLLBACK", NULL, 0);
      if (err && errlen) { /* the file is as it was: say which step, and that it can be retried */
        char why[256];
        snprintf(why, sizeof why, "%s", err);
        gtmsm_fail(err, errlen, rc, "migrating the schema from version %d to %d (rolled back, the file "
                   "unchanged): %s", v, v + 1, why);
      }
      return rc;
    }
    log_at(LOG_LEVEL_INFO, NULL, "store", "{s:s, s:i}", "msg", "schema migrated", "version", v + 1);
  }
  s->version = v;
  return 0;
}

static const store_ops SQLITE_OPS;

static void sq_close(store *base) {
  sqlite_store *s = (sqlite_store *)base;
  if (!s) return;
  for (int i = 0; i < ST_N; i++) sqlite3_finalize(s->st[i]);
  if (s->db) {
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_close(s->db);
  }
  pthread_mutex_destroy(&s->mu);
  store_base_free(&s->base);
  free(s);
}

int store_sqlite_open(store **out, const char *path, int synchronous, char *err, size_t errlen) {
  static const char *const SYNC[] = {"PRAGMA synchronous = FULL", "PRAGMA synchronous = NORMAL",
                                     "PRAGMA synchronous = OFF"};
  *out = NULL;
  sqlite_store *s = calloc(1, sizeof *s);
  if (!s) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  store_base_init(&s->base, &SQLITE_OPS);
  pthread_mutex_init(&s->mu, NULL);
  int rc = 0;
  const int mk = util_make_parent(path);
  if (mk) log_at(LOG_LEVEL_WARN, NULL, "store", "{s:s, s:s}", "msg", "cannot make the database's folder", "error",
                 strerror(mk), "db", path);
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    rc = gtmsm_fail(err, errlen, GTMSM_EIO, "sqlite: cannot open %s: %s", path,
                    s->db ? sqlite3_errmsg(s->db) : "out of memory");
    goto done;
  }
  sqlite3_busy_timeout(s->db, 5000);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW ||
      strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
    sqlite3_finalize(st);
    rc = gtmsm_fail(err, errlen, GTMSM_EIO, "sqlite: %s cannot use WAL mode: %s", path,
                    sqlite3_errmsg(s->db));
    goto done;
  }
  sqlite3_finalize(st);
  if (synchronous < 0 || synchronous > 2) synchronous = 0;
  if ((rc = exec_sql(s, SYNC[synchronous], err, errlen))) goto done;
  if ((rc = exec_sql(s, "PRAGMA foreign_keys = ON", err, errlen))) goto done;
  if ((rc = migrate(s, err, errlen))) goto done;
  snprintf(s->dir, sizeof s->dir, "%s", path);
  char *slash = strrchr(s->dir, '/');
  if (!slash) snprintf(s->dir, sizeof s->dir, ".");
  else if (slash == s->dir) s->dir[1] = '\0';
  else *slash = '\0';
  /* SQLite opens a database it cannot write read-only without a word, and a
   * WAL database whose -wal and -shm a crash left behind opens on a
   * read-only folder or mount: every write would fail later. */
  if (sqlite3_db_readonly(s->db, "main") == 1) {
    rc = gtmsm_fail(err, errlen, GTMSM_EIO, "%s is read-only (the file, its folder or its mount "
                    "cannot be written): gtmsmd needs to write it", path);
    goto done;
  }
  char msg[256] = "";
  if (probe_write(s, msg, sizeof msg)) {
    rc = gtmsm_fail(err, errlen, GTMSM_EIO, "cannot write %s (%s): gtmsmd needs to write it", path,
                    msg);
    goto done;
  }
  for (int i = 0; i < ST_N; i++)
    if (sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
        SQLITE_OK) {
      rc = db_fail(s, err, errlen, SQL[i]);
      goto done;
    }
done:
  if (rc) {
    sq_close(&s->base);
    return rc;
  }
  s->serving = 1;
  *out = &s->base;
  return 0;
}


static int sq_schema_version(store *base) { return ((sqlite_store *)base)->version; }

static void copy_text(char *out, size_t outlen, sqlite3_stmt *st, int col) {
  const unsigned char *t = sqlite3_column_text(st, col);
  snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

/* store_session.ttl_s from the ttl_s column (NULL: the default). */
static long long ttl_from_column(sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return STORE_TTL_DEFAULT;
  const long long v = sqlite3_column_int64(st, col);
  return v == 0 ? STORE_TTL_NEVER : v;
}

/* Binds store_session.ttl_s as the ttl_s column. */
static void bind_ttl(sqlite3_stmt *st, int col, long long ttl_s) {
  if (ttl_s == STORE_TTL_DEFAULT) sqlite3_bind_null(st, col);
  else sqlite3_bind_int64(st, col, ttl_s == STORE_TTL_NEVER ? 0 : ttl_s);
}

/* Reads the session row by id; the caller holds the mutex. */
static int get_locked(sqlite_store *s, const char *id, store_session *out, char *err, size_t errlen) {
  sqlite3_stmt *st = s->st[ST_GET];
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st), ret = STORE_OK;
  if (rc == SQLITE_ROW) {
    out->sid = sqlite3_column_int64(st, 0);
    copy_text(out->id, sizeof out->id, st, 1);
    copy_text(out->model, sizeof out->model, st, 2);
    copy_text(out->model_version, sizeof out->model_version, st, 3);
    out->steps = sqlite3_column_int64(st, 4);
    out->created_ms = sqlite3_column_int64(st, 5);
    out->updated_ms = sqlite3_column_int64(st, 6);
    out->ttl_s = ttl_from_column(st, 7);
  } else if (rc == SQLITE_DONE) {
    ret = STORE_NOTFOUND;
  } else {
    ret = db_fail(s, err, errlen, "read session");
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return ret;
}

static int sq_session_get(store *base, const char *id, store_session *out, char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  int rc = get_locked(s, id, out, err, errlen);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int sq_session_create(store *base, const char *id, const char *model, const char *version,
                             long long now_ms, long long ttl_s, store_session *out, int *created,
                             char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  *created = 0;
  int rc = get_locked(s, id, out, err, errlen);
  if (rc == STORE_NOTFOUND && (rc = writable_locked(s, 1, err, errlen)) == 0) {
    sqlite3_stmt *st = s->st[ST_INSERT_SESSION];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, 0);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_int64(st, 6, now_ms);
    sqlite3_bind_null(st, 7);
    bind_ttl(st, 8, ttl_s);
    rc = step_done(s, st, err, errlen, "create session"); /* autocommit: durable on return */
    if (!rc) rc = get_locked(s, id, out, err, errlen);
    if (!rc) *created = 1;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* Starts a write transaction, unless the store is failed (mutex held). */
static int begin(sqlite_store *s, char *err, size_t errlen) {
  int rc = writable_locked(s, 1, err, errlen);
  return rc ? rc : step_done(s, s->st[ST_BEGIN], err, errlen, "begin");
}

static void rollback(sqlite_store *s) {
  sqlite3_step(s->st[ST_ROLLBACK]);
  sqlite3_reset(s->st[ST_ROLLBACK]);
}

static int commit(sqlite_store *s, double *seconds, char *err, size_t errlen) {
  double t0 = util_mono_seconds();
  int rc = step_done(s, s->st[ST_COMMIT], err, errlen, "commit");
  if (seconds) *seconds = util_mono_seconds() - t0;
  return rc;
}

static int sq_session_delete(store *base, int64_t sid, int64_t epoch, char *err, size_t errlen) {
  (void)epoch; /* one process owns the file: no leases */
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  int rc = begin(s, err, errlen);
  if (rc) goto done;
  sqlite3_bind_int64(s->st[ST_DELETE_OBS], 1, sid);
  rc = step_done(s, s->st[ST_DELETE_OBS], err, errlen, "delete observations");
  if (!rc) {
    sqlite3_bind_int64(s->st[ST_DELETE_SESSION], 1, sid);
    rc = step_done(s, s->st[ST_DELETE_SESSION], err, errlen, "delete session");
  }
  if (!rc) rc = commit(s, NULL, err, errlen);
  if (rc) rollback(s);
done:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int sq_session_count(store *base, int64_t *n) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  sqlite3_stmt *st = s->st[ST_COUNT];
  int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : GTMSM_EIO;
  *n = rc ? 0 : sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int sq_state_get(store *base, int64_t sid, uint8_t *state, size_t state_len, int *present,
                        char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  *present = 0;
  pthread_mutex_lock(&s->mu);
  sqlite3_stmt *st = s->st[ST_STATE];
  sqlite3_bind_int64(st, 1, sid);
  int rc = sqlite3_step(st), ret = STORE_OK;
  if (rc == SQLITE_ROW) {
    const void *b = sqlite3_column_blob(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    if (!b) { /* NULL, or a zero-length blob */
      memset(state, 0, state_len);
    } else if (n != state_len) {
      ret = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "stored state has %zu bytes, expected %zu", n,
                       state_len);
    } else {
      memcpy(state, b, n);
      *present = 1;
    }
  } else if (rc == SQLITE_DONE) {
    ret = STORE_NOTFOUND;
  } else {
    ret = db_fail(s, err, errlen, "read state");
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  pthread_mutex_unlock(&s->mu);
  return ret;
}

static int sq_entries_each(store *base, int64_t sid, store_entry_fn fn, void *ctx, char *err,
                           size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  sqlite3_stmt *st = s->st[ST_ENTRIES];
  sqlite3_bind_int64(st, 1, sid);
  int rc, ret = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    ret = fn(ctx, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
             (size_t)sqlite3_column_bytes(st, 1));
    if (ret) break;
  }
  if (!ret && rc != SQLITE_DONE) ret = db_fail(s, err, errlen, "read memory entries");
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  pthread_mutex_unlock(&s->mu);
  return ret;
}

static int sq_frames_each(store *base, int64_t sid, int64_t from_t, store_frame_fn fn, void *ctx,
                          char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  /* Pages of up to STORE_FRAME_PAGE rows are copied out under the mutex and handed to
   * fn after it is released: fn may be slow (an export encodes every frame as
   * PNG) and must not hold up every other session's commits and loads. */
  struct {
    int64_t t;
    int action;
    size_t off, len;
  } rows[STORE_FRAME_PAGE];
  uint8_t *buf = NULL;
  size_t cap = 0;
  int ret = 0;
  for (int64_t t = from_t;;) {
    int n = 0, rc;
    size_t used = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->st[ST_FRAMES_FROM];
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, t);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      size_t len = (size_t)sqlite3_column_bytes(st, 2);
      if (used + len > cap) {
        size_t ncap = (used + len) * 2;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
          ret = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory reading observations");
          break;
        }
        buf = nb;
        cap = ncap;
      }
      if (len) memcpy(buf + used, sqlite3_column_blob(st, 2), len);
      rows[n].t = sqlite3_column_int64(st, 0);
      rows[n].action = sqlite3_column_int(st, 1);
      rows[n].off = used;
      rows[n].len = len;
      used += len;
      n++;
    }
    if (!ret && rc != SQLITE_DONE) ret = db_fail(s, err, errlen, "read observations");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n && !ret; i++) ret = fn(ctx, rows[i].t, rows[i].action, buf + rows[i].off, rows[i].len);
    if (ret || n < STORE_FRAME_PAGE) break;
    t = rows[n - 1].t + 1;
  }
  free(buf);
  return ret;
}

static int sq_frame_get(store *base, int64_t sid, int64_t t, int *action, uint8_t *frame,
                        size_t frame_len, char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  sqlite3_stmt *st = s->st[ST_FRAME_AT];
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, t);
  int rc = sqlite3_step(st), ret = STORE_OK;
  if (rc == SQLITE_ROW) {
    *action = sqlite3_column_int(st, 0);
    const void *b = sqlite3_column_blob(st, 1);
    size_t n = (size_t)sqlite3_column_bytes(st, 1);
    if (n != frame_len || !b)
      ret = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "stored frame at t=%lld has %zu bytes, expected %zu",
                       (long long)t, n, frame_len);
    else
      memcpy(frame, b, n);
  } else if (rc == SQLITE_DONE) {
    ret = STORE_NOTFOUND;
  } else {
    ret = db_fail(s, err, errlen, "read observation");
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  pthread_mutex_unlock(&s->mu);
  return ret;
}

/* Inserts the observations of a (t0.. of session sid); the caller holds the
 * mutex and a transaction. */
static int insert_obs(sqlite_store *s, int64_t sid, const store_append_req *a, char *err, size_t errlen) {
  sqlite3_stmt *st = s->st[ST_INSERT_OBS];
  for (int i = 0; i < a->n; i++) {
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, a->t0 + i);
    sqlite3_bind_int(st, 3, a->actions[i]);
    sqlite3_bind_blob64(st, 4, a->frames + (size_t)i * a->frame_bytes, a->frame_bytes, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 5, a->entries + (size_t)i * a->entry_bytes, a->entry_bytes, SQLITE_STATIC);
    int rc = step_done(s, st, err, errlen, "insert observation");
    if (rc) return rc;
  }
  return 0;
}

static int update_session(sqlite_store *s, int64_t sid, const store_append_req *a, char *err,
                          size_t errlen) {
  sqlite3_stmt *st = s->st[ST_UPDATE_SESSION];
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, a->steps);
  sqlite3_bind_int64(st, 3, a->now_ms);
  sqlite3_bind_blob64(st, 4, a->state, a->state_bytes, SQLITE_STATIC);
  return step_done(s, st, err, errlen, "update session");
}

/* Writes one group (mutex held; see store_append_group): BEGIN, each append
 * in its own SAVEPOINT, COMMIT. */
static int write_group_locked(sqlite_store *s, store_group_item *const *items, int n,
                              double *commit_seconds) {
  char err[256] = "";
  int rc = begin(s, err, sizeof err), i = 0;
  if (rc) goto fail_all;
  for (i = 0; i < n; i++) {
    store_group_item *it = items[i];
    it->err[0] = '\0';
    int r = step_done(s, s->st[ST_SAVEPOINT], it->err, sizeof it->err, "savepoint");
    if (!r) r = insert_obs(s, it->req->sid, it->req, it->err, sizeof it->err);
    if (!r) r = update_session(s, it->req->sid, it->req, it->err, sizeof it->err);
    if (!r) r = step_done(s, s->st[ST_RELEASE], it->err, sizeof it->err, "release");
    it->rc = r;
    if (!r) continue;
    /* A storage failure, or SQLite rolled the whole transaction back (it may
     * on a full disk or an I/O error): the group fails together. */
    if (s->failed || sqlite3_get_autocommit(s->db)) {
      snprintf(err, sizeof err, "%s", it->err);
      rc = r;
      goto fail_all;
    }
    /* This append alone: undo its rows, keep the others. */
    char msg[256] = "";
    int rr = step_done(s, s->st[ST_ROLLBACK_TO], msg, sizeof msg, "rollback to savepoint");
    if (!rr) rr = step_done(s, s->st[ST_RELEASE], msg, sizeof msg, "release");
    if (rr) {
      snprintf(err, sizeof err, "%s", msg);
      rc = rr; /* as classified (a storage failure here is 503 or 507, not 500) */
      goto fail_all;
    }
  }
  if ((rc = commit(s, commit_seconds, err, sizeof err))) goto fail_all;
  return 0;
fail_all:
  if (!sqlite3_get_autocommit(s->db)) rollback(s);
  for (int j = 0; j < n; j++) {
    if (j < i && items[j]->rc) continue; /* failed alone already: keep its own error */
    items[j]->rc = rc;
    snprintf(items[j]->err, sizeof items[j]->err, "%s", err);
  }
  return rc;
}

static int sq_import(store *base, const store_session *meta, const store_append_req *a, int64_t *sid_out,
                     char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  store_session existing;
  int rc = get_locked(s, meta->id, &existing, err, errlen);
  if (rc == STORE_OK) {
    rc = STORE_EXISTS;
    goto done;
  }
  if (rc != STORE_NOTFOUND) goto done;
  if ((rc = begin(s, err, errlen))) goto done;
  sqlite3_stmt *st = s->st[ST_INSERT_SESSION];
  sqlite3_bind_text(st, 1, meta->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, meta->model, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, meta->model_version, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, meta->steps);
  sqlite3_bind_int64(st, 5, meta->created_ms);
  sqlite3_bind_int64(st, 6, meta->updated_ms);
  sqlite3_bind_blob64(st, 7, a->state, a->state_bytes, SQLITE_STATIC);
  bind_ttl(st, 8, meta->ttl_s);
  rc = step_done(s, st, err, errlen, "import session");
  int64_t sid = sqlite3_last_insert_rowid(s->db);
  store_append_req rows = *a;
  rows.t0 = 0;
  if (!rc) rc = insert_obs(s, sid, &rows, err, errlen);
  if (!rc) rc = commit(s, NULL, err, errlen);
  if (rc) rollback(s);
  else *sid_out = sid;
done:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* The session row of st's current result (columns as ST_GET). */
static void read_row(sqlite3_stmt *st, store_session *out) {
  out->sid = sqlite3_column_int64(st, 0);
  copy_text(out->id, sizeof out->id, st, 1);
  copy_text(out->model, sizeof out->model, st, 2);
  copy_text(out->model_version, sizeof out->model_version, st, 3);
  out->steps = sqlite3_column_int64(st, 4);
  out->created_ms = sqlite3_column_int64(st, 5);
  out->updated_ms = sqlite3_column_int64(st, 6);
  out->ttl_s = ttl_from_column(st, 7);
}

static int sq_session_list(store *base, const char *model, int64_t after_sid, int limit,
                           store_session *out, int *n, char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  sqlite3_stmt *st = s->st[ST_LIST];
  sqlite3_bind_int64(st, 1, after_sid);
  if (model) sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, 2);
  sqlite3_bind_int(st, 3, limit);
  int rc = SQLITE_DONE, ret = 0;
  while (*n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) read_row(st, &out[(*n)++]);
  if (*n < limit && rc != SQLITE_DONE) ret = db_fail(s, err, errlen, "list sessions");
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  pthread_mutex_unlock(&s->mu);
  return ret;
}

static int sq_session_idle(store *base, long long now_ms, long long default_ttl_ms, int limit,
                           store_session *out, int *n, char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  sqlite3_stmt *st = s->st[ST_IDLE];
  sqlite3_bind_int64(st, 1, now_ms);
  sqlite3_bind_int64(st, 2, default_ttl_ms);
  sqlite3_bind_int(st, 3, limit);
  int rc = SQLITE_DONE, ret = 0;
  while (*n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) read_row(st, &out[(*n)++]);
  if (*n < limit && rc != SQLITE_DONE) ret = db_fail(s, err, errlen, "list idle sessions");
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  pthread_mutex_unlock(&s->mu);
  return ret;
}

static int sq_session_rebuild(store *base, int64_t sid, const char *version, int64_t steps,
                              const uint8_t *entries, size_t entry_bytes, const uint8_t *state,
                              size_t state_bytes, long long now_ms, char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  int rc = begin(s, err, errlen);
  if (rc) goto done;
  sqlite3_stmt *st = s->st[ST_REBUILD_SESSION];
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
  sqlite3_bind_blob64(st, 3, state, state_bytes, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, now_ms);
  sqlite3_bind_int64(st, 5, steps);
  rc = step_done(s, st, err, errlen, "rebuild session");
  if (!rc && sqlite3_changes(s->db) != 1) rc = STORE_NOTFOUND; /* gone, or its steps moved */
  for (int64_t t = 0; t < steps && !rc; t++) {
    st = s->st[ST_SET_ENTRY];
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, t);
    sqlite3_bind_blob64(st, 3, entries + (size_t)t * entry_bytes, entry_bytes, SQLITE_STATIC);
    rc = step_done(s, st, err, errlen, "rebuild memory entry");
    if (!rc && sqlite3_changes(s->db) != 1)
      rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "observation t=%lld missing from the store",
                      (long long)t);
  }
  if (!rc) rc = commit(s, NULL, err, errlen);
  if (rc && !sqlite3_get_autocommit(s->db)) rollback(s);
done:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int sq_write_group(store *base, store_group_item *const *items, int n, double *commit_seconds) {
  sqlite_store *s = (sqlite_store *)base;
  pthread_mutex_lock(&s->mu);
  int rc = write_group_locked(s, items, n, commit_seconds);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static const store_ops SQLITE_OPS = {
    .name = "sqlite",
    .close = sq_close,
    .schema_version = sq_schema_version,
    .writable = sq_writable,
    .session_get = sq_session_get,
    .session_create = sq_session_create,
    .session_delete = sq_session_delete,
    .session_count = sq_session_count,
    .session_list = sq_session_list,
    .session_idle = sq_session_idle,
    .session_rebuild = sq_session_rebuild,
    .state_get = sq_state_get,
    .entries_each = sq_entries_each,
    .frames_each = sq_frames_each,
    .frame_get = sq_frame_get,
    .write_group = sq_write_group,
    .import = sq_import,
};
