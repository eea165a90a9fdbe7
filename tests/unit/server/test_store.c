/* The session cache over the SQLite store on a temporary file (the store's
 * own cases, migrations, rows and group commit, run on both backends in
 * test_store_backends.c):
 * - sessions: observe through the cache in uneven batches, then a cold
 *   reload (entries re-inserted) has the same state, the same memory bytes
 *   and predicts bit-identical frames, also for a landmark model (its
 *   reverse index rebuilt from the stored entries);
 *   the LRU evicts unheld sessions beyond the byte and count bounds and never
 *   a held one; a deleted session is gone for later acquires;
 * - a session whose stored state is NULL although it has steps (a damaged
 *   database) fails to load with a clear GTMSM_EFORMAT, and only it;
 * - group commit under 16 threads appending at once (one of them sending a
 *   bad append now and then), and with a group limit of 1 every append is
 *   its own COMMIT. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "img/image.h"
#include "model/modelfile.h"
#include "sessions.h"
#include "store.h"
#include "testlib.h"

static char DIR_[64];

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", DIR_, name); }

/* ---- sessions over a real model ------------------------------------------ */

static gtmsm_model M;
static model_registry REG;

static void frames_for(uint8_t *pix, int n, int seed) {
  const int D = gtmsm_config_D(&M.cfg);
  for (int i = 0; i < n * D; i++) pix[i] = (uint8_t)((i * 131 + seed * 17 + (i / D) * 7) % 256);
}

static int predict_bytes(session *s, uint8_t *out, int n) {
  const int D = gtmsm_config_D(&M.cfg);
  int acts[16];
  for (int i = 0; i < n; i++) acts[i] = i % 5;
  float *f = malloc(sizeof(float) * (size_t)n * D);
  int rc = gtmsm_predict(&M, s->mem, acts, n, GTMSM_PREDICT_MEAN, 0, f, NULL, NULL, 0);
  image_u8_from_float(out, f, (size_t)n * D, NULL, 0);
  free(f);
  return rc;
}

static void test_cold_reload(const char *name) {
  char db[128], err[256] = "";
  path_of(db, sizeof db, name);
  server_config cfg;
  config_defaults(&cfg);
  store *st = NULL;
  sessions *c = NULL;
  CHECK(store_open(&st, db, 2, err, sizeof err) == 0 && sessions_new(&c, st, &REG, &cfg) == 0, "open");
  store_session row;
  int created;
  sessions_create(c, "hot", REG.v[0], 0, &row, &created, err, sizeof err);
  session *s = NULL;
  CHECK(sessions_acquire(c, "hot", &s, err, sizeof err) == SESSIONS_OK, "acquire");
  CHECK(sessions_lock(c, s, 1, 1, err, sizeof err) == SESSIONS_OK, "lock and load: %s", err);
  const int D = gtmsm_config_D(&M.cfg);
  uint8_t *pix = malloc((size_t)D * 300);
  int actions[300];
  for (int i = 0; i < 300; i++) actions[i] = (i * 7) % 5;
  frames_for(pix, 300, 1);
  int done = 0, chunk[] = {1, 2, 61, 100, 7, 129};
  for (int k = 0; k < 6; k++) {
    CHECK(sessions_observe(c, s, chunk[k], actions + done, pix + (size_t)done * D, NULL, NULL, err, sizeof err) == 0,
          "observe %d: %s", chunk[k], err);
    done += chunk[k];
  }
  CHECK(s->steps == 300 && dnd_size(s->mem->mem) == 300, "300 steps observed");
  uint8_t hot[16 * 192], cold[16 * 192];
  float hot_state[GTMSM_MAX_S];
  memcpy(hot_state, s->mem->state, sizeof hot_state);
  predict_bytes(s, hot, 16);
  uint8_t *hot_mem = NULL, *cold_mem = NULL;
  size_t hot_len = 0, cold_len = 0;
  gtmsm_memory_serialize(s->mem, M.cfg.S, &hot_mem, &hot_len);
  CHECK(M.cfg.infer != GTMSM_INFER_LANDMARK || (s->mem->rev && dnd_size(s->mem->rev) == 300),
        "the landmark model's reverse index holds the 300 steps");
  sessions_unlock(c, s);
  sessions_release(c, s);
  sessions_free(c); /* drop every hot memory */
  CHECK(sessions_new(&c, st, &REG, &cfg) == 0, "a new cache");
  CHECK(sessions_acquire(c, "hot", &s, err, sizeof err) == SESSIONS_OK && s->mem == NULL && s->steps == 300,
        "acquired cold with 300 steps");
  CHECK(sessions_lock(c, s, 0, 1, err, sizeof err) == SESSIONS_OK && s->mem, "loaded: %s", err);
  predict_bytes(s, cold, 16);
  CHECK(memcmp(hot, cold, sizeof hot) == 0, "the reloaded memory predicts identical frames");
  CHECK(memcmp(hot_state, s->mem->state, sizeof hot_state) == 0, "the reloaded state is identical");
  CHECK(s->mem->steps == 300, "the reloaded memory has 300 steps");
  gtmsm_memory_serialize(s->mem, M.cfg.S, &cold_mem, &cold_len);
  CHECK(hot_mem && cold_mem && hot_len == cold_len && memcmp(hot_mem, cold_mem, hot_len) == 0,
        "%s: the reloaded memory's bytes differ (reverse index included)", name);
  free(hot_mem);
  free(cold_mem);
  sessions_unlock(c, s);
  sessions_release(c, s);
  sessions_free(c);
  store_close(st);
  free(pix);
  printf("cold reload (%s): same state and memory, identical predictions\n", name);
}

