/* Session handlers: create (POST, server id), put (client id, idempotent),
 * get, delete, list, rebuild onto another model version, and the portable
 * dump (export / import). */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "handlers.h"
#include "jsonfmt.h"
#include "img/base64.h"
#include "log.h"
#include "util.h"

#define DUMP_FORMAT "gtmsm-session"
/* 2 added "ttl_seconds"; a version 1 dump (without it) imports with the
 * daemon's default TTL. */
#define DUMP_VERSION 2
#define DUMP_VERSION_MIN 1

#define TTL_EXPECTED "\"ttl_seconds\" must be an integer 1..315360000 (seconds idle before " \
  "the session expires), 0 (never expires, whatever --session-ttl) or null (the daemon's " \
  "--session-ttl)"

/* The optional "ttl_seconds" of object j (borrowed) into *ttl_s (store_session's
 * encoding): absent or null STORE_TTL_DEFAULT, 0 STORE_TTL_NEVER, 1..STORE_TTL_MAX
 * itself. *given says whether it was there and not null. 0, or -1 after a 400. */
static int parse_ttl(http_req *r, const json_t *j, long long *ttl_s, int *given) {
  const json_t *jt = json_is_object(j) ? json_object_get(j, "ttl_seconds") : NULL;
  *ttl_s = STORE_TTL_DEFAULT;
  *given = 0;
  if (!jt || json_is_null(jt)) return 0;
  const long long v = json_is_integer(jt) ? (long long)json_integer_value(jt) : -1;
  if (v < 0 || v > STORE_TTL_MAX) {
    http_problem(r, 400, "invalid-request", NULL, TTL_EXPECTED);
    return -1;
  }
  *ttl_s = v == 0 ? STORE_TTL_NEVER : v;
  *given = 1;
  return 0;
}

/* parse_ttl over the request body (already checked by requested_model). */
static int requested_ttl(http_req *r, long long *ttl_s, int *given) {
  size_t len = 0;
  const char *body = http_body(r, &len);
  json_t *j = NULL;
  codec_error e;
  if (codec_parse_json(body, len, &j, &e)) {
    http_problem_codec(r, &e, NULL);
    return -1;
  }
  const int rc = parse_ttl(r, j, ttl_s, given);
  json_decref(j);
  return rc;
}

/* Parses {"model": name, "model_version"?} and finds that version (the
 * newest when none is asked for); replies and returns NULL on failure. */
static const model_entry *requested_model(http_req *r) {
  if (handler_require_json(r)) return NULL;
  size_t len = 0;
  const char *body = http_body(r, &len);
  char name[CODEC_ID_MAX + 1], version[CODEC_VERSION_MAX + 1];
  codec_error e;
  if (codec_parse_model_request(body, len, name, version, &e)) {
    http_problem_codec(r, &e, NULL);
    return NULL;
  }
  const model_registry *reg = &http_app(r)->models;
  const model_entry *me = version[0] ? models_find_version(reg, name, version) : models_find(reg, name);
  if (!me && version[0] && models_find(reg, name))
    http_problem(r, 404, "model-not-found", NULL, "model '%s' has no version %s loaded (GET "
                 "/v1/models/%s lists its versions)", name, version, name);
  else if (!me)
    http_problem(r, 404, "model-not-found", NULL, "no model '%s' (GET /v1/models lists them)", name);
  http_set_model(r, me);
  return me;
}

static void reply_created(http_req *r, const store_session *row, int status) {
  char loc[96];
  snprintf(loc, sizeof loc, "/v1/sessions/%s", row->id);
  http_reply_json(r, status, handler_row_json(row, http_app(r)->cfg.session_ttl));
  if (status == 201) http_header_add(r, "Location", loc);
}

void handle_session_create(http_req *r) {
  const model_entry *me = requested_model(r);
  if (!me) return;
  long long ttl_s = 0;
  int ttl_given = 0;
  if (requested_ttl(r, &ttl_s, &ttl_given)) return;
  char id[33], err[256] = "";
  store_session row;
  int created = 0;
  for (int attempt = 0; attempt < 3 && !created; attempt++) {
    if (util_random_hex(id, 16)) {
      http_problem(r, 500, "internal", NULL, "no randomness for a session id");
      return;
    }
    const int rc = sessions_create(http_app(r)->cache, id, me, ttl_s, &row, &created, err,
                                   sizeof err);
    if (rc) {
      handler_store_problem(r, rc, "creating a session: %s", err);
      return;
    }
  }
  if (!created) {
    http_problem(r, 500, "internal", NULL, "could not pick an unused session id");
    return;
  }
  reply_created(r, &row, 201);
}

