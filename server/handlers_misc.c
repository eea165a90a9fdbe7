/* Health and metadata on the Open Inference Protocol's paths (KServe v2:
 * GET /v2, /v2/models/{name}[/versions/{version}][/ready]), Prometheus
 * metrics and models. gtmsmd has no /v2/models/{name}/infer: a prediction
 * needs a session's memory, which the protocol's stateless tensors do not
 * carry; the metadata lets OIP tooling (probes, catalogues) see the models. */
#include <stdio.h>
#include <string.h>

#include "handlers.h"

void handle_live(http_req *r) { http_reply_json(r, 200, json_pack("{s:s}", "status", "live")); }

/* Replies 503 not-ready and returns 1 unless the server is ready and the
 * store writable (writes would fail: a balancer should send them elsewhere
 * until they can succeed; the store probes again at most once a second).
 * model: the model a per-model probe asked about, or NULL. */
static int reply_not_ready(http_req *r, const char *model) {
  app *a = http_app(r);
  char err[300] = "";
  if (!atomic_load(&a->ready)) {
    if (atomic_load(&a->stopping))
      http_problem(r, 503, "not-ready", NULL, "the server is shutting down");
    else if (model)
      http_problem(r, 503, "not-ready", NULL, "model '%s' is loaded but the server is not ready", model);
    else
      http_problem(r, 503, "not-ready", NULL, "no model loaded from %.200s: put a *.gtm file there and "
                   "send SIGHUP (or restart)", a->cfg.models);
    return 1;
  }
  if (store_writable(a->db, 1, err, sizeof err) != 0) {
    http_problem(r, 503, "not-ready", NULL, "%s", err);
    return 1;
  }
  return 0;
}

void handle_ready(http_req *r) {
  if (reply_not_ready(r, NULL)) return;
  http_reply_json(r, 200, json_pack("{s:s, s:i}", "status", "ready", "models", models_names(&http_app(r)->models)));
}

void handle_metrics(http_req *r) {
  app *a = http_app(r);
  sessions_stats st;
  sessions_get_stats(a->cache, &st);
  int64_t stored = 0;
  sessions_stored(a->cache, &stored);
  metrics_gauges g = {.sessions_hot = st.hot, .sessions_cached = st.entries,
                      .sessions_stored = stored, .cache_bytes = st.bytes,
                      .session_loads = st.loads, .session_evictions = st.evictions,
                      .sessions_expired = st.expired,
                      .inflight = atomic_load(&a->inflight), .models = models_count(&a->models),
                      .ready = atomic_load(&a->ready) && store_writable(a->db, 0, NULL, 0) == 0,
                      .uploads = atomic_load(&a->uploads)};
  conns_stats cs;
  http_conns_stats(r, &cs);
  g.connections = cs.open;
  g.conns_refused = cs.refused;
  g.conns_evicted = cs.evicted;
  g.conns_head_timeouts = cs.head_timeouts;
  g.conns_body_timeouts = cs.body_timeouts;
  size_t len = 0;
  char *text = metrics_render(a->metrics, &g, &len);
  if (!text) {
    http_problem(r, 500, "internal", NULL, "out of memory rendering metrics");
    return;
  }
  http_reply_bytes(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

void handle_models(http_req *r) {
  app *a = http_app(r);
  http_reply_json(r, 200, json_pack("{s:o}", "models", models_list_json(&a->models)));
}

void handle_model(http_req *r) {
  app *a = http_app(r);
  const char *name = http_param(r, 0);
  if (handler_check_id(r, "model name", name)) return;
  const model_entry *me = models_find(&a->models, name);
  if (!me) {
    http_problem(r, 404, "model-not-found", NULL, "no model '%s' (GET /v1/models lists them)", name);
    return;
  }
  http_set_model(r, me);
  json_t *j = models_to_json(me); /* the newest version, and every version loaded */
  json_object_set_new(j, "versions", models_versions_json(&a->models, name));
  http_reply_json(r, 200, j);
}

/* ---- Open Inference Protocol (KServe v2) metadata ------------------------ */

void handle_v2_server(http_req *r) {
  http_reply_json(r, 200, json_pack("{s:s, s:s, s:[]}", "name", "gtmsmd", "version", GTMSM_VERSION,
                                    "extensions"));
}

/* The model named by {name} (and, when the route has it, of version
 * {version}), or NULL after replying 400 bad-id or 404 model-not-found. The
 * 404 also carries OIP's "error" member, for clients of that protocol. */
static const model_entry *v2_model(http_req *r, int versioned) {
  app *a = http_app(r);
  const char *name = http_param(r, 0);
  if (handler_check_id(r, "model name", name)) return NULL;
  const model_entry *me = models_find(&a->models, name);
  http_set_model(r, me); /* a wrong version still concerns the model */
  if (me && versioned && strcmp(http_param(r, 1), me->m->content_hash) != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "model '%s' has no version '%.32s'", name, http_param(r, 1));
    http_problem(r, 404, "model-not-found", json_pack("{s:s}", "error", msg),
                 "%s; the version served is %s", msg, me->m->content_hash);
    return NULL;
  }
  if (!me) {
    char msg[160];
    snprintf(msg, sizeof msg, "no model '%s'", name);
    http_problem(r, 404, "model-not-found", json_pack("{s:s}", "error", msg),
                 "%s (GET /v1/models lists them)", msg);
    return NULL;
  }
  return me;
}

/* One tensor's metadata: name, datatype, shape (-1: any length). New reference. */
static json_t *tensor(const char *name, const char *datatype, json_t *shape) {
  return json_pack("{s:s, s:s, s:o}", "name", name, "datatype", datatype, "shape", shape);
}

static void model_metadata(http_req *r, int versioned) {
  const model_entry *me = v2_model(r, versioned);
  if (!me) return;
  const gtmsm_config *c = &me->m->cfg;
  /* Observations are frames (T, H, W, C) with their actions (T) by name;
   * predictions take actions (T) and give frames and state means (T, S). */
  json_t *inputs = json_pack("[o, o]",
                             tensor("frames", "UINT8", json_pack("[i, i, i, i]", -1, c->H, c->W, c->C)),
                             tensor("actions", "BYTES", json_pack("[i]", -1)));
  json_t *outputs = json_pack("[o, o]", tensor("predicted_frames", "UINT8",
                                               json_pack("[i, i, i, i]", -1, c->H, c->W, c->C)),
                              tensor("states", "FP32", json_pack("[i, i]", -1, c->S)));
  http_reply_json(r, 200, json_pack("{s:s, s:[s], s:s, s:o, s:o}", "name", me->name, "versions",
                                    me->m->content_hash, "platform", "gtmsm_gtm", "inputs", inputs,
                                    "outputs", outputs));
}

void handle_v2_model(http_req *r) { model_metadata(r, 0); }
void handle_v2_model_version(http_req *r) { model_metadata(r, 1); }

static void model_ready(http_req *r, int versioned) {
  const model_entry *me = v2_model(r, versioned);
  if (!me || reply_not_ready(r, me->name)) return;
  http_reply_json(r, 200, json_pack("{s:s, s:b}", "name", me->name, "ready", 1));
}

void handle_v2_model_ready(http_req *r) { model_ready(r, 0); }
void handle_v2_model_version_ready(http_req *r) { model_ready(r, 1); }