static void test_lru(void) {
  char db[128], err[256] = "";
  path_of(db, sizeof db, "lru.db");
  server_config cfg;
  config_defaults(&cfg);
  cfg.max_sessions = 3;
  cfg.cache_bytes = 1 << 30;
  store *st = NULL;
  sessions *c = NULL;
  CHECK(store_open(&st, db, 2, err, sizeof err) == 0 && sessions_new(&c, st, &REG, &cfg) == 0, "open");
  store_session row;
  int created;
  char id[8];
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "s%d", i);
    sessions_create(c, id, REG.v[0], 0, &row, &created, err, sizeof err);
  }
  session *held[3];
  for (int i = 0; i < 3; i++) {
    snprintf(id, sizeof id, "s%d", i);
    CHECK(sessions_acquire(c, id, &held[i], err, sizeof err) == SESSIONS_OK, "acquire %s", id);
    sessions_lock(c, held[i], 0, 1, err, sizeof err);
    sessions_unlock(c, held[i]);
  }
  session *x = NULL;
  CHECK(sessions_acquire(c, "s3", &x, err, sizeof err) == SESSIONS_BUSY, "all 3 slots held: busy");
  sessions_release(c, held[1]);
  CHECK(sessions_acquire(c, "s3", &x, err, sizeof err) == SESSIONS_OK, "a released slot is reused");
  sessions_stats stt;
  sessions_get_stats(c, &stt);
  CHECK(stt.entries == 3 && stt.evictions == 1, "s1 evicted (entries %lld, evictions %lld)", stt.entries,
        stt.evictions);
  session *again = NULL;
  CHECK(sessions_acquire(c, "s0", &again, err, sizeof err) == SESSIONS_OK && again == held[0],
        "a held session stays cached");
  sessions_release(c, again);
  /* deleting: later acquires miss */
  CHECK(sessions_lock(c, x, 1, 0, err, sizeof err) == SESSIONS_OK && sessions_delete(c, x, err, sizeof err) == 0,
        "delete s3");
  sessions_unlock(c, x);
  sessions_release(c, x);
  CHECK(sessions_acquire(c, "s3", &x, err, sizeof err) == SESSIONS_NOTFOUND, "s3 is gone");
  /* a row deleted behind the cache's back (a cold entry): the load says not
   * found, and a session recreated with that id is found afresh */
  sessions_release(c, held[0]);
  session *cold = NULL;
  CHECK(sessions_acquire(c, "s4", &cold, err, sizeof err) == SESSIONS_OK && cold->mem == NULL, "s4 cold");
  CHECK(store_session_delete(st, cold->sid, 0, err, sizeof err) == 0, "delete s4's row directly");
  CHECK(sessions_lock(c, cold, 0, 1, err, sizeof err) == SESSIONS_NOTFOUND, "loading s4: not found");
  CHECK(sessions_create(c, "s4", REG.v[0], 0, &row, &created, err, sizeof err) == 0 && created, "recreate s4");
  session *fresh = NULL;
  CHECK(sessions_acquire(c, "s4", &fresh, err, sizeof err) == SESSIONS_OK && fresh != cold &&
            fresh->sid == row.sid, "the recreated s4 is a new entry");
  sessions_release(c, cold);
  sessions_release(c, fresh);
  sessions_release(c, held[2]);
  /* a byte bound of 0 keeps nothing hot once released */
  sessions_free(c);
  cfg.cache_bytes = 0;
  CHECK(sessions_new(&c, st, &REG, &cfg) == 0, "byte-bounded cache");
  CHECK(sessions_acquire(c, "s0", &x, err, sizeof err) == SESSIONS_OK, "acquire s0");
  sessions_lock(c, x, 0, 1, err, sizeof err);
  CHECK(x->mem != NULL, "loaded while held, even over the byte bound");
  sessions_unlock(c, x);
  sessions_release(c, x);
  sessions_get_stats(c, &stt);
  CHECK(stt.entries == 0 && stt.hot == 0, "released over the bound: evicted (entries %lld)", stt.entries);
  sessions_free(c);
  store_close(st);
  printf("LRU: count bound (busy when all held), byte bound, held sessions never evicted, delete\n");
}

