/* libmicrohttpd glue: daemon start/stop, the access handler driving each
 * request's lifecycle, the completion callback (access log, metrics, freeing
 * the per-request state), replies and the problem+json writer (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "conns.h"
#include "jsonfmt.h"
#include "log.h"
#include "model/par.h"
#include "routes.h"
#include "signals.h"
#include "util.h"

#define RID_MAX 128
#define PATH_LOG_MAX 256
/* Query parameters per request: the API takes at most two, and
 * libmicrohttpd 0.9.75 hangs the connection when thousands of them overflow
 * its per-connection memory (see on_uri). */
#define QUERY_PARAMS_MAX 64
/* A request whose body is chunked or longer than this is an upload: uploads
 * may not take the in-flight slots kept for short requests (--reserve). */
#define UPLOAD_MIN_BYTES (64 * 1024)

struct http_req {
  app *app;
  http_server *srv;
  struct MHD_Connection *conn;
  conn_slot *slot;    /* the connection's entry in the connection table (may be NULL) */
  const char *method; /* MHD's, valid for the request */
  const char *url;    /* MHD's raw path (never percent-decoded), valid for the request */
  char path[PATH_LOG_MAX + 4]; /* the raw path for logs and "instance": printable ASCII,
                                * other bytes as %XX, long ones cut with "..." */
  char method_log[16];         /* the method, same treatment */
  char rid[RID_MAX + 1];
  int started;                 /* the access handler saw the request (counted in flight) */
  int close;                   /* reply with Connection: close */
  unsigned query_params;       /* counted in the raw target */
  long bad_offset;             /* first byte of the target outside printable ASCII, or -1 */
  unsigned char bad_byte;
  uintptr_t target_end;        /* where the target's C string ends (see check_framing) */
  int has_body;                /* a body follows the head (chunked or Content-Length > 0) */
  int upload;                  /* a long body: chunked or over UPLOAD_MIN_BYTES */
  int upload_counted;          /* counted in app->uploads */
  int route;          /* index, or routes_count() when unmatched */
  int model;          /* the loaded model the request concerns (metrics label), or -1 */
  char params[ROUTES_MAX_PARAMS][ROUTES_PARAM_MAX + 1];
  char ctype[128];
  double t0;
  unsigned long long bytes_in, bytes_out;
  /* body buffer */
  char *body;
  size_t body_len, body_cap;
  /* reply */
  struct MHD_Response *resp;
  int status;
  int queued;
  /* handler state */
  void *state;
  void (*state_free)(void *);
  atomic_int susp; /* http_suspend's state: SUSP_* */
  void (*resumed)(http_req *r);
  int parked;      /* counted in srv->parked */
};

/* http_suspend / http_resume: the handler asks to wait (ASKED), its callback
 * returns and the connection is suspended (PARKED); http_resume from another
 * thread resumes a PARKED one, or marks an ASKED one (EARLY: resumed before
 * libmicrohttpd suspended it), which the worker then resumes itself. */
enum { SUSP_NONE, SUSP_ASKED, SUSP_PARKED, SUSP_EARLY };

struct http_server {
  struct MHD_Daemon *d;
  app *app;
  conns *conns;
  int cpus; /* par_cpus(), read at start */
  atomic_long parked; /* requests suspended (libmicrohttpd may not stop while any is) */
};

/* ---- accessors ----------------------------------------------------------- */

app *http_app(const http_req *r) { return r->app; }
const char *http_rid(const http_req *r) { return r->rid; }
const char *http_path(const http_req *r) { return r->path; }
const char *http_param(const http_req *r, int i) {
  return i >= 0 && i < ROUTES_MAX_PARAMS ? r->params[i] : "";
}
const char *http_header(const http_req *r, const char *name) {
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}
const char *http_query(const http_req *r, const char *name) {
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}
const char *http_content_type(const http_req *r) { return r->ctype; }
const char *http_body(const http_req *r, size_t *len) {
  if (len) *len = r->body_len;
  return r->body ? r->body : "";
}
void http_set_state(http_req *r, void *state, void (*free_fn)(void *)) {
  r->state = state;
  r->state_free = free_fn;
}
void *http_state(const http_req *r) { return r->state; }
void http_set_model(http_req *r, const model_entry *e) {
  if (!e) return;
  const model_registry *m = &r->app->models;
  const int n = models_count(m);
  for (int i = 0; i < n; i++) /* the first entry of the name: one label for all its versions */
    if (strcmp(m->v[i]->name, e->name) == 0) {
      r->model = i;
      return;
    }
}
int http_replied(const http_req *r) { return r->resp != NULL || r->queued; }

