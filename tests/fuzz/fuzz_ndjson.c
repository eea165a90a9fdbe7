/* libFuzzer target: an observations body as the daemon receives it. The
 * first byte picks a chunk size; the rest is fed to the NDJSON splitter in
 * those chunks and every line parsed as an observation (JSON, base64, PNG,
 * shape, action). Checks: no crash, leak or UB; a parsed observation is in
 * range; the lines are the same whatever the chunking (whole vs chunked). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "fuzz_common.h"
#include "ndjson.h"

typedef struct {
  uint64_t hash;
  int lines;
} digest;

static int on_line(void *ctx, const char *line, size_t len, int64_t line_no) {
  digest *d = ctx;
  for (size_t i = 0; i < len; i++) d->hash = (d->hash ^ (uint8_t)line[i]) * 1099511628211ULL;
  d->hash = (d->hash ^ (uint64_t)line_no) * 1099511628211ULL;
  d->lines++;
  const gtmsm_model *m = fuzz_model();
  static uint8_t pix[8 * 8 * 3];
  int64_t t = -1;
  int action = -1;
  codec_error e;
  int rc = codec_parse_observation_line(m, line, len, line_no, &t, &action, pix, &e);
  if (rc == 0 && (t < 0 || action < 0 || action >= m->cfg.A)) abort();
  if (rc != 0 && (rc < 400 || rc > 599 || !e.slug || !memchr(e.detail, '\0', sizeof e.detail))) abort();
  return 0;
}

static int run(const uint8_t *data, size_t size, size_t chunk, digest *d) {
  ndjson_splitter s;
  ndjson_init(&s, 4096);
  int rc = 0;
  for (size_t pos = 0; pos < size && !rc; pos += chunk) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    rc = ndjson_feed(&s, (const char *)data + pos, n, on_line, d);
  }
  if (!rc) rc = ndjson_finish(&s, on_line, d);
  ndjson_free(&s);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = 1 + data[0] % 64;
  digest whole = {14695981039346656037ULL, 0}, chunked = whole;
  int rc1 = run(data + 1, size - 1, size, &whole);
  int rc2 = run(data + 1, size - 1, chunk, &chunked);
  if (rc1 != rc2 || whole.hash != chunked.hash || whole.lines != chunked.lines) abort();
  return 0;
}
