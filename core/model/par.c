/* Spare cores for one call (see par.h): a list of the jobs with pieces left
 * under one mutex; pieces are large (a tenth of a millisecond or more), so
 * claiming them under the mutex costs nothing measurable. If no helper can
 * be started, everything runs on the calling thread. */
#include "model/par.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;     /* a job has a ready piece */
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER; /* a helper finished a piece */
static par_job *jobs;   /* the jobs with unclaimed pieces, newest first */
static int wanted = -1; /* par_set_helpers' n; -1: not set yet (the default on first use) */
static int started;     /* helpers running */
static int njobs;       /* jobs in the list */
static int cpus;        /* online CPUs (at the first use) */

static _Thread_local int no_share; /* par_thread_share(0) on this thread */

void par_thread_share(int on) { no_share = !on; }

/* The helper count (mu held). */
static int limit(void) {
  if (!cpus) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpus = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
  }
  if (wanted < 0) wanted = cpus - 1 > PAR_MAX_HELPERS ? PAR_MAX_HELPERS : cpus - 1;
  return wanted;
}

void par_set_helpers(int n) {
  pthread_mutex_lock(&mu);
  wanted = n < 0 ? 0 : n > PAR_MAX_HELPERS ? PAR_MAX_HELPERS : n;
  pthread_mutex_unlock(&mu);
}

int par_cpus(void) {
  pthread_mutex_lock(&mu);
  limit();
  int n = cpus;
  pthread_mutex_unlock(&mu);
  return n;
}

int par_may_share(void) { return !no_share && par_helpers() > 0; }

int par_helpers(void) {
  pthread_mutex_lock(&mu);
  int n = limit();
  pthread_mutex_unlock(&mu);
  return n;
}

/* Claims the next ready piece of the oldest job that has one and may use
 * helper id (mu held), or NULL. Helper id works only while the callers in
 * jobs and helpers 0..id fit the CPUs (a lone caller always gets helper 0):
 * when requests already keep every core busy, a helper would only add thread
 * switches to the same work. */
static par_job *claim(int id, int *i) {
  par_job *oldest = NULL;
  if (id >= (cpus > njobs ? cpus - njobs : njobs == 1)) return NULL;
  for (par_job *j = jobs; j; j = j->link)
    if (j->next < j->ready && id < j->helpers) oldest = j;
  if (oldest) *i = oldest->next++;
  return oldest;
}

static void *helper_main(void *arg) {
  const int id = (int)(ptrdiff_t)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    int i = 0;
    par_job *j = claim(id, &i);
    if (!j) {
      pthread_cond_wait(&work, &mu);
      continue;
    }
    pthread_mutex_unlock(&mu);
    j->fn(j->ctx, i);
    pthread_mutex_lock(&mu);
    j->done++;
    pthread_cond_broadcast(&finished);
  }
  return NULL;
}

/* Starts helpers up to want (mu held); returns how many may work. */
static int start_helpers(int want) {
  while (started < want) {
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    if (pthread_attr_init(&attr)) break;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the helper inherits it: signals go elsewhere */
    int rc = pthread_create(&t, &attr, helper_main, (void *)(ptrdiff_t)started);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc) break;
    started++;
  }
  return started < want ? started : want;
}

void par_begin(par_job *j, int n, int share, void (*fn)(void *ctx, int i), void *ctx) {
  *j = (par_job){.n = n < 0 ? 0 : n, .fn = fn, .ctx = ctx};
  if (n <= 1 || !share || no_share) return; /* nothing to share */
  pthread_mutex_lock(&mu);
  j->helpers = start_helpers(limit());
  if (j->helpers) {
    j->link = jobs;
    jobs = j;
    njobs++;
  }
  pthread_mutex_unlock(&mu);
}

void par_ready(par_job *j, int k) {
  if (!j->helpers) return;
  pthread_mutex_lock(&mu);
  if (k > j->n) k = j->n;
  if (k > j->ready) {
    j->ready = k;
    pthread_cond_broadcast(&work); /* every helper: one that may not take this job would swallow a signal */
  }
  pthread_mutex_unlock(&mu);
}

void par_end(par_job *j) {
  if (!j->helpers) {
    for (int i = 0; i < j->n; i++) j->fn(j->ctx, i);
    return;
  }
  pthread_mutex_lock(&mu);
  if (j->ready < j->n) {
    j->ready = j->n;
    pthread_cond_broadcast(&work);
  }
  while (j->next < j->n) {
    int i = j->next++;
    pthread_mutex_unlock(&mu);
    j->fn(j->ctx, i);
    pthread_mutex_lock(&mu);
    j->mine++;
  }
  par_job **p = &jobs; /* nothing left to claim: out of the list, then wait for the helpers' pieces */
  while (*p != j) p = &(*p)->link;
  *p = j->link;
  njobs--;
  while (j->done + j->mine < j->n) pthread_cond_wait(&finished, &mu);
  pthread_mutex_unlock(&mu);
}