/* ---- replies ------------------------------------------------------------- */

static void set_reply(http_req *r, int status, struct MHD_Response *resp, const char *ctype,
                      size_t len) {
  if (!resp) { /* out of memory: the connection is closed without a reply */
    r->status = 500;
    return;
  }
  if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  r->resp = resp;
  r->status = status;
  r->bytes_out = len;
}

void http_reply_bytes(http_req *r, int status, const char *ctype, void *buf, size_t len) {
  if (http_replied(r)) {
    free(buf);
    return;
  }
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, buf ? buf : (void *)"", buf ? MHD_RESPMEM_MUST_FREE
                                                                       : MHD_RESPMEM_PERSISTENT);
  if (!resp) free(buf);
  set_reply(r, status, resp, ctype, len);
}

static void reply_json_type(http_req *r, int status, json_t *body, const char *ctype) {
  if (http_replied(r)) {
    json_decref(body);
    return;
  }
  char *s = body ? jsonfmt_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(body);
  if (!s) {
    static const char OOM[] = "{\"type\":\"urn:gtmsm:problem:internal\",\"title\":\"Internal "
                              "Server Error\",\"status\":500,\"detail\":\"out of memory\"}";
    set_reply(r, 500,
              MHD_create_response_from_buffer(sizeof OOM - 1, (void *)OOM, MHD_RESPMEM_PERSISTENT),
              "application/problem+json", sizeof OOM - 1);
    return;
  }
  http_reply_bytes(r, status, ctype, s, strlen(s));
}

void http_reply_json(http_req *r, int status, json_t *body) {
  reply_json_type(r, status, body, "application/json");
}

void http_reply_empty(http_req *r, int status) {
  if (http_replied(r)) return;
  set_reply(r, status, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT), NULL,
            0);
}

void http_reply_static(http_req *r, int status, const char *ctype, const void *buf, size_t len) {
  if (http_replied(r)) return;
  set_reply(r, status, MHD_create_response_from_buffer(len, (void *)buf, MHD_RESPMEM_PERSISTENT),
            ctype, len);
}

typedef struct {
  http_req *r; /* alive while the reply is being sent: completion comes after */
  http_stream_fn fn;
  void *cls;
  void (*free_fn)(void *);
} stream_ctx;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  stream_ctx *s = cls;
  long n = s->fn(s->cls, buf, max);
  if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (n == 0) return MHD_CONTENT_READER_END_OF_STREAM;
  s->r->bytes_out += (unsigned long long)n;
  return (ssize_t)n;
}

static void stream_free(void *cls) {
  stream_ctx *s = cls;
  if (s->free_fn) s->free_fn(s->cls);
  free(s);
}

void http_reply_stream(http_req *r, int status, const char *ctype, http_stream_fn fn, void *cls,
                       void (*free_fn)(void *)) {
  stream_ctx *s = http_replied(r) ? NULL : calloc(1, sizeof *s);
  if (!s) {
    if (free_fn) free_fn(cls);
    return;
  }
  s->r = r;
  s->fn = fn;
  s->cls = cls;
  s->free_fn = free_fn;
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s, stream_free);
  if (!resp) stream_free(s);
  set_reply(r, status, resp, ctype, 0);
}

void http_header_add(http_req *r, const char *name, const char *value) {
  if (r->resp) MHD_add_response_header(r->resp, name, value);
}

void http_header_set(http_req *r, const char *name, const char *value) {
  if (!r->resp) return;
  const char *old = MHD_get_response_header(r->resp, name);
  char copy[256];
  if (old) {
    snprintf(copy, sizeof copy, "%s", old); /* MHD frees old while deleting it */
    MHD_del_response_header(r->resp, name, copy);
  }
  MHD_add_response_header(r->resp, name, value);
}

