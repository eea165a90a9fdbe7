/* Loading recorded episodes: NDJSON files and gtmsmd databases (see
 * recordings.h). Each recording grows in its own arrays (frames as bytes,
 * actions as bytes, truth as 6 floats a step only when recorded). The
 * database is read with SQLite directly, read-only: the daemon may be
 * running, and nothing here may change its file. */
#include "recordings.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/base64.h"
#include "img/png.h"
#include "sim/imagenav.h"
#include "sim/maze3d.h"

int recordings_env_init(recordings_env *env, const char *name) {
  memset(env, 0, sizeof *env);
  if (strcmp(name, "imagenav") == 0) {
    gtmsm_config c = gtmsm_default_config();
    env->A = c.A;
    memcpy(env->names, c.action_names, sizeof env->names);
    return 0;
  }
  if (strcmp(name, "maze3d") == 0) {
    env->maze3d = 1;
    env->A = maze3d_action_count() + 1; /* and the no-op of an episode's first frame */
    for (int a = 0; a < env->A; a++) snprintf(env->names[a], sizeof env->names[a], "%s", maze3d_action_name(a));
    return 0;
  }
  return -1;
}

/* A recording under construction. */
typedef struct {
  int n, cap;
  uint8_t *frames, *actions;
  float *truth;
  int has_truth, has_disp; /* decided by the first step */
} growing;

static void growing_free(growing *g) {
  free(g->frames);
  free(g->actions);
  free(g->truth);
  memset(g, 0, sizeof *g);
}

static int growing_push(growing *g, size_t D) {
  if (g->n < g->cap) return 0;
  int cap = g->cap ? 2 * g->cap : 256;
  uint8_t *f = realloc(g->frames, (size_t)cap * D);
  if (!f) return GTMSM_ENOMEM;
  g->frames = f;
  uint8_t *a = realloc(g->actions, (size_t)cap);
  if (!a) return GTMSM_ENOMEM;
  g->actions = a;
  if (g->has_truth) {
    float *t = realloc(g->truth, sizeof(float) * (size_t)cap * REC_TRUTH_N);
    if (!t) return GTMSM_ENOMEM;
    g->truth = t;
  }
  g->cap = cap;
  return 0;
}

/* Moves g into r as a new recording named name (session NULL for a file). */
static int recordings_take(recordings *r, growing *g, const char *name, const char *session) {
  eval_recording *v = realloc(r->v, sizeof *v * (size_t)(r->n + 1));
  if (!v) return GTMSM_ENOMEM;
  r->v = v;
  char **nm = realloc(r->names, sizeof *nm * (size_t)(r->n + 1));
  if (!nm) return GTMSM_ENOMEM;
  r->names = nm;
  char **se = realloc(r->session, sizeof *se * (size_t)(r->n + 1));
  if (!se) return GTMSM_ENOMEM;
  r->session = se;
  r->names[r->n] = strdup(name);
  r->session[r->n] = session ? strdup(session) : NULL;
  if (!r->names[r->n] || (session && !r->session[r->n])) {
    free(r->names[r->n]);
    free(r->session[r->n]);
    return GTMSM_ENOMEM;
  }
  r->all_disp = (r->n == 0 || r->all_disp) && g->has_disp;
  r->all_truth = (r->n == 0 || r->all_truth) && g->has_truth;
  /* give back what the doubling reserved past the last step */
  size_t D = (size_t)r->H * r->W * r->C;
  uint8_t *f = realloc(g->frames, (size_t)g->n * D);
  if (f) g->frames = f;
  r->v[r->n] = (eval_recording){.n = g->n, .frames = g->frames, .actions = g->actions,
                                .truth = g->has_truth ? g->truth : NULL};
  r->n++;
  if (!g->has_truth) free(g->truth);
  memset(g, 0, sizeof *g);
  return 0;
}

void recordings_json_note(json_t *j, const recordings *r) {
  json_t *names = json_array();
  for (int i = 0; i < r->n; i++) json_array_append_new(names, json_string(r->names[i]));
  json_object_set_new(j, "recordings", names);
  json_object_set_new(j, "truth", json_boolean(r->all_truth));
}

void recordings_free(recordings *r) {
  for (int i = 0; i < r->n; i++) {
    free((void *)r->v[i].frames);
    free((void *)r->v[i].actions);
    free((void *)r->v[i].truth);
    free(r->names[i]);
    free(r->session[i]);
  }
  free(r->v);
  free(r->names);
  free(r->session);
  memset(r, 0, sizeof *r);
}

