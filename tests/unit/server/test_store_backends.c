/* The same store cases on both backends, SQLite (a temporary file) and
 * PostgreSQL (a throwaway server: ctest's postgresql fixture, tests/lib/pglib.py,
 * writes its URL to the file named by GTMSM_TEST_PG_URL_FILE; or
 * GTMSM_TEST_PG_URL gives one; each case gets a new empty database):
 * - migrations from an empty database to STORE_SCHEMA_VERSION, idempotent on
 *   reopen; a newer and a negative schema version refused, left untouched;
 * - sessions create (idempotent) / get / delete (its observations go too),
 *   appends in transactions (an overlapping one fails whole and changes
 *   nothing), state round-trip (absent before the first observation, size
 *   checked), frames and entries in order, frame_get, import in one
 *   transaction (an existing id refused), count;
 * - group commit: a group of four where two appends fail (an overlap, a
 *   missing session) commits the other two and rolls those back alone;
 *   16 threads appending at once (one sending a bad append now and then) all
 *   get their rows in order, only the bad ones fail;
 * - through the session cache: observe in uneven batches, drop the cache,
 *   reload cold: same state, bit-identical predictions, and the same bytes on
 *   both backends;
 * - store_redact: a password in a URL (user:password@, password=) becomes ***;
 * - PostgreSQL only: four stores opening one empty database at once all get
 *   it migrated (once, under the advisory lock); a server that cannot be reached is STORE_EUNAVAILABLE at
 *   open; a connection killed under a running store fails reads and writes
 *   with STORE_EUNAVAILABLE (writes refused at once, not ready), and a second
 *   later the store reconnects by itself and writes again; session leases
 *   between two stores (two replicas): taken with epoch 1, refused to the
 *   other while live (with the time left), renewed under the same epoch,
 *   taken over with a new epoch after the TTL, the old owner's append fenced
 *   (STORE_EFENCED, alone in its group: the other appends commit), released
 *   on request so the other takes it at once, a missing session NOTFOUND.
 * Without a PostgreSQL URL (the binary run by hand) the PostgreSQL half is
 * skipped with a line saying so; under ctest the fixture always gives one. */
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "img/image.h"
#include "model/modelfile.h"
#include "sessions.h"
#include "store.h"
#include "testlib.h"

static char DIR_[64];
static char PG_URL[1024]; /* the fixture's server, database "postgres" */

/* ---- the two backends ---------------------------------------------------- */

typedef struct {
  const char *name;
  /* A new empty database named after tag: its target for store_open. */
  int (*fresh)(char *out, size_t outlen, const char *tag);
  /* Rows of session sid if they are t = 0 .. n - 1 (else -1), read on a
   * second connection. */
  long long (*rows)(const char *target, int64_t sid);
  /* Writes the schema version behind the store's back; reads it. */
  int (*set_version)(const char *target, int v);
  int (*get_version)(const char *target);
  /* Runs one statement (the test's own SQL) behind the store's back. */
  int (*exec)(const char *target, const char *sql);
} backend;

static int sq_fresh(char *out, size_t outlen, const char *tag) {
  snprintf(out, outlen, "%s/%s.db", DIR_, tag);
  return 0;
}

static long long sq_rows(const char *db, int64_t sid) {
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  long long n = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(h, "SELECT count(*), coalesce(max(t) + 1, 0) FROM observations WHERE sid = ?1",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, sid);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == sqlite3_column_int64(st, 1))
      n = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

static int sq_set_version(const char *db, int v) {
  sqlite3 *h = NULL;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
  int rc = sqlite3_open(db, &h) == SQLITE_OK && sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
  sqlite3_close(h);
  return rc;
}

static int sq_get_version(const char *db) {
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  int v = -1000;
  if (sqlite3_open(db, &h) == SQLITE_OK &&
      sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

/* The fixture's URL with another database name (the path of the URL). */
static void pg_url_of(char *out, size_t outlen, const char *db) {
  const char *p = strstr(PG_URL, "://") + 3;
  const char *path = strchr(p, '/');
  const char *rest = path ? path + 1 + strcspn(path + 1, "?") : "";
  snprintf(out, outlen, "%.*s/%s%s", (int)((path ? path : p + strlen(p)) - PG_URL), PG_URL, db, rest);
}

static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* Runs one statement (test text, ours) on its own connection to target;
 * *value gets the first column of the first row when value is not NULL. */
static int pg_exec(const char *target, const char *sql, long long *value) {
  PGconn *c = PQconnectdb(target);
  int rc = -1;
  PQsetNoticeProcessor(c, quiet, NULL); /* "does not exist, skipping" */
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      rc = 0;
      if (value) *value = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atoll(PQgetvalue(r, 0, 0)) : -1;
    } else {
      fprintf(stderr, "pg_exec %s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
  } else {
    fprintf(stderr, "pg_exec: connect: %s", PQerrorMessage(c));
  }
  PQfinish(c);
  return rc;
}

static int pg_fresh(char *out, size_t outlen, const char *tag) {
  char sql[128];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"t_%s\" WITH (FORCE)", tag);
  if (pg_exec(PG_URL, sql, NULL)) return -1;
  snprintf(sql, sizeof sql, "CREATE DATABASE \"t_%s\"", tag);
  if (pg_exec(PG_URL, sql, NULL)) return -1;
  snprintf(sql, sizeof sql, "t_%s", tag);
  pg_url_of(out, outlen, sql);
  return 0;
}

static long long pg_rows(const char *target, int64_t sid) {
  char sql[160];
  long long n = -1, top = -2;
  snprintf(sql, sizeof sql, "SELECT count(*) FROM observations WHERE sid = %lld", (long long)sid);
  if (pg_exec(target, sql, &n)) return -1;
  snprintf(sql, sizeof sql, "SELECT coalesce(max(t) + 1, 0) FROM observations WHERE sid = %lld", (long long)sid);
  if (pg_exec(target, sql, &top)) return -1;
  return n == top ? n : -1;
}

static int pg_set_version(const char *target, int v) {
  char sql[64];
  snprintf(sql, sizeof sql, "UPDATE gtmsm_schema SET version = %d", v);
  return pg_exec(target, sql, NULL);
}

static int pg_get_version(const char *target) {
  long long v = -1000;
  return pg_exec(target, "SELECT version FROM gtmsm_schema", &v) ? -1000 : (int)v;
}

static int sq_exec(const char *db, const char *sql) {
  sqlite3 *h = NULL;
  int rc = sqlite3_open(db, &h) == SQLITE_OK && sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
  if (rc) fprintf(stderr, "sq_exec %s: %s\n", sql, sqlite3_errmsg(h));
  sqlite3_close(h);
  return rc;
}

static int pg_exec0(const char *target, const char *sql) { return pg_exec(target, sql, NULL); }

static const backend SQLITE_BACKEND = {"sqlite", sq_fresh, sq_rows, sq_set_version, sq_get_version, sq_exec};
static const backend PG_BACKEND = {"postgresql", pg_fresh, pg_rows, pg_set_version, pg_get_version, pg_exec0};

/* ---- the cases ------------------------------------------------------------ */

static void test_migrations(const backend *b) {
  char target[1024], err[256] = "";
  CHECK(b->fresh(target, sizeof target, "migrations") == 0, "%s: a fresh database", b->name);
  store *s = NULL;
  CHECK(store_open(&s, target, 0, err, sizeof err) == 0, "%s: open: %s", b->name, err);
  CHECK(s && store_schema_version(s) == STORE_SCHEMA_VERSION && b->get_version(target) == STORE_SCHEMA_VERSION,
        "%s: an empty database migrated to %d", b->name, STORE_SCHEMA_VERSION);
  CHECK(s && strcmp(store_backend_name(s), b->name) == 0, "%s: the backend says its name", b->name);
  store_close(s);
  s = NULL;
  CHECK(store_open(&s, target, 1, err, sizeof err) == 0 && store_schema_version(s) == STORE_SCHEMA_VERSION,
        "%s: reopen keeps the version", b->name);
  store_close(s);
  s = NULL;
  b->set_version(target, 99);
  int rc = store_open(&s, target, 0, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "newer") && strstr(err, "99") && !s, "%s: a newer schema is refused: %s",
        b->name, err);
  b->set_version(target, -1);
  err[0] = '\0';
  rc = store_open(&s, target, 0, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "-1") && !s, "%s: a negative schema is refused: rc %d %s", b->name, rc,
        err);
  CHECK(b->get_version(target) == -1, "%s: the refused database is left as it was", b->name);
  printf("%s migrations: 0 -> %d, idempotent, newer and negative refused (%s)\n", b->name, STORE_SCHEMA_VERSION, err);
}