static const char *reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Error";
  }
}

void http_problem(http_req *r, int status, const char *slug, json_t *ext, const char *fmt, ...) {
  if (http_replied(r)) {
    json_decref(ext);
    return;
  }
  char detail[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  /* Client text may be quoted in the detail: keep printable ASCII only and
   * cap the length, so it is valid UTF-8 and cannot smuggle anything. */
  size_t n = 0;
  for (; detail[n]; n++)
    if ((unsigned char)detail[n] < 0x20 || (unsigned char)detail[n] > 0x7e) detail[n] = '?';
  if (n > 500) memcpy(detail + 497, "...", 4);
  char type[96];
  snprintf(type, sizeof type, "urn:gtmsm:problem:%s", slug);
  json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", type, "title", reason(status),
                        "status", status, "detail", detail, "instance", r->path, "request_id",
                        r->rid);
  if (j && ext) json_object_update(j, ext);
  json_decref(ext);
  if (status >= 500)
    log_at(LOG_LEVEL_ERROR, r->rid, "problem", "{s:i, s:s, s:s}", "status", status, "type", slug,
           "detail", detail);
  else
    log_at(LOG_LEVEL_DEBUG, r->rid, "problem", "{s:i, s:s, s:s}", "status", status, "type", slug,
           "detail", detail);
  reply_json_type(r, status, j, "application/problem+json");
  if (status == 401) http_header_add(r, "WWW-Authenticate", "Bearer realm=\"gtmsmd\"");
  if (status == 503) http_header_add(r, "Retry-After", "1");
  if (status == 507) http_header_add(r, "Retry-After", "5"); /* space takes a person or a job */
}

void http_problem_codec(http_req *r, const codec_error *e, json_t *ext) {
  if (e->limit >= 0) {
    if (!ext) ext = json_object();
    json_object_set_new(ext, "limit", json_integer(e->limit));
  }
  http_problem(r, e->status, e->slug ? e->slug : "invalid-request", ext, "%s", e->detail);
}

int http_body_append(http_req *r, const char *data, size_t len) {
  if (r->body_len + len > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : 4096;
    while (cap < r->body_len + len) cap *= 2;
    char *b = realloc(r->body, cap + 1);
    if (!b) {
      http_problem(r, 503, "overloaded", NULL, "out of memory buffering the body");
      return 1;
    }
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, data, len);
  r->body_len += len;
  r->body[r->body_len] = '\0';
  return 0;
}

/* ---- the request lifecycle --------------------------------------------- */

static int valid_rid(const char *s) {
  size_t n = 0;
  for (; s[n]; n++) {
    char c = s[n];
    if (!(isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.') || n >= RID_MAX) return 0;
  }
  return n > 0;
}

static void set_content_type(http_req *r) {
  const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  size_t n = 0;
  if (ct) {
    while (*ct == ' ') ct++;
    for (; ct[n] && ct[n] != ';' && ct[n] != ' ' && n + 1 < sizeof r->ctype; n++)
      r->ctype[n] = (char)tolower((unsigned char)ct[n]);
  }
  r->ctype[n] = '\0';
}

/* Copies len bytes of s into out (outlen > 8) for logs and replies:
 * printable ASCII as is, anything else as %XX, cut with "..." when long. */
static void printable_copy(char *out, size_t outlen, const char *s, size_t len) {
  static const char HEX[] = "0123456789ABCDEF";
  size_t j = 0;
  for (size_t i = 0; i < len; i++) {
    const unsigned char c = (unsigned char)s[i];
    if (j + 3 + 4 > outlen) {
      memcpy(out + j, "...", 4);
      return;
    }
    if (c > 0x20 && c < 0x7f) {
      out[j++] = (char)c;
    } else {
      out[j++] = '%';
      out[j++] = HEX[c >> 4];
      out[j++] = HEX[c & 15];
    }
  }
  out[j] = '\0';
}

/* The framing of a request, checked on its headers before anything else,
 * because the two ends of a connection (or a balancer and gtmsmd) reading a
 * request differently is how requests are smuggled: exactly one way to find
 * where the body ends, a Host on HTTP/1.1, a printable target, a bounded
 * query. Replies 400 malformed-request or 431 (the connection is then
 * closed) and returns non-zero, or returns 0. */
typedef struct {
  int host, cl, cl_differ, te;
  const char *cl_first, *te_value;
} head_counts;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
  (void)kind;
  head_counts *h = cls;
  if (!key) return MHD_YES;
  if (!value) value = "";
  if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
    h->host++;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
    if (h->cl++ == 0) h->cl_first = value;
    else if (strcmp(value, h->cl_first) != 0) h->cl_differ = 1;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
    h->te++;
    h->te_value = value;
  }
  return MHD_YES;
}

