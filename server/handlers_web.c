/* The web viewer: GET / is the page (index.html), GET /web/{file} its script,
 * style sheet and images, and GET /openapi.yaml the API contract the daemon
 * was built with, all embedded at build time (web_assets.h). Open
 * without an API key (the files hold no data; the page asks for a key when
 * the API needs one). Replies carry a strong ETag and Cache-Control: no-cache,
 * so a browser revalidates and gets 304 while the daemon's build is the same. */
#include <string.h>

#include "handlers.h"
#include "web_assets.h"

/* The page's own origin only: scripts, styles and fetches from the daemon,
 * images also from data: URLs (frames arrive as base64 PNGs). */
static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
                          "form-action 'none'; frame-ancestors 'none'";

static const web_asset *find_asset(const char *name) {
  for (int i = 0; i < WEB_ASSETS_N; i++)
    if (strcmp(WEB_ASSETS[i].name, name) == 0) return &WEB_ASSETS[i];
  return NULL;
}

/* Does If-None-Match (borrowed, may be NULL) list etag, or "*"? */
static int etag_matches(const char *inm, const char *etag) {
  if (!inm) return 0;
  size_t n = strlen(etag);
  for (const char *p = inm; *p;) {
    while (*p == ' ' || *p == ',') p++;
    if (strncmp(p, "W/", 2) == 0) p += 2; /* weak comparison, as RFC 9110 asks for GET */
    size_t k = strcspn(p, ",");
    while (k > 0 && p[k - 1] == ' ') k--;
    if ((k == 1 && p[0] == '*') || (k == n && strncmp(p, etag, n) == 0)) return 1;
    p += strcspn(p, ",");
  }
  return 0;
}

static void serve(http_req *r, const web_asset *f) {
  if (etag_matches(http_header(r, "If-None-Match"), f->etag)) http_reply_empty(r, 304);
  else http_reply_static(r, 200, f->ctype, f->data, f->len);
  http_header_add(r, "ETag", f->etag);
  http_header_add(r, "Cache-Control", "no-cache");
  http_header_add(r, "X-Content-Type-Options", "nosniff");
  if (strncmp(f->ctype, "text/html", 9) == 0) {
    http_header_add(r, "Content-Security-Policy", CSP);
    http_header_add(r, "Referrer-Policy", "no-referrer");
  }
}

void handle_web_index(http_req *r) {
  const web_asset *f = find_asset("index.html");
  if (!f) {
    http_problem(r, 500, "internal", NULL, "this build of gtmsmd has no index.html in its web viewer");
    return;
  }
  serve(r, f);
}

void handle_openapi(http_req *r) {
  if (API_ASSETS_N < 1) { /* embed_web.cmake refuses a build without it: not reached */
    http_problem(r, 500, "internal", NULL, "this build of gtmsmd has no openapi.yaml");
    return;
  }
  serve(r, &API_ASSETS[0]);
}

void handle_web_asset(http_req *r) {
  const char *name = http_param(r, 0);
  const web_asset *f = find_asset(name);
  if (!f) {
    http_problem(r, 404, "not-found", NULL, "no web viewer file '%.64s'", name);
    return;
  }
  serve(r, f);
}