typedef struct {
  int n;
  int64_t next;
  int ok;
} frames_seen;

/* Ten observations as see_frame and see_entry expect them: t's action t % 5,
 * its 4-byte frame all t, its 3-byte entry all 100 + t. */
static void test_rows_fill(int actions[10], uint8_t frames[10 * 4], uint8_t entries[10 * 3]) {
  for (int i = 0; i < 10; i++) {
    actions[i] = i % 5;
    memset(frames + 4 * i, i, 4);
    memset(entries + 3 * i, 100 + i, 3);
  }
}

static int see_frame(void *ctx, int64_t t, int action, const uint8_t *frame, size_t len) {
  frames_seen *f = ctx;
  if (t != f->next || len != 4 || action != (int)(t % 5) || frame[0] != (uint8_t)t) f->ok = 0;
  f->next++;
  f->n++;
  return 0;
}

typedef struct {
  int n;
  int ok;
} entries_seen;

static int see_entry(void *ctx, int64_t t, const uint8_t *entry, size_t len) {
  entries_seen *e = ctx;
  if (t != e->n || len != 3 || entry[2] != (uint8_t)(100 + t)) e->ok = 0;
  e->n++;
  return 0;
}

static void test_rows(const backend *b) {
  char target[1024], err[256] = "";
  CHECK(b->fresh(target, sizeof target, "rows") == 0, "%s: a fresh database", b->name);
  store *s = NULL;
  CHECK(store_open(&s, target, 0, err, sizeof err) == 0, "%s: open: %s", b->name, err);
  if (!s) return;
  store_session row, again;
  int created = 0;
  CHECK(store_session_create(s, "s1", "m", "0123456789abcdef", 1000, 0, &row, &created, err, sizeof err) == 0 &&
            created && row.steps == 0 && row.created_ms == 1000 && strcmp(row.model_version, "0123456789abcdef") == 0,
        "%s: create", b->name);
  CHECK(store_session_create(s, "s1", "other", "x", 2000, 0, &again, &created, err, sizeof err) == 0 && !created &&
            strcmp(again.model, "m") == 0 && again.sid == row.sid,
        "%s: create again returns the existing row", b->name);
  CHECK(store_session_get(s, "nope", &again, err, sizeof err) == STORE_NOTFOUND, "%s: an unknown id", b->name);
  int actions[10];
  uint8_t frames[10 * 4], entries[10 * 3], state[2] = {7, 8};
  test_rows_fill(actions, frames, entries);
  store_append_req a = {.sid = row.sid, .t0 = 0, .n = 6, .actions = actions, .frames = frames,
                        .frame_bytes = 4, .entries = entries, .entry_bytes = 3, .state = state,
                        .state_bytes = 2, .steps = 6, .now_ms = 3000};
  store_commit_info commit = {-1, 0, 0};
  uint8_t got[2] = {1, 1};
  int present = 1;
  CHECK(store_state_get(s, row.sid, got, 2, &present, err, sizeof err) == 0 && got[0] == 0 && got[1] == 0 &&
            !present, "%s: no state before the first observation: zeros, reported absent", b->name);
  CHECK(store_append(s, &a, &commit, err, sizeof err) == 0 && commit.seconds >= 0 && commit.group == 1 &&
            commit.first, "%s: append 6: %s", b->name, err);
  state[1] = 9;
  a = (store_append_req){.sid = row.sid, .t0 = 6, .n = 4, .actions = actions + 6, .frames = frames + 24,
                         .frame_bytes = 4, .entries = entries + 18, .entry_bytes = 3, .state = state,
                         .state_bytes = 2, .steps = 10, .now_ms = 4000};
  CHECK(store_append(s, &a, NULL, err, sizeof err) == 0, "%s: append 4: %s", b->name, err);
  a.t0 = 8; /* overlapping rows violate the primary key: the whole append rolls back */
  a.steps = 12;
  state[1] = 66;
  err[0] = '\0';
  CHECK(store_append(s, &a, NULL, err, sizeof err) == GTMSM_EIO && strstr(err, "insert observation"),
        "%s: an overlapping append fails, the message says what was done: %s", b->name, err);
  CHECK(store_session_get(s, "s1", &again, err, sizeof err) == 0 && again.steps == 10 &&
            again.updated_ms == 4000, "%s: steps 10 after the failed append (rolled back)", b->name);
  CHECK(b->rows(target, row.sid) == 10, "%s: 10 rows", b->name);
  CHECK(store_state_get(s, row.sid, got, 2, &present, err, sizeof err) == 0 && got[0] == 7 && got[1] == 9 &&
            present, "%s: the state of the last committed append (%d %d)", b->name, got[0], got[1]);
  CHECK(store_state_get(s, row.sid, got, 3, &present, err, sizeof err) == GTMSM_EFORMAT,
        "%s: state size mismatch caught", b->name);
  frames_seen f = {0, 3, 1};
  CHECK(store_frames_each(s, row.sid, 3, see_frame, &f, err, sizeof err) == 0 && f.n == 7 && f.ok,
        "%s: frames from t=3 in order (%d)", b->name, f.n);
  entries_seen es = {0, 1};
  CHECK(store_entries_each(s, row.sid, see_entry, &es, err, sizeof err) == 0 && es.n == 10 && es.ok,
        "%s: 10 entries in order (%d)", b->name, es.n);
  int act = -1;
  uint8_t fr[4];
  CHECK(store_frame_get(s, row.sid, 7, &act, fr, 4, err, sizeof err) == 0 && act == 2 && fr[3] == 7,
        "%s: frame 7", b->name);
  CHECK(store_frame_get(s, row.sid, 10, &act, fr, 4, err, sizeof err) == STORE_NOTFOUND, "%s: no frame 10", b->name);
  CHECK(store_frame_get(s, row.sid, 7, &act, fr, 3, err, sizeof err) == GTMSM_EFORMAT, "%s: size mismatch caught",
        b->name);
  store_session meta = {0};
  snprintf(meta.id, sizeof meta.id, "s1");
  int64_t sid = 0;
  a = (store_append_req){.n = 10, .actions = actions, .frames = frames, .frame_bytes = 4,
                         .entries = entries, .entry_bytes = 3, .state = state, .state_bytes = 2,
                         .steps = 10};
  CHECK(store_import(s, &meta, &a, &sid, err, sizeof err) == STORE_EXISTS, "%s: import over an existing id refused",
        b->name);
  snprintf(meta.id, sizeof meta.id, "s2");
  snprintf(meta.model, sizeof meta.model, "m");
  snprintf(meta.model_version, sizeof meta.model_version, "fedcba9876543210");
  meta.steps = 10;
  meta.created_ms = 11;
  meta.updated_ms = 12;
  CHECK(store_import(s, &meta, &a, &sid, err, sizeof err) == 0, "%s: import s2: %s", b->name, err);
  es = (entries_seen){0, 1};
  CHECK(store_entries_each(s, sid, see_entry, &es, err, sizeof err) == 0 && es.n == 10 && es.ok,
        "%s: the import's entries", b->name);
  CHECK(store_session_get(s, "s2", &again, err, sizeof err) == 0 && again.sid == sid && again.steps == 10 &&
            again.created_ms == 11 && again.updated_ms == 12 && strcmp(again.model_version, "fedcba9876543210") == 0,
        "%s: the import's row", b->name);
  CHECK(store_state_get(s, sid, got, 2, &present, err, sizeof err) == 0 && present && got[1] == 66,
        "%s: the import's state", b->name);
  int64_t count = 0;
  CHECK(store_session_count(s, &count) == 0 && count == 2, "%s: two sessions (%lld)", b->name, (long long)count);
  CHECK(store_session_delete(s, row.sid, 0, err, sizeof err) == 0, "%s: delete s1: %s", b->name, err);
  CHECK(store_session_get(s, "s1", &again, err, sizeof err) == STORE_NOTFOUND, "%s: s1 gone", b->name);
  CHECK(b->rows(target, row.sid) == 0, "%s: its observations are gone too", b->name);
  CHECK(store_writable(s, 1, err, sizeof err) == 0, "%s: writable", b->name);
  store_close(s);
  printf("%s rows: create (idempotent), appends in transactions, state, frames, entries, import, delete\n", b->name);
}

