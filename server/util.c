/* Clocks and random ids (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"

long long util_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double util_mono_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int g_urandom = -1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void open_urandom(void) { g_urandom = open("/dev/urandom", O_RDONLY | O_CLOEXEC); }

int util_random_hex(char *out, size_t nbytes) {
  static const char HEX[] = "0123456789abcdef";
  unsigned char buf[64];
  if (nbytes > sizeof buf) return GTMSM_EINVAL;
  pthread_once(&g_once, open_urandom);
  size_t got = 0;
  while (g_urandom >= 0 && got < nbytes) {
    ssize_t r = read(g_urandom, buf + got, nbytes - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  if (got < nbytes) return GTMSM_EIO;
  for (size_t i = 0; i < nbytes; i++) {
    out[2 * i] = HEX[buf[i] >> 4];
    out[2 * i + 1] = HEX[buf[i] & 15];
  }
  out[2 * nbytes] = '\0';
  return 0;
}

int util_make_parent(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = '\0';
  return mkdir(dir, 0755) != 0 && errno != EEXIST ? errno : 0;
}