void handle_session_put(http_req *r) {
  const char *id = http_param(r, 0);
  if (handler_check_id(r, "session id", id)) return;
  const model_entry *me = requested_model(r);
  if (!me) return;
  long long ttl_s = 0;
  int ttl_given = 0;
  if (requested_ttl(r, &ttl_s, &ttl_given)) return;
  char err[256] = "";
  store_session row;
  int created = 0;
  /* Behind HAProxy with a replica down, an id stored nowhere here may be
   * that replica's: creating it would fork it (an empty copy here). */
  int rc = STORE_OK;
  if (handler_ring_degraded(r)) {
    rc = store_session_get(http_app(r)->db, id, &row, err, sizeof err);
    if (rc == STORE_NOTFOUND && handler_owner_unavailable(r, id)) return;
    if (rc != STORE_OK && rc != STORE_NOTFOUND) {
      handler_store_problem(r, rc, "reading session '%s': %s", id, err);
      return;
    }
  }
  rc = sessions_create(http_app(r)->cache, id, me, ttl_s, &row, &created, err, sizeof err);
  if (rc) {
    handler_store_problem(r, rc, "creating session '%s': %s", id, err);
    return;
  }
  if (!created && (strcmp(row.model, me->name) != 0 ||
                   strcmp(row.model_version, me->m->content_hash) != 0)) {
    http_problem(r, 409, "model-mismatch", NULL,
                 "session '%s' exists with model %s version %s; asked for %s version %s", id,
                 row.model, row.model_version, me->name, me->m->content_hash);
    return;
  }
  if (!created && ttl_given && row.ttl_s != ttl_s) { /* a TTL is set at creation only */
    char have[48];
    if (row.ttl_s == STORE_TTL_DEFAULT) snprintf(have, sizeof have, "null (the daemon's TTL)");
    else snprintf(have, sizeof have, "%lld", row.ttl_s == STORE_TTL_NEVER ? 0 : row.ttl_s);
    http_problem(r, 409, "ttl-mismatch", NULL,
                 "session '%s' exists with \"ttl_seconds\" %s; asked for %lld (a session's TTL "
                 "is set when it is created; omit \"ttl_seconds\" to reuse it)", id, have,
                 ttl_s == STORE_TTL_NEVER ? 0 : ttl_s);
    return;
  }
  if (created) {
    reply_created(r, &row, 201);
    return;
  }
  /* Existing: report the live row (steps may be ahead of what was just read
   * if a stream is committing; the cache has the latest). */
  session *s = NULL;
  if (handler_session(r, &s)) return;
  const int lrc = sessions_lock(http_app(r)->cache, s, 0, 0, err, sizeof err);
  if (lrc == SESSIONS_OK) {
    http_reply_json(r, 200, handler_session_json(s, http_app(r)->cfg.session_ttl));
    sessions_unlock(http_app(r)->cache, s);
  } else {
    handler_lock_problem(r, s, lrc, err);
  }
  sessions_release(http_app(r)->cache, s);
}

void handle_session_get(http_req *r) {
  session *s = NULL;
  if (handler_session(r, &s)) return;
  sessions *c = http_app(r)->cache;
  char err[256] = "";
  const int rc = sessions_lock(c, s, 0, 0, err, sizeof err);
  if (rc == SESSIONS_OK) {
    http_reply_json(r, 200, handler_session_json(s, http_app(r)->cfg.session_ttl));
    sessions_unlock(c, s);
  } else {
    handler_lock_problem(r, s, rc, err);
  }
  sessions_release(c, s);
}