static void test_group(const backend *b) {
  char target[1024], err[256] = "";
  CHECK(b->fresh(target, sizeof target, "grp") == 0, "%s: a fresh database", b->name);
  store *s = NULL;
  CHECK(store_open(&s, target, 0, err, sizeof err) == 0, "%s: open: %s", b->name, err);
  if (!s) return;
  store_session rows[3];
  int created = 0;
  for (int i = 0; i < 3; i++) {
    char id[8];
    snprintf(id, sizeof id, "g%d", i);
    CHECK(store_session_create(s, id, "m", "0123456789abcdef", 1000, 0, &rows[i], &created, err, sizeof err) == 0,
          "%s: create %s", b->name, id);
  }
  int actions[4] = {1, 2, 3, 4};
  uint8_t frames[4 * 4], entries[4 * 3], state[2] = {5, 6}, state1[2] = {9, 9};
  memset(frames, 7, sizeof frames);
  memset(entries, 8, sizeof entries);
  store_append_req base = {.t0 = 0, .n = 2, .actions = actions, .frames = frames, .frame_bytes = 4,
                           .entries = entries, .entry_bytes = 3, .state = state, .state_bytes = 2,
                           .steps = 2, .now_ms = 2000};
  store_append_req g1 = base;
  g1.sid = rows[1].sid;
  CHECK(store_append(s, &g1, NULL, err, sizeof err) == 0, "%s: g1 observes t 0..1 first: %s", b->name, err);
  store_append_req r0 = base, r1 = base, r2 = base, r3 = base;
  r0.sid = rows[0].sid;
  r1.sid = rows[1].sid; /* t 1..2 overlaps its stored t=1: the primary key refuses it */
  r1.t0 = 1;
  r1.steps = 3;
  r1.state = state1;
  r2.sid = rows[2].sid + 1000; /* no such session: the foreign key refuses it */
  r3.sid = rows[2].sid;
  store_group_item items[4] = {{.req = &r0}, {.req = &r1}, {.req = &r2}, {.req = &r3}};
  double secs = -1;
  CHECK(store_append_group(s, items, 4, &secs) == 0 && secs >= 0, "%s: the group commits", b->name);
  CHECK(items[0].rc == 0 && items[3].rc == 0, "%s: the good appends succeed (%d '%s', %d '%s')", b->name,
        items[0].rc, items[0].err, items[3].rc, items[3].err);
  CHECK(items[1].rc == GTMSM_EIO && items[2].rc == GTMSM_EIO && *items[1].err && *items[2].err,
        "%s: the bad ones fail alone with their own error (%d '%s', %d '%s')", b->name, items[1].rc, items[1].err,
        items[2].rc, items[2].err);
  store_session got;
  uint8_t st[2];
  int present = 0;
  CHECK(store_session_get(s, "g0", &got, err, sizeof err) == 0 && got.steps == 2 && b->rows(target, rows[0].sid) == 2,
        "%s: g0 committed: steps %lld", b->name, (long long)got.steps);
  CHECK(store_session_get(s, "g2", &got, err, sizeof err) == 0 && got.steps == 2 && b->rows(target, rows[2].sid) == 2,
        "%s: g2 committed after the failures before it", b->name);
  CHECK(store_session_get(s, "g1", &got, err, sizeof err) == 0 && got.steps == 2 && b->rows(target, rows[1].sid) == 2 &&
            store_state_get(s, rows[1].sid, st, 2, &present, err, sizeof err) == 0 && st[0] == 5 && st[1] == 6,
        "%s: g1 rolled back alone: its state untouched", b->name);
  CHECK(b->rows(target, rows[2].sid + 1000) == 0, "%s: no rows of the missing session", b->name);
  long long commits = 0, appends = 0;
  store_group_stats(s, &commits, &appends);
  CHECK(commits == 2 && appends == 3, "%s: stats: %lld commits, %lld appends", b->name, commits, appends);
  store_close(s);
  printf("%s group: two failing appends in a group of four rolled back alone (%s), the others committed\n",
         b->name, items[1].err);
}

enum { TH = 16, PER = 24 };

typedef struct {
  store *s;
  int64_t sid;
  int bad; /* sends an overlapping append before every 4th one */
  int ok, refused, wrong;
  int max_group;
} appender;

static void *append_thread(void *p) {
  appender *ap = p;
  int actions[1];
  uint8_t frame[4], entry[3], state[2];
  for (int t = 0; t < PER; t++) {
    actions[0] = t % 5;
    memset(frame, t, 4);
    memset(entry, t, 3);
    state[0] = (uint8_t)t;
    state[1] = 1;
    store_append_req a = {.sid = ap->sid, .t0 = t, .n = 1, .actions = actions, .frames = frame,
                          .frame_bytes = 4, .entries = entry, .entry_bytes = 3, .state = state,
                          .state_bytes = 2, .steps = t + 1, .now_ms = t};
    char err[256];
    store_commit_info ci = {0};
    if (ap->bad && t > 0 && t % 4 == 0) {
      store_append_req bad = a;
      bad.t0 = t - 1; /* already stored */
      if (store_append(ap->s, &bad, &ci, err, sizeof err) == GTMSM_EIO) ap->refused++;
      else ap->wrong++;
    }
    if (store_append(ap->s, &a, &ci, err, sizeof err) == 0) ap->ok++;
    else ap->wrong++;
    if (ci.group > ap->max_group) ap->max_group = ci.group;
  }
  return NULL;
}

static void test_group_threads(const backend *b) {
  char target[1024], err[256] = "";
  CHECK(b->fresh(target, sizeof target, "threads") == 0, "%s: a fresh database", b->name);
  store *s = NULL;
  CHECK(store_open(&s, target, 0, err, sizeof err) == 0, "%s: open: %s", b->name, err);
  if (!s) return;
  appender ap[TH];
  pthread_t th[TH];
  for (int i = 0; i < TH; i++) {
    char id[8];
    store_session row;
    int created = 0;
    snprintf(id, sizeof id, "c%d", i);
    CHECK(store_session_create(s, id, "m", "0123456789abcdef", 0, 0, &row, &created, err, sizeof err) == 0,
          "%s: create", b->name);
    ap[i] = (appender){.s = s, .sid = row.sid, .bad = i == 3};
  }
  for (int i = 0; i < TH; i++) pthread_create(&th[i], NULL, append_thread, &ap[i]);
  for (int i = 0; i < TH; i++) pthread_join(th[i], NULL);
  int ok = 1, refused = 0, max_group = 0;
  for (int i = 0; i < TH; i++) {
    store_session got;
    char id[8];
    snprintf(id, sizeof id, "c%d", i);
    ok &= ap[i].ok == PER && ap[i].wrong == 0 && store_session_get(s, id, &got, err, sizeof err) == 0 &&
          got.steps == PER && b->rows(target, ap[i].sid) == PER;
    refused += ap[i].refused;
    if (ap[i].max_group > max_group) max_group = ap[i].max_group;
  }
  long long commits = 0, appends = 0;
  store_group_stats(s, &commits, &appends);
  CHECK(ok, "%s: %d threads x %d appends all acknowledged and stored in order", b->name, TH, PER);
  CHECK(refused == PER / 4 - (PER % 4 == 0), "%s: the bad appends refused alone (%d)", b->name, refused);
  CHECK(appends == TH * PER, "%s: %lld appends committed", b->name, appends);
  store_close(s);
  printf("%s group threads: %d appends (+%d bad) in %lld COMMITs, largest group %d\n", b->name, TH * PER,
         PER / 4 - 1, commits, max_group);
}

/* ---- through the session cache -------------------------------------------- */

static gtmsm_model M, M2; /* two versions of model "m" */
static model_registry REG;

static void frames_for(uint8_t *pix, int n, int seed) {
  const int D = gtmsm_config_D(&M.cfg);
  for (int i = 0; i < n * D; i++) pix[i] = (uint8_t)((i * 131 + seed * 17 + (i / D) * 7) % 256);
}

