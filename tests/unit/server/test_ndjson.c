/* The NDJSON line splitter: the same lines whatever the chunking (every pair
 * of split points of a sample, and random chunk sizes over 200 lines), CRLF
 * and blank lines, a last line without a newline, the max_line bound (exact,
 * also across chunks), a callback that stops the stream, and lines that lie
 * inside one chunk passed without copying. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ndjson.h"
#include "nn/rng.h"
#include "testlib.h"

typedef struct {
  char *out; /* lines joined with '|' */
  size_t len, cap;
  int lines;
  int64_t last_no;
  int stop_at;                     /* return 7 from the callback at this line (0: never) */
  const char *chunk_lo, *chunk_hi; /* the chunk being fed */
  int zero_copy;                   /* lines passed as pointers into the chunk */
} sink;

static int collect(void *ctx, const char *line, size_t len, int64_t line_no) {
  sink *s = ctx;
  if (line >= s->chunk_lo && line < s->chunk_hi) s->zero_copy++;
  if (s->len + len + 2 > s->cap) {
    s->cap = 2 * (s->len + len + 2);
    s->out = realloc(s->out, s->cap);
  }
  memcpy(s->out + s->len, line, len);
  s->len += len;
  s->out[s->len++] = '|';
  s->out[s->len] = '\0';
  s->lines++;
  s->last_no = line_no;
  return s->stop_at && s->lines == s->stop_at ? 7 : 0;
}

/* Feeds text cut at cuts (ascending) and finishes; returns the first non-zero code. */
static int feed(const char *text, size_t n, const size_t *cuts, int ncuts, size_t max_line, sink *s) {
  ndjson_splitter sp;
  ndjson_init(&sp, max_line);
  size_t pos = 0;
  int rc = 0;
  for (int i = 0; i <= ncuts && !rc; i++) {
    size_t end = i < ncuts ? cuts[i] : n;
    s->chunk_lo = text + pos;
    s->chunk_hi = text + end;
    rc = ndjson_feed(&sp, text + pos, end - pos, collect, s);
    pos = end;
  }
  if (!rc) rc = ndjson_finish(&sp, collect, s);
  ndjson_free(&sp);
  return rc;
}

static void test_every_split(void) {
  const char *text = "{\"a\":1}\n\r\n{\"b\":22}\r\n\n{\"c\":333}\nlast";
  const char *want = "{\"a\":1}|{\"b\":22}|{\"c\":333}|last|";
  size_t n = strlen(text);
  int bad = 0, total = 0;
  for (size_t a = 0; a <= n; a++)
    for (size_t b = a; b <= n; b++) {
      size_t cuts[2] = {a, b};
      sink s = {0};
      int rc = feed(text, n, cuts, 2, 64, &s);
      total++;
      if (rc || !s.out || strcmp(s.out, want) != 0 || s.last_no != 6 || s.lines != 4) {
        if (!bad++) fprintf(stderr, "split %zu,%zu: rc %d got '%s'\n", a, b, rc, s.out ? s.out : "");
      }
      free(s.out);
    }
  CHECK(bad == 0, "%d of %d two-cut splits differ", bad, total);
  printf("all %d two-cut splits of a %zu-byte sample give %s (6 lines, 2 blank)\n", total, n, want);
}

static void test_random_chunks(void) {
  enum { LINES = 200, MAXLEN = 70 };
  char *text = malloc(LINES * (MAXLEN + 2) + 1), *want = malloc(LINES * (MAXLEN + 2) + 1);
  size_t n = 0, w = 0;
  rng_t r;
  rng_init(&r, 5, 1);
  for (int i = 0; i < LINES; i++) {
    int len = 1 + (int)(rng_uniform(&r) * MAXLEN);
    for (int k = 0; k < len; k++) text[n++] = want[w++] = (char)('a' + (i + k) % 26);
    text[n++] = '\n';
    want[w++] = '|';
  }
  text[n] = want[w] = '\0';
  int bad = 0, zero_copy = 0;
  for (int trial = 0; trial < 100; trial++) {
    size_t cuts[LINES * 4];
    int nc = 0;
    size_t step = 1 + (size_t)(rng_uniform(&r) * 300);
    for (size_t pos = step; pos < n && nc < LINES * 4; pos += 1 + (size_t)(rng_uniform(&r) * 2 * step))
      cuts[nc++] = pos;
    sink s = {0};
    int rc = feed(text, n, cuts, nc, MAXLEN, &s);
    if (rc || !s.out || strcmp(s.out, want) != 0 || s.lines != LINES) bad++;
    zero_copy += s.zero_copy;
    free(s.out);
  }
  CHECK(bad == 0, "%d of 100 random chunkings of %d lines differ", bad, LINES);
  CHECK(zero_copy > 0, "lines inside one chunk are passed without copying");
  printf("100 random chunkings of %d lines (%zu bytes): identical; %d lines passed zero-copy\n", LINES,
         n, zero_copy);
  free(text);
  free(want);
}

static void test_max_line(void) {
  const char *ok = "12345678\n123456789\n";
  sink s = {0};
  int rc = feed(ok, strlen(ok), NULL, 0, 8, &s);
  CHECK(rc == NDJSON_ETOOLONG && s.lines == 1, "a 9-byte line over max_line 8: rc %d after %d lines",
        rc, s.lines);
  free(s.out);
  /* the same across chunks: the carried buffer is bounded too */
  size_t cuts[3] = {3, 11, 14};
  s = (sink){0};
  rc = feed(ok, strlen(ok), cuts, 3, 8, &s);
  CHECK(rc == NDJSON_ETOOLONG && s.lines == 1, "split 9-byte line: rc %d after %d lines", rc, s.lines);
  free(s.out);
  /* "\r\n" does not count against the bound; a final line without newline does */
  const char *crlf = "12345678\r\n12345678";
  s = (sink){0};
  rc = feed(crlf, strlen(crlf), NULL, 0, 8, &s);
  CHECK(rc == 0 && s.lines == 2, "8 bytes + CRLF and a final 8 bytes fit max_line 8: rc %d lines %d", rc,
        s.lines);
  free(s.out);
  const char *last = "123456789";
  size_t cut[1] = {4};
  s = (sink){0};
  rc = feed(last, strlen(last), cut, 1, 8, &s);
  CHECK(rc == NDJSON_ETOOLONG && s.lines == 0, "a final 9-byte line: rc %d", rc);
  free(s.out);
  printf("max_line: exact bound, also across chunks and for the last line\n");
}

static void test_stop(void) {
  const char *text = "a\nb\nc\nd\n";
  sink s = {0};
  s.stop_at = 2;
  int rc = feed(text, strlen(text), NULL, 0, 8, &s);
  CHECK(rc == 7 && s.lines == 2 && strcmp(s.out, "a|b|") == 0, "a callback's non-zero stops: rc %d '%s'",
        rc, s.out ? s.out : "");
  free(s.out);
  s = (sink){0};
  rc = feed("", 0, NULL, 0, 8, &s);
  CHECK(rc == 0 && s.lines == 0, "an empty stream has no lines");
  s = (sink){0};
  rc = feed("\n\n\r\n", 4, NULL, 0, 8, &s);
  CHECK(rc == 0 && s.lines == 0 && s.last_no == 0, "blank lines are skipped (but counted)");
  printf("a callback's return stops the stream; empty and blank input give no lines\n");
}

int main(void) {
  test_every_split();
  test_random_chunks();
  test_max_line();
  test_stop();
  return test_finish("test_ndjson");
}