void handle_session_delete(http_req *r) {
  session *s = NULL;
  if (handler_session(r, &s)) return;
  sessions *c = http_app(r)->cache;
  char err[256] = "";
  int rc = sessions_lock(c, s, 1, 0, err, sizeof err);
  if (rc == SESSIONS_OK) {
    rc = sessions_delete(c, s, err, sizeof err);
    sessions_unlock(c, s);
    if (rc) handler_store_problem(r, rc, "deleting session '%s': %s", s->id, err);
    else http_reply_empty(r, 204);
    log_at(LOG_LEVEL_INFO, http_rid(r), "session_deleted", "{s:s}", "id", s->id);
  } else {
    handler_lock_problem(r, s, rc, err);
  }
  sessions_release(c, s);
}

/* ---- list ----------------------------------------------------------------- */

#define LIST_DEFAULT 50
#define LIST_MAX 500

void handle_session_list(http_req *r) {
  const char *model = http_query(r, "model"), *limit_s = http_query(r, "limit");
  const char *token = http_query(r, "page_token");
  if (model && handler_check_id(r, "model name", model)) return;
  long limit = LIST_DEFAULT;
  if (limit_s) {
    char *end = NULL;
    limit = strtol(limit_s, &end, 10);
    if (!*limit_s || *end || limit < 1 || limit > LIST_MAX || limit_s[0] == '+' || limit_s[0] == '-') {
      http_problem(r, 400, "invalid-request", NULL, "limit '%.32s' is not an integer in 1..%d "
                   "(default %d)", limit_s, LIST_MAX, LIST_DEFAULT);
      return;
    }
  }
  int64_t after = 0;
  codec_error e;
  if (token && codec_page_token_decode(token, model, &after, &e)) {
    http_problem_codec(r, &e, NULL);
    return;
  }
  /* one row more than the page: whether there is a next page, without a COUNT */
  store_session *rows = malloc(sizeof *rows * (size_t)(limit + 1));
  if (!rows) {
    http_problem(r, 503, "overloaded", NULL, "out of memory");
    return;
  }
  int n = 0;
  char err[256] = "";
  int rc = sessions_list(http_app(r)->cache, model, after, (int)limit + 1, rows, &n, err, sizeof err);
  if (rc) {
    handler_store_problem(r, rc, "listing sessions: %s", err);
    free(rows);
    return;
  }
  json_t *list = json_array();
  for (int i = 0; i < n && i < limit; i++) json_array_append_new(list, handler_row_json(&rows[i], http_app(r)->cfg.session_ttl));
  json_t *j = json_pack("{s:o}", "sessions", list);
  if (n > limit) {
    char next[CODEC_TOKEN_MAX + 1];
    codec_page_token_encode(rows[limit - 1].sid, model, next);
    json_object_set_new(j, "next_page_token", json_string(next));
  }
  free(rows);
  http_reply_json(r, 200, j);
}

/* ---- rebuild -------------------------------------------------------------- */