static void predict_bytes(session *s, uint8_t *out, int n) {
  const int D = gtmsm_config_D(&M.cfg);
  int acts[16];
  for (int i = 0; i < n; i++) acts[i] = i % 5;
  float *f = malloc(sizeof(float) * (size_t)n * D);
  CHECK(gtmsm_predict(s->model->m, s->mem, acts, n, GTMSM_PREDICT_MEAN, 0, f, NULL, NULL, 0) == 0, "predict");
  image_u8_from_float(out, f, (size_t)n * D, NULL, 0);
  free(f);
}

enum { PRED = 16, PRED_BYTES = PRED * 8 * 8 * 3 };

/* A fresh database of backend b, its store and a session cache over it
 * (default config); 0, or -1 after the failed check (nothing left open). */
static int open_fresh(const backend *b, const char *name, char *target, size_t tn, server_config *cfg, store **st,
                      sessions **c) {
  char err[256] = "";
  CHECK(b->fresh(target, tn, name) == 0, "%s: a fresh database", b->name);
  config_defaults(cfg);
  CHECK(store_open(st, target, 2, err, sizeof err) == 0 && sessions_new(c, *st, &REG, cfg) == 0, "%s: open: %s",
        b->name, err);
  if (*st && *c) return 0;
  sessions_free(*c);
  store_close(*st);
  *c = NULL;
  *st = NULL;
  return -1;
}

/* Observes 300 steps in uneven batches, predicts, drops the cache, reloads
 * cold and predicts again; the cold bytes go to out (PRED_BYTES). */
static void test_cold_reload(const backend *b, uint8_t *out) {
  char target[1024], err[256] = "";
  server_config cfg;
  store *st = NULL;
  sessions *c = NULL;
  if (open_fresh(b, "cold", target, sizeof target, &cfg, &st, &c)) return;
  store_session row;
  int created;
  sessions_create(c, "hot", REG.v[0], 0, &row, &created, err, sizeof err);
  session *s = NULL;
  CHECK(sessions_acquire(c, "hot", &s, err, sizeof err) == SESSIONS_OK, "%s: acquire", b->name);
  CHECK(sessions_lock(c, s, 1, 1, err, sizeof err) == SESSIONS_OK, "%s: lock and load: %s", b->name, err);
  const int D = gtmsm_config_D(&M.cfg);
  uint8_t *pix = malloc((size_t)D * 300);
  int actions[300];
  for (int i = 0; i < 300; i++) actions[i] = (i * 7) % 5;
  frames_for(pix, 300, 1);
  int done = 0, chunk[] = {1, 2, 61, 100, 7, 129};
  for (int k = 0; k < 6; k++) {
    CHECK(sessions_observe(c, s, chunk[k], actions + done, pix + (size_t)done * D, NULL, NULL, err, sizeof err) == 0,
          "%s: observe %d: %s", b->name, chunk[k], err);
    done += chunk[k];
  }
  uint8_t hot[PRED_BYTES];
  float hot_state[GTMSM_MAX_S];
  memcpy(hot_state, s->mem->state, sizeof hot_state);
  predict_bytes(s, hot, PRED);
  sessions_unlock(c, s);
  sessions_release(c, s);
  sessions_free(c); /* drop every hot memory */
  CHECK(sessions_new(&c, st, &REG, &cfg) == 0, "%s: a new cache", b->name);
  CHECK(sessions_acquire(c, "hot", &s, err, sizeof err) == SESSIONS_OK && s->mem == NULL && s->steps == 300,
        "%s: acquired cold with 300 steps", b->name);
  CHECK(sessions_lock(c, s, 0, 1, err, sizeof err) == SESSIONS_OK && s->mem, "%s: loaded: %s", b->name, err);
  if (s->mem) {
    predict_bytes(s, out, PRED);
    CHECK(memcmp(hot, out, PRED_BYTES) == 0, "%s: the reloaded memory predicts identical frames", b->name);
    CHECK(memcmp(hot_state, s->mem->state, sizeof hot_state) == 0, "%s: the reloaded state is identical", b->name);
    CHECK(s->mem->steps == 300, "%s: the reloaded memory has 300 steps", b->name);
    sessions_unlock(c, s);
  }
  /* Rebuild: onto the same version it re-encodes to the same bytes (the
   * observations came in chunks 1, 2, 61, ...; the rebuild takes 256 at a
   * time); onto another version it predicts otherwise, survives a cold
   * reload, and back again it is the original session. */
  uint8_t other[PRED_BYTES], again[PRED_BYTES];
  const model_entry *v1 = REG.v[0], *v2 = REG.v[1];
  CHECK(sessions_lock(c, s, 1, 0, err, sizeof err) == SESSIONS_OK, "%s: exclusive lock", b->name);
  CHECK(sessions_rebuild(c, s, v1, err, sizeof err) == 0 && s->mem && s->model == v1, "%s: rebuild onto the same "
        "version: %s", b->name, err);
  if (s->mem) predict_bytes(s, again, PRED);
  CHECK(memcmp(hot, again, PRED_BYTES) == 0, "%s: rebuilt onto its own version: identical predictions", b->name);
  CHECK(sessions_rebuild(c, s, v2, err, sizeof err) == 0 && s->model == v2 &&
        strcmp(s->model_version, v2->m->content_hash) == 0, "%s: rebuild onto version 2: %s", b->name, err);
  if (s->mem) predict_bytes(s, other, PRED);
  CHECK(memcmp(hot, other, PRED_BYTES) != 0, "%s: version 2 predicts other frames", b->name);
  sessions_unlock(c, s);
  sessions_release(c, s);
  sessions_free(c);
  store_session r2;
  CHECK(store_session_get(st, "hot", &r2, err, sizeof err) == 0 &&
        strcmp(r2.model_version, v2->m->content_hash) == 0 && r2.steps == 300,
        "%s: the stored row has version 2 and 300 steps", b->name);
  CHECK(sessions_new(&c, st, &REG, &cfg) == 0 && sessions_acquire(c, "hot", &s, err, sizeof err) == 0 &&
        s->model == v2 && sessions_lock(c, s, 1, 1, err, sizeof err) == 0 && s->mem, "%s: version 2 cold: %s",
        b->name, err);
  if (s->mem) {
    predict_bytes(s, again, PRED);
    CHECK(memcmp(other, again, PRED_BYTES) == 0, "%s: rebuilt, reloaded cold: identical predictions", b->name);
    CHECK(sessions_rebuild(c, s, v1, err, sizeof err) == 0, "%s: and back to version 1: %s", b->name, err);
    predict_bytes(s, again, PRED);
    CHECK(memcmp(hot, again, PRED_BYTES) == 0, "%s: back on version 1: the original predictions", b->name);
    sessions_unlock(c, s);
  }
  sessions_release(c, s);
  sessions_free(c);
  store_close(st);
  free(pix);
  printf("%s cold reload: same state, identical predictions; rebuilds across versions\n", b->name);
}

