/* The HTTP glue of gtmsmd on libmicrohttpd: the per-request state, the
 * request lifecycle (first callback -> body chunks -> final callback ->
 * completion), replies, the one problem+json writer, request ids, auth, the
 * access log and request metrics. Handlers see only this interface; nothing
 * outside http.c includes microhttpd.h.
 *
 * Lifecycle of a request, as handlers see it (routes.h has the table):
 *   start(r)       on the first callback, once the route matched, auth passed
 *                  and Content-Length is within the limit; may reply early.
 *   data(r, d, n)  (stream routes) for each body chunk as it arrives.
 *   end(r)         when the body is complete; must reply unless it did before.
 * A reply made while the body is still arriving (an error in a stream) is sent
 * once the body has been read (libmicrohttpd 0.9.75 cannot answer mid-body);
 * the rest of the body is discarded unparsed, and a client that keeps sending
 * far past the limit is disconnected. */
#ifndef GTMSMD_HTTP_H
#define GTMSMD_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "codec.h"
#include "conns.h"

typedef struct http_req http_req;

/* ---- the server -------------------------------------------------------- */

typedef struct http_server http_server;

/* Starts listening on a->cfg.listen with a->cfg.threads workers; *port gets
 * the bound port. a is borrowed for the server's life. */
int http_start(http_server **out, app *a, int *port, char *err, size_t errlen);
/* Graceful stop: stops accepting, waits up to grace_seconds for in-flight
 * requests, then closes every connection and frees the server. */
void http_stop(http_server *s, double grace_seconds);

/* The connection table's counters (for /metrics). */
void http_conns_stats(const http_req *r, conns_stats *out);

/* ---- request accessors (all results borrowed, valid during the request) -- */

app *http_app(const http_req *r);
const char *http_rid(const http_req *r);
const char *http_path(const http_req *r);
/* The i-th {param} of the matched route pattern. */
const char *http_param(const http_req *r, int i);
const char *http_header(const http_req *r, const char *name);
const char *http_query(const http_req *r, const char *name);
/* The media type of Content-Type without parameters, lowercased ("" if none). */
const char *http_content_type(const http_req *r);
/* The buffered body (buffer routes, in end()); *len may be NULL. */
const char *http_body(const http_req *r, size_t *len);
/* Appends to the request's body buffer (stream routes that buffer some media
 * types). Returns 0, or non-zero after replying 413/503. */
int http_body_append(http_req *r, const char *data, size_t len);
/* Handler state: freed with free_fn (may be NULL) in the completion callback. */
void http_set_state(http_req *r, void *state, void (*free_fn)(void *));
void *http_state(const http_req *r);
/* The request concerns model e (borrowed, an entry of the app's registry;
 * others are ignored): its name labels the request's metrics. */
void http_set_model(http_req *r, const model_entry *e);

/* ---- waiting for another thread ----------------------------------------- */

/* In data() or end(): once the callback returns, the request waits off the
 * event loop (its worker serves other connections meanwhile) until
 * http_resume. Then resumed(r) (may be NULL) runs on the worker before
 * anything else, and the next callback comes: data() with the next chunk,
 * or end() again if the body was complete (an end() that suspended replies
 * in a later call). */
void http_suspend(http_req *r, void (*resumed)(http_req *r));
/* From any thread, once for each http_suspend; r may go right after. Call
 * http_suspend before starting what calls http_resume. */
void http_resume(http_req *r);
/* Takes back an http_suspend (in the same callback) whose http_resume will
 * not come. */
void http_unsuspend(http_req *r);

/* ---- replies: the first one counts, later ones are ignored -------------- */

int http_replied(const http_req *r);
/* body (stolen) as application/json. */
void http_reply_json(http_req *r, int status, json_t *body);
/* buf (len bytes, taken: freed with free()) as ctype. */
void http_reply_bytes(http_req *r, int status, const char *ctype, void *buf, size_t len);
void http_reply_empty(http_req *r, int status);
/* buf (len bytes, borrowed: static data that outlives the daemon) as ctype. */
void http_reply_static(http_req *r, int status, const char *ctype, const void *buf, size_t len);
/* A chunked reply produced by fn: it fills buf (max bytes) and returns the
 * count, 0 at the end, or -1 on error (the connection is then cut). cls is
 * freed with free_fn (may be NULL) when the reply is done. */
typedef long (*http_stream_fn)(void *cls, char *buf, size_t max);
void http_reply_stream(http_req *r, int status, const char *ctype, http_stream_fn fn, void *cls,
                       void (*free_fn)(void *));
/* Adds a header to the reply made (no-op before a reply). Both borrowed. */
void http_header_add(http_req *r, const char *name, const char *value);
/* Replaces header name (every earlier value of it) with value. */
void http_header_set(http_req *r, const char *name, const char *value);

/* The one writer of errors: application/problem+json {"type":
 * "urn:gtmsm:problem:<slug>", "title", "status", "detail", "instance",
 * "request_id", ...ext members}. The detail is formatted, then stripped of
 * control and non-ASCII bytes and truncated, so client text quoted in it is
 * safe. ext (stolen, may be NULL) adds members. 401 adds WWW-Authenticate,
 * 503 adds Retry-After. */
void http_problem(http_req *r, int status, const char *slug, json_t *ext, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* http_problem from a codec_error (adds "limit" when set). */
void http_problem_codec(http_req *r, const codec_error *e, json_t *ext);

#endif