void handle_session_rebuild(http_req *r) {
  if (handler_require_json(r)) return;
  session *s = NULL;
  if (handler_session(r, &s)) return;
  sessions *c = http_app(r)->cache;
  const model_registry *reg = &http_app(r)->models;
  size_t len = 0;
  const char *body = http_body(r, &len);
  char version[CODEC_VERSION_MAX + 1] = "", err[256] = "";
  json_t *j = NULL;
  codec_error e;
  if (len > 0) { /* an empty body: the newest version */
    if (codec_parse_json(body, len, &j, &e)) {
      http_problem_codec(r, &e, NULL);
      goto done;
    }
    const json_t *jv = json_is_object(j) ? json_object_get(j, "model_version") : NULL;
    if (!json_is_object(j) || (jv && !json_is_null(jv) && !codec_valid_version(json_string_value(jv)))) {
      http_problem(r, 400, "invalid-request", NULL, "expected {\"model_version\": \"<version>\"} "
                   "(1..16 of 0-9 a-f as GET /v1/models/{name} lists them; absent: the newest)");
      goto done;
    }
    if (json_is_string(jv)) snprintf(version, sizeof version, "%s", json_string_value(jv));
  }
  /* the name is fixed for the session's life: read without its lock */
  const model_entry *me = version[0] ? models_find_version(reg, s->model_name, version)
                                     : models_find(reg, s->model_name);
  if (!me) {
    http_problem(r, 404, "model-not-found", NULL, "model '%s' has %s loaded (GET /v1/models/%s "
                 "lists its versions)", s->model_name, version[0] ? "no such version" : "no version",
                 s->model_name);
    goto done;
  }
  /* Exclusive for the whole rebuild: observations and predictions of this
   * session wait for it (and then see the new version); others go on. */
  int rc = sessions_lock(c, s, 1, 0, err, sizeof err);
  if (rc) { /* deleted (404), or its lease could not be renewed (a store failure: 503) */
    handler_lock_problem(r, s, rc, err);
    goto done;
  }
  const gtmsm_config *nc = &me->m->cfg;
  const model_entry *old = s->model ? s->model : models_find(reg, s->model_name);
  if (old && (old->m->cfg.W != nc->W || old->m->cfg.H != nc->H || old->m->cfg.C != nc->C)) {
    http_problem(r, 422, "incompatible-model", NULL, "version %s takes %dx%dx%d frames; the session's "
                 "stored frames are %dx%dx%d", me->m->content_hash, nc->W, nc->H, nc->C,
                 old->m->cfg.W, old->m->cfg.H, old->m->cfg.C);
    sessions_unlock(c, s);
    goto done;
  }
  char was[CODEC_VERSION_MAX + 1];
  snprintf(was, sizeof was, "%s", s->model_version);
  rc = sessions_rebuild(c, s, me, err, sizeof err);
  if (rc == 0) {
    log_at(LOG_LEVEL_INFO, http_rid(r), "session_rebuilt", "{s:s, s:s, s:s, s:I}", "id", s->id,
           "from", was, "to", s->model_version, "steps", (json_int_t)s->steps);
    http_reply_json(r, 200, handler_session_json(s, http_app(r)->cfg.session_ttl));
  } else if (rc == GTMSM_EINVAL || rc == GTMSM_EFORMAT) {
    /* EFORMAT: a stored frame of another size (a model without an old
     * version at hand to compare with) or damaged rows */
    http_problem(r, rc == GTMSM_EINVAL ? 422 : 500, rc == GTMSM_EINVAL ? "incompatible-model"
                 : "corrupt-session", NULL, "rebuilding session '%s' with version %s: %s "
                 "(the session keeps its version %s)", s->id, me->m->content_hash, err, was);
  } else if (rc == STORE_NOTFOUND) {
    http_problem(r, 404, "session-not-found", NULL, "session '%s' was deleted", s->id);
  } else if (rc == GTMSM_ENOMEM) {
    http_problem(r, 503, "overloaded", NULL, "out of memory rebuilding session '%s'", s->id);
  } else {
    handler_store_problem(r, rc, "rebuilding session '%s': %s", s->id, err);
  }
  sessions_unlock(c, s);
done:
  json_decref(j);
  sessions_release(c, s);
}

/* ---- export --------------------------------------------------------------- */

typedef struct {
  const gtmsm_model *m;
  json_t *list;
  int failed;
} export_ctx;

static int export_frame(void *ctx, int64_t t, int action, const uint8_t *frame, size_t len) {
  export_ctx *x = ctx;
  const gtmsm_config *c = &x->m->cfg;
  char *b64 = NULL;
  if (len != (size_t)gtmsm_config_D(c) || action < 0 || action >= c->A ||
      codec_png_base64(frame, c->H, c->W, c->C, &b64)) {
    x->failed = 1;
    return GTMSM_EFORMAT;
  }
  json_array_append_new(x->list, json_pack("{s:I, s:s, s:s}", "t", (json_int_t)t, "action",
                                           c->action_names[action], "frame", b64));
  free(b64);
  return 0;
}

