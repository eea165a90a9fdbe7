/* The routing table and API keys: every pattern matches its own paths with
 * the parameters captured, literal paths win over {id}, other methods give
 * -2 with the Allow list, unknown paths -1; bearer keys match exactly (not a
 * prefix, not another scheme) and every key is checked; a UTF-8 byte order
 * mark at the start of the keys file is not part of the first key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "routes.h"
#include "testlib.h"

static int match(const char *method, const char *path, char params[ROUTES_MAX_PARAMS][ROUTES_PARAM_MAX + 1],
                 char *allow) {
  return routes_match(method, path, params, allow, 64);
}

static void test_routes(void) {
  char p[ROUTES_MAX_PARAMS][ROUTES_PARAM_MAX + 1], allow[64];
  struct {
    const char *method, *path, *name, *param;
  } ok[] = {
      {"GET", "/v2/health/live", "health_live", NULL},
      {"GET", "/v2/health/ready", "health_ready", NULL},
      {"GET", "/metrics", "metrics", NULL},
      {"GET", "/v1/models", "models_list", NULL},
      {"GET", "/v1/models/imagenav", "model_get", "imagenav"},
      {"POST", "/v1/sessions", "session_create", NULL},
      {"GET", "/v1/sessions", "session_list", NULL},
      {"POST", "/v1/sessions/walker-1/rebuild", "session_rebuild", "walker-1"},
      {"POST", "/v1/sessions/import", "session_import", NULL},
      {"GET", "/v1/sessions/import", "session_get", "import"},
      {"PUT", "/v1/sessions/abc", "session_put", "abc"},
      {"GET", "/v1/sessions/abc", "session_get", "abc"},
      {"DELETE", "/v1/sessions/abc", "session_delete", "abc"},
      {"POST", "/v1/sessions/a-b_c/observations", "observations", "a-b_c"},
      {"POST", "/v1/sessions/x/predictions", "predictions", "x"},
      {"GET", "/v1/sessions/x/export", "session_export", "x"},
      {"GET", "/", "web_index", NULL},
      {"GET", "/web/viewer.js", "web_asset", "viewer.js"},
      {"GET", "/v1/demo/worlds", "demo_worlds", NULL},
      {"POST", "/v1/demo/episodes", "demo_episode", NULL},
      {"POST", "/v1/demo/episodes/step", "demo_step", NULL},
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    int r = match(ok[i].method, ok[i].path, p, allow);
    const route *rt = routes_get(r);
    CHECK(rt && strcmp(rt->name, ok[i].name) == 0 && strcmp(routes_name(r), ok[i].name) == 0,
          "%s %s -> %s (got %d)", ok[i].method, ok[i].path, ok[i].name, r);
    if (rt && ok[i].param) CHECK(strcmp(p[0], ok[i].param) == 0, "param of %s: %s", ok[i].path, p[0]);
  }
  CHECK(match("DELETE", "/v1/models", p, allow) == -2 && strcmp(allow, "GET, HEAD") == 0,
        "405 with Allow GET, HEAD: '%s'", allow);
  CHECK(match("POST", "/v1/sessions/abc", p, allow) == -2 && strcmp(allow, "PUT, GET, HEAD, DELETE") == 0,
        "405 on a session: Allow '%s'", allow);
  CHECK(match("POST", "/", p, allow) == -2 && strcmp(allow, "GET, HEAD") == 0, "405 on / with Allow GET, HEAD");
  /* HEAD: every GET route, by the GET entry; none other. */
  int nhead = 0;
  for (int i = 0; i < routes_count(); i++) {
    const route *rt = routes_get(i);
    if (strcmp(rt->method, "GET") != 0 || strchr(rt->pattern, '{')) continue;
    CHECK(match("HEAD", rt->pattern, p, allow) == i, "HEAD %s -> %s", rt->pattern, rt->name);
    nhead++;
  }
  CHECK(nhead >= 5, "HEAD checked on %d literal GET routes", nhead);
  CHECK(strcmp(routes_name(match("HEAD", "/v1/sessions/abc", p, allow)), "session_get") == 0 &&
            strcmp(p[0], "abc") == 0, "HEAD /v1/sessions/abc -> session_get");
  CHECK(match("HEAD", "/v1/demo/episodes", p, allow) == -2 && strcmp(allow, "POST") == 0,
        "HEAD on a POST route: 405 Allow '%s'", allow);
  CHECK(strcmp(routes_name(match("HEAD", "/v1/sessions", p, allow)), "session_list") == 0,
        "HEAD /v1/sessions -> the listing (GET beside POST)");
  const char *none[] = {"", "/web", "/web/", "/web/a/b", "/v1/demo", "/v1/demo/episodes/step/x", "/v1", "/v1/models/", "/v1/sessions/a/b",
                        "//v1/models", "/v1/sessions//export", "/metrics/x", "/v2/health"};
  for (size_t i = 0; i < sizeof none / sizeof *none; i++)
    CHECK(match("GET", none[i], p, allow) == -1, "'%s' matches nothing", none[i]);
  char longpath[1200];
  snprintf(longpath, sizeof longpath, "/v1/sessions/%0600d", 7);
  CHECK(match("GET", longpath, p, allow) >= 0 && strlen(p[0]) == ROUTES_PARAM_MAX,
        "a long parameter is truncated to %d bytes (then refused as an id)", ROUTES_PARAM_MAX);
  CHECK(routes_get(routes_count()) == NULL && strcmp(routes_name(routes_count()), "unmatched") == 0,
        "the extra metrics label is 'unmatched'");
  printf("routes: %zu matches, 405 Allow lists, %zu non-matches\n", sizeof ok / sizeof *ok,
         sizeof none / sizeof *none);
}

