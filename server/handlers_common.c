/* Helpers shared by the session handlers: the {id} parameter, locking with
 * the right problem replies, and the session object of the API. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "base/err.h"

#include "handlers.h"
#include "log.h"

int handler_check_id(http_req *r, const char *what, const char *id) {
  if (codec_valid_id(id)) return 0;
  if (id && strchr(id, '%'))
    http_problem(r, 400, "bad-id", NULL, "%s '%.64s' is percent-encoded; ids are sent as they are "
                 "(1..64 of A-Z a-z 0-9 _ -) so that every hop reads the same id", what, id);
  else
    http_problem(r, 400, "bad-id", NULL, "%s '%.64s' is not 1..64 of A-Z a-z 0-9 _ -", what,
                 id ? id : "(missing)");
  return 1;
}

/* The ring header HAProxy sets on every request (deploy/haproxy/haproxy.cfg):
 * one digit per replica of the sessions backend, 1 up, 0 down. */
#define RING_HEADER "X-Gtmsm-Ring"

int handler_ring_degraded(http_req *r) {
  if (store_leases(http_app(r)->db)) return 0; /* a shared store: not here is nowhere */
  const char *ring = http_header(r, RING_HEADER);
  return ring && strchr(ring, '0'); /* else every replica up, or not behind HAProxy */
}

int handler_owner_unavailable(http_req *r, const char *id) {
  if (!handler_ring_degraded(r)) return 0;
  const char *ring = http_header(r, RING_HEADER);
  http_problem(r, 503, "owner-unavailable", NULL, "session '%s' is not stored on this replica "
               "and a replica is down (%s: %.16s): it may be that replica's, so it is neither "
               "created nor answered for here; retry once the replica is back", id, RING_HEADER,
               ring);
  http_header_set(r, "Retry-After", "2");
  return 1;
}

int handler_session(http_req *r, session **out) {
  const char *id = http_param(r, 0);
  *out = NULL;
  if (handler_check_id(r, "session id", id)) return 1;
  char err[256] = "";
  int rc = sessions_acquire(http_app(r)->cache, id, out, err, sizeof err);
  if (rc == SESSIONS_OK) {
    http_set_model(r, models_find(&http_app(r)->models, (*out)->model_name));
    return 0;
  }
  if (rc == SESSIONS_NOTFOUND && handler_owner_unavailable(r, id)) return 1;
  if (rc == SESSIONS_NOTFOUND)
    http_problem(r, 404, "session-not-found", NULL, "no session '%s'", id);
  else if (rc == SESSIONS_BUSY)
    http_problem(r, 503, "overloaded", NULL, "every session slot is in use (--max-sessions %lld); "
                 "retry later", http_app(r)->cfg.max_sessions);
  else
    handler_store_problem(r, rc, "loading session '%s': %s", id, err);
  return 1;
}

int handler_lock(http_req *r, session *s, int write) {
  char err[256] = "";
  int rc = sessions_lock(http_app(r)->cache, s, write, 1, err, sizeof err);
  if (rc == SESSIONS_OK) return 0;
  handler_lock_problem(r, s, rc, err);
  return 1;
}

void handler_leased_problem(http_req *r, const char *id, long long wait_ms) {
  const long long secs = wait_ms < 1000 ? 1 : (wait_ms + 999) / 1000;
  http_problem(r, 503, "session-leased-elsewhere", NULL, "session '%s' is being served by another "
               "replica (its lease lapses in %lld ms unless renewed); retry, and the load balancer "
               "or the lapse brings it here", id, wait_ms);
  char v[24];
  snprintf(v, sizeof v, "%lld", secs);
  http_header_set(r, "Retry-After", v);
}

