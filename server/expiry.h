/* The idle expiry of sessions (--session-ttl): a background thread that
 * every few seconds deletes the sessions nobody wrote for ttl seconds
 * (sessions_expire), so no request ever waits for a sweep. Its stores and
 * deletes go through the session cache like any request's, one session at
 * a time under that session's lock. */
#ifndef GTMSMD_EXPIRY_H
#define GTMSMD_EXPIRY_H

#include "sessions.h"

typedef struct expiry expiry;

/* Starts the sweeper over c (borrowed, must outlive it) for sessions idle
 * ttl_s > 0 seconds; it sweeps every ttl_s / 4 seconds (1..60). *out is new
 * (stop with expiry_stop). 0, or GTMSM_ENOMEM / GTMSM_EIO with a message. */
int expiry_start(expiry **out, sessions *c, long long ttl_s, char *err, size_t errlen);
/* Stops the sweeper (waits for a sweep in progress) and frees it; e may be NULL. */
void expiry_stop(expiry *e);

#endif