static void test_list(const backend *b) {
  char target[1024], err[256] = "";
  CHECK(b->fresh(target, sizeof target, "list") == 0, "%s: a fresh database", b->name);
  store *s = NULL;
  CHECK(store_open(&s, target, 2, err, sizeof err) == 0, "%s: open: %s", b->name, err);
  if (!s) return;
  store_session row, page[4];
  int created = 0, n = -1;
  CHECK(store_session_list(s, NULL, 0, 3, page, &n, err, sizeof err) == 0 && n == 0, "%s: empty list", b->name);
  const char *ids[] = {"zeta", "alpha", "mid", "beta", "omega", "x1", "x2"};
  int64_t sids[7];
  for (int i = 0; i < 7; i++) {
    store_session_create(s, ids[i], i % 2 ? "b" : "a", "0123", 1000 + i, 0, &row, &created, err, sizeof err);
    sids[i] = row.sid;
  }
  store_session_delete(s, sids[2], 0, err, sizeof err); /* a hole: "mid" */
  int64_t after = 0;
  int seen = 0, pages = 0, ok = 1;
  const int want[] = {0, 1, 3, 4, 5, 6};
  do {
    CHECK(store_session_list(s, NULL, after, 4, page, &n, err, sizeof err) == 0, "%s: a page: %s", b->name, err);
    for (int i = 0; i < n && i < 3; i++, seen++)
      ok &= seen < 6 && strcmp(page[i].id, ids[want[seen]]) == 0 && page[i].created_ms == 1000 + want[seen];
    if (n > 0) after = page[n < 3 ? n - 1 : 2].sid;
    pages++;
  } while (n > 3 && pages < 10);
  CHECK(ok && seen == 6 && pages == 2, "%s: pages of 3 in creation order, the deleted one skipped (%d seen, %d pages)",
        b->name, seen, pages);
  CHECK(store_session_list(s, "b", 0, 4, page, &n, err, sizeof err) == 0 && n == 3 &&
        strcmp(page[0].id, "alpha") == 0 && strcmp(page[1].id, "beta") == 0 && strcmp(page[2].id, "x1") == 0,
        "%s: filtered by model", b->name);
  CHECK(store_session_list(s, NULL, sids[6], 4, page, &n, err, sizeof err) == 0 && n == 0, "%s: past the end", b->name);
  CHECK(store_session_list(s, NULL, 0, 0, page, &n, err, sizeof err) == GTMSM_EINVAL, "%s: limit 0 refused", b->name);
  uint8_t e[3] = {0}, st2[2] = {0};
  CHECK(store_session_rebuild(s, sids[0], "abcd", 5, e, 3, st2, 2, 1, err, sizeof err) == STORE_NOTFOUND &&
        store_session_get(s, "zeta", &row, err, sizeof err) == 0 && strcmp(row.model_version, "0123") == 0,
        "%s: a rebuild for other steps changes nothing", b->name);
  store_close(s);
  printf("%s list: keyset pages, model filter, holes; rebuild guarded by steps\n", b->name);
}

/* ---- PostgreSQL: the server out of reach ---------------------------------- */

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void test_pg_unreachable(void) {
  char url[1200], err[256] = "";
  store *s = NULL;
  /* a socket folder with no server in it */
  snprintf(url, sizeof url, "postgresql:///gtmsm?host=%s/nothing-here&user=gtmsm&connect_timeout=2", DIR_);
  int rc = store_open(&s, url, 0, err, sizeof err);
  CHECK(rc == STORE_EUNAVAILABLE && !s && strstr(err, "postgresql: cannot connect"),
        "no server: STORE_EUNAVAILABLE at open (rc %d: %s)", rc, err);
  printf("postgresql unreachable at open: %s\n", err);
  err[0] = '\0';
  rc = store_open(&s, "mysql://x/y", 0, err, sizeof err);
  CHECK(rc == GTMSM_EINVAL && !s && strstr(err, "scheme"), "an unknown scheme is refused: %s", err);

  char target[1024];
  CHECK(pg_fresh(target, sizeof target, "gone") == 0, "a fresh database");
  CHECK(store_open(&s, target, 0, err, sizeof err) == 0, "open: %s", err);
  if (!s) return;
  store_session row;
  int created = 0;
  CHECK(store_session_create(s, "u", "m", "0123456789abcdef", 0, 0, &row, &created, err, sizeof err) == 0, "create");
  int actions[2] = {1, 2};
  uint8_t frames[8] = {0}, entries[6] = {0}, state[2] = {1, 2};
  store_append_req a = {.sid = row.sid, .t0 = 0, .n = 1, .actions = actions, .frames = frames,
                        .frame_bytes = 4, .entries = entries, .entry_bytes = 3, .state = state,
                        .state_bytes = 2, .steps = 1, .now_ms = 1};
  CHECK(store_append(s, &a, NULL, err, sizeof err) == 0, "append before: %s", err);
  /* the server drops our connection (as a restart or a failover does) */
  CHECK(pg_exec(PG_URL, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 't_gone' "
                        "AND pid <> pg_backend_pid()", NULL) == 0, "terminate the store's connection");
  store_session got;
  err[0] = '\0';
  rc = store_session_get(s, "u", &got, err, sizeof err);
  CHECK(rc == STORE_EUNAVAILABLE && strstr(err, "postgresql: read session"),
        "the next read: STORE_EUNAVAILABLE with what was done (rc %d: %s)", rc, err);
  printf("postgresql connection lost: %s\n", err);
  CHECK(store_writable(s, 0, err, sizeof err) == STORE_EUNAVAILABLE, "not writable now: %s", err);
  a.t0 = 1;
  a.steps = 2;
  err[0] = '\0';
  rc = store_append(s, &a, NULL, err, sizeof err);
  CHECK(rc == STORE_EUNAVAILABLE && *err, "an append within the second fails at once (rc %d: %s)", rc, err);
  sleep_ms(1100);
  CHECK(store_writable(s, 1, err, sizeof err) == 0, "a second later the probe reconnects and writes: %s", err);
  CHECK(store_append(s, &a, NULL, err, sizeof err) == 0, "appends work again: %s", err);
  CHECK(store_session_get(s, "u", &got, err, sizeof err) == 0 && got.steps == 2 && pg_rows(target, row.sid) == 2,
        "both rows are there, steps %lld", (long long)got.steps);
  /* a read alone reconnects too (after a second) */
  pg_exec(PG_URL, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 't_gone' "
                  "AND pid <> pg_backend_pid()", NULL);
  rc = store_session_get(s, "u", &got, err, sizeof err);
  CHECK(rc == STORE_EUNAVAILABLE, "lost again: rc %d", rc);
  sleep_ms(1100);
  CHECK(store_session_get(s, "u", &got, err, sizeof err) == 0 && got.steps == 2, "a read reconnects: %s", err);
  store_close(s);
  printf("postgresql: reconnects a second after a lost connection, writes again\n");
}

/* Two daemons starting at once on one empty database: the advisory lock
 * makes one migrate and the other find the schema done. */
typedef struct {
  const char *target;
  int rc, version;
  char err[256];
} opener;

static void *open_thread(void *p) {
  opener *o = p;
  store *s = NULL;
  o->rc = store_open(&s, o->target, 0, o->err, sizeof o->err);
  o->version = s ? store_schema_version(s) : -1;
  store_close(s);
  return NULL;
}

static void test_pg_concurrent_migrations(void) {
  char target[1024];
  CHECK(pg_fresh(target, sizeof target, "race") == 0, "a fresh database");
  opener o[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    o[i] = (opener){.target = target};
    pthread_create(&th[i], NULL, open_thread, &o[i]);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++)
    CHECK(o[i].rc == 0 && o[i].version == STORE_SCHEMA_VERSION, "opener %d: rc %d version %d %s", i, o[i].rc,
          o[i].version, o[i].err);
  CHECK(pg_get_version(target) == STORE_SCHEMA_VERSION, "migrated once to %d", STORE_SCHEMA_VERSION);
  printf("postgresql: 4 stores opening one empty database at once all migrate it to %d\n", STORE_SCHEMA_VERSION);
}

