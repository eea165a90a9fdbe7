/* Spare cores for one call: the independent pieces of a call (the decoder's
 * blocks of a prediction, the encoder's runs of an observation) run on the
 * calling thread and on the process's idle helper threads at once. A piece
 * is computed by the same code whichever thread takes it, so results do not
 * depend on the helper count. Helpers take pieces only while the callers in
 * jobs leave CPUs free (as many helpers as are free; a lone caller always
 * gets one): when requests already keep every core busy, each runs its own
 * pieces. */
#ifndef GTMSM_MODEL_PAR_H
#define GTMSM_MODEL_PAR_H

/* How many helper threads calls may use from now on (n >= 0; 0: every piece
 * on the calling thread). Without a call: the online CPUs less one, at most
 * PAR_MAX_HELPERS. Helpers start at the first call that can use them and
 * stay (idle, with every signal blocked) until the process exits. */
#define PAR_MAX_HELPERS 7
void par_set_helpers(int n);
int par_helpers(void);

/* Whether the jobs this thread starts from now on may use helpers (default
 * 1): a server whose other requests already keep the cores busy turns it
 * off for the request at hand. */
void par_thread_share(int on);
/* The online CPUs (read once). */
int par_cpus(void);
/* Whether a job this thread started now could use a helper (helpers set
 * above 0 and this thread's par_thread_share on): for a caller that would
 * cut its work finer only then. */
int par_may_share(void);

/* A job of n pieces whose inputs may become ready one after another (a
 * prediction's latents are rolled out block by block): helpers take pieces
 * below `ready` while the caller goes on producing. The caller's; the fields
 * are par.c's. */
typedef struct par_job {
  int n, ready, next, done, mine; /* pieces; ready, claimed, finished by helpers, run by the caller */
  int helpers;                     /* helpers the job may use (0: the caller runs every piece) */
  void (*fn)(void *ctx, int i);
  void *ctx;
  struct par_job *link;
} par_job;

/* Starts job j of n pieces fn(ctx, i), none ready yet; share 0 (or this
 * thread's par_thread_share off): no helper takes any (they all run in
 * par_end). fn must not start a job itself. */
void par_begin(par_job *j, int n, int share, void (*fn)(void *ctx, int i), void *ctx);
/* Pieces 0..k-1 are ready (k only grows). */
void par_ready(par_job *j, int k);
/* Every piece is ready: runs those no helper took on this thread and
 * returns when all have run. */
void par_end(par_job *j);

#endif
