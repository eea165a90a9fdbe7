/* The one routing table of gtmsmd: method, path pattern ({name} segments are
 * parameters), the metrics label, how the body is taken, whether it is open
 * without an API key, and the handler callbacks (see http.h for the
 * lifecycle). */
#ifndef GTMSMD_ROUTES_H
#define GTMSMD_ROUTES_H

#include <jansson.h>
#include <stddef.h>

#include "http.h"

typedef enum {
  ROUTE_BODY_NONE,   /* a body is read and ignored */
  ROUTE_BODY_BUFFER, /* the body is buffered (up to --max-body) for end() */
  ROUTE_BODY_STREAM, /* data() gets each chunk as it arrives */
} route_body;

typedef struct {
  const char *method;
  const char *pattern;
  const char *name;
  route_body body;
  int open;                                  /* no API key needed */
  void (*start)(http_req *r);                /* may be NULL */
  void (*data)(http_req *r, const char *d, size_t n); /* stream routes */
  void (*end)(http_req *r);
  json_t *(*progress)(http_req *r);          /* may be NULL: members for a 413 mid-stream */
} route;

#define ROUTES_MAX_PARAMS 2
#define ROUTES_PARAM_MAX 256

/* Routes in the table; index routes_count() is the "unmatched" metrics label. */
int routes_count(void);
const route *routes_get(int i);
/* The route's name (its log and metrics label), or "unmatched" outside
 * 0..routes_count()-1; static. */
const char *routes_name(int i);

/* Matches method and path (borrowed). Returns the route index with its
 * parameters copied into params (each truncated to ROUTES_PARAM_MAX bytes);
 * HEAD matches every GET route. -1 when no pattern matches the path; -2 when
 * the path matches only with other methods, listed in allow ("GET, HEAD,
 * PUT"). */
int routes_match(const char *method, const char *path,
                 char params[ROUTES_MAX_PARAMS][ROUTES_PARAM_MAX + 1], char *allow,
                 size_t allowlen);

#endif