/* Passwords never reach a log line. */
static void test_pg_leases(void) {
  char target[1024], err[256] = "";
  CHECK(pg_fresh(target, sizeof target, "lease") == 0, "leases: a fresh database");
  store *a = NULL, *b = NULL;
  CHECK(store_open(&a, target, 0, err, sizeof err) == 0, "leases: open a: %s", err);
  CHECK(store_open(&b, target, 0, err, sizeof err) == 0, "leases: open b: %s", err);
  if (!a || !b) {
    store_close(a);
    store_close(b);
    return;
  }
  CHECK(!store_leases(a), "leases are off until configured");
  store_lease_config(a, "replica-a/1", 300);
  store_lease_config(b, "replica-b/2", 300);
  CHECK(store_leases(a) && store_leases(b), "leases on after store_lease_config");
  store_session row, other;
  int created = 0;
  CHECK(store_session_create(a, "L", "m", "0123456789abcdef", 1, 0, &row, &created, err, sizeof err) == 0 &&
            store_session_create(a, "L2", "m", "0123456789abcdef", 1, 0, &other, &created, err, sizeof err) == 0,
        "leases: two sessions");
  store_lease la, lb;
  int rc = store_lease_take(a, row.sid, 0, &la, err, sizeof err);
  CHECK(rc == STORE_OK && la.epoch == 1, "a takes the new lease: epoch 1 (rc %d epoch %lld %s)", rc,
        (long long)la.epoch, err);
  rc = store_lease_take(b, row.sid, 0, &lb, err, sizeof err);
  CHECK(rc == STORE_LEASED && lb.wait_ms >= 1 && lb.wait_ms <= 300,
        "b is refused while a's lease is live, told %lld ms (rc %d)", lb.wait_ms, rc);
  rc = store_lease_take(a, row.sid, 1, &la, err, sizeof err);
  CHECK(rc == STORE_OK && la.epoch == 1, "a renews under the same epoch (rc %d epoch %lld)", rc,
        (long long)la.epoch);
  int actions[2] = {1, 2};
  uint8_t frames[2 * 4], entries[2 * 3], state[2] = {5, 6};
  memset(frames, 7, sizeof frames);
  memset(entries, 8, sizeof entries);
  store_append_req ap = {.sid = row.sid, .t0 = 0, .n = 1, .actions = actions, .frames = frames,
                         .frame_bytes = 4, .entries = entries, .entry_bytes = 3, .state = state,
                         .state_bytes = 2, .steps = 1, .now_ms = 2, .epoch = 1};
  CHECK(store_append(a, &ap, NULL, err, sizeof err) == 0, "a appends t=0 under epoch 1: %s", err);
  sleep_ms(200); /* the append renewed it: still live at 200 ms of 300 */
  rc = store_lease_take(b, row.sid, 0, &lb, err, sizeof err);
  CHECK(rc == STORE_LEASED, "the append renewed a's lease: b still refused (rc %d)", rc);
  sleep_ms(350);
  rc = store_lease_take(b, row.sid, 0, &lb, err, sizeof err);
  CHECK(rc == STORE_OK && lb.epoch == 2, "after the TTL b takes it over: epoch 2 (rc %d epoch %lld)", rc,
        (long long)lb.epoch);
  /* a, unaware (paused, say), appends t=1 under epoch 1 in a group with
   * another session's append: fenced alone */
  store_lease lo;
  CHECK(store_lease_take(a, other.sid, 0, &lo, err, sizeof err) == STORE_OK, "a takes L2");
  store_append_req stale = ap, fine = ap;
  stale.t0 = 1;
  stale.steps = 2;
  fine.sid = other.sid;
  fine.epoch = lo.epoch;
  store_group_item items[2] = {{.req = &stale}, {.req = &fine}};
  CHECK(store_append_group(a, items, 2, NULL) == 0, "the group commits");
  CHECK(items[0].rc == STORE_EFENCED && strstr(items[0].err, "lease"),
        "a's stale append is fenced: %d '%s'", items[0].rc, items[0].err);
  CHECK(items[1].rc == 0, "the other append of the group commits: %d '%s'", items[1].rc, items[1].err);
  store_session got;
  CHECK(store_session_get(b, "L", &got, err, sizeof err) == 0 && got.steps == 1 && pg_rows(target, row.sid) == 1,
        "the fenced append left nothing: steps %lld", (long long)got.steps);
  rc = store_session_delete(a, row.sid, 1, err, sizeof err);
  CHECK(rc == STORE_EFENCED && store_session_get(b, "L", &got, err, sizeof err) == 0 && pg_rows(target, row.sid) == 1,
        "a's stale delete is fenced too: the session and its row stay (rc %d)", rc);
  ap.t0 = 1;
  ap.steps = 2;
  ap.epoch = 2;
  CHECK(store_append(b, &ap, NULL, err, sizeof err) == 0, "b appends t=1 under epoch 2: %s", err);
  rc = store_lease_take(a, row.sid, 1, &la, err, sizeof err);
  CHECK(rc == STORE_LEASED, "a asking again under its old epoch: refused (rc %d)", rc);
  CHECK(store_lease_release_all(b, err, sizeof err) == 0, "b releases its leases: %s", err);
  rc = store_lease_take(a, row.sid, 1, &la, err, sizeof err);
  CHECK(rc == STORE_OK && la.epoch == 3, "released: a takes it at once with a new epoch (rc %d epoch %lld)", rc,
        (long long)la.epoch);
  rc = store_lease_take(a, row.sid + 1000, 0, &la, err, sizeof err);
  CHECK(rc == STORE_NOTFOUND, "a missing session: NOTFOUND (rc %d %s)", rc, err);
  store_close(a);
  store_close(b);
  printf("postgresql leases: take, refuse, renew by append, take over after the TTL, fence, release\n");
}

static void test_redact(void) {
  static const char *const CASES[][2] = {
      {"postgresql://u:secret@db.example:5432/g", "postgresql://u:***@db.example:5432/g"},
      {"postgres://u@h/g?password=secret&sslmode=require", "postgres://u@h/g?password=***&sslmode=require"},
      {"postgresql:///g?host=/tmp/x&user=u&password=p", "postgresql:///g?host=/tmp/x&user=u&password=***"},
      {"postgresql://u:a@b@h/g", "postgresql://u:***@b@h/g"}, /* the first '@' ends the user part */
      {"postgresql://h/g", "postgresql://h/g"},
      {"./data/gtmsm.db", "./data/gtmsm.db"},
  };
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    char out[256];
    store_redact(out, sizeof out, CASES[i][0]);
    CHECK(strcmp(out, CASES[i][1]) == 0, "redact '%s': got '%s', expected '%s'", CASES[i][0], out, CASES[i][1]);
  }
  char small[12];
  store_redact(small, sizeof small, "postgresql://u:secret@h/g");
  CHECK(strstr(small, "secret") == NULL && strlen(small) < sizeof small, "a short buffer: '%s'", small);
  printf("redact: user:password@ and password= shown as ***\n");
}

/* The fixture's URL: GTMSM_TEST_PG_URL, or the first line of the file named
 * by GTMSM_TEST_PG_URL_FILE. 0 when there is one. */
static int find_pg_url(void) {
  const char *url = getenv("GTMSM_TEST_PG_URL"), *file = getenv("GTMSM_TEST_PG_URL_FILE");
  if (url && *url) {
    snprintf(PG_URL, sizeof PG_URL, "%s", url);
    return 0;
  }
  if (!file || !*file) return -1;
  FILE *f = fopen(file, "r");
  CHECK(f != NULL, "GTMSM_TEST_PG_URL_FILE %s is set but cannot be read (did the pg_start fixture run?)", file);
  if (!f) return -1;
  if (!fgets(PG_URL, sizeof PG_URL, f)) PG_URL[0] = '\0';
  fclose(f);
  PG_URL[strcspn(PG_URL, "\r\n")] = '\0';
  CHECK(store_is_url(PG_URL), "the fixture's URL '%s'", PG_URL);
  return store_is_url(PG_URL) ? 0 : -1;
}

static void test_expire(const backend *b) {
  char target[1024], err[256] = "";
  server_config cfg;
  store *st = NULL;
  sessions *c = NULL;
  if (open_fresh(b, "expire", target, sizeof target, &cfg, &st, &c)) return;
  store_session row, idle[8];
  int created = 0, n = 0, gone = -1;
  const char *ids[] = {"old1", "old2", "fresh", "old3"};
  const long long at[] = {1000, 2000, 9000, 3000};
  for (int i = 0; i < 4; i++) store_session_create(st, ids[i], "m", REG.v[0]->m->content_hash, at[i], 0, &row, &created, err, sizeof err);
  CHECK(store_session_idle(st, 3500, 1000, 8, idle, &n, err, sizeof err) == 0 && n == 2 && strcmp(idle[0].id, "old1") == 0 &&
        strcmp(idle[1].id, "old2") == 0, "%s: idle before 2500: old1, old2, oldest first", b->name);
  session *held = NULL;
  CHECK(sessions_acquire(c, "old3", &held, err, sizeof err) == SESSIONS_OK, "%s: old3 held in the cache", b->name);
  CHECK(sessions_expire(c, 5000, 10000, &gone, err, sizeof err) == 0 && gone == 3, "%s: expire ttl 5 s at 10 s: "
        "%d gone: %s", b->name, gone, err);
  CHECK(store_session_get(st, "fresh", &row, err, sizeof err) == 0 && store_session_get(st, "old1", &row, err, sizeof err)
        == STORE_NOTFOUND && store_session_get(st, "old3", &row, err, sizeof err) == STORE_NOTFOUND,
        "%s: the fresh one stays, the idle ones (also one held in the cache) are gone", b->name);
  CHECK(sessions_lock(c, held, 0, 0, err, sizeof err) == SESSIONS_NOTFOUND, "%s: its holder sees it deleted", b->name);
  sessions_release(c, held);
  sessions_stats stats;
  sessions_get_stats(c, &stats);
  CHECK(stats.expired == 3, "%s: 3 counted as expired", b->name);
  CHECK(sessions_expire(c, 5000, 10000, &gone, err, sizeof err) == 0 && gone == 0, "%s: again: nothing", b->name);
  sessions_free(c);
  store_close(st);
  printf("%s expiry: idle sessions deleted oldest first, the fresh one kept\n", b->name);
}