static void test_auth(void) {
  char path[] = "/tmp/gtmsm_keys_XXXXXX", err[256] = "";
  int fd = mkstemp(path);
  const char *text = "# keys\nalpha-key\n\n   beta   \n#gamma\n";
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write keys");
  close(fd);
  auth_keys a;
  CHECK(auth_load(&a, path, err, sizeof err) == 0 && a.n == 2, "two keys loaded: %s", err);
  CHECK(auth_check(&a, "Bearer alpha-key") && auth_check(&a, "Bearer beta") && auth_check(&a, "bearer beta"),
        "both keys accepted (scheme case-insensitive)");
  const char *bad[] = {NULL, "", "Bearer", "Bearer ", "Bearer alpha", "Bearer alpha-key2", "Bearer beta ",
                       "Basic alpha-key", "alpha-key", "Bearer #gamma", "Bearer gamma"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(!auth_check(&a, bad[i]), "'%s' refused", bad[i] ? bad[i] : "(none)");
  auth_free(&a);
  CHECK(auth_load(&a, "", err, sizeof err) == 0 && !auth_enabled(&a) && auth_check(&a, NULL),
        "no keys file: auth off");
  FILE *f = fopen(path, "w");
  fputs("# only comments\n\n", f);
  fclose(f);
  CHECK(auth_load(&a, path, err, sizeof err) != 0 && strstr(err, "no key"), "a file without keys: %s", err);
  f = fopen(path, "w");
  fputs("has space inside\n", f);
  fclose(f);
  CHECK(auth_load(&a, path, err, sizeof err) != 0 && strstr(err, ":1:"), "a key with spaces: %s", err);
  CHECK(auth_load(&a, "/nonexistent/keys", err, sizeof err) != 0, "a missing file is an error");
  /* A keys file saved by an editor that writes a UTF-8 byte order mark: the
   * mark is not part of the first key. */
  f = fopen(path, "w");
  fputs("\xEF\xBB\xBF" "first-key\nsecond-key\n", f);
  fclose(f);
  CHECK(auth_load(&a, path, err, sizeof err) == 0 && a.n == 2, "a keys file with a BOM loads: %s", err);
  CHECK(auth_check(&a, "Bearer first-key") && auth_check(&a, "Bearer second-key"),
        "the first key after a BOM is usable");
  CHECK(!auth_check(&a, "Bearer \xEF\xBB\xBF" "first-key"), "the BOM is not part of the key");
  auth_free(&a);
  f = fopen(path, "w");
  fputs("# comment\n\xEF\xBB\xBF" "mid-file\n", f);
  fclose(f);
  CHECK(auth_load(&a, path, err, sizeof err) != 0 && strstr(err, ":2:") && strstr(err, "printable"),
        "a BOM inside the file is a key that no client can send: an error naming line 2: %s", err);
  unlink(path);
  printf("auth: exact bearer match over every key; %zu refusals\n", sizeof bad / sizeof *bad);
}

int main(void) {
  test_routes();
  test_auth();
  return test_finish("test_routes");
}
