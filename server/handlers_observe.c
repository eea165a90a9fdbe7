/* POST /v1/sessions/{id}/observations: NDJSON streamed and committed batch by
 * batch as lines arrive, a JSON array, or one PNG with ?t=&action=.
 *
 * Lines are parsed and validated as they arrive into a pending batch; the
 * batch is flushed at the end of every received chunk (and when it is full):
 * under the session's exclusive lock each observation is classified as new
 * (t == next), duplicate (stored with the same action and pixels) or a
 * conflict (other content, or a gap), the new ones are observed and
 * committed in one transaction, and the lock is released before more bytes
 * are read. The reply comes after the last commit.
 *
 * A batch flushed at the end of a chunk or of the body (the only one of a
 * short request) commits without holding its worker: the request suspends
 * (http_suspend) with the session's exclusive lock passed to the COMMIT,
 * whose completion on the store's writer thread releases it and resumes the
 * request; its next callback settles the outcome (settle). So one worker
 * thread serves many requests waiting for the same group commit. A batch
 * that fills up in the middle of a chunk commits in place, waiting. */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "handlers.h"
#include "jsonfmt.h"
#include "log.h"
#include "ndjson.h"

#define BATCH 256

typedef enum { OBS_NDJSON, OBS_JSON, OBS_PNG } obs_kind;

typedef struct {
  http_req *r;
  obs_kind kind;
  session *s;
  const gtmsm_model *m;
  size_t D;
  ndjson_splitter split;
  int n;            /* pending observations */
  int64_t *t;       /* (BATCH) */
  int *actions;     /* (BATCH) */
  uint8_t *frames;  /* (BATCH, D) */
  uint8_t *stored;  /* (D) scratch for duplicate checks */
  float *sbuf;      /* (BATCH, S) the states of a batch's new observations */
  json_t *states;   /* the states of every accepted observation, for the reply */
  long long accepted, duplicates, seen;
  int64_t steps;    /* the session's steps after our last commit */
  int failed;       /* a problem was replied */
  int64_t png_t;
  int png_action;
  int ended;        /* end() ran (it runs again after a suspended flush) */
  /* The flushed batch's outcome, between its commit and settle: */
  int pending;      /* a suspended flush: settle when the request resumes */
  int nnew;         /* observations it committed (or tried to) */
  long long dups, expected;
  codec_error e;    /* a conflict found behind them, or the store's failure */
  int rc;
  store_commit_info ci;
  char err[256];
} obs_state;

static void obs_free(void *p) {
  obs_state *st = p;
  if (!st) return;
  ndjson_free(&st->split);
  free(st->t);
  free(st->actions);
  free(st->frames);
  free(st->stored);
  free(st->sbuf);
  json_decref(st->states);
  sessions_release(http_app(st->r)->cache, st->s);
  free(st);
}

json_t *observe_progress(http_req *r) {
  obs_state *st = http_state(r);
  if (!st) return json_object();
  json_t *j = json_pack("{s:I, s:I, s:I}", "accepted", (json_int_t)st->accepted, "duplicates",
                        (json_int_t)st->duplicates, "steps", (json_int_t)st->steps);
  if (j && st->states) json_object_set(j, "states", st->states);
  return j;
}

/* A problem that carries the request's progress so the client can resume. */
static void fail(obs_state *st, const codec_error *e, long long expected_t) {
  json_t *ext = observe_progress(st->r);
  if (expected_t >= 0) json_object_set_new(ext, "expected_t", json_integer(expected_t));
  http_problem_codec(st->r, e, ext);
  st->failed = 1;
}

/* The outcome of the flushed batch (in st): metrics, progress, states, and
 * the problem if any. Returns 0, or non-zero after replying a problem.
 * After a suspended flush it runs first when the request resumes (before
 * a body limit reports the progress). */
