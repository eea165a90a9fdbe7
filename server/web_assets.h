/* The web viewer's files (clients/web), embedded in gtmsmd at build time:
 * server/embed_web.cmake turns every *.html, *.js, *.css, *.svg and *.png of
 * clients/web into the table defined in the generated web_assets.c, so the
 * daemon serves the page that matches its own API wherever it runs (no
 * folder to install or configure). Read-only, shared by all threads. The
 * same table type holds the API contract (proto/openapi.yaml). */
#ifndef GTMSMD_WEB_ASSETS_H
#define GTMSMD_WEB_ASSETS_H

#include <stddef.h>

typedef struct {
  const char *name;          /* file name, e.g. "viewer.js" */
  const char *ctype;         /* Content-Type */
  const char *etag;          /* quoted strong ETag: a prefix of the file's SHA-256 */
  const unsigned char *data; /* len bytes (followed by a NUL that len does not count) */
  size_t len;
} web_asset;

/* The embedded files, in name order (static, generated). */
extern const web_asset WEB_ASSETS[];
extern const int WEB_ASSETS_N;
/* The API contract: proto/openapi.yaml (application/yaml), embedded the same
 * way into the generated api_assets.c. */
extern const web_asset API_ASSETS[];
extern const int API_ASSETS_N;

#endif
