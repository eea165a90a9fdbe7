/* Health (Open Inference Protocol paths), Prometheus metrics and models. */
#include <string.h>

#include "handlers.h"

void handle_live(http_req *r) { http_reply_json(r, 200, json_pack("{s:s}", "status", "live")); }

void handle_ready(http_req *r) {
  app *a = http_app(r);
  char err[300] = "";
  if (atomic_load(&a->ready) && store_writable(a->db, 1, err, sizeof err) != 0) {
    /* Writes would fail: a balancer should send them elsewhere until they
     * can succeed (the store probes again at most once a second). */
    http_problem(r, 503, "not-ready", NULL, "%s", err);
    return;
  }
  if (atomic_load(&a->ready)) {
    http_reply_json(r, 200, json_pack("{s:s, s:i}", "status", "ready", "models", models_names(&a->models)));
    return;
  }
  if (atomic_load(&a->stopping))
    http_problem(r, 503, "not-ready", NULL, "the server is shutting down");
  else
    http_problem(r, 503, "not-ready", NULL, "no model loaded from %.200s: put a *.gtm file there and "
                 "send SIGHUP (or restart)", a->cfg.models);
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
  json_t *j = models_to_json(me); /* the newest version, and every version loaded */
  json_object_set_new(j, "versions", models_versions_json(&a->models, name));
  http_reply_json(r, 200, j);
}