void handler_lock_problem(http_req *r, session *s, int rc, const char *err) {
  if (rc == SESSIONS_LEASED) {
    handler_leased_problem(r, s->id, atomic_load(&s->lease_wait_ms));
  } else if (rc == SESSIONS_NOTFOUND) {
    http_problem(r, 404, "session-not-found", NULL, "session '%s' was deleted", s->id);
  } else if (rc == SESSIONS_VERSION) {
    const model_entry *me = models_find(&http_app(r)->models, s->model_name);
    char version[sizeof s->model_version] = "?", lerr[256]; /* a rebuild writes it under the lock */
    if (sessions_lock(http_app(r)->cache, s, 0, 0, lerr, sizeof lerr) == SESSIONS_OK) {
      memcpy(version, s->model_version, sizeof version);
      sessions_unlock(http_app(r)->cache, s);
    }
    http_problem(r, 409, "model-version", NULL,
                 "session '%s' was made with model %s version %s, but %s; put that version's file "
                 "in the models folder and send SIGHUP, rebuild the session onto a loaded version "
                 "(POST /v1/sessions/%s/rebuild), or import it on a replica serving that version",
                 s->id, s->model_name, version,
                 me ? "only other versions are loaded" : "that model is not loaded", s->id);
    if (me) http_header_add(r, "X-Model-Version", me->m->content_hash);
  } else if (rc == GTMSM_EFORMAT) { /* this session's rows only: others still serve */
    http_problem(r, 500, "corrupt-session", NULL, "session '%s' cannot be loaded: %s (other "
                 "sessions are unaffected; delete it, or import an export taken before the "
                 "damage)", s->id, err);
  } else {
    handler_store_problem(r, rc, "session '%s': %s", s->id, err);
  }
}

static json_t *session_object(const char *id, const char *model, const char *version,
                              long long steps, long long entries, long long created,
                              long long updated, long long own_ttl_s, long long default_ttl_s) {
  char c[32], u[32];
  log_format_time(c, created);
  log_format_time(u, updated);
  json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "id", id, "model", model,
                        "model_version", version, "steps", (json_int_t)steps, "memory_entries",
                        (json_int_t)entries, "created_at", c, "updated_at", u);
  /* Its own TTL when it has one (also 0: never), else the daemon's. */
  if (own_ttl_s != STORE_TTL_DEFAULT)
    json_object_set_new(j, "ttl_seconds",
                        json_integer(own_ttl_s == STORE_TTL_NEVER ? 0 : own_ttl_s));
  const long long ttl_s = own_ttl_s == STORE_TTL_DEFAULT ? default_ttl_s : own_ttl_s;
  if (ttl_s > 0) { /* idle expiry: a session lives until ttl after its last write */
    char e[32];
    log_format_time(e, updated + ttl_s * 1000);
    json_object_set_new(j, "expires_at", json_string(e));
  }
  return j;
}

json_t *handler_session_json(const session *s, long long ttl_s) {
  return session_object(s->id, s->model_name, s->model_version, s->steps, sessions_entries(s),
                        s->created_ms, s->updated_ms, s->ttl_s, ttl_s);
}

json_t *handler_row_json(const store_session *row, long long ttl_s) {
  return session_object(row->id, row->model, row->model_version, row->steps, row->steps,
                        row->created_ms, row->updated_ms, row->ttl_s, ttl_s);
}

int handler_require_json(http_req *r) {
  const char *ct = http_content_type(r);
  if (!*ct || strcmp(ct, "application/json") == 0) return 0;
  http_problem(r, 415, "unsupported-media-type", NULL, "Content-Type %.64s; expected application/json",
               ct);
  return 1;
}

int handler_store_status(int rc, const char **slug) {
  if (rc == STORE_EFULL) {
    *slug = "insufficient-storage";
    return 507;
  }
  if (rc == STORE_EUNAVAILABLE) {
    *slug = "storage-unavailable";
    return 503;
  }
  if (rc == STORE_EFENCED) { /* another replica took the session over: retry there */
    *slug = "session-leased-elsewhere";
    return 503;
  }
  *slug = "internal";
  return 500;
}

void handler_store_problem(http_req *r, int rc, const char *fmt, ...) {
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  const char *slug;
  const int status = handler_store_status(rc, &slug);
  http_problem(r, status, slug, NULL, "%s", detail);
}
