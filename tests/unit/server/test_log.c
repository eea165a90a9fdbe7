/* The daemon's log lines (server/log.c): log_access writes the same JSON
 * object as log_at with the access line's fields (every field, in the same
 * order, the same values), one line each, for plain and hostile strings
 * (quotes, backslashes, control bytes, bytes past ASCII, a path at its
 * longest), with and without a request id, negative and large numbers; and
 * nothing below the level is written. stderr is redirected to a file. And
 * the timestamps, against dates written out by hand. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "testlib.h"

/* The lines written to stderr while fn(arg) runs. */
static char *capture(void (*fn)(const void *), const void *arg) {
  char path[] = "/tmp/gtmsm_test_log_XXXXXX";
  const int fd = mkstemp(path), saved = dup(2);
  fflush(stderr);
  dup2(fd, 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  const off_t n = lseek(fd, 0, SEEK_END);
  char *text = calloc((size_t)n + 1, 1);
  if (n > 0 && pread(fd, text, (size_t)n, 0) != n) text[0] = '\0';
  close(fd);
  unlink(path);
  return text;
}

typedef struct {
  const char *rid;
  log_access_fields f;
} access_case;

static void via_access(const void *p) {
  const access_case *c = p;
  log_access(c->rid, &c->f);
}

static void via_log_at(const void *p) {
  const access_case *c = p;
  const log_access_fields *f = &c->f;
  log_at(LOG_LEVEL_INFO, c->rid, "access", "{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:s, s:b}", "method", f->method,
         "path", f->path, "route", f->route, "status", f->status, "bytes_in", (json_int_t)f->bytes_in, "bytes_out",
         (json_int_t)f->bytes_out, "us", (json_int_t)f->us, "remote", f->remote, "complete", f->complete);
}

/* The keys of a line's object in order, with "ts" checked and dropped. */
static json_t *parse_line(const char *text, const char *what, char *keys, size_t keylen) {
  json_error_t je;
  const size_t n = strlen(text);
  CHECK(n > 0 && text[n - 1] == '\n' && strchr(text, '\n') == text + n - 1, "%s: one line", what);
  json_t *o = json_loads(text, 0, &je);
  CHECK(o && json_is_object(o), "%s: a JSON object (%s): %s", what, je.text, text);
  if (!o) return NULL;
  const char *ts = json_string_value(json_object_get(o, "ts"));
  CHECK(ts && strlen(ts) == 24 && ts[10] == 'T' && ts[23] == 'Z', "%s: ts %s", what, ts ? ts : "-");
  keys[0] = '\0';
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    strncat(keys, k, keylen - strlen(keys) - 2);
    strcat(keys, ",");
  }
  json_object_del(o, "ts");
  return o;
}

static void compare(const access_case *c, const char *what) {
  char *a = capture(via_access, c), *b = capture(via_log_at, c);
  char ka[256], kb[256];
  json_t *ja = parse_line(a, what, ka, sizeof ka), *jb = parse_line(b, what, kb, sizeof kb);
  CHECK(ja && jb && json_equal(ja, jb), "%s: the same object as log_at's:\n  %s  %s", what, a, b);
  CHECK(strcmp(ka, kb) == 0, "%s: keys in log_at's order: %s vs %s", what, ka, kb);
  json_decref(ja);
  json_decref(jb);
  free(a);
  free(b);
}

static void test_times(void) {
  static const struct {
    long long ms;
    const char *want;
  } cases[] = {{0, "1970-01-01T00:00:00.000Z"},           {951782400123LL, "2000-02-29T00:00:00.123Z"},
               {1790000000009LL, "2026-09-21T14:13:20.009Z"}, {-1, "1969-12-31T23:59:59.999Z"},
               {253402300799999LL, "9999-12-31T23:59:59.999Z"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char s[32];
    log_format_time(s, cases[i].ms);
    CHECK(strcmp(s, cases[i].want) == 0, "%lld ms: %s, expected %s", cases[i].ms, s, cases[i].want);
  }
}

int main(void) {
  test_times();
  log_set_level(LOG_LEVEL_INFO);
  access_case plain = {"a82635e9359a4ee8",
                       {"POST", "/v1/sessions/obs-1/observations", "observations", "127.0.0.1", 200, 1, 412, 175,
                        1495}};
  compare(&plain, "plain");
  access_case norid = plain;
  norid.rid = NULL;
  norid.f.complete = 0;
  norid.f.status = 499;
  compare(&norid, "no request id, incomplete");
  access_case edge = plain;
  edge.f.bytes_in = -1;
  edge.f.bytes_out = 9223372036854775807LL;
  edge.f.us = -9223372036854775807LL - 1;
  edge.f.remote = "";
  compare(&edge, "extreme numbers, empty remote");
  /* hostile text: log_at escapes through jansson; the control bytes must come back the same */
  access_case hostile = plain;
  hostile.f.path = "/v1/\"quoted\"\\back\\slash/\x01\x1f\t\n\r\x7f";
  hostile.f.method = "GE\"T";
  compare(&hostile, "quotes, backslashes, control bytes");
  /* past ASCII: jansson keeps valid UTF-8 as is, log_access writes \u00XX for each byte (the
   * callers never pass such bytes), so the line must stay valid JSON with the same keys */
  access_case high = plain;
  high.f.path = "/v1/caf\xc3\xa9/\xff";
  char *t = capture(via_access, &high);
  char keys[256];
  json_t *j = parse_line(t, "bytes past ASCII", keys, sizeof keys);
  const char *p = j ? json_string_value(json_object_get(j, "path")) : NULL;
  CHECK(p && strcmp(p, "/v1/caf\xc3\x83\xc2\xa9/\xc3\xbf") == 0, "bytes past ASCII: each byte as U+00XX: %s", t);
  json_decref(j);
  free(t);
  /* a long path (longer than http.c ever logs) and request id: the heap buffer */
  static char longpath[3000];
  for (size_t i = 0; i + 1 < sizeof longpath; i++) longpath[i] = i % 7 ? 'a' + (char)(i % 26) : '"';
  access_case big = plain;
  big.f.path = longpath;
  compare(&big, "a 3,000-byte path of quotes and letters");
  /* the level */
  log_set_level(LOG_LEVEL_WARN);
  t = capture(via_access, &plain);
  CHECK(t[0] == '\0', "nothing below the level: %s", t);
  free(t);
  log_set_level(LOG_LEVEL_INFO);
  printf("log_access: 5 cases give log_at's object and key order, bytes past ASCII escaped, the level honoured\n");
  return test_finish("test_log");
}
