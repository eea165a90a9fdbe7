/* API keys file and constant-time bearer check (see auth.h). */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"

int auth_load(auth_keys *a, const char *path, char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  if (!path || !*path) return 0;
  FILE *f = fopen(path, "r");
  if (!f) return gtmsm_fail(err, errlen, GTMSM_EINVAL, "cannot read the API keys file %s", path);
  char line[4096];
  int rc = 0, cap = 0, lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    size_t n = strcspn(line, "\r\n");
    line[n] = '\0';
    char *p = line;
    /* Editors on some systems start a UTF-8 file with a byte order mark. */
    if (lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    while (*p == ' ' || *p == '\t') p++;
    n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) p[--n] = '\0';
    if (n == 0 || p[0] == '#') continue;
    /* A client sends the key in an Authorization header: any other byte (a
     * stray BOM, a control character) would make it silently unusable. */
    size_t printable = 0;
    while (printable < n && p[printable] > 0x20 && p[printable] < 0x7f) printable++;
    if (n >= AUTH_KEY_MAX || printable != n) {
      rc = gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "%s:%d: a key is 1..%d printable ASCII bytes without spaces", path, lineno,
                      AUTH_KEY_MAX - 1);
      break;
    }
    if (a->n == cap) {
      cap = cap ? 2 * cap : 8;
      void *k = realloc(a->keys, (size_t)cap * sizeof *a->keys);
      if (k) a->keys = k;
      void *l = realloc(a->lens, (size_t)cap * sizeof *a->lens);
      if (l) a->lens = l;
      if (!k || !l) {
        rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
        break;
      }
    }
    memset(a->keys[a->n], 0, AUTH_KEY_MAX);
    memcpy(a->keys[a->n], p, n);
    a->lens[a->n] = n;
    a->n++;
  }
  fclose(f);
  if (!rc && a->n == 0) rc = gtmsm_fail(err, errlen, GTMSM_EINVAL, "no key in %s", path);
  if (rc) auth_free(a);
  return rc;
}

void auth_free(auth_keys *a) {
  if (a->keys) memset(a->keys, 0, (size_t)a->n * AUTH_KEY_MAX);
  free(a->keys);
  free(a->lens);
  memset(a, 0, sizeof *a);
}

int auth_enabled(const auth_keys *a) { return a->n > 0; }

int auth_check(const auth_keys *a, const char *header) {
  if (!auth_enabled(a)) return 1;
  if (!header || strncasecmp(header, "Bearer ", 7) != 0) return 0;
  const char *tok = header + 7;
  while (*tok == ' ') tok++;
  size_t len = strnlen(tok, AUTH_KEY_MAX);
  if (len == 0 || len >= AUTH_KEY_MAX) return 0;
  char given[AUTH_KEY_MAX] = {0};
  memcpy(given, tok, len);
  /* Every byte of every key is compared: the time depends only on the number
   * of keys, not on the token or where it differs. */
  volatile unsigned ok = 0;
  for (int k = 0; k < a->n; k++) {
    unsigned diff = (unsigned)(a->lens[k] ^ len);
    for (size_t i = 0; i < AUTH_KEY_MAX; i++) diff |= (unsigned)(a->keys[k][i] ^ given[i]);
    ok |= (unsigned)(diff == 0);
  }
  memset(given, 0, sizeof given);
  return ok != 0;
}