void handle_export(http_req *r) {
  session *s = NULL;
  if (handler_session(r, &s)) return;
  sessions *c = http_app(r)->cache;
  if (handler_lock(r, s, 0)) {
    sessions_release(c, s);
    return;
  }
  const gtmsm_model *m = s->model->m;
  char err[256] = "", created[32], updated[32];
  uint8_t *mem = NULL;
  size_t mem_len = 0;
  char *mem_b64 = NULL;
  export_ctx x = {m, json_array(), 0};
  json_t *state = jsonfmt_f32_array(s->mem->state, m->cfg.S);
  int rc = state ? gtmsm_memory_serialize(s->mem, m->cfg.S, &mem, &mem_len) : GTMSM_ENAN;
  if (!rc) rc = base64_encode(&mem_b64, NULL, mem, mem_len, err, sizeof err);
  if (!rc) rc = sessions_each_frame(c, s, export_frame, &x, err, sizeof err);
  log_format_time(created, s->created_ms);
  log_format_time(updated, s->updated_ms);
  json_t *dump = rc ? NULL
                    : json_pack("{s:s, s:i, s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:i, s:i, s:O, s:s, s:O}",
                                "format", DUMP_FORMAT, "format_version", DUMP_VERSION, "id", s->id,
                                "model", s->model_name, "model_version", s->model_version, "steps",
                                (json_int_t)s->steps, "created_at", created, "updated_at", updated,
                                "frame_width", m->cfg.W, "frame_height", m->cfg.H, "frame_channels",
                                m->cfg.C, "state", state, "memory", mem_b64, "observations", x.list);
  sessions_unlock(c, s);
  if (dump) /* null: the daemon's default TTL wherever it is imported */
    json_object_set_new(dump, "ttl_seconds", s->ttl_s == STORE_TTL_DEFAULT ? json_null()
                        : json_integer(s->ttl_s == STORE_TTL_NEVER ? 0 : s->ttl_s));
  if (dump && s->mem->H > 0) { /* walking models: Delta, also inside "memory" */
    json_t *h = jsonfmt_f32_array(s->mem->hidden, s->mem->H);
    if (!h) {
      json_decref(dump);
      dump = NULL;
      rc = GTMSM_ENAN;
    } else {
      json_object_set_new(dump, "transition_state", h);
    }
  }
  if (dump) http_reply_json(r, 200, dump);
  else if (x.failed) http_problem(r, 500, "corrupt-session", NULL, "exporting session '%s': a "
                                  "stored frame does not match the model", s->id);
  else if (rc == GTMSM_ENAN) http_problem(r, 500, "corrupt-session", NULL, "exporting session '%s': its "
                                          "state is not finite", s->id);
  else handler_store_problem(r, rc, "exporting session '%s': %s", s->id, err);
  sessions_release(c, s);
  json_decref(state);
  json_decref(x.list);
  free(mem);
  free(mem_b64);
}

/* ---- import --------------------------------------------------------------- */