static int check_framing(http_req *r, const char *version) {
  /* A NUL byte in the request line ends the target's C string early, so
   * "/v1/sessions/victim<NUL>x" would act on "victim". libmicrohttpd 0.9.75
   * parses the line in place: the version string starts one byte (the space
   * it overwrote with the terminator) after the target's end, unless a NUL
   * cut the target short; a version somewhere else (another layout) is not
   * judged. */
  const uintptr_t vpos = (uintptr_t)version;
  const int nul_in_target = version && vpos > r->target_end + 1 && vpos - r->target_end < 65536;
  if (r->query_params > QUERY_PARAMS_MAX) {
    http_problem(r, 431, "too-many-parameters", NULL, "%u query parameters; at most %d are read",
                 r->query_params, QUERY_PARAMS_MAX);
  } else if (nul_in_target) {
    http_problem(r, 400, "malformed-request", NULL, "the request target has a NUL byte after "
                 "'%.64s'; a target is printable ASCII", r->path);
  } else if (r->bad_offset >= 0) {
    http_problem(r, 400, "malformed-request", NULL, "the request target has byte 0x%02X at offset "
                 "%ld; a target is printable ASCII", r->bad_byte, r->bad_offset);
  } else {
    head_counts h = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, &h);
    char te[32] = "";
    if (h.te_value) {
      const char *v = h.te_value;
      while (*v == ' ' || *v == '\t') v++;
      snprintf(te, sizeof te, "%s", v);
      for (size_t n = strlen(te); n > 0 && (te[n - 1] == ' ' || te[n - 1] == '\t');) te[--n] = '\0';
    }
    const unsigned long long cl = h.cl_first ? strtoull(h.cl_first, NULL, 10) : 0;
    r->has_body = h.te > 0 || cl > 0;
    r->upload = h.te > 0 || cl > UPLOAD_MIN_BYTES;
    if (version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && h.host == 0)
      http_problem(r, 400, "malformed-request", NULL, "an HTTP/1.1 request needs a Host header");
    else if (h.host > 1)
      http_problem(r, 400, "malformed-request", NULL, "%d Host headers; send one", h.host);
    else if (h.cl_differ)
      http_problem(r, 400, "malformed-request", NULL, "Content-Length headers with different "
                   "values; send one");
    else if (h.te && h.cl)
      http_problem(r, 400, "malformed-request", NULL, "both Transfer-Encoding and "
                   "Content-Length; send one of them");
    else if (h.te > 1 || (h.te && strcasecmp(te, "chunked") != 0))
      http_problem(r, 400, "malformed-request", NULL, "Transfer-Encoding '%.40s' is not "
                   "supported; send chunked or a Content-Length", h.te_value);
  }
  if (!http_replied(r)) return 0;
  r->close = 1;
  return 1;
}

/* The checks every request passes before its handler: route, stop, auth,
 * load, size. Leaves a reply on failure. Routes match the raw path. */
