/* Request handlers, one group per file (handlers_*.c), wired in routes.c.
 * Each follows the lifecycle in http.h and replies through http.h only; they
 * reach sessions and the store through sessions.h, models through models.h
 * and parsing through codec.h. */
#ifndef GTMSMD_HANDLERS_H
#define GTMSMD_HANDLERS_H

#include <jansson.h>

#include "http.h"

/* handlers_misc.c: health, metrics, models, Open Inference Protocol metadata */
void handle_live(http_req *r);
void handle_ready(http_req *r);
void handle_metrics(http_req *r);
void handle_models(http_req *r);
void handle_model(http_req *r);
void handle_v2_server(http_req *r);
void handle_v2_model(http_req *r);
void handle_v2_model_version(http_req *r);
void handle_v2_model_ready(http_req *r);
void handle_v2_model_version_ready(http_req *r);

/* handlers_sessions.c: create, put, get, delete, list, rebuild, export, import */
void handle_session_create(http_req *r);
void handle_session_put(http_req *r);
void handle_session_get(http_req *r);
void handle_session_delete(http_req *r);
void handle_session_list(http_req *r);
void handle_session_rebuild(http_req *r);
void handle_export(http_req *r);
void handle_import(http_req *r);

/* handlers_observe.c: streamed, JSON and PNG observations */
void observe_start(http_req *r);
void observe_data(http_req *r, const char *d, size_t n);
void observe_end(http_req *r);
json_t *observe_progress(http_req *r);

/* handlers_predict.c: predictions as JSON, a PNG film strip or NDJSON */
void handle_predict(http_req *r);

/* handlers_web.c: the web viewer's page and files, the API contract (embedded) */
void handle_web_index(http_req *r);
void handle_web_asset(http_req *r);
void handle_openapi(http_req *r);

/* handlers_demo.c: the simulators' worlds and episodes for the viewer */
void handle_demo_worlds(http_req *r);
void handle_demo_episode(http_req *r);
void handle_demo_step(http_req *r);

/* handlers_common.c */
/* Non-zero (after replying 400 bad-id) unless id (borrowed, may be NULL) is a
 * valid id; what names it in the detail ("session id", "model name"). A
 * percent-encoded id gets its own detail: ids are taken as sent. */
int handler_check_id(http_req *r, const char *what, const char *id);
/* For a session id this replica does not store: non-zero (after replying
 * 503 owner-unavailable with Retry-After) when its store is not shared
 * (SQLite) and HAProxy's X-Gtmsm-Ring header says a replica is down, so the
 * session may be that replica's: it must be neither created (a fork) nor
 * denied (404) here. 0 otherwise (docs/DEPLOY.md). */
int handler_owner_unavailable(http_req *r, const char *id);
/* 1 when the case above applies to r (before knowing whether the id is stored). */
int handler_ring_degraded(http_req *r);
/* Validates the {id} parameter, acquires the session into *out and returns 0;
 * otherwise replies (400 bad-id, 404, 503 as above) and returns non-zero. */
int handler_session(http_req *r, session **out);
/* Locks s (shared or exclusive, loading its memory); otherwise replies (404,
 * 409 model-version, 500 corrupt-session, or a store failure as below) and
 * returns non-zero. */
int handler_lock(http_req *r, session *s, int write);
/* Replies the problem of a failed sessions_lock(s) that returned rc (with
 * its message err): 404, 409 model-version, 500 corrupt-session, 503
 * session-leased-elsewhere or a store failure. */
void handler_lock_problem(http_req *r, session *s, int rc, const char *err);
/* 503 session-leased-elsewhere for session id with Retry-After from wait_ms. */
void handler_leased_problem(http_req *r, const char *id, long long wait_ms);
/* The session object of the API (lock held or a fresh row); ttl_s is
 * --session-ttl. A session with its own TTL carries "ttl_seconds" (0:
 * never) and expires by it; "expires_at" is there when the TTL that applies
 * is > 0. New reference. */
json_t *handler_session_json(const session *s, long long ttl_s);
json_t *handler_row_json(const store_session *row, long long ttl_s);
/* The status of a failed sessions_ or store_ call rc and its slug (static):
 * 507 insufficient-storage (a full disk), 503 storage-unavailable (a database
 * that cannot be written or read now; session-leased-elsewhere for a fenced
 * append), else 500 internal. */
int handler_store_status(int rc, const char **slug);
/* Replies that problem with the formatted detail. */
void handler_store_problem(http_req *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Non-zero (after replying 415) unless the request's Content-Type is JSON or absent. */
int handler_require_json(http_req *r);

#endif
