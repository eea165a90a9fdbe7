/* The evaluators' worker pool: episodes 0..E-1 on up to `threads` threads,
 * episode e on thread e mod threads, each writing only its own slot, so
 * results do not depend on the thread count. */
#ifndef GTMSM_MODEL_EVAL_POOL_H
#define GTMSM_MODEL_EVAL_POOL_H

/* Runs fn(ctx, e) for every e in 0..E-1 and stores its return value in rcs[e]
 * (E ints). A thread that cannot be started leaves its episodes to the
 * calling thread, so every episode runs exactly once whatever happens. */
void eval_pool_run(int E, int threads, int (*fn)(void *ctx, int e), void *ctx, int *rcs);

#endif
