/* NDJSON line splitting over chunked input (see ndjson.h). */
#include "ndjson.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"

void ndjson_init(ndjson_splitter *s, size_t max_line) {
  memset(s, 0, sizeof *s);
  s->max_line = max_line;
}

void ndjson_free(ndjson_splitter *s) {
  free(s->buf);
  s->buf = NULL;
  s->len = s->cap = 0;
}

/* Passes one complete line (without its '\n') to fn unless it is blank. */
static int emit(ndjson_splitter *s, const char *line, size_t len, ndjson_line_fn fn, void *ctx) {
  s->line_no++;
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len > s->max_line) return NDJSON_ETOOLONG;
  if (len == 0) return 0;
  return fn(ctx, line, len, s->line_no);
}

static int carry(ndjson_splitter *s, const char *data, size_t n) {
  if (s->len + n > s->max_line + 1) return NDJSON_ETOOLONG; /* +1: a '\r' before the '\n' */
  if (s->len + n > s->cap) {
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + n) cap *= 2;
    char *b = realloc(s->buf, cap);
    if (!b) return GTMSM_ENOMEM;
    s->buf = b;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, data, n);
  s->len += n;
  return 0;
}

int ndjson_feed(ndjson_splitter *s, const char *data, size_t len, ndjson_line_fn fn, void *ctx) {
  int rc;
  while (len > 0) {
    const char *nl = memchr(data, '\n', len);
    if (!nl) return carry(s, data, len);
    size_t n = (size_t)(nl - data);
    if (s->len > 0) { /* completes a line carried from earlier chunks */
      if ((rc = carry(s, data, n))) return rc;
      size_t total = s->len;
      s->len = 0;
      rc = emit(s, s->buf, total, fn, ctx);
    } else {
      if (n > s->max_line + 1) return NDJSON_ETOOLONG;
      rc = emit(s, data, n, fn, ctx);
    }
    if (rc) return rc;
    data = nl + 1;
    len -= n + 1;
  }
  return 0;
}

int ndjson_finish(ndjson_splitter *s, ndjson_line_fn fn, void *ctx) {
  if (s->len == 0) return 0;
  size_t total = s->len;
  s->len = 0;
  return emit(s, s->buf, total, fn, ctx);
}
