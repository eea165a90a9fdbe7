/* Small helpers shared by the daemon's modules: clocks and random ids. */
#ifndef GTMSMD_UTIL_H
#define GTMSMD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the epoch (timestamps stored and shown). */
long long util_now_ms(void);
/* Monotonic seconds (latencies). */
double util_mono_seconds(void);
/* Fills out with nbytes random bytes as 2 * nbytes lowercase hex digits and a
 * NUL (out holds 2 * nbytes + 1). Reads /dev/urandom; thread-safe. Returns 0
 * or GTMSM_EIO. */
int util_random_hex(char *out, size_t nbytes);
/* mkdir of path's parent folder when missing (one level, like the default
 * ./data): 0, or the errno of a failed mkdir (the open that follows says
 * what it means for the caller). */
int util_make_parent(const char *path);

#endif
