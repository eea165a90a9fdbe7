/* One daemon per database: an advisory lock on a sidecar file next to the
 * SQLite file (DB.lock), taken before the store opens and held for the
 * process's life. Two daemons writing one file would each cache sessions the
 * other changes underneath (the session cache is per process), so a second
 * gtmsmd on the same database refuses to start, naming the file and the
 * holder's PID. */
#ifndef GTMSMD_DBLOCK_H
#define GTMSMD_DBLOCK_H

#include <stddef.h>

/* Another process holds the lock (beside the GTMSM_E* codes of base/err.h). */
#define DBLOCK_EBUSY (-110)

typedef struct {
  int fd; /* the lock file, -1 when none is held */
  char path[4096];
} dblock;

/* Locks db_path's sidecar "<db_path>.lock" (created 0644 if missing, and its
 * folder, one level, as the store does for the database; our PID is written
 * into it). Returns 0 with *l holding the lock (or holding none
 * for ":memory:", and on a read-only file system where the file cannot be
 * created: the store then refuses the database itself); DBLOCK_EBUSY when
 * another process holds it, with err naming the database, the lock file and
 * the holder's PID when the file says it; GTMSM_EIO when the lock file cannot
 * be opened for writing (e.g. it belongs to another user) or locked. */
int dblock_acquire(dblock *l, const char *db_path, char *err, size_t errlen);
/* Releases the lock (the file stays: removing it would race a daemon that
 * just opened it). No-op on a dblock that holds none. */
void dblock_release(dblock *l);

#endif