/* The action of a step: a name of env or an index 0..A-1. */
static int parse_action(const recordings_env *env, const json_t *ja, char *what, size_t wl) {
  if (json_is_string(ja)) {
    for (int a = 0; a < env->A; a++)
      if (strcmp(env->names[a], json_string_value(ja)) == 0) return a;
    snprintf(what, wl, "unknown action '%.64s'", json_string_value(ja));
  } else if (json_is_integer(ja)) {
    json_int_t a = json_integer_value(ja);
    if (a >= 0 && a < env->A) return (int)a;
    snprintf(what, wl, "action index %lld outside 0..%d", (long long)a, env->A - 1);
  } else {
    snprintf(what, wl, "\"action\" must be a name or an index");
    return -1;
  }
  size_t used = strlen(what);
  snprintf(what + used, wl - used, " (%s actions:", env->maze3d ? "maze3d" : "imagenav");
  for (int a = 0; a < env->A; a++) {
    used = strlen(what);
    snprintf(what + used, wl - used, "%s %s", a ? "," : "", env->names[a]);
  }
  used = strlen(what);
  snprintf(what + used, wl - used, "; --env %s for the other)", env->maze3d ? "imagenav" : "maze3d");
  return -1;
}

static int num(const json_t *o, const char *key, float *out) {
  const json_t *v = json_object_get(o, key);
  if (!json_is_number(v)) return 0;
  double d = json_number_value(v);
  if (!isfinite(d)) return 0;
  *out = (float)d;
  return 1;
}

/* The truth object of a step into tr (REC_TRUTH_N): 1 when it has the keys
 * evaluation needs (imagenav col, row; maze3d x, y, heading), *disp when it
 * also has maze3d's d_forward, d_left, d_heading. */
static int parse_truth(const recordings_env *env, const json_t *t, float *tr, int *disp) {
  for (int k = 0; k < REC_TRUTH_N; k++) tr[k] = 0;
  *disp = 0;
  if (!json_is_object(t)) return 0;
  if (!env->maze3d)
    return num(t, "col", &tr[REC_TRUTH_X]) && num(t, "row", &tr[REC_TRUTH_Y]);
  *disp = num(t, "d_forward", &tr[REC_TRUTH_D_FORWARD]) && num(t, "d_left", &tr[REC_TRUTH_D_LEFT]) &&
          num(t, "d_heading", &tr[REC_TRUTH_D_HEADING]);
  return num(t, "x", &tr[REC_TRUTH_X]) && num(t, "y", &tr[REC_TRUTH_Y]) && num(t, "heading", &tr[REC_TRUTH_HEADING]);
}

/* Sets r's frame shape from the first frame, or checks a later one against it. */
static int check_shape(recordings *r, int H, int W, int C, char *what, size_t wl) {
  if (r->H == 0) {
    r->H = H, r->W = W, r->C = C;
    return 0;
  }
  if (H == r->H && W == r->W && C == r->C) return 0;
  snprintf(what, wl, "frame is %dx%d with %d channels; the recordings before are %dx%d with %d", W, H, C, r->W,
           r->H, r->C);
  return -1;
}

