/* JSON-lines logging (see log.h): level check first, one locked write per line. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonfmt.h"

static atomic_int g_level = LOG_LEVEL_INFO;
static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level level) { atomic_store(&g_level, (int)level); }

int log_enabled(log_level level) { return (int)level >= atomic_load(&g_level); }

void log_format_time(char *out, long long ms) {
  time_t sec = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char buf[96]; /* room for any int the compiler imagines; the real text is 24 bytes */
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
  buf[24] = '\0';
  memcpy(out, buf, 25);
}

void log_at(log_level level, const char *rid, const char *event, const char *fmt, ...) {
  if (!log_enabled(level)) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char when[32];
  log_format_time(when, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  json_t *line = json_object();
  if (!line) return;
  json_object_set_new(line, "ts", json_string(when));
  json_object_set_new(line, "level", json_string(LEVEL_NAMES[level]));
  json_object_set_new(line, "event", json_string(event ? event : ""));
  if (rid) json_object_set_new(line, "rid", json_string(rid));
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    json_error_t jerr;
    json_t *extra = json_vpack_ex(&jerr, 0, fmt, ap);
    va_end(ap);
    if (extra) {
      json_object_update(line, extra);
      json_decref(extra);
    } else {
      json_object_set_new(line, "log_error", json_string(jerr.text));
    }
  }
  char *s = jsonfmt_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(line);
  if (!s) return;
  size_t n = strlen(s);
  s[n] = '\n'; /* the NUL becomes the newline: one write of n + 1 bytes */
  flockfile(stderr);
  fwrite(s, 1, n + 1, stderr);
  funlockfile(stderr);
  free(s);
}
