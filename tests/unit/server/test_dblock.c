/* One daemon per database (server/dblock.c): the lock file is created with
 * our PID; a second acquire (an OFD lock conflicts within one process too)
 * fails with DBLOCK_EBUSY naming the database, the lock file and the PID;
 * after a release it succeeds again; ":memory:" takes no lock; a missing
 * folder (the default data/) is made, as the store makes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dblock.h"
#include "testlib.h"

int main(void) {
  char dir[] = "/tmp/test_dblock_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char db[256], lockpath[300], err[512] = "";
  snprintf(db, sizeof db, "%s/g.db", dir);
  snprintf(lockpath, sizeof lockpath, "%s.lock", db);
  dblock a, b;
  CHECK(dblock_acquire(&a, db, err, sizeof err) == 0 && a.fd >= 0, "first acquire: %s", err);
  FILE *f = fopen(lockpath, "r");
  long pid = 0;
  CHECK(f && fscanf(f, "%ld", &pid) == 1 && pid == (long)getpid(), "lock file holds our pid (%ld)", pid);
  if (f) fclose(f);
  err[0] = '\0';
  int rc = dblock_acquire(&b, db, err, sizeof err);
  char want[64];
  snprintf(want, sizeof want, "(pid %ld)", (long)getpid());
  CHECK(rc == DBLOCK_EBUSY && b.fd == -1 && strstr(err, db) && strstr(err, lockpath) && strstr(err, want),
        "second acquire refused naming db, lock file and pid: rc %d '%s'", rc, err);
  dblock_release(&a);
  CHECK(dblock_acquire(&b, db, err, sizeof err) == 0 && b.fd >= 0, "after release: acquired (%s)", err);
  dblock_release(&b);
  dblock_release(&b); /* twice: a no-op */
  dblock m;
  CHECK(dblock_acquire(&m, ":memory:", err, sizeof err) == 0 && m.fd == -1, ":memory: takes no lock");
  /* a database in a folder not made yet (the default data/): the folder is made */
  char sub[300], subdb[320], sublock[340];
  snprintf(sub, sizeof sub, "%s/data", dir);
  snprintf(subdb, sizeof subdb, "%s/g.db", sub);
  snprintf(sublock, sizeof sublock, "%s.lock", subdb);
  CHECK(dblock_acquire(&m, subdb, err, sizeof err) == 0 && m.fd >= 0 && access(sublock, F_OK) == 0,
        "a database in a missing folder: folder and lock file made (%s)", err);
  dblock_release(&m);
  unlink(sublock);
  rmdir(sub);
  unlink(lockpath);
  rmdir(dir);
  return test_finish("test_dblock");
}