int recordings_load_ndjson(recordings *r, const recordings_env *env, const char *path, long max_steps, char *err,
                           size_t errlen) {
  int rc = 0;
  growing g = {0};
  char *line = NULL, what[512] = "";
  size_t cap = 0;
  long lineno = 0;
  long long prev_t = -1;
  FILE *f = fopen(path, "r");
  if (!f) return gtmsm_fail(err, errlen, RECORDINGS_ENOENT, "cannot open recording %s: %s", path, strerror(errno));
  ssize_t got;
  while ((max_steps < 0 || g.n < max_steps) && (got = getline(&line, &cap, f)) > 0) {
    lineno++;
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
    if (got == 0) continue;
    json_error_t je;
    uint8_t *png = NULL, *pix = NULL;
    size_t len = 0;
    int H = 0, W = 0, C = 0, a = -1;
    json_t *j = json_loadb(line, (size_t)got, JSON_REJECT_DUPLICATES, &je);
    const json_t *jt = json_object_get(j, "t"), *jf = json_object_get(j, "frame");
    if (!j) snprintf(what, sizeof what, "not JSON: %s (column %d)", je.text, je.column);
    else if (!json_is_object(j) || !jt || !json_object_get(j, "action") || !jf)
      snprintf(what, sizeof what, "expected an object with \"t\", \"action\" and \"frame\"");
    else if (!json_is_integer(jt) || json_integer_value(jt) < 0)
      snprintf(what, sizeof what, "\"t\" must be an integer >= 0");
    else if (prev_t >= 0 && json_integer_value(jt) != prev_t + 1)
      snprintf(what, sizeof what, "t=%lld after t=%lld: %s", (long long)json_integer_value(jt), prev_t,
               json_integer_value(jt) <= prev_t ? "a repeat (t must count up by one)" : "a gap (t must count up by one)");
    else if ((a = parse_action(env, json_object_get(j, "action"), what, sizeof what)) < 0)
      ;
    else if (!json_is_string(jf))
      snprintf(what, sizeof what, "\"frame\" must be a base64 PNG string");
    else if (base64_decode(&png, &len, json_string_value(jf), json_string_length(jf), what, sizeof what))
      ;
    else if (pngio_decode(&pix, &H, &W, &C, png, len, 3, (size_t)1 << 20, what, sizeof what))
      ;
    else if (check_shape(r, H, W, C, what, sizeof what))
      ;
    else {
      float tr[REC_TRUTH_N];
      int disp, has = parse_truth(env, json_object_get(j, "truth"), tr, &disp);
      if (g.n == 0) g.has_truth = has, g.has_disp = disp;
      if (has != g.has_truth) {
        snprintf(what, sizeof what, "truth %s here but %s on the first line: all steps or none",
                 has ? "present" : "missing", has ? "missing" : "present");
      } else if (g.has_truth && disp != g.has_disp) {
        snprintf(what, sizeof what, "truth's d_forward, d_left, d_heading %s here but %s on the first line",
                 disp ? "present" : "missing", disp ? "missing" : "present");
      } else if ((rc = growing_push(&g, (size_t)H * W * C))) {
        snprintf(what, sizeof what, "out of memory");
      } else {
        size_t D = (size_t)H * W * C;
        memcpy(g.frames + (size_t)g.n * D, pix, D);
        g.actions[g.n] = (uint8_t)a;
        if (g.has_truth) memcpy(g.truth + (size_t)g.n * REC_TRUTH_N, tr, sizeof tr);
        g.n++;
        prev_t = json_integer_value(jt);
        what[0] = '\0';
      }
    }
    free(png);
    free(pix);
    json_decref(j);
    if (what[0]) {
      rc = gtmsm_fail(err, errlen, rc ? rc : GTMSM_EFORMAT, "%s:%ld: %s", path, lineno, what);
      goto done;
    }
  }
  if (ferror(f)) {
    rc = gtmsm_fail(err, errlen, RECORDINGS_ENOENT, "cannot read recording %s: %s", path, strerror(errno));
    goto done;
  }
  if (g.n == 0) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: no observations", path);
    goto done;
  }
  if ((rc = recordings_take(r, &g, path, NULL))) gtmsm_fail(err, errlen, rc, "out of memory");
done:
  growing_free(&g);
  free(line);
  fclose(f);
  return rc;
}

/* Reads one session (sid, id) of db into r: t must run 0, 1, ... */
static int db_session(recordings *r, const recordings_env *env, sqlite3 *db, const char *path, sqlite3_int64 sid,
                      const char *id, long steps, char *err, size_t errlen) {
  growing g = {0};
  sqlite3_stmt *st = NULL;
  char name[4200];
  snprintf(name, sizeof name, "%s session %s", path, id);
  int rc = 0;
  if (sqlite3_prepare_v2(db,
                         "SELECT t, action, frame FROM observations WHERE sid = ?1 AND (?2 < 0 OR t < ?2) "
                         "ORDER BY t",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: %s", path, sqlite3_errmsg(db));
    goto done;
  }
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, steps);
  int src;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    sqlite3_int64 t = sqlite3_column_int64(st, 0);
    int a = sqlite3_column_int(st, 1);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    int side = (int)lround(sqrt((double)len / 3));
    char what[256] = "";
    if (t != g.n) snprintf(what, sizeof what, "%s (the next t is %d)", t > g.n ? "a gap" : "a repeat", g.n);
    else if (a < 0 || a >= env->A)
      snprintf(what, sizeof what, "action index %d outside the %d actions of %s", a, env->A,
               env->maze3d ? "maze3d" : "imagenav");
    else if (len == 0 || (size_t)side * side * 3 != len)
      snprintf(what, sizeof what, "frame of %zu bytes is not a square RGB frame", len);
    else if (check_shape(r, side, side, 3, what, sizeof what))
      ;
    else if (growing_push(&g, len)) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
      goto done;
    }
    if (what[0]) {
      rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s t=%lld: %s", name, (long long)t, what);
      goto done;
    }
    memcpy(g.frames + (size_t)g.n * len, sqlite3_column_blob(st, 2), len);
    g.actions[g.n++] = (uint8_t)a;
  }
  if (src != SQLITE_DONE) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: %s", name, sqlite3_errmsg(db));
    goto done;
  }
  if (steps >= 0 && g.n != steps) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s holds %d observations, %ld expected", name, g.n, steps);
    goto done;
  }
  if (g.n == 0) { /* a session created but never observed: nothing to learn from */
    fprintf(stderr, "gtmsm: %s has no observations: skipped\n", name);
    goto done;
  }
  if ((rc = recordings_take(r, &g, name, id))) gtmsm_fail(err, errlen, rc, "out of memory");