static void begin(http_req *r) {
  app *a = r->app;
  char allow[64];
  int i = routes_match(r->method, r->url, r->params, allow, sizeof allow);
  if (i == -1) {
    http_problem(r, 404, "not-found", NULL, "no resource at %.80s; see proto/openapi.yaml", r->path);
    return;
  }
  if (i == -2) {
    http_problem(r, 405, "method-not-allowed", NULL, "%s is not allowed here; allowed: %s",
                 r->method_log, allow);
    http_header_add(r, MHD_HTTP_HEADER_ALLOW, allow);
    return;
  }
  r->route = i;
  const route *rt = routes_get(i);
  if (!rt->open && atomic_load(&a->stopping)) { /* health stays answered: ready says 503 itself */
    http_problem(r, 503, "not-ready", NULL, "the server is shutting down");
    return;
  }
  if (!rt->open && !auth_check(&a->auth, http_header(r, MHD_HTTP_HEADER_AUTHORIZATION))) {
    http_problem(r, 401, "unauthorized", NULL, "missing or unknown API key; send "
                 "'Authorization: Bearer <key>'");
    return;
  }
  if (!rt->open && atomic_load(&a->inflight) > a->cfg.max_inflight) {
    http_problem(r, 503, "overloaded", NULL, "more than %lld requests in progress; retry later",
                 a->cfg.max_inflight);
    return;
  }
  if (!rt->open && r->upload) {
    long long cap = a->cfg.max_inflight - a->cfg.reserve;
    if (cap < 1) cap = 1;
    if (atomic_fetch_add(&a->uploads, 1) >= cap) {
      atomic_fetch_sub(&a->uploads, 1);
      http_problem(r, 503, "overloaded", NULL, "%lld uploads in progress, the most allowed "
                   "(--max-inflight minus --reserve); retry later", cap);
      return;
    }
    r->upload_counted = 1;
  }
  const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl && strtoull(cl, NULL, 10) > (unsigned long long)a->cfg.max_body) {
    json_t *ext = json_pack("{s:I}", "limit", (json_int_t)a->cfg.max_body);
    http_problem(r, 413, "body-too-large", ext, "body of %.20s bytes is over the limit of %lld",
                 cl, a->cfg.max_body);
    return;
  }
  if (rt->start) rt->start(r);
}

static enum MHD_Result queue(http_req *r) {
  if (r->queued) return MHD_YES;
  if (!r->resp) return MHD_NO;
  MHD_add_response_header(r->resp, "X-Request-Id", r->rid);
  MHD_add_response_header(r->resp, "X-Served-By", r->app->served_by);
  if (r->close || atomic_load(&r->app->stopping))
    MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
  MHD_destroy_response(r->resp);
  r->resp = NULL;
  r->queued = 1;
  return ret;
}

/* The connection's slot in the connection table (set by on_connection). */
static conn_slot *slot_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* libmicrohttpd's URI log callback: the first sight of a request, with its
 * raw target (path and query as sent, before libmicrohttpd splits them). The
 * per-request state starts here, so requests that libmicrohttpd refuses
 * later are logged too; on_request takes it from *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
  http_server *srv = cls;
  conns_head_begun(srv->conns, slot_of(conn));
  http_req *r = calloc(1, sizeof *r);
  if (!r) return NULL; /* on_request then closes the connection */
  r->srv = srv;
  r->app = srv->app;
  r->conn = conn;
  r->slot = slot_of(conn);
  r->route = routes_count();
  r->model = -1;
  r->t0 = util_mono_seconds();
  r->bad_offset = -1;
  if (!uri) uri = "";
  const char *q = strchr(uri, '?');
  printable_copy(r->path, sizeof r->path, uri, q ? (size_t)(q - uri) : strlen(uri));
  for (size_t i = 0; uri[i]; i++)
    if ((unsigned char)uri[i] <= 0x20 || (unsigned char)uri[i] >= 0x7f) {
      r->bad_offset = (long)i;
      r->bad_byte = (unsigned char)uri[i];
      break;
    }
  r->target_end = (uintptr_t)uri + strlen(uri);
  if (q && q[1]) {
    r->query_params = 1;
    for (const char *p = q + 1; *p; p++) r->query_params += *p == '&';
  }
  /* Work-around for libmicrohttpd 0.9.75: each query parameter takes a
   * record from the connection's memory pool, and when they overflow it the
   * 431 it prepares is dropped and the connection hangs. Too many
   * parameters are answered 431 by check_framing; none of them is needed
   * for that, so the query is cut right after its '?' (this buffer is
   * libmicrohttpd's own copy of the request line, which it parses in place
   * just after this callback). */
  if (r->query_params > QUERY_PARAMS_MAX) ((char *)(uintptr_t)q)[1] = '\0';
  return r;
}

