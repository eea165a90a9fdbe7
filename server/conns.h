/* The connection table of gtmsmd: which connections are open, what each is
 * waiting for, and the deadlines and the admission that libmicrohttpd 0.9.75
 * does not have. Its own timeout is an idle timeout (a client sending one
 * byte a second is never cut), and a full connection limit stops accepting,
 * so slow clients could lock everyone out. Here:
 *
 *   - a new connection must deliver a complete request head within
 *     header_timeout; between keep-alive requests a connection may wait
 *     idle_timeout for the next one, and once its request line is in, the
 *     rest of the head must follow within header_timeout; a request body
 *     must not pause longer than body_timeout;
 *   - at max_connections, a new connection evicts the connection that has
 *     waited longest for a request head, if that wait is over CONNS_EVICT_AGE
 *     (a normal client sends its head at once; idle keep-alive connections
 *     and slow senders go first); when none qualifies the new connection is
 *     refused at once (closed), never left waiting in the backlog.
 *
 * A connection is cut with shutdown(2): its libmicrohttpd worker reads EOF
 * and closes it as usual, so the table never closes a descriptor it does not
 * own (conns_close comes before libmicrohttpd closes the descriptor). A
 * reaper thread applies the deadlines every CONNS_TICK seconds, and logs what
 * it cut at most once a second.
 *
 * Thread safety: one mutex; every function may be called from any thread.
 * No libmicrohttpd here: http.c calls these from its callbacks. */
#ifndef GTMSMD_CONNS_H
#define GTMSMD_CONNS_H

#include <stddef.h>

#define CONNS_EVICT_AGE 1.0 /* seconds a head wait must last before it can be evicted */
#define CONNS_TICK 0.25     /* seconds between the reaper's passes */

typedef struct conns conns;
typedef struct conn_slot conn_slot;

typedef struct {
  long long max_connections;
  double header_timeout, idle_timeout, body_timeout; /* seconds */
} conns_config;

typedef struct {
  long long open;          /* connections counted now */
  long long evicted;       /* cut to make room for a new connection */
  long long refused;       /* new connections refused (all open ones busy) */
  long long head_timeouts; /* cut: no complete request head in time */
  long long body_timeouts; /* cut: a body paused too long */
} conns_stats;

/* A table with cfg's limits (copied) into *out, new (free with conns_free);
 * starts the reaper thread (with the stop signals blocked). Returns 0,
 * GTMSM_ENOMEM or GTMSM_EIO. */
int conns_new(conns **out, const conns_config *cfg);
/* Stops the reaper and frees the table and any slot still in it; t may be
 * NULL. The HTTP server must be stopped first. */
void conns_free(conns *t);

/* The accept policy for a new connection: 1 to accept it (after evicting one
 * if the table is full), 0 to refuse it. */
int conns_admit(conns *t);
/* A connection was accepted on socket fd: its slot (owned by the table,
 * valid until conns_close), or NULL when out of memory (then untracked). */
conn_slot *conns_open(conns *t, int fd);
/* The connection is closing (its descriptor still open); c may be NULL. */
void conns_close(conns *t, conn_slot *c);
/* A request line arrived: the rest of the head is due within header_timeout. */
void conns_head_begun(conns *t, conn_slot *c);
/* A request head arrived; body: a request body follows (the body deadline
 * applies until conns_body_done). c may be NULL (then all are no-ops). */
void conns_request(conns *t, conn_slot *c, int body);
/* Body bytes arrived (no lock taken). */
void conns_body(conn_slot *c);
/* The body is complete: no more body deadline for this request. */
void conns_body_done(conns *t, conn_slot *c);
/* The reply is done: the connection may wait idle_timeout for its next request. */
void conns_idle(conns *t, conn_slot *c);

void conns_get_stats(conns *t, conns_stats *st);

#endif
