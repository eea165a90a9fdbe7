/* An LD_PRELOAD shim for benchmarks (bench_server.py --fsync-delay-ms): every
 * fsync and fdatasync of the process takes GTMSM_FSYNC_DELAY_US microseconds
 * longer, slept after the real call. It stands in for a disk whose flush is
 * slower than this machine's (a development VM's fsync costs ~0.25 ms; a
 * cloud volume's or a SATA SSD's is typically 1-10 ms), so that what group
 * commit does with the fsyncs it saves can be measured where fsync, not the
 * CPU, bounds the rate. The data still reaches the disk: the real call runs
 * first and its result is returned. Not used by any test or by the daemon
 * itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_us(void) {
  static long us = -1;
  if (us < 0) {
    const char *v = getenv("GTMSM_FSYNC_DELAY_US");
    us = v ? atol(v) : 0;
    if (us < 0) us = 0;
  }
  return us;
}

static void delay(void) {
  long us = delay_us();
  if (us <= 0) return;
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) != 0) {
  }
}

/* *real (looked up once) on fd, then the delay. */
static int call_then_delay(int (**real)(int), const char *name, int fd) {
  if (!*real) *(void **)real = dlsym(RTLD_NEXT, name);
  int rc = *real ? (*real)(fd) : -1;
  delay();
  return rc;
}

int fsync(int fd) {
  static int (*real)(int);
  return call_then_delay(&real, "fsync", fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  return call_then_delay(&real, "fdatasync", fd);
}