static void test_corrupt_state(void) {
  char db[128], err[256] = "";
  path_of(db, sizeof db, "corrupt.db");
  server_config cfg;
  config_defaults(&cfg);
  store *st = NULL;
  sessions *c = NULL;
  CHECK(store_open(&st, db, 2, err, sizeof err) == 0 && sessions_new(&c, st, &REG, &cfg) == 0, "open");
  const int D = gtmsm_config_D(&M.cfg);
  uint8_t *pix = malloc((size_t)D * 4);
  int actions[4] = {0, 1, 2, 3};
  frames_for(pix, 4, 3);
  const char *ids[] = {"broken", "fine", "empty"};
  for (int i = 0; i < 3; i++) {
    store_session row;
    int created;
    session *s = NULL;
    sessions_create(c, ids[i], REG.v[0], 0, &row, &created, err, sizeof err);
    if (i == 2) continue; /* no observation: a NULL state is right */
    CHECK(sessions_acquire(c, ids[i], &s, err, sizeof err) == SESSIONS_OK &&
              sessions_lock(c, s, 1, 1, err, sizeof err) == SESSIONS_OK, "load %s: %s", ids[i], err);
    CHECK(sessions_observe(c, s, 4, actions, pix, NULL, NULL, err, sizeof err) == 0, "observe %s: %s", ids[i], err);
    sessions_unlock(c, s);
    sessions_release(c, s);
  }
  sessions_free(c);
  sqlite3 *raw = NULL;
  sqlite3_open(db, &raw);
  CHECK(sqlite3_exec(raw, "UPDATE sessions SET state = NULL WHERE id = 'broken'", NULL, NULL, NULL) == SQLITE_OK,
        "null the state behind the store's back");
  sqlite3_close(raw);
  CHECK(sessions_new(&c, st, &REG, &cfg) == 0, "a new cache");
  session *s = NULL;
  CHECK(sessions_acquire(c, "broken", &s, err, sizeof err) == SESSIONS_OK && s->steps == 4, "acquire broken");
  err[0] = '\0';
  int rc = sessions_lock(c, s, 0, 1, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "state") && strstr(err, "broken") && s->mem == NULL,
        "a NULL state after 4 steps is a load error: rc %d '%s'", rc, err);
  if (rc == SESSIONS_OK) sessions_unlock(c, s);
  sessions_release(c, s);
  printf("corrupt state: %s\n", err);
  for (int i = 1; i < 3; i++) {
    CHECK(sessions_acquire(c, ids[i], &s, err, sizeof err) == SESSIONS_OK &&
              sessions_lock(c, s, 0, 1, err, sizeof err) == SESSIONS_OK && s->mem, "%s still loads: %s", ids[i],
          err);
    sessions_unlock(c, s);
    sessions_release(c, s);
  }
  sessions_free(c);
  store_close(st);
  free(pix);
}

/* ---- group commit --------------------------------------------------------- */

/* Rows of session sid in observations (a second connection, as a reader). */
static long long count_rows(const char *db, int64_t sid) {
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  long long n = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(h, "SELECT count(*), coalesce(max(t) + 1, 0) FROM observations WHERE sid = ?1",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, sid);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == sqlite3_column_int64(st, 1))
      n = sqlite3_column_int64(st, 0); /* -1 unless the rows are 0 .. n - 1 */
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

enum { TH = 16, PER = 24 };

