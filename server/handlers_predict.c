/* POST /v1/sessions/{id}/predictions: one batched gtmsm_predict under the
 * session's shared lock (concurrent predictions of a session run in
 * parallel), then the frames as JSON, one PNG film strip, or NDJSON lines
 * encoded as the client reads them (a 64 KiB block of lines at a time). */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "handlers.h"
#include "jsonfmt.h"
#include "img/png.h"

typedef enum { FMT_JSON, FMT_PNG, FMT_NDJSON } reply_format;

/* What predictions can be sent as, in the order of preference when the client
 * does not mind (indices are reply_format values). */
static const char *const FORMATS[] = {"application/json", "image/png", "application/x-ndjson"};

/* One predicted frame as a JSON object (new reference). */
static json_t *frame_json(const gtmsm_model *m, int i, int action, const uint8_t *pix,
                          const float *state) {
  char *b64 = NULL;
  if (codec_png_base64_fast(pix, m->cfg.H, m->cfg.W, m->cfg.C, &b64)) return NULL;
  json_t *st = jsonfmt_f32_array(state, m->cfg.S);
  if (!st) {
    free(b64);
    return NULL;
  }
  json_t *j = json_pack("{s:i, s:s, s:s, s:o}", "index", i, "action", m->cfg.action_names[action],
                        "png", b64, "state", st);
  free(b64);
  return j;
}

typedef struct {
  const gtmsm_model *m;
  int n, i;
  int *actions;   /* (n), owned */
  uint8_t *pix;   /* (n, D), owned */
  float *states;  /* (n, S), owned */
  char *line;     /* the current line, owned */
  size_t len, pos;
} ndjson_stream;

static void stream_free(void *p) {
  ndjson_stream *s = p;
  free(s->actions);
  free(s->pix);
  free(s->states);
  free(s->line);
  free(s);
}

/* Fills buf with as many lines as fit (the last one possibly in part):
 * libmicrohttpd calls this once per turn of a worker's event loop, so one
 * line per call would make a long prediction wait for every other busy
 * connection once per frame. */
static long stream_next(void *cls, char *buf, size_t max) {
  ndjson_stream *s = cls;
  size_t used = 0;
  while (used < max) {
    if (s->pos == s->len) {
      if (s->i == s->n) break;
      const size_t D = (size_t)gtmsm_config_D(&s->m->cfg);
      json_t *j = frame_json(s->m, s->i, s->actions[s->i], s->pix + (size_t)s->i * D,
                             s->states + (size_t)s->i * s->m->cfg.S);
      free(s->line);
      s->line = j ? jsonfmt_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
      json_decref(j);
      if (!s->line) return -1;
      s->len = strlen(s->line);
      s->line[s->len++] = '\n'; /* the NUL becomes the newline */
      s->pos = 0;
      s->i++;
    }
    size_t k = s->len - s->pos < max - used ? s->len - s->pos : max - used;
    memcpy(buf + used, s->line + s->pos, k);
    s->pos += k;
    used += k;
  }
  return (long)used;
}

void handle_predict(http_req *r) {
  if (handler_require_json(r)) return;
  app *a = http_app(r);
  const int pick = codec_pick_media(http_header(r, "Accept"), FORMATS, 3);
  if (pick < 0) {
    http_problem(r, 406, "not-acceptable", NULL, "Accept '%.100s' allows none of application/json, "
                 "image/png, application/x-ndjson (a q=0 refuses a type)", http_header(r, "Accept"));
    return;
  }
  const reply_format fmt = (reply_format)pick;
  session *s = NULL;
  if (handler_session(r, &s)) return;
  codec_predict p = {0};
  float *states = NULL;
  uint8_t *pix = NULL;
  char err[256] = "";
  if (handler_lock(r, s, 0)) goto done;
  const gtmsm_model *m = s->model->m;
  const size_t D = (size_t)gtmsm_config_D(&m->cfg);
  size_t len = 0;
  const char *body = http_body(r, &len);
  codec_error e;
  if (codec_parse_predict(m, body, len, a->cfg.max_actions, &p, &e)) {
    sessions_unlock(a->cache, s);
    http_problem_codec(r, &e, NULL);
    goto done;
  }
  states = malloc(sizeof(float) * (size_t)m->cfg.S * (size_t)p.n);
  pix = malloc(D * (size_t)p.n);
  int rc = states && pix ? 0 : GTMSM_ENOMEM;
  if (!rc) rc = gtmsm_predict_u8(m, s->mem, p.actions, p.n, p.mode, p.seed, pix, states, err, sizeof err);
  const int64_t steps = s->steps;
  sessions_unlock(a->cache, s);
  if (rc) {
    http_problem(r, 500, "internal", NULL, "prediction failed: %s", err);
    goto done;
  }
  metrics_frames_predicted(a->metrics, p.n);
  char count[24];
  snprintf(count, sizeof count, "%d", p.n);
  if (fmt == FMT_PNG) {
    uint8_t *strip = malloc(D * (size_t)p.n), *png = NULL;
    size_t png_len = 0;
    if (strip) codec_film_strip(strip, pix, p.n, m->cfg.H, m->cfg.W, m->cfg.C);
    if (!strip || pngio_encode_fast(&png, &png_len, strip, m->cfg.H, m->cfg.W * p.n, m->cfg.C, err,
                               sizeof err)) {
      free(strip);
      http_problem(r, 500, "internal", NULL, "encoding the film strip: %s", err);
      goto done;
    }
    free(strip);
    char w[16];
    snprintf(w, sizeof w, "%d", m->cfg.W);
    http_reply_bytes(r, 200, "image/png", png, png_len);
    http_header_add(r, "X-Frame-Count", count);
    http_header_add(r, "X-Frame-Width", w);
  } else if (fmt == FMT_NDJSON) {
    ndjson_stream *ns = calloc(1, sizeof *ns);
    if (!ns) {
      http_problem(r, 503, "overloaded", NULL, "out of memory");
      goto done;
    }
    ns->m = m;
    ns->n = p.n;
    ns->actions = p.actions;
    ns->pix = pix;
    ns->states = states;
    p.actions = NULL; /* moved into the stream */
    p.n = 0;
    pix = NULL;
    states = NULL;
    http_reply_stream(r, 200, "application/x-ndjson", stream_next, ns, stream_free);
    http_header_add(r, "X-Frame-Count", count);
  } else {
    json_t *list = json_array();
    for (int i = 0; i < p.n; i++) {
      json_t *f = frame_json(m, i, p.actions[i], pix + (size_t)i * D, states + (size_t)i * m->cfg.S);
      if (!f) {
        json_decref(list);
        http_problem(r, 500, "internal", NULL, "encoding frame %d", i);
        goto done;
      }
      json_array_append_new(list, f);
    }
    http_reply_json(r, 200, json_pack("{s:I, s:o}", "steps", (json_int_t)steps, "frames", list));
    http_header_add(r, "X-Frame-Count", count);
  }
done:
  sessions_release(a->cache, s);
  codec_predict_free(&p);
  free(states);
  free(pix);
}