static int settle(obs_state *st) {
  app *a = http_app(st->r);
  st->pending = 0;
  int committed = 0;
  if (st->nnew > 0) {
    if (st->rc) {
      const char *slug;
      const int status = handler_store_status(st->rc, &slug);
      codec_fail(&st->e, status, slug, "observing %d frames: %s", st->nnew, st->err);
      st->expected = -1;
    } else {
      if (st->ci.first) metrics_commit(a->metrics, st->ci.seconds, st->ci.group); /* once per COMMIT */
      committed = st->nnew;
      st->accepted += st->nnew;
      const int S = st->m->cfg.S;
      for (int i = 0; i < st->nnew && st->states; i++) {
        json_t *v = jsonfmt_f32_array(st->sbuf + (size_t)i * S, S);
        if (!v || json_array_append_new(st->states, v)) {
          json_decref(st->states); /* out of memory: the reply goes without them */
          st->states = NULL;
        }
      }
    }
  }
  st->duplicates += st->dups;
  metrics_observations(a->metrics, committed, st->dups);
  st->nnew = 0, st->dups = 0;
  if (st->e.status) {
    fail(st, &st->e, st->expected);
    return 1;
  }
  return 0;
}

/* A suspended flush's COMMIT is done (on the store's writer thread): the
 * session is updated; its lock goes, and the request resumes to settle. */
static void flushed(void *ctx, int rc, const store_commit_info *ci, const char *err) {
  obs_state *st = ctx;
  st->rc = rc;
  if (ci) st->ci = *ci;
  snprintf(st->err, sizeof st->err, "%s", err ? err : "");
  st->steps = st->s->steps;
  sessions_unlock(http_app(st->r)->cache, st->s);
  http_resume(st->r);
}

/* The first thing a request does after a suspended flush. */
static void resumed(http_req *r) { settle(http_state(r)); }

/* Classifies, observes and commits the pending batch (see the file comment);
 * with wait 0 the commit may go on after the request suspends (then it
 * returns 0 with st->pending set). Returns 0, or non-zero after replying a
 * problem. */
static int flush(obs_state *st, int wait) {
  if (st->n == 0 || st->failed) return st->failed;
  app *a = http_app(st->r);
  session *s = st->s;
  if (handler_lock(st->r, s, 1)) {
    st->failed = 1;
    return 1;
  }
  const int64_t steps0 = s->steps;
  const size_t D = st->D;
  int nnew = 0;
  long long dups = 0, expected = -1;
  codec_error e = {0};
  char err[256] = "";
  for (int i = 0; i < st->n && !e.status; i++) {
    const int64_t t = st->t[i], next = steps0 + nnew;
    const uint8_t *pix = st->frames + (size_t)i * D;
    if (t == next) {
      if (next >= a->cfg.max_entries) {
        codec_fail(&e, 422, "memory-full", "session '%s' holds %lld observations, the limit "
                   "(--max-entries)", s->id, (long long)next);
        e.limit = a->cfg.max_entries;
        break;
      }
      /* compact the new ones to the front: slot nnew <= i is already classified */
      if (nnew != i) {
        st->actions[nnew] = st->actions[i];
        memcpy(st->frames + (size_t)nnew * D, pix, D);
      }
      nnew++;
      continue;
    }
    int same = 0;
    if (t < steps0) {
      int action = -1;
      const int rc = sessions_stored_frame(a->cache, s, t, &action, st->stored, err, sizeof err);
      if (rc) {
        const char *slug;
        const int status = handler_store_status(rc, &slug);
        codec_fail(&e, status, slug, "reading t=%lld: %s", (long long)t, err);
        break;
      }
      same = action == st->actions[i] && memcmp(st->stored, pix, D) == 0;
    } else if (t < next) {
      const size_t k = (size_t)(t - steps0);
      same = st->actions[k] == st->actions[i] && memcmp(st->frames + k * D, pix, D) == 0;
    }
    if (same) {
      dups++;
    } else {
      expected = next;
      if (t < next)
        codec_fail(&e, 409, "content-mismatch", "t=%lld is already stored with another action or "
                   "frame; the next t is %lld", (long long)t, (long long)next);
      else
        codec_fail(&e, 409, "gap", "t=%lld leaves a gap; the next t is %lld", (long long)t,
                   (long long)next);
    }
  }
  st->n = 0;
  st->nnew = nnew, st->dups = dups, st->expected = expected, st->e = e, st->rc = 0;
  st->ci = (store_commit_info){0};
  if (nnew > 0 && !wait) {
    st->pending = 1;
    http_suspend(st->r, resumed); /* before the COMMIT can resume it */
    /* flushed() may run (and set st->rc) before this returns: st is the COMMIT's from here */
    const int rc = sessions_observe_async(a->cache, s, nnew, st->actions, st->frames, st->sbuf,
                                          flushed, st, err, sizeof err);
    if (rc == 0) return 0; /* the lock is the COMMIT's now */
    st->rc = rc;
    snprintf(st->err, sizeof st->err, "%s", err);
    st->pending = 0;
    http_unsuspend(st->r);
  } else if (nnew > 0) {
    st->rc = sessions_observe(a->cache, s, nnew, st->actions, st->frames, st->sbuf, &st->ci,
                              st->err, sizeof st->err);
  }
  st->steps = s->steps;
  sessions_unlock(a->cache, s);
  return settle(st);
}

