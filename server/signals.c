/* Stop signals through a counting handler and a self-pipe (see signals.h). */
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "the signal handler needs lock-free atomics");

static atomic_long g_count;
static atomic_long g_hups;     /* SIGHUPs received */
static long g_hups_seen;       /* of those, returned by signals_wait (main only) */
static atomic_int g_first;     /* the first signal's number */
static int g_pipe[2] = {-1, -1}; /* [0] read by signals_wait, [1] written by the handler */

/* Wakes signals_wait (async-signal-safe). */
static void wake(void) {
  if (g_pipe[1] >= 0) {
    const char b = 1;
    ssize_t w = write(g_pipe[1], &b, 1); /* non-blocking: a full pipe already wakes it */
    (void)w;
  }
}

static void on_hup_signal(int sig) {
  (void)sig;
  const int saved = errno;
  atomic_fetch_add(&g_hups, 1);
  wake();
  errno = saved;
}

/* Async-signal-safe: atomics and write(2) only; errno is preserved. */
static void on_stop_signal(int sig) {
  const int saved = errno;
  int none = 0;
  atomic_compare_exchange_strong(&g_first, &none, sig);
  atomic_fetch_add(&g_count, 1);
  wake();
  errno = saved;
}

int signals_install(char *err, size_t errlen) {
  if (g_pipe[0] < 0 && pipe(g_pipe) != 0)
    return gtmsm_fail(err, errlen, GTMSM_EIO, "self-pipe for signals: %s", strerror(errno));
  fcntl(g_pipe[0], F_SETFD, FD_CLOEXEC);
  fcntl(g_pipe[1], F_SETFD, FD_CLOEXEC);
  fcntl(g_pipe[1], F_SETFL, fcntl(g_pipe[1], F_GETFL) | O_NONBLOCK);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGHUP);
  sa.sa_flags = SA_RESTART;
  struct sigaction hup = sa;
  hup.sa_handler = on_hup_signal;
  if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
      sigaction(SIGHUP, &hup, NULL) != 0)
    return gtmsm_fail(err, errlen, GTMSM_EIO, "sigaction: %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);
  /* main itself takes the signals (it may have inherited them blocked). */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
  return 0;
}

int signals_wait(void) {
  while (atomic_load(&g_count) == 0) {
    const long hups = atomic_load(&g_hups);
    if (hups != g_hups_seen) {
      g_hups_seen = hups;
      return SIGHUP;
    }
    char b;
    ssize_t n = read(g_pipe[0], &b, 1);
    if (n < 0 && errno != EINTR) break; /* cannot happen with a valid pipe; do not spin */
  }
  return atomic_load(&g_first);
}

long signals_received(void) { return atomic_load(&g_count); }

void signals_block_thread(sigset_t *old) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, old);
}

void signals_unblock_thread(const sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }
