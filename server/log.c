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

/* n (0 <= n < 10^w) as w digits at o */
static void digits(char *o, long long n, int w) {
  for (int i = w - 1; i >= 0; i--, n /= 10) o[i] = (char)('0' + n % 10);
}

void log_format_time(char *out, long long ms) {
  long long q = ms / 1000, r = ms % 1000;
  if (r < 0) r += 1000, q -= 1; /* before 1970: the second below, then its milliseconds */
  time_t sec = (time_t)q;
  struct tm tm;
  gmtime_r(&sec, &tm);
  long long year = tm.tm_year + 1900LL;
  if (year < 0 || year > 9999) year = year < 0 ? 0 : 9999; /* RFC 3339 has four digits */
  /* "YYYY-MM-DDTHH:MM:SS.mmmZ" without printf: one per log line */
  memcpy(out, "0000-00-00T00:00:00.000Z", 25);
  digits(out, year, 4);
  digits(out + 5, tm.tm_mon + 1, 2);
  digits(out + 8, tm.tm_mday, 2);
  digits(out + 11, tm.tm_hour, 2);
  digits(out + 14, tm.tm_min, 2);
  digits(out + 17, tm.tm_sec, 2);
  digits(out + 20, r, 3);
}

/* The wall clock now, as log_format_time writes it. */
static void now_text(char when[32]) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  log_format_time(when, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* One line (with its newline) in one locked write. */
static void write_line(const char *s, size_t n) {
  flockfile(stderr);
  fwrite(s, 1, n, stderr);
  funlockfile(stderr);
}

void log_at(log_level level, const char *rid, const char *event, const char *fmt, ...) {
  if (!log_enabled(level)) return;
  char when[32];
  now_text(when);
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
  write_line(s, n + 1);
  free(s);
}

/* ---- the access line, without jansson ---- */

/* "s" as a JSON string at o; at most 2 + 6 strlen(s) bytes. */
static char *put_str(char *o, const char *s) {
  static const char HEX[] = "0123456789abcdef";
  *o++ = '"';
  for (; *s; s++) {
    const unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = (char)c;
    } else if (c >= 0x20 && c < 0x7f) {
      *o++ = (char)c;
    } else {
      memcpy(o, "\\u00", 4);
      o[4] = HEX[c >> 4];
      o[5] = HEX[c & 15];
      o += 6;
    }
  }
  *o++ = '"';
  return o;
}

/* ,"key": then the value */
static char *put_key(char *o, const char *key) {
  *o++ = ',';
  o = put_str(o, key);
  *o++ = ':';
  return o;
}

static char *put_int(char *o, long long v) {
  char tmp[24];
  int n = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do tmp[n++] = (char)('0' + u % 10);
  while (u /= 10);
  if (v < 0) *o++ = '-';
  while (n) *o++ = tmp[--n];
  return o;
}

void log_access(const char *rid, const log_access_fields *f) {
  if (!log_enabled(LOG_LEVEL_INFO)) return;
  const char *strs[] = {rid ? rid : "", f->method, f->path, f->route, f->remote};
  size_t need = 256; /* keys, numbers, punctuation */
  for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) need += 6 * strlen(strs[i]);
  char stack[4096], *buf = need <= sizeof stack ? stack : malloc(need);
  if (!buf) return;
  char when[32];
  now_text(when);
  char *o = buf;
  *o++ = '{';
  o = put_str(o, "ts");
  *o++ = ':';
  o = put_str(o, when);
  o = put_str(put_key(o, "level"), LEVEL_NAMES[LOG_LEVEL_INFO]);
  o = put_str(put_key(o, "event"), "access");
  if (rid) o = put_str(put_key(o, "rid"), rid);
  o = put_str(put_key(o, "method"), f->method);
  o = put_str(put_key(o, "path"), f->path);
  o = put_str(put_key(o, "route"), f->route);
  o = put_int(put_key(o, "status"), f->status);
  o = put_int(put_key(o, "bytes_in"), f->bytes_in);
  o = put_int(put_key(o, "bytes_out"), f->bytes_out);
  o = put_int(put_key(o, "us"), f->us);
  o = put_str(put_key(o, "remote"), f->remote);
  o = put_key(o, "complete");
  memcpy(o, f->complete ? "true" : "false", f->complete ? 4 : 5);
  o += f->complete ? 4 : 5;
  *o++ = '}';
  *o++ = '\n';
  write_line(buf, (size_t)(o - buf));
  if (buf != stack) free(buf);
}