/* Room for one more pending observation; flushes a full batch first. */
static int make_room(obs_state *st) {
  if (st->n == BATCH && flush(st, 1)) return 1;
  app *a = http_app(st->r);
  if (st->seen >= a->cfg.max_frames) {
    codec_error e;
    flush(st, 1);
    if (st->failed) return 1;
    codec_fail(&e, 422, "too-many-frames", "more than %lld observations in one request; send the "
               "rest in another", a->cfg.max_frames);
    e.limit = a->cfg.max_frames;
    fail(st, &e, -1);
    return 1;
  }
  st->seen++;
  return 0;
}

static int on_line(void *ctx, const char *line, size_t len, int64_t line_no) {
  obs_state *st = ctx;
  if (make_room(st)) return 1;
  codec_error e;
  const int i = st->n;
  if (codec_parse_observation_line(st->m, line, len, line_no, &st->t[i], &st->actions[i],
                                   st->frames + (size_t)i * st->D, &e)) {
    if (!flush(st, 1)) fail(st, &e, -1); /* the lines before it are committed */
    return 1;
  }
  st->n++;
  return 0;
}

void observe_start(http_req *r) {
  app *a = http_app(r);
  const char *ct = http_content_type(r);
  obs_kind kind;
  if (strcmp(ct, "application/x-ndjson") == 0) kind = OBS_NDJSON;
  else if (strcmp(ct, "application/json") == 0) kind = OBS_JSON;
  else if (strcmp(ct, "image/png") == 0) kind = OBS_PNG;
  else {
    http_problem(r, 415, "unsupported-media-type", NULL, "Content-Type '%.64s'; expected "
                 "application/x-ndjson, application/json or image/png", *ct ? ct : "(none)");
    return;
  }
  session *s = NULL;
  if (handler_session(r, &s)) return;
  obs_state *st = calloc(1, sizeof *st);
  if (!st) {
    sessions_release(a->cache, s);
    http_problem(r, 503, "overloaded", NULL, "out of memory");
    return;
  }
  st->r = r;
  st->s = s;
  st->kind = kind;
  http_set_state(r, st, obs_free);
  if (handler_lock(r, s, 0)) return; /* checks existence and model version, loads the memory */
  st->m = s->model->m;
  st->steps = s->steps;
  sessions_unlock(a->cache, s);
  st->D = (size_t)gtmsm_config_D(&st->m->cfg);
  st->t = malloc(sizeof *st->t * BATCH);
  st->actions = malloc(sizeof *st->actions * BATCH);
  st->frames = malloc(st->D * BATCH);
  st->stored = malloc(st->D);
  const char *qs = http_query(r, "states");
  const int want_states = qs && (strcmp(qs, "true") == 0 || strcmp(qs, "1") == 0);
  if (qs && !want_states && strcmp(qs, "false") != 0 && strcmp(qs, "0") != 0) {
    http_problem(r, 400, "invalid-request", NULL, "?states=%.20s; expected true or false (the stored states "
                 "in the reply)", qs);
    return;
  }
  st->sbuf = malloc(sizeof(float) * BATCH * (size_t)st->m->cfg.S);
  st->states = want_states ? json_array() : NULL;
  if (!st->t || !st->actions || !st->frames || !st->stored || !st->sbuf || (want_states && !st->states)) {
    http_problem(r, 503, "overloaded", NULL, "out of memory");
    return;
  }
  ndjson_init(&st->split, (size_t)a->cfg.max_body);
  if (kind == OBS_PNG) {
    codec_error e;
    const char *qt = http_query(r, "t");
    if (!qt || !*qt || strspn(qt, "0123456789") != strlen(qt) || strlen(qt) > 15) {
      http_problem(r, 400, "invalid-request", NULL, "image/png observations need ?t=<step index "
                   ">= 0>&action=<name or index>; got t='%.20s'", qt ? qt : "");
      return;
    }
    st->png_t = strtoll(qt, NULL, 10);
    if (codec_action_text(st->m, http_query(r, "action"), &st->png_action, &e))
      http_problem_codec(r, &e, NULL);
  }
}