void handle_import(http_req *r) {
  if (handler_require_json(r)) return;
  app *a = http_app(r);
  size_t len = 0;
  const char *body = http_body(r, &len);
  codec_error e;
  json_t *j = NULL;
  gtmsm_memory *mem = NULL;
  uint8_t *mem_bytes = NULL, *frames = NULL;
  int *actions = NULL;
  char err[256] = "";
  if (codec_parse_json(body, len, &j, &e)) {
    http_problem_codec(r, &e, NULL);
    goto done;
  }
  const json_t *jf = json_object_get(j, "format"), *jv = json_object_get(j, "format_version");
  if (!json_is_object(j) || !json_is_string(jf) || strcmp(json_string_value(jf), DUMP_FORMAT) != 0 ||
      !json_is_integer(jv) || json_integer_value(jv) < DUMP_VERSION_MIN ||
      json_integer_value(jv) > DUMP_VERSION) {
    http_problem(r, 400, "invalid-request", NULL,
                 "expected a session dump {\"format\": \"%s\", \"format_version\": %d..%d, ...} "
                 "as GET /v1/sessions/{id}/export writes it", DUMP_FORMAT, DUMP_VERSION_MIN,
                 DUMP_VERSION);
    goto done;
  }
  long long ttl_s = STORE_TTL_DEFAULT; /* version 1 has none: the daemon's default */
  int ttl_given = 0;
  if (parse_ttl(r, j, &ttl_s, &ttl_given)) goto done;
  const char *id = http_query(r, "id");
  if (!id) id = json_string_value(json_object_get(j, "id"));
  if (handler_check_id(r, "session id", id)) goto done;
  const char *model = json_string_value(json_object_get(j, "model"));
  const char *version = json_string_value(json_object_get(j, "model_version"));
  const char *mem_b64 = json_string_value(json_object_get(j, "memory"));
  const json_t *jsteps = json_object_get(j, "steps"), *jobs = json_object_get(j, "observations");
  if (!model || !version || !mem_b64 || !json_is_integer(jsteps) || !json_is_array(jobs)) {
    http_problem(r, 400, "invalid-request", NULL, "a dump needs string \"model\", "
                 "\"model_version\", \"memory\", integer \"steps\" and array \"observations\"");
    goto done;
  }
  const model_entry *me = models_find(&a->models, model);
  if (!me) {
    http_problem(r, 404, "model-not-found", NULL, "no model '%.64s' on this replica", model);
    goto done;
  }
  http_set_model(r, me);
  const model_entry *exact = models_find_version(&a->models, model, version);
  if (!exact) {
    http_problem(r, 409, "model-version", NULL, "the dump is for %s version %.20s; this replica "
                 "does not hold that version (its newest is %s)", me->name, version,
                 me->m->content_hash);
    http_header_add(r, "X-Model-Version", me->m->content_hash);
    goto done;
  }
  me = exact;
  const gtmsm_model *m = me->m;
  size_t mlen = 0;
  if (base64_decode(&mem_bytes, &mlen, mem_b64, strlen(mem_b64), err, sizeof err)) {
    http_problem(r, 400, "bad-base64", NULL, "\"memory\" is not valid base64: %s", err);
    goto done;
  }
  if (gtmsm_memory_deserialize(m, mem_bytes, mlen, &mem, err, sizeof err)) {
    http_problem(r, 422, "bad-dump", NULL, "\"memory\" does not fit the model: %s", err);
    goto done;
  }
  const size_t n = json_array_size(jobs), D = (size_t)gtmsm_config_D(&m->cfg);
  const long long steps = json_integer_value(jsteps);
  if ((long long)n != steps || mem->steps != steps || steps > a->cfg.max_entries) {
    http_problem(r, 422, "bad-dump", NULL, "steps %lld, %zu observations and a memory of %ld steps "
                 "must agree (and stay within --max-entries %lld)", steps, n, mem->steps,
                 a->cfg.max_entries);
    goto done;
  }
  frames = malloc(D * (n ? n : 1));
  actions = malloc(sizeof(int) * (n ? n : 1));
  if (!frames || !actions) {
    http_problem(r, 503, "overloaded", NULL, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    char where[48];
    int64_t t = 0;
    snprintf(where, sizeof where, "observations[%zu]", i);
    if (codec_parse_observation(m, json_array_get(jobs, i), where, &t, &actions[i], frames + i * D, &e)) {
      http_problem_codec(r, &e, NULL);
      goto done;
    }
    if (t != (int64_t)i) {
      http_problem(r, 422, "bad-dump", NULL, "%s has t=%lld; a dump lists t = 0, 1, 2, ... in order",
                   where, (long long)t);
      goto done;
    }
  }
  store_session here;
  if (handler_ring_degraded(r) && store_session_get(a->db, id, &here, err, sizeof err) ==
      STORE_NOTFOUND && handler_owner_unavailable(r, id))
    goto done; /* maybe the down replica's session: importing it here would fork it */
  store_session meta = {0};
  snprintf(meta.id, sizeof meta.id, "%s", id);
  snprintf(meta.model, sizeof meta.model, "%s", me->name);
  snprintf(meta.model_version, sizeof meta.model_version, "%s", m->content_hash);
  meta.steps = steps;
  meta.ttl_s = ttl_s;
  long long now = util_now_ms();
  if (codec_parse_time(json_string_value(json_object_get(j, "created_at")), &meta.created_ms))
    meta.created_ms = now;
  if (codec_parse_time(json_string_value(json_object_get(j, "updated_at")), &meta.updated_ms))
    meta.updated_ms = now;
  int rc = sessions_import(a->cache, &meta, mem, actions, frames, (int64_t)n, err, sizeof err);
  if (rc == SESSIONS_EXISTS) {
    http_problem(r, 409, "session-exists", NULL, "session '%s' already exists here; delete it first "
                 "or import with ?id=<another id>", id);
  } else if (rc) {
    handler_store_problem(r, rc, "importing session '%s': %s", id, err);
  } else {
    log_at(LOG_LEVEL_INFO, http_rid(r), "session_imported", "{s:s, s:I}", "id", id, "steps",
           (json_int_t)steps);
    reply_created(r, &meta, 201);
  }
done:
  gtmsm_memory_free(mem);
  free(mem_bytes);
  free(frames);
  free(actions);
  json_decref(j);
}
