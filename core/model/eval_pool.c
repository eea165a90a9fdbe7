/* The evaluators' worker pool (see eval_pool.h). */
#include "model/eval_pool.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
  int E, tid, nthreads;
  int (*fn)(void *ctx, int e);
  void *ctx;
  int *rcs;
} pool_worker;

static void *pool_thread(void *arg) {
  pool_worker *w = arg;
  for (int e = w->tid; e < w->E; e += w->nthreads) w->rcs[e] = w->fn(w->ctx, e);
  return NULL;
}

void eval_pool_run(int E, int threads, int (*fn)(void *ctx, int e), void *ctx, int *rcs) {
  int nt = threads < 1 ? 1 : threads > E ? E : threads;
  pool_worker *ws = calloc((size_t)nt, sizeof *ws);
  pthread_t *tids = calloc((size_t)nt, sizeof *tids);
  char *started = calloc((size_t)nt, 1);
  if (!ws || !tids || !started) nt = 1; /* then everything on this thread */
  pool_worker one;
  for (int t = 0; t < nt; t++) {
    pool_worker *w = ws ? &ws[t] : &one;
    *w = (pool_worker){E, t, nt, fn, ctx, rcs};
    if (t > 0 && tids && started) started[t] = pthread_create(&tids[t], NULL, pool_thread, w) == 0;
  }
  pool_thread(ws ? &ws[0] : &one);
  for (int t = 1; t < nt; t++) {
    if (started[t]) pthread_join(tids[t], NULL);
    else pool_thread(&ws[t]); /* could not start: its episodes run here */
  }
  free(ws);
  free(tids);
  free(started);
}