typedef struct {
  store *s;
  int64_t sid;
  int bad;         /* sends an overlapping append before every 4th one */
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
      store_append_req b = a;
      b.t0 = t - 1; /* already stored */
      if (store_append(ap->s, &b, &ci, err, sizeof err) == GTMSM_EIO) ap->refused++;
      else ap->wrong++;
    }
    if (store_append(ap->s, &a, &ci, err, sizeof err) == 0) ap->ok++;
    else ap->wrong++;
    if (ci.group > ap->max_group) ap->max_group = ci.group;
  }
  return NULL;
}

static void run_appenders(const char *name, int group_max, long long *commits, int *max_group) {
  char db[128], err[256] = "";
  path_of(db, sizeof db, name);
  store *s = NULL;
  CHECK(store_open(&s, db, 0, err, sizeof err) == 0, "open: %s", err);
  store_set_group_max(s, group_max);
  appender ap[TH];
  pthread_t th[TH];
  for (int i = 0; i < TH; i++) {
    char id[8];
    store_session row;
    int created = 0;
    snprintf(id, sizeof id, "c%d", i);
    CHECK(store_session_create(s, id, "m", "0123456789abcdef", 0, 0, &row, &created, err, sizeof err) == 0, "create");
    ap[i] = (appender){.s = s, .sid = row.sid, .bad = i == 3};
  }
  for (int i = 0; i < TH; i++) pthread_create(&th[i], NULL, append_thread, &ap[i]);
  for (int i = 0; i < TH; i++) pthread_join(th[i], NULL);
  int ok = 1, refused = 0;
  *max_group = 0;
  for (int i = 0; i < TH; i++) {
    store_session got;
    char id[8];
    snprintf(id, sizeof id, "c%d", i);
    ok &= ap[i].ok == PER && ap[i].wrong == 0 && store_session_get(s, id, &got, err, sizeof err) == 0 &&
          got.steps == PER && count_rows(db, ap[i].sid) == PER;
    refused += ap[i].refused;
    if (ap[i].max_group > *max_group) *max_group = ap[i].max_group;
  }
  long long appends = 0;
  store_group_stats(s, commits, &appends);
  CHECK(ok, "%s: %d threads x %d appends all acknowledged and stored in order", name, TH, PER);
  CHECK(refused == PER / 4 - (PER % 4 == 0), "%s: the bad appends refused alone (%d)", name, refused);
  CHECK(appends == TH * PER, "%s: %lld appends committed", name, appends);
  CHECK(*max_group <= group_max, "%s: groups within the limit (%d <= %d)", name, *max_group, group_max);
  store_close(s);
}

static void test_group_threads(void) {
  long long commits = 0;
  int max_group = 0;
  run_appenders("threads.db", 64, &commits, &max_group);
  printf("group threads: %d appends (+%d bad) in %lld COMMITs, largest group %d\n", TH * PER, PER / 4 - 1,
         commits, max_group);
  run_appenders("threads1.db", 1, &commits, &max_group);
  CHECK(commits == TH * PER + PER / 4 - 1 && max_group == 1, "group limit 1: a COMMIT per append (%lld)", commits);
  printf("group limit 1: %lld COMMITs\n", commits);
}

int main(void) {
  snprintf(DIR_, sizeof DIR_, "/tmp/gtmsm_store_XXXXXX");
  if (!mkdtemp(DIR_)) return 1;
  char err[256];
  gtmsm_config c = gtmsm_default_config();
  c.hidden = 16;
  c.Z = 4;
  c.gate_hidden = 8;
  if (gtmsm_model_init(&M, &c, 7, err, sizeof err)) return 1;
  gtmsm_model_hash(&M, M.content_hash);
  model_entry e = {.name = "m", .m = &M};
  REG.v[0] = &e;
  REG.n = 1;
  test_cold_reload("cold.db");
  test_lru();
  test_corrupt_state();
  test_group_threads();
  gtmsm_model_free(&M);
  /* a landmark model: the store keeps forward entries only; the reverse index comes back from them */
  c.infer = GTMSM_INFER_LANDMARK;
  c.trans_std = 0.3f;
  if (gtmsm_model_init(&M, &c, 8, err, sizeof err)) return 1;
  params_get(&M.p, "lm.b2")[0] = 1.0f;
  gtmsm_model_hash(&M, M.content_hash);
  test_cold_reload("cold_landmark.db");
  gtmsm_model_free(&M);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", DIR_);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", DIR_);
  return test_finish("test_store");
}
