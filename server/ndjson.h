/* An NDJSON line splitter for bodies that arrive in arbitrary chunks: feed it
 * bytes as they come, it calls back once per complete line. Lines that lie
 * whole inside a chunk are passed without copying; only a line split across
 * chunks is buffered, and that buffer is bounded by max_line. Blank lines
 * (empty or only '\r') are skipped; a trailing '\r' is dropped ("\r\n" ends).
 * Pure code: no I/O, no JSON. */
#ifndef GTMSMD_NDJSON_H
#define GTMSMD_NDJSON_H

#include <stddef.h>
#include <stdint.h>

/* Returned by ndjson_feed / ndjson_finish when a line exceeds max_line. */
#define NDJSON_ETOOLONG (-100)

/* Called per line: line (len bytes, borrowed, not NUL-terminated) is the
 * line_no-th line (1-based, counting blank lines). A non-zero return stops
 * the splitter and is returned by ndjson_feed. */
typedef int (*ndjson_line_fn)(void *ctx, const char *line, size_t len, int64_t line_no);

typedef struct {
  char *buf;       /* partial line carried between chunks (owned) */
  size_t len, cap;
  size_t max_line; /* longest accepted line in bytes, without the newline */
  int64_t line_no; /* lines completed so far */
} ndjson_splitter;

/* Initialises s (no allocation). */
void ndjson_init(ndjson_splitter *s, size_t max_line);
/* Frees the carried buffer; s may be reused after ndjson_init. */
void ndjson_free(ndjson_splitter *s);

/* Feeds len bytes (borrowed) and calls fn for every line they complete.
 * Returns 0, fn's first non-zero return, NDJSON_ETOOLONG or GTMSM_ENOMEM. */
int ndjson_feed(ndjson_splitter *s, const char *data, size_t len, ndjson_line_fn fn, void *ctx);
/* Ends the stream: a last line without a newline is passed to fn. Same returns. */
int ndjson_finish(ndjson_splitter *s, ndjson_line_fn fn, void *ctx);

#endif
