/* The database's lock file (see dblock.h).
 *
 * Why an open file description lock (fcntl F_OFD_SETLK) on a sidecar file:
 *  - the kernel drops it when the process dies, however it dies (kill -9, a
 *    crash, the OOM killer), so no stale lock is ever left to clean up by
 *    hand, unlike a PID file alone (the PID in the file is only for the
 *    message; the lock is what decides);
 *  - a classic POSIX lock (F_SETLK) belongs to the process and is released
 *    when the process closes *any* descriptor of that file, and a lock on
 *    the SQLite file itself would share byte ranges and that close rule with
 *    SQLite's own POSIX locks; an OFD lock on a file nobody else opens
 *    belongs to our one descriptor only, and it also conflicts within one
 *    process (a second acquire in the same process fails, which the unit
 *    test uses);
 *  - flock(2) would do too on a local disk, but on NFS Linux emulates it
 *    with POSIX byte-range locks, and fcntl locks are what NFS carries.
 * Advisory: it stops a second gtmsmd, not sqlite3 or a backup tool, which
 * SQLite's own locking keeps consistent anyway. */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include "dblock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "util.h"

/* The PID written in the lock file, or 0 when it holds none. */
static long holder_pid(int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *end = NULL;
  long pid = strtol(buf, &end, 10);
  return end != buf && pid > 0 ? pid : 0;
}

int dblock_acquire(dblock *l, const char *db_path, char *err, size_t errlen) {
  l->fd = -1;
  l->path[0] = '\0';
  if (!db_path[0] || strcmp(db_path, ":memory:") == 0) return 0;
  if ((size_t)snprintf(l->path, sizeof l->path, "%s.lock", db_path) >= sizeof l->path)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "database path too long: %.200s", db_path);
  int write = 1;
  int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT) {
    (void)util_make_parent(l->path); /* the lock comes before the store: ./data may not exist yet; failing, the open below says why */
    fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd < 0 && errno == EROFS) {
    /* A read-only file system: a read lock on an existing lock file still
     * meets a writer's lock; without the file, nobody can be writing here,
     * and the store reports the read-only database itself. (Not on EACCES:
     * a lock file we may not write beside a database we may would let two
     * daemons share it under read locks.) */
    write = 0;
    fd = open(l->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return 0;
  }
  if (fd < 0)
    return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot open the lock file %s for writing: %s", l->path,
                      strerror(errno));
  struct flock fl = {0};
  fl.l_type = write ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET; /* l_start 0, l_len 0: the whole file; l_pid must be 0 */
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    const int e = errno;
    long pid = holder_pid(fd);
    close(fd);
    if (e == EAGAIN || e == EACCES) {
      char who[48] = "";
      if (pid > 0) snprintf(who, sizeof who, " (pid %ld)", pid);
      return gtmsm_fail(err, errlen, DBLOCK_EBUSY, "database %s is in use by another gtmsmd%s: "
                        "it holds the lock file %s; one daemon per database (stop it, or give "
                        "this one another --db)", db_path, who, l->path);
    }
    return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot lock %s: %s", l->path, strerror(e));
  }
  if (write) {
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
      /* The lock holds without the PID; only the message would lack it. */
    }
  }
  l->fd = fd;
  return 0;
}

void dblock_release(dblock *l) {
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}