/* Percent-decoding is turned off: gtmsmd takes the path and the query values
 * as sent (every value the API takes is from a plain alphabet), so ids mean
 * the same to it, to a balancer hashing the raw path and to the logs. */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls;
  (void)conn;
  return strlen(s);
}

/* The model's helper threads (model/par.h) for the handler code this thread
 * runs next only when the requests in flight leave a CPU free: under load a
 * helper would take a core from another request. */
static void share_cores(const http_server *srv) {
  par_thread_share(atomic_load(&srv->app->inflight) < srv->cpus);
}

void http_suspend(http_req *r, void (*resumed)(http_req *r)) {
  r->resumed = resumed;
  atomic_store(&r->susp, SUSP_ASKED);
}
void http_unsuspend(http_req *r) {
  atomic_store(&r->susp, SUSP_NONE);
  r->resumed = NULL;
}

void http_resume(http_req *r) {
  int want = SUSP_ASKED;
  if (atomic_compare_exchange_strong(&r->susp, &want, SUSP_EARLY)) return; /* park resumes it */
  struct MHD_Connection *conn = r->conn;
  atomic_store(&r->susp, SUSP_NONE);
  MHD_resume_connection(conn);
}

/* After a callback: a request that asked to wait leaves the event loop.
 * Returns 1 when it did (or was resumed already): no reply is due now. */
static int park(http_req *r) {
  if (atomic_load(&r->susp) == SUSP_NONE) return 0; /* ASKED, or EARLY already */
  if (!r->parked) {
    r->parked = 1;
    atomic_fetch_add(&r->srv->parked, 1);
  }
  MHD_suspend_connection(r->conn);
  int want = SUSP_ASKED;
  if (!atomic_compare_exchange_strong(&r->susp, &want, SUSP_PARKED)) { /* EARLY */
    atomic_store(&r->susp, SUSP_NONE);
    MHD_resume_connection(r->conn);
  }
  return 1;
}

/* A parked request's next sight: it no longer holds back the stop. */
static void unpark(http_req *r) {
  if (!r->parked) return;
  r->parked = 0;
  atomic_fetch_sub(&r->srv->parked, 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  http_server *srv = cls;
  app *a = srv->app;
  http_req *r = *con_cls;
  if (!r) return MHD_NO; /* on_uri ran out of memory */
  if (!r->started) { /* first callback: headers are in */
    r->started = 1;
    atomic_fetch_add(&a->inflight, 1);
    share_cores(srv);
    r->conn = conn;
    r->method = method;
    r->url = url;
    printable_copy(r->method_log, sizeof r->method_log, method, strlen(method));
    r->t0 = util_mono_seconds();
    const char *rid = http_header(r, "X-Request-Id");
    if (rid && valid_rid(rid)) snprintf(r->rid, sizeof r->rid, "%s", rid);
    else if (util_random_hex(r->rid, 8)) snprintf(r->rid, sizeof r->rid, "%p", (void *)r);
    set_content_type(r);
    if (!check_framing(r, version)) begin(r);
    conns_request(srv->conns, r->slot, r->has_body && !http_replied(r));
    if (http_replied(r)) return queue(r);
    return MHD_YES;
  }
  /* libmicrohttpd may offer the next chunk of a chunked body before the
   * suspension takes: it stays in its buffer until the request resumes */
  if (atomic_load(&r->susp) != SUSP_NONE) return MHD_YES;
  unpark(r);
  if (r->resumed) {
    void (*fn)(http_req *) = r->resumed;
    r->resumed = NULL;
    fn(r);
  }
  share_cores(srv); /* another connection's callbacks on this thread may have set it meanwhile */
  const route *rt = routes_get(r->route);
  if (*upload_size) { /* a body chunk */
    size_t n = *upload_size;
    *upload_size = 0;
    r->bytes_in += n;
    conns_body(r->slot);
    if (http_replied(r)) { /* discarding after an error; cut a client that keeps sending */
      return r->bytes_in > 2ULL * (unsigned long long)a->cfg.max_body + (1u << 20) ? MHD_NO : MHD_YES;
    }
    if (r->bytes_in > (unsigned long long)a->cfg.max_body) {
      json_t *ext = rt->progress ? rt->progress(r) : json_object();
      json_object_set_new(ext, "limit", json_integer(a->cfg.max_body));
      http_problem(r, 413, "body-too-large", ext, "body is over the limit of %lld bytes",
                   a->cfg.max_body);
      return MHD_YES;
    }
    if (rt->body == ROUTE_BODY_BUFFER) http_body_append(r, upload, n);
    else if (rt->body == ROUTE_BODY_STREAM) rt->data(r, upload, n);
    park(r);
    return MHD_YES;
  }
  /* final callback: the body is complete (again, after a suspended end) */
  conns_body_done(srv->conns, r->slot);
  if (!http_replied(r)) rt->end(r);
  if (park(r)) return MHD_YES;
  if (!http_replied(r)) http_problem(r, 500, "internal", NULL, "the handler did not reply");
  return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  http_server *srv = cls;
  app *a = srv->app;
  conns_idle(srv->conns, slot_of(conn));
  http_req *r = *con_cls;
  if (!r) return;
  *con_cls = NULL;
  unpark(r);
  double secs = util_mono_seconds() - r->t0;
  int status = r->queued ? r->status : 499; /* 499: closed before a reply (nginx's convention) */
  metrics_request(a->metrics, r->route, r->method, r->model, status, secs);
  if (log_enabled(LOG_LEVEL_INFO)) {
    char addr[64] = "";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
      const struct sockaddr *sa = ci->client_addr;
      if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr, sizeof addr);
      else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr, sizeof addr);
    }
    const log_access_fields f = {r->method_log, r->path, routes_name(r->route), addr, status,
                                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK, (long long)r->bytes_in,
                                 (long long)r->bytes_out, (long long)(secs * 1e6)};
    log_access(r->rid[0] ? r->rid : NULL, &f);
  }
  if (r->resp) MHD_destroy_response(r->resp);
  if (r->state_free) r->state_free(r->state);
  const int started = r->started;
  if (r->upload_counted) atomic_fetch_sub(&a->uploads, 1);
  free(r->body);
  free(r);
  if (started) atomic_fetch_sub(&a->inflight, 1);
}

