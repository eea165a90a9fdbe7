/* model/par: every piece of a job runs exactly once, whoever runs it; the
 * helpers do take pieces (a job of slow pieces is shared); pipelined jobs run
 * only ready pieces on helpers; several callers at once; 0 helpers, share 0
 * and par_thread_share(0) keep everything on the calling thread. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/par.h"
#include "testlib.h"

enum { N = 64, CALLERS = 4 };

typedef struct {
  int runs[N];          /* how many times each piece ran */
  pthread_t owner[N];   /* the thread that ran it */
  int ready;            /* pipelined: pieces below are ready */
  int early;            /* a piece ran before it was ready */
  long sleep_ns;
} counts;

static void piece(void *ctx, int i) {
  counts *c = ctx;
  if (i >= __atomic_load_n(&c->ready, __ATOMIC_ACQUIRE)) __atomic_store_n(&c->early, 1, __ATOMIC_RELAXED);
  if (c->sleep_ns) nanosleep(&(struct timespec){0, c->sleep_ns}, NULL);
  __atomic_add_fetch(&c->runs[i], 1, __ATOMIC_RELAXED);
  c->owner[i] = pthread_self();
}

/* Runs a job of n pieces, pipelined in steps of 8; the number of pieces
 * another thread ran. */
static int run_job(counts *c, int n, int share) {
  par_job j;
  memset(c->runs, 0, sizeof c->runs);
  c->ready = 0;
  c->early = 0;
  par_begin(&j, n, share, piece, c);
  for (int k = 8; k < n; k += 8) {
    nanosleep(&(struct timespec){0, 200000}, NULL); /* producing the next 8 */
    __atomic_store_n(&c->ready, k, __ATOMIC_RELEASE);
    par_ready(&j, k);
  }
  __atomic_store_n(&c->ready, n, __ATOMIC_RELEASE);
  par_end(&j);
  int other = 0;
  for (int i = 0; i < n; i++) {
    CHECK(c->runs[i] == 1, "piece %d of %d ran %d times", i, n, c->runs[i]);
    other += !pthread_equal(c->owner[i], pthread_self());
  }
  CHECK(!c->early, "a piece ran before it was ready");
  return other;
}

static void *caller(void *p) {
  counts *c = p;
  for (int r = 0; r < 20; r++) run_job(c, N, 1);
  return NULL;
}

int main(void) {
  static counts c, many[CALLERS];
  c.sleep_ns = 100000;
  par_set_helpers(2);
  CHECK(par_helpers() == 2, "helpers %d", par_helpers());
  int other = run_job(&c, N, 1);
  printf("  2 helpers: %d of %d pieces ran on them\n", other, N);
  CHECK(other > 0, "no helper took a piece of slow ones");
  CHECK(run_job(&c, N, 0) == 0, "share 0: a helper ran a piece");
  par_thread_share(0);
  CHECK(run_job(&c, N, 1) == 0, "par_thread_share(0): a helper ran a piece");
  par_thread_share(1);
  CHECK(run_job(&c, N, 1) > 0, "par_thread_share(1) again: no helper took a piece");
  CHECK(par_cpus() >= 1, "cpus %d", par_cpus());
  CHECK(run_job(&c, 1, 1) == 0, "a job of one piece went to a helper");
  run_job(&c, 0, 1);
  par_set_helpers(0);
  CHECK(run_job(&c, N, 1) == 0, "0 helpers: a helper ran a piece");
  par_set_helpers(3);
  memset(c.runs, 0, sizeof c.runs);
  c.ready = N;
  par_job whole; /* the whole at once: no par_ready, par_end makes every piece ready */
  par_begin(&whole, N, 1, piece, &c);
  par_end(&whole);
  for (int i = 0; i < N; i++) CHECK(c.runs[i] == 1, "begin + end: piece %d ran %d times", i, c.runs[i]);
  pthread_t t[CALLERS];
  for (int k = 0; k < CALLERS; k++) {
    many[k].sleep_ns = 20000 * (k + 1);
    CHECK(pthread_create(&t[k], NULL, caller, &many[k]) == 0, "thread");
  }
  for (int k = 0; k < CALLERS; k++) pthread_join(t[k], NULL);
  par_set_helpers(-5);
  CHECK(par_helpers() == 0, "negative count: %d", par_helpers());
  par_set_helpers(1000);
  CHECK(par_helpers() == PAR_MAX_HELPERS, "count above the cap: %d", par_helpers());
  return test_finish("test_par");
}