done:
  growing_free(&g);
  sqlite3_finalize(st);
  return rc;
}

int recordings_load_db(recordings *r, const recordings_env *env, const char *path, const recordings_session *listed,
                       int n, const char *model, char *err, size_t errlen) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int rc = 0, in_tx = 0;
  if (strstr(path, "://"))
    return gtmsm_fail(err, errlen, RECORDINGS_ENOENT, "%s: --from-db reads a gtmsmd SQLite file; export the "
                      "sessions of a PostgreSQL store (GET /v1/sessions/{id}/export) or record to NDJSON",
                      path);
  FILE *probe = fopen(path, "rb"); /* SQLite's own message does not say why */
  if (!probe) return gtmsm_fail(err, errlen, RECORDINGS_ENOENT, "cannot open database %s: %s", path, strerror(errno));
  fclose(probe);
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    rc = gtmsm_fail(err, errlen, RECORDINGS_ENOENT, "cannot open database %s: %s", path,
                    db ? sqlite3_errmsg(db) : "out of memory");
    goto done;
  }
  sqlite3_busy_timeout(db, 5000);
  /* one read transaction: a snapshot, whatever a running daemon appends meanwhile */
  if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s is not an SQLite database a gtmsmd wrote: %s", path,
                    sqlite3_errmsg(db));
    goto done;
  }
  in_tx = 1;
  int version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  st = NULL;
  if (version < RECORDINGS_DB_SCHEMA_MIN || version > RECORDINGS_DB_SCHEMA_MAX) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "%s: schema version %d is not one this gtmsm reads (%d..%d)%s", path, version,
                    RECORDINGS_DB_SCHEMA_MIN, RECORDINGS_DB_SCHEMA_MAX,
                    version == 0 ? ": not a gtmsmd database" : ": written by a newer gtmsmd?");
    goto done;
  }
  const char *sql = n > 0 ? "SELECT sid, id, model FROM sessions WHERE id = ?1"
                          : "SELECT sid, id, model FROM sessions WHERE ?2 IS NULL OR model = ?2 ORDER BY id";
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: %s", path, sqlite3_errmsg(db));
    goto done;
  }
  if (n == 0 && model) sqlite3_bind_text(st, 2, model, -1, SQLITE_TRANSIENT);
  int found = 0;
  for (int i = 0; n == 0 || i < n; i++) {
    if (n > 0) {
      sqlite3_reset(st);
      sqlite3_bind_text(st, 1, listed[i].id, -1, SQLITE_TRANSIENT);
    }
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE && n == 0) break;
    if (src == SQLITE_DONE) {
      rc = gtmsm_fail(err, errlen, RECORDINGS_ENOENT, "%s: no session '%.64s'", path, listed[i].id);
      goto done;
    }
    if (src != SQLITE_ROW) {
      rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: %s", path, sqlite3_errmsg(db));
      goto done;
    }
    char id[128];
    snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 1));
    const char *its = (const char *)sqlite3_column_text(st, 2);
    if (model && (!its || strcmp(its, model) != 0)) {
      rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s session %s was recorded with model '%.64s', not '%.64s'",
                      path, id, its ? its : "", model);
      goto done;
    }
    if ((rc = db_session(r, env, db, path, sqlite3_column_int64(st, 0), id, n > 0 ? listed[i].steps : -1, err,
                         errlen)))
      goto done;
    found++;
  }
  if (found == 0)
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s holds no sessions%s%.64s%s", path, model ? " of model '" : "",
                    model ? model : "", model ? "'" : "");
done:
  sqlite3_finalize(st);
  if (in_tx) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(db);
  return rc;
}