void observe_data(http_req *r, const char *d, size_t n) {
  obs_state *st = http_state(r);
  if (st->kind != OBS_NDJSON) {
    http_body_append(r, d, n);
    return;
  }
  int rc = ndjson_feed(&st->split, d, n, on_line, st);
  if (rc == GTMSM_ENOMEM) http_problem(r, 503, "overloaded", NULL, "out of memory");
  if (rc == NDJSON_ETOOLONG)
    http_problem(r, 413, "body-too-large", observe_progress(r), "a line is longer than the body "
                 "limit of %lld bytes", http_app(r)->cfg.max_body);
  if (rc || st->failed) return;
  flush(st, 0); /* process what arrived before reading more */
}

static void reply_ok(obs_state *st) {
  if (st->failed || http_replied(st->r)) return;
  if (st->accepted || st->duplicates)
    log_at(LOG_LEVEL_DEBUG, http_rid(st->r), "observed", "{s:s, s:I, s:I, s:I}", "id", st->s->id,
           "accepted", (json_int_t)st->accepted, "duplicates", (json_int_t)st->duplicates, "steps",
           (json_int_t)st->steps);
  if (st->states) {
    http_reply_json(st->r, 200, observe_progress(st->r));
    return;
  }
  /* The common reply, three integers: the bytes observe_progress's object
   * dumps to (compact, in order), without the 13 allocations of building and dumping it. */
  char *body = malloc(128); /* three int64 at 20 characters each, and the keys */
  if (!body) {
    http_reply_json(st->r, 200, observe_progress(st->r)); /* its own 500 on OOM */
    return;
  }
  const int n = snprintf(body, 128, "{\"accepted\":%lld,\"duplicates\":%lld,\"steps\":%lld}",
                         (long long)st->accepted, (long long)st->duplicates, (long long)st->steps);
  http_reply_bytes(st->r, 200, "application/json", body, (size_t)n);
}

static void end_json(obs_state *st) {
  size_t len = 0;
  const char *body = http_body(st->r, &len);
  codec_error e;
  json_t *j = NULL;
  if (codec_parse_json(body, len, &j, &e)) {
    fail(st, &e, -1);
    return;
  }
  const json_t *list = json_is_object(j) ? json_object_get(j, "observations") : NULL;
  if (!json_is_array(list)) {
    codec_fail(&e, 400, "invalid-request", "expected {\"observations\": [{\"t\", \"action\", "
               "\"frame\"}, ...]}");
    fail(st, &e, -1);
  }
  for (size_t i = 0; list && i < json_array_size(list) && !st->failed; i++) {
    if (make_room(st)) break;
    char where[48];
    snprintf(where, sizeof where, "observations[%zu]", i);
    const int k = st->n;
    if (codec_parse_observation(st->m, json_array_get(list, i), where, &st->t[k], &st->actions[k],
                                st->frames + (size_t)k * st->D, &e)) {
      if (!flush(st, 1)) fail(st, &e, -1);
      break;
    }
    st->n++;
  }
  json_decref(j);
  flush(st, 0);
}

void observe_end(http_req *r) {
  obs_state *st = http_state(r);
  if (!st->ended) {
    st->ended = 1;
    if (st->kind == OBS_NDJSON) {
      int rc = ndjson_finish(&st->split, on_line, st);
      if (rc == GTMSM_ENOMEM) http_problem(r, 503, "overloaded", NULL, "out of memory");
      flush(st, 0);
    } else if (st->kind == OBS_JSON) {
      end_json(st);
    } else {
      size_t len = 0;
      const uint8_t *png = (const uint8_t *)http_body(r, &len);
      codec_error e;
      if (codec_decode_frame(st->m, png, len, st->frames, &e)) {
        fail(st, &e, -1);
        return;
      }
      st->t[0] = st->png_t;
      st->actions[0] = st->png_action;
      st->n = 1;
      st->seen = 1;
      flush(st, 0);
    }
    if (st->pending) return; /* end() comes again once it is committed */
  }
  reply_ok(st);
}