/* A session's own TTL (schema 4): stored as NULL / 0 / seconds, read back
 * in every row, and the idle scan and the sweep follow it. */
static void test_ttl(const backend *b) {
  char target[1024], err[256] = "";
  server_config cfg;
  store *st = NULL;
  sessions *c = NULL;
  if (open_fresh(b, "ttl", target, sizeof target, &cfg, &st, &c)) return;
  const char *v = REG.v[0]->m->content_hash;
  store_session row, rows[8];
  int created = 0, n = 0, gone = -1;
  CHECK(store_session_create(st, "dflt", "m", v, 1000, STORE_TTL_DEFAULT, &row, &created, err, sizeof err) == 0 &&
            created && row.ttl_s == STORE_TTL_DEFAULT, "%s: created with the default TTL", b->name);
  CHECK(store_session_create(st, "never", "m", v, 1000, STORE_TTL_NEVER, &row, &created, err, sizeof err) == 0 &&
            created && row.ttl_s == STORE_TTL_NEVER, "%s: created never to expire", b->name);
  CHECK(store_session_create(st, "own", "m", v, 1000, 2, &row, &created, err, sizeof err) == 0 && created &&
            row.ttl_s == 2, "%s: created with its own 2 s", b->name);
  CHECK(store_session_create(st, "own", "m", v, 5000, 9, &row, &created, err, sizeof err) == 0 && !created &&
            row.ttl_s == 2, "%s: created again: the existing row keeps its TTL", b->name);
  CHECK(store_session_create(st, "bad", "m", v, 1000, -2, &row, &created, err, sizeof err) == GTMSM_EINVAL &&
            store_session_create(st, "bad", "m", v, 1000, STORE_TTL_MAX + 1, &row, &created, err, sizeof err) ==
                GTMSM_EINVAL, "%s: a TTL outside -1..max refused", b->name);
  CHECK(store_session_get(st, "never", &row, err, sizeof err) == 0 && row.ttl_s == STORE_TTL_NEVER &&
            store_session_get(st, "dflt", &row, err, sizeof err) == 0 && row.ttl_s == STORE_TTL_DEFAULT,
        "%s: get reads the TTL back", b->name);
  CHECK(store_session_list(st, NULL, 0, 8, rows, &n, err, sizeof err) == 0 && n == 3 &&
            rows[0].ttl_s == STORE_TTL_DEFAULT && rows[1].ttl_s == STORE_TTL_NEVER && rows[2].ttl_s == 2,
        "%s: the listing carries each TTL", b->name);
  CHECK(store_session_idle(st, 2500, 1000, 8, rows, &n, err, sizeof err) == 0 && n == 1 &&
            strcmp(rows[0].id, "dflt") == 0, "%s: at 2.5 s with a 1 s default: only the default one idle (%d)",
        b->name, n);
  CHECK(store_session_idle(st, 3500, 1000, 8, rows, &n, err, sizeof err) == 0 && n == 2 &&
            strcmp(rows[0].id, "dflt") == 0 && strcmp(rows[1].id, "own") == 0 && rows[1].ttl_s == 2,
        "%s: at 3.5 s: also the one past its own 2 s (%d)", b->name, n);
  CHECK(store_session_idle(st, 3500, 0, 8, rows, &n, err, sizeof err) == 0 && n == 1 &&
            strcmp(rows[0].id, "own") == 0, "%s: without a default TTL only its own expires (%d)", b->name, n);
  CHECK(store_session_idle(st, 1000000000000LL, 1000, 8, rows, &n, err, sizeof err) == 0 && n == 2,
        "%s: the never-expiring one is never idle (%d)", b->name, n);
  /* import carries it */
  int actions[1] = {0};
  uint8_t frames[1] = {0}, entries[1] = {0}, state[1] = {0};
  store_append_req a = {.n = 0, .actions = actions, .frames = frames, .frame_bytes = 1, .entries = entries,
                        .entry_bytes = 1, .state = state, .state_bytes = 1, .steps = 0};
  store_session meta = {.created_ms = 1000, .updated_ms = 1000, .ttl_s = 7};
  snprintf(meta.id, sizeof meta.id, "imp7");
  snprintf(meta.model, sizeof meta.model, "m");
  snprintf(meta.model_version, sizeof meta.model_version, "%s", v);
  int64_t sid = 0;
  CHECK(store_import(st, &meta, &a, &sid, err, sizeof err) == 0 && store_session_get(st, "imp7", &row, err, sizeof err)
        == 0 && row.ttl_s == 7, "%s: an import keeps its TTL: %s", b->name, err);
  meta.ttl_s = STORE_TTL_NEVER;
  snprintf(meta.id, sizeof meta.id, "impnever");
  CHECK(store_import(st, &meta, &a, &sid, err, sizeof err) == 0 &&
            store_session_get(st, "impnever", &row, err, sizeof err) == 0 && row.ttl_s == STORE_TTL_NEVER,
        "%s: an import never to expire: %s", b->name, err);
  /* the sweep: no default TTL, at 3.5 s only "own" goes; at 9 s also imp7 */
  CHECK(sessions_expire(c, 0, 3500, &gone, err, sizeof err) == 0 && gone == 1 &&
            store_session_get(st, "own", &row, err, sizeof err) == STORE_NOTFOUND &&
            store_session_get(st, "dflt", &row, err, sizeof err) == 0,
        "%s: sweep without a default: the one with its own TTL went (%d)", b->name, gone);
  CHECK(sessions_expire(c, 0, 9000, &gone, err, sizeof err) == 0 && gone == 1 &&
            store_session_get(st, "imp7", &row, err, sizeof err) == STORE_NOTFOUND,
        "%s: at 9 s the imported 7 s one (%d)", b->name, gone);
  CHECK(sessions_expire(c, 1000, 1000000000000LL, &gone, err, sizeof err) == 0 && gone == 1 &&
            store_session_get(st, "dflt", &row, err, sizeof err) == STORE_NOTFOUND &&
            store_session_get(st, "never", &row, err, sizeof err) == 0 &&
            store_session_get(st, "impnever", &row, err, sizeof err) == 0,
        "%s: with a default: the default one went, the never ones stay (%d)", b->name, gone);
  sessions_free(c);
  store_close(st);
  printf("%s ttl: NULL / 0 / seconds stored, listed, imported; the scan and the sweep follow each\n", b->name);
}

/* A version-3 database (as an older gtmsmd left it: no ttl_s column) with a
 * session migrates to 4; the old session follows the daemon's default. */
static void test_migrate_v3(const backend *b) {
  char target[1024], err[256] = "";
  CHECK(b->fresh(target, sizeof target, "v3") == 0, "%s: a fresh database", b->name);
  store *st = NULL;
  CHECK(store_open(&st, target, 2, err, sizeof err) == 0, "%s: open: %s", b->name, err);
  store_close(st);
  st = NULL;
  /* back to exactly version 3's tables, then a row as version 3 wrote it */
  CHECK(b->exec(target, "ALTER TABLE sessions DROP COLUMN ttl_s") == 0 && b->set_version(target, 3) == 0 &&
            b->exec(target, "INSERT INTO sessions (id, model, model_version, steps, created_ms, updated_ms) "
                            "VALUES ('old', 'm', '0123456789abcdef', 0, 1000, 1000)") == 0,
        "%s: a version-3 database with a session", b->name);
  CHECK(store_open(&st, target, 2, err, sizeof err) == 0 && store_schema_version(st) == STORE_SCHEMA_VERSION &&
            b->get_version(target) == STORE_SCHEMA_VERSION, "%s: version 3 migrated to %d: %s", b->name,
        STORE_SCHEMA_VERSION, err);
  if (!st) return;
  store_session row, rows[4];
  int created = 0, n = 0;
  CHECK(store_session_get(st, "old", &row, err, sizeof err) == 0 && row.ttl_s == STORE_TTL_DEFAULT && row.steps == 0,
        "%s: the old session has the default TTL", b->name);
  CHECK(store_session_create(st, "new", "m", "0123456789abcdef", 1000, 5, &row, &created, err, sizeof err) == 0 &&
            created && row.ttl_s == 5, "%s: a new one with its own TTL on the migrated database", b->name);
  CHECK(store_session_idle(st, 4000, 2000, 4, rows, &n, err, sizeof err) == 0 && n == 1 &&
            strcmp(rows[0].id, "old") == 0, "%s: the old one expires by the default (%d)", b->name, n);
  store_close(st);
  printf("%s migration 3 -> 4: the ttl_s column added, old rows keep the daemon's default\n", b->name);
}

