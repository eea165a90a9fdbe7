/* Structured logging for gtmsmd: one JSON object per line on stderr,
 * {"ts", "level", "event", "rid", ...fields}. The level is checked before
 * anything is formatted; fields come as a jansson json_pack format, so every
 * value is escaped by the JSON encoder and user text cannot break a line. */
#ifndef GTMSMD_LOG_H
#define GTMSMD_LOG_H

typedef enum {
  LOG_LEVEL_DEBUG = 0,
  LOG_LEVEL_INFO = 1,
  LOG_LEVEL_WARN = 2,
  LOG_LEVEL_ERROR = 3,
} log_level;

/* Sets the lowest level written (thread-safe). */
void log_set_level(log_level level);
/* Non-zero when a message at level would be written. */
int log_enabled(log_level level);

/* Writes one line at level: event names what happened ("access", "listening"),
 * rid is the request id or NULL, fmt is a json_pack object format ("{s:s, s:i}")
 * for extra fields, or NULL. All arguments are borrowed: pass JSON values
 * with "O" (borrowing), never "o" (stealing, which leaks when the level is
 * off). A failure to format
 * still writes the line without the extra fields. */
void log_at(log_level level, const char *rid, const char *event, const char *fmt, ...);

/* The access line, one per request: the same JSON object as
 *   log_at(LOG_LEVEL_INFO, rid, "access", "{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:s, s:b}",
 *          "method", ..., "path", ..., "route", ..., "status", ..., "bytes_in", ...,
 *          "bytes_out", ..., "us", ..., "remote", ..., "complete", ...)
 * formatted straight into a buffer, without building jansson objects (they were
 * most of the line's cost, itself a tenth of the daemon's CPU per observation).
 * Strings: printable ASCII as is, with " and \ escaped; any other byte as
 * \u00XX (the callers' strings are printable ASCII already). rid may be NULL. */
typedef struct {
  const char *method, *path, *route, *remote;
  int status, complete;
  long long bytes_in, bytes_out, us;
} log_access_fields;
void log_access(const char *rid, const log_access_fields *f);

/* Current UTC time as RFC 3339 with milliseconds ("2026-01-02T03:04:05.678Z")
 * into out (at least 25 bytes), from ms since the epoch. */
void log_format_time(char *out, long long ms);

#endif