/* The accept policy: the connection table admits (maybe evicting) or refuses. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
  (void)addr;
  (void)addrlen;
  http_server *srv = cls;
  return conns_admit(srv->conns) ? MHD_YES : MHD_NO;
}

/* A connection starts or ends: its slot in the connection table. CLOSED comes
 * before libmicrohttpd closes the descriptor, so a cut never hits a reused one. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  http_server *srv = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = ci ? conns_open(srv->conns, ci->connect_fd) : NULL;
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    conns_close(srv->conns, *socket_context);
    *socket_context = NULL;
  }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
  log_at(LOG_LEVEL_WARN, NULL, "mhd", "{s:s}", "msg", msg);
}

/* ---- start / stop ------------------------------------------------------- */

/* Parses HOST:PORT, [V6]:PORT or :PORT into a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                        char *err, size_t errlen) {
  char host[256] = "", port[16] = "";
  const char *colon;
  if (listen[0] == '[') {
    const char *close = strchr(listen, ']');
    if (!close || close[1] != ':') goto bad;
    snprintf(host, sizeof host, "%.*s", (int)(close - listen - 1), listen + 1);
    colon = close + 1;
  } else {
    colon = strrchr(listen, ':');
    if (!colon) goto bad;
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
  }
  snprintf(port, sizeof port, "%s", colon + 1);
  if (!port[0] || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535) goto bad;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (g || !res)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "--listen %s: %s", listen, gai_strerror(g));
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *sslen = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
bad:
  return gtmsm_fail(err, errlen, GTMSM_EINVAL, "--listen '%s': expected HOST:PORT, [V6]:PORT or :PORT",
                    listen);
}

/* Raises the soft limit on open files so that want connections fit with
 * room for the database, models and cut connections on their way out (a
 * default soft limit of 1024 would make accept fail first, and libmicrohttpd
 * then stops accepting). Returns the connections that fit: want, or fewer
 * (with a warning) when the hard limit is lower. */
