/* Optional API keys: a file of bearer keys, one a line ('#' starts a comment,
 * blank lines ignored). A request is allowed when its "Authorization: Bearer
 * <key>" matches one of them; every key is compared, each in time that does
 * not depend on where the bytes differ. */
#ifndef GTMSMD_AUTH_H
#define GTMSMD_AUTH_H

#include <stddef.h>

#define AUTH_KEY_MAX 256

typedef struct {
  char (*keys)[AUTH_KEY_MAX]; /* (n), zero-padded, owned */
  size_t *lens;               /* (n) */
  int n;
} auth_keys;

/* Loads path into a (initialised here). An empty path disables auth (n = 0).
 * A UTF-8 byte order mark at the start of the file is skipped. A file that
 * cannot be read, holds no key, or a key longer than AUTH_KEY_MAX - 1 bytes
 * or with a byte outside printable ASCII (spaces included) is GTMSM_EINVAL
 * with a message naming the line. */
int auth_load(auth_keys *a, const char *path, char *err, size_t errlen);
void auth_free(auth_keys *a);
/* Non-zero when auth is enabled. */
int auth_enabled(const auth_keys *a);
/* Non-zero iff header (the Authorization value, borrowed, may be NULL) carries
 * one of the keys. */
int auth_check(const auth_keys *a, const char *header);

#endif
