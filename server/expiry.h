/* The idle expiry of sessions (--session-ttl, and a session's own
 * ttl_seconds): a background thread that every few seconds deletes the
 * sessions nobody wrote for their TTL (sessions_expire), so no request
 * ever waits for a sweep. Its stores and deletes go through the session
 * cache like any request's, one session at a time under that session's
 * lock. */
#ifndef GTMSMD_EXPIRY_H
#define GTMSMD_EXPIRY_H

#include "sessions.h"

typedef struct expiry expiry;

/* The most seconds between sweeps: a session with its own TTL expires at
 * most this long after its deadline, whatever --session-ttl. */
#define EXPIRY_INTERVAL_MAX_S 5

/* Starts the sweeper over c (borrowed, must outlive it): sessions with their
 * own TTL expire by it, the others after default_ttl_s > 0 idle seconds (0:
 * never). It sweeps every default_ttl_s / 4 seconds clamped to
 * 1..EXPIRY_INTERVAL_MAX_S, every EXPIRY_INTERVAL_MAX_S without a default.
 * *out is new (stop with expiry_stop). 0, or GTMSM_ENOMEM / GTMSM_EIO with a
 * message. */
int expiry_start(expiry **out, sessions *c, long long default_ttl_s, char *err, size_t errlen);
/* Stops the sweeper (waits for a sweep in progress) and frees it; e may be NULL. */
void expiry_stop(expiry *e);

#endif
