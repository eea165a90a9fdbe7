/* Status codes and error-message buffers shared by every core module.
 * Library functions return 0 or a negative GTMSM_E* code and, when given a
 * buffer, write one line saying what went wrong; only main() exits. */
#ifndef GTMSM_BASE_ERR_H
#define GTMSM_BASE_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

enum gtmsm_err {
  GTMSM_OK = 0,
  GTMSM_ENOMEM = -1,  /* allocation failed */
  GTMSM_EINVAL = -2,  /* bad argument or configuration */
  GTMSM_EIO = -3,     /* read or write failed */
  GTMSM_EFORMAT = -4, /* malformed file or data */
  GTMSM_ENAN = -5,    /* a NaN or Inf appeared in a computation */
  GTMSM_ERANGE = -6,  /* a value outside what is supported */
};

/* Writes a formatted message into err (may be NULL) and returns code, so a
 * failure path reads `return gtmsm_fail(err, n, GTMSM_EINVAL, "...", ...)`. */
static inline int gtmsm_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int gtmsm_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

#endif