/* 1 if SQLite database db's observations are a rowid table with the unique
 * (sid, t) index (version 5's layout), 0 if not, -1 on an error. */
static int sq_layout_v5(const char *db) {
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  int v = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(h, "SELECT (SELECT sql FROM sqlite_schema WHERE name = 'observations') NOT LIKE "
                            "'%WITHOUT ROWID%', (SELECT count(*) FROM pragma_index_list('observations') "
                            "WHERE \"unique\" AND name = 'observations_sid_t')", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0) && sqlite3_column_int(st, 1);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

/* A version-4 database with observations of two sessions (on SQLite in
 * version 4's layout: clustered by (sid, t), WITHOUT ROWID) migrates to 5
 * with every row, frame and entry kept, in order; appends go on after it,
 * and an overlapping one is still refused. */
static void test_migrate_v4(const backend *b) {
  char target[1024], err[256] = "";
  CHECK(b->fresh(target, sizeof target, "v4") == 0, "%s: a fresh database", b->name);
  store *st = NULL;
  CHECK(store_open(&st, target, 2, err, sizeof err) == 0, "%s: open: %s", b->name, err);
  if (!st) return;
  store_session rows[2];
  int created = 0, actions[10];
  uint8_t frames[10 * 4], entries[10 * 3], state[2] = {1, 2};
  test_rows_fill(actions, frames, entries);
  for (int k = 0; k < 2; k++) {
    const char *id = k ? "v4b" : "v4a";
    CHECK(store_session_create(st, id, "m", "0123456789abcdef", 1000, 0, &rows[k], &created, err, sizeof err) == 0,
          "%s: create %s", b->name, id);
    store_append_req a = {.sid = rows[k].sid, .t0 = 0, .n = 7, .actions = actions, .frames = frames,
                          .frame_bytes = 4, .entries = entries, .entry_bytes = 3, .state = state,
                          .state_bytes = 2, .steps = 7, .now_ms = 2000};
    CHECK(store_append(st, &a, NULL, err, sizeof err) == 0, "%s: append to %s: %s", b->name, id, err);
  }
  store_close(st);
  st = NULL;
  if (strcmp(b->name, "sqlite") == 0) /* back to version 4's table, the rows copied over */
    CHECK(b->exec(target, "DROP INDEX observations_sid_t;"
                          "ALTER TABLE observations RENAME TO observations_v5;"
                          "CREATE TABLE observations ("
                          "  sid INTEGER NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,"
                          "  t INTEGER NOT NULL, action INTEGER NOT NULL, frame BLOB NOT NULL, entry BLOB,"
                          "  PRIMARY KEY (sid, t)) WITHOUT ROWID;"
                          "INSERT INTO observations SELECT sid, t, action, frame, entry FROM observations_v5;"
                          "DROP TABLE observations_v5;") == 0 && sq_layout_v5(target) == 0,
          "%s: a database in version 4's layout", b->name);
  CHECK(b->set_version(target, 4) == 0, "%s: set to version 4", b->name);
  CHECK(store_open(&st, target, 2, err, sizeof err) == 0 && store_schema_version(st) == STORE_SCHEMA_VERSION &&
            b->get_version(target) == STORE_SCHEMA_VERSION, "%s: version 4 migrated to %d: %s", b->name,
        STORE_SCHEMA_VERSION, err);
  if (!st) return;
  if (strcmp(b->name, "sqlite") == 0)
    CHECK(sq_layout_v5(target) == 1, "%s: observations in arrival order with the unique (sid, t) index", b->name);
  for (int k = 0; k < 2; k++) {
    frames_seen f = {0, 0, 1};
    entries_seen es = {0, 1};
    CHECK(b->rows(target, rows[k].sid) == 7 &&
              store_frames_each(st, rows[k].sid, 0, see_frame, &f, err, sizeof err) == 0 && f.n == 7 && f.ok &&
              store_entries_each(st, rows[k].sid, see_entry, &es, err, sizeof err) == 0 && es.n == 7 && es.ok,
          "%s: session %d's 7 rows, frames and entries kept in order (%d, %d)", b->name, k, f.n, es.n);
  }
  store_append_req a = {.sid = rows[0].sid, .t0 = 7, .n = 3, .actions = actions + 7, .frames = frames + 28,
                        .frame_bytes = 4, .entries = entries + 21, .entry_bytes = 3, .state = state,
                        .state_bytes = 2, .steps = 10, .now_ms = 3000};
  CHECK(store_append(st, &a, NULL, err, sizeof err) == 0 && b->rows(target, rows[0].sid) == 10,
        "%s: appends go on after the migration: %s", b->name, err);
  a.t0 = 9, a.n = 1, a.steps = 10;
  err[0] = '\0';
  CHECK(store_append(st, &a, NULL, err, sizeof err) == GTMSM_EIO && b->rows(target, rows[0].sid) == 10,
        "%s: an overlapping (sid, t) is still refused: %s", b->name, err);
  store_close(st);
  printf("%s migration 4 -> 5: rows, frames and entries kept%s\n", b->name,
         strcmp(b->name, "sqlite") == 0 ? "; observations now in arrival order with a (sid, t) index" : "");
}

static void run_all(const backend *b, uint8_t *cold) {
  test_migrations(b);
  test_rows(b);
  test_group(b);
  test_group_threads(b);
  test_cold_reload(b, cold);
  test_list(b);
  test_expire(b);
  test_ttl(b);
  test_migrate_v3(b);
  test_migrate_v4(b);
}

int main(void) {
  snprintf(DIR_, sizeof DIR_, "/tmp/gtmsm_backends_XXXXXX");
  if (!mkdtemp(DIR_)) return 1;
  char err[256];
  gtmsm_config c = gtmsm_default_config();
  c.hidden = 16;
  c.Z = 4;
  c.gate_hidden = 8;
  if (gtmsm_model_init(&M, &c, 7, err, sizeof err)) return 1;
  gtmsm_model_hash(&M, M.content_hash);
  if (gtmsm_model_init(&M2, &c, 8, err, sizeof err)) return 1;
  gtmsm_model_hash(&M2, M2.content_hash);
  model_entry e = {.name = "m", .m = &M}, e2 = {.name = "m", .m = &M2, .mtime_ns = 1};
  REG.v[0] = &e;
  REG.v[1] = &e2;
  REG.n = 2;
  CHECK(gtmsm_config_D(&M.cfg) * PRED == PRED_BYTES, "the model's frames are 8x8x3");
  static uint8_t cold_sqlite[PRED_BYTES], cold_pg[PRED_BYTES];
  test_redact();
  run_all(&SQLITE_BACKEND, cold_sqlite);
  if (find_pg_url() == 0) {
    run_all(&PG_BACKEND, cold_pg);
    CHECK(memcmp(cold_sqlite, cold_pg, PRED_BYTES) == 0, "the same session predicts the same bytes on both backends");
    test_pg_unreachable();
    test_pg_concurrent_migrations();
    test_pg_leases();
  } else {
    printf("postgresql: skipped (no GTMSM_TEST_PG_URL or GTMSM_TEST_PG_URL_FILE; ctest's fixture sets it)\n");
  }
  gtmsm_model_free(&M);
  gtmsm_model_free(&M2);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", DIR_);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", DIR_);
  return test_finish("test_store_backends");
}
