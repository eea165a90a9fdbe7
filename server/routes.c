/* The routing table and the path matcher (see routes.h). */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "handlers.h"

static const route ROUTES[] = {
    {"GET", "/", "web_index", ROUTE_BODY_NONE, 1, NULL, NULL, handle_web_index, NULL},
    {"GET", "/web/{file}", "web_asset", ROUTE_BODY_NONE, 1, NULL, NULL, handle_web_asset, NULL},
    {"GET", "/openapi.yaml", "openapi", ROUTE_BODY_NONE, 1, NULL, NULL, handle_openapi, NULL},
    {"GET", "/v2/health/live", "health_live", ROUTE_BODY_NONE, 1, NULL, NULL, handle_live, NULL},
    {"GET", "/v2/health/ready", "health_ready", ROUTE_BODY_NONE, 1, NULL, NULL, handle_ready, NULL},
    {"GET", "/v2", "oip_server", ROUTE_BODY_NONE, 0, NULL, NULL, handle_v2_server, NULL},
    {"GET", "/v2/models/{name}", "oip_model", ROUTE_BODY_NONE, 0, NULL, NULL, handle_v2_model, NULL},
    {"GET", "/v2/models/{name}/ready", "oip_model_ready", ROUTE_BODY_NONE, 0, NULL, NULL,
     handle_v2_model_ready, NULL},
    {"GET", "/v2/models/{name}/versions/{version}", "oip_model_version", ROUTE_BODY_NONE, 0, NULL,
     NULL, handle_v2_model_version, NULL},
    {"GET", "/v2/models/{name}/versions/{version}/ready", "oip_model_version_ready",
     ROUTE_BODY_NONE, 0, NULL, NULL, handle_v2_model_version_ready, NULL},
    {"GET", "/metrics", "metrics", ROUTE_BODY_NONE, 0, NULL, NULL, handle_metrics, NULL},
    {"GET", "/v1/models", "models_list", ROUTE_BODY_NONE, 0, NULL, NULL, handle_models, NULL},
    {"GET", "/v1/models/{name}", "model_get", ROUTE_BODY_NONE, 0, NULL, NULL, handle_model, NULL},
    {"GET", "/v1/sessions", "session_list", ROUTE_BODY_NONE, 0, NULL, NULL, handle_session_list,
     NULL},
    {"POST", "/v1/sessions", "session_create", ROUTE_BODY_BUFFER, 0, NULL, NULL,
     handle_session_create, NULL},
    {"POST", "/v1/sessions/import", "session_import", ROUTE_BODY_BUFFER, 0, NULL, NULL,
     handle_import, NULL},
    {"PUT", "/v1/sessions/{id}", "session_put", ROUTE_BODY_BUFFER, 0, NULL, NULL,
     handle_session_put, NULL},
    {"GET", "/v1/sessions/{id}", "session_get", ROUTE_BODY_NONE, 0, NULL, NULL, handle_session_get,
     NULL},
    {"DELETE", "/v1/sessions/{id}", "session_delete", ROUTE_BODY_NONE, 0, NULL, NULL,
     handle_session_delete, NULL},
    {"POST", "/v1/sessions/{id}/observations", "observations", ROUTE_BODY_STREAM, 0, observe_start,
     observe_data, observe_end, observe_progress},
    {"POST", "/v1/sessions/{id}/predictions", "predictions", ROUTE_BODY_BUFFER, 0, NULL, NULL,
     handle_predict, NULL},
    {"POST", "/v1/sessions/{id}/rebuild", "session_rebuild", ROUTE_BODY_BUFFER, 0, NULL, NULL,
     handle_session_rebuild, NULL},
    {"GET", "/v1/sessions/{id}/export", "session_export", ROUTE_BODY_NONE, 0, NULL, NULL,
     handle_export, NULL},
    {"GET", "/v1/demo/worlds", "demo_worlds", ROUTE_BODY_NONE, 0, NULL, NULL, handle_demo_worlds,
     NULL},
    {"POST", "/v1/demo/episodes", "demo_episode", ROUTE_BODY_BUFFER, 0, NULL, NULL,
     handle_demo_episode, NULL},
    {"POST", "/v1/demo/episodes/step", "demo_step", ROUTE_BODY_BUFFER, 0, NULL, NULL,
     handle_demo_step, NULL},
};
#define N_ROUTES ((int)(sizeof ROUTES / sizeof ROUTES[0]))

int routes_count(void) { return N_ROUTES; }
const route *routes_get(int i) { return i >= 0 && i < N_ROUTES ? &ROUTES[i] : NULL; }
const char *routes_name(int i) { return i >= 0 && i < N_ROUTES ? ROUTES[i].name : "unmatched"; }

/* Matches path against pattern segment by segment, capturing {params}. */
static int match_path(const char *pattern, const char *path,
                      char params[ROUTES_MAX_PARAMS][ROUTES_PARAM_MAX + 1]) {
  int np = 0;
  while (*pattern && *path) {
    if (*pattern != '/' || *path != '/') return 0;
    pattern++;
    path++;
    size_t plen = strcspn(pattern, "/"), slen = strcspn(path, "/");
    if (pattern[0] == '{') {
      if (slen == 0 || np >= ROUTES_MAX_PARAMS) return 0;
      size_t n = slen > ROUTES_PARAM_MAX ? ROUTES_PARAM_MAX : slen;
      memcpy(params[np], path, n);
      params[np][n] = '\0';
      np++;
    } else if (plen != slen || strncmp(pattern, path, plen) != 0) {
      return 0;
    }
    pattern += plen;
    path += slen;
  }
  return *pattern == '\0' && *path == '\0';
}

int routes_match(const char *method, const char *path,
                 char params[ROUTES_MAX_PARAMS][ROUTES_PARAM_MAX + 1], char *allow,
                 size_t allowlen) {
  int path_matched = 0;
  size_t alen = 0;
  /* HEAD is GET without the body (RFC 9110 9.3.2), so every GET route
   * answers it here, through the GET handler: status and headers are the
   * same by construction, and libmicrohttpd sends the headers only. */
  const int head = strcmp(method, "HEAD") == 0;
  if (allowlen) allow[0] = '\0';
  for (int i = 0; i < N_ROUTES; i++) {
    if (!match_path(ROUTES[i].pattern, path, params)) continue;
    const int get = strcmp(ROUTES[i].method, "GET") == 0;
    if (strcmp(ROUTES[i].method, method) == 0 || (head && get)) return i;
    path_matched = 1;
    if (alen + 16 < allowlen)
      alen += (size_t)snprintf(allow + alen, allowlen - alen, "%s%s%s", alen ? ", " : "",
                               ROUTES[i].method, get ? ", HEAD" : "");
  }
  return path_matched ? -2 : -1;
}