static long long raise_open_files_limit(long long want) {
  const long long room = 256;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return want;
  const rlim_t need = (rlim_t)(want + room);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) return want;
  long long fit = (long long)rl.rlim_cur - room;
  if (fit < 16) fit = 16;
  log_at(LOG_LEVEL_WARN, NULL, "listening", "{s:s, s:I, s:I}", "msg", "the open files limit is "
         "too low for --max-connections: fewer connections are admitted", "nofile",
         (json_int_t)rl.rlim_cur, "max_connections", (json_int_t)fit);
  return fit;
}

int http_start(http_server **out, app *a, int *port, char *err, size_t errlen) {
  *out = NULL;
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  int rc = parse_listen(a->cfg.listen, &ss, &sslen, err, errlen);
  if (rc) return rc;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned threads = a->cfg.threads > 0 ? (unsigned)a->cfg.threads : (unsigned)(cpus > 0 ? 2 * cpus : 4);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;
  if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  long long max_conn = raise_open_files_limit(a->cfg.max_connections);
  http_server *s = calloc(1, sizeof *s);
  if (!s) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  s->app = a;
  s->cpus = par_cpus();
  conns_config cc = {.max_connections = max_conn, .header_timeout = (double)a->cfg.header_timeout,
                     .idle_timeout = (double)a->cfg.timeout, .body_timeout = (double)a->cfg.body_timeout};
  if (conns_new(&s->conns, &cc)) {
    free(s);
    return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "cannot start the connection reaper");
  }
  /* The table enforces max_conn over all workers; libmicrohttpd's own limit
   * (split between the workers) only has to stay out of its way, with room
   * for connections cut and not yet closed. */
  const unsigned long long mhd_limit = ((unsigned long long)max_conn + 64) * threads;
  /* Each connection's memory (request head, read buffer) is 64 KiB:
   * libmicrohttpd 0.9.75 clears the whole of it (MHD_pool_reset) before each
   * request of a kept-alive connection, and at 256 KiB that memset was one
   * of the daemon's largest costs under one-observation requests (docs/
   * BENCHMARKS.md, "Connection pool and daemon CPU"). 64 KiB still holds a
   * request line of 5,000 query parameters, so those get our 431. */
  sigset_t old_mask;
  signals_block_thread(&old_mask); /* the workers inherit it: signals go to main */
  s->d = MHD_start_daemon(
      flags, 0, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
      MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_NOTIFY_CONNECTION,
      on_connection, s, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->cfg.timeout,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)(mhd_limit < (1u << 30) ? mhd_limit : (1u << 30)),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024, MHD_OPTION_LISTEN_BACKLOG_SIZE,
      1024u, MHD_OPTION_END);
  signals_unblock_thread(&old_mask);
  if (!s->d) {
    conns_free(s->conns);
    free(s);
    return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot listen on %s (address in use?)", a->cfg.listen);
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  *port = di ? di->port : 0;
  log_at(LOG_LEVEL_INFO, NULL, "listening", "{s:s, s:i, s:i, s:I}", "listen", a->cfg.listen,
         "port", *port, "threads", (int)threads, "max_connections", (json_int_t)max_conn);
  *out = s;
  return 0;
}

void http_stop(http_server *s, double grace_seconds) {
  if (!s) return;
  MHD_socket fd = MHD_quiesce_daemon(s->d);
  if (fd != MHD_INVALID_SOCKET) close(fd);
  double deadline = util_mono_seconds() + grace_seconds;
  while (atomic_load(&s->app->inflight) > 0 && util_mono_seconds() < deadline) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  long left = atomic_load(&s->app->inflight);
  if (left > 0)
    log_at(LOG_LEVEL_WARN, NULL, "shutdown", "{s:s, s:i}", "msg",
           "grace period over: closing requests still in flight", "requests", (int)left);
  /* A suspended request waits for a COMMIT, which ends (or fails) on its
   * own; libmicrohttpd must not stop while one is suspended. */
  while (atomic_load(&s->parked) > 0) {
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  MHD_stop_daemon(s->d);
  conns_free(s->conns);
  free(s);
}

void http_conns_stats(const http_req *r, conns_stats *out) { conns_get_stats(r->srv->conns, out); }
