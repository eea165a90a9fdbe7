/* gtmsm train: trains GTMSM on episodes generated on the fly: image
 * navigation (2-D), or maze3d (the rotating agent: windows of rotate episodes);
 * or on recorded episodes (--episodes NDJSON files, --from-db a gtmsmd
 * database): windows of the recordings, sampled as the maze3d windows are.
 *
 * Every sequence of every step is a pure function of (seed, step, index): its
 * world, trajectory and noise draws. Sequences run on worker threads, each
 * into its own gradient buffer, and the buffers are summed in index order, so a
 * run is bit-reproducible for a seed whatever the thread count. Checkpoints
 * (model + Adam state + trainer state) are written atomically every
 * --ckpt-every seconds and when SIGINT or SIGTERM arrives (the handler only
 * sets a flag; the loop writes the checkpoint after the update in flight and
 * exits 128 + the signal); --resume continues from one exactly. */
#include <cblas.h>
#include <jansson.h>
#include <pthread.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "img/image.h"
#include "model/gtmsm.h"
#include "model/modelfile.h"
#include "nn/rng.h"
#include "opts.h"
#include "opts_maze3d.h"
#include "recordings.h"
#include "sim/maze3d.h"
#include "sim/imagenav.h"
#include "sim/worldset.h"
#include "tools.h"

typedef struct {
  /* data */
  const char *env;          /* imagenav | maze3d */
  opts_maze3d maze;         /* maze3d: scenario, frame size, textures */
  int episode;              /* maze3d: episode length; a sequence is a window of it */
  int memorize, predict, batch, obstacles;
  double rate, photo_frac;
  const char *worlds;
  /* model */
  int latent, hidden, gate_hidden, k, channels;
  const char *vae, *transition, *keymap, *prior;
  int keymap_learned, prior_hidden;
  double disp_weight;       /* walking: regression of Delta on the felt displacement; imagenav: of
                               the wall gate on whether the move succeeded */
  int landmarks, landmark_k, landmark_hidden; /* state inference with landmarks (app. D) */
  int b_lr_steps;           /* updates with B at ssm_lr_mult before b_lr_after (-1: --wallfree) */
  double delta, trans_std;
  const char *decoder;
  /* optimisation */
  int steps, anneal, kl_warmup;
  int curriculum, k_start;  /* curriculum: K, delta and the memorized length move to their */
  int memorize_start;       /* final values over the first `curriculum` updates */
  int wallfree;             /* wall-free episodes: all for wallfree updates, none after 2 * wallfree */
  double delta_start;
  double lr, lr_final, clip, aux, kl_start, ssm_lr_mult, still, b_lr_after;
  uint64_t seed;
  int threads;
  const recordings *recs;   /* recorded episodes to sample windows of; NULL: the simulator */
  const char *init;         /* --init: the model whose parameters the run started from (provenance) */
  int freeze;               /* --freeze: bit r set = the tensors of role r are not trained */
} train_opts;

static const char *const ROLE_FLAGS[GTMSM_ROLES] = {"vae", "transition", "keymap", "prior", "inference"};

/* "vae,transition" -> a bit per role; -1 on an unknown name. */
static int parse_freeze(const char *list) {
  int mask = 0;
  const char *p = list;
  while (p && *p) {
    size_t n = strcspn(p, ",");
    int found = -1;
    for (int r = 0; r < GTMSM_ROLES; r++)
      if (strlen(ROLE_FLAGS[r]) == n && strncmp(p, ROLE_FLAGS[r], n) == 0) found = r;
    if (found < 0) return -1;
    mask |= 1 << found;
    p += n + (p[n] == ',');
  }
  return mask;
}

/* Set by SIGINT / SIGTERM (the signal number); read by the training loop. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
  if (stop_signal) _exit(128 + sig); /* a second signal: stop now (the last checkpoint stays whole) */
  stop_signal = sig;
}

/* A window of N consecutive steps of the recordings, uniform over all the
 * windows there are (a recording with more steps holds more of them), drawn
 * from the sequence's seed as the maze3d offset is. */
static void recordings_window(const recordings *r, int N, uint64_t s, int *rec, int *first) {
  uint64_t total = 0;
  for (int i = 0; i < r->n; i++)
    if (r->v[i].n >= N) total += (uint64_t)(r->v[i].n - N + 1);
  rng_t wr;
  rng_init(&wr, s, 12);
  uint64_t u = (((uint64_t)rng_u32(&wr) << 32) | rng_u32(&wr)) % total;
  for (int i = 0; i < r->n; i++) {
    if (r->v[i].n < N) continue;
    uint64_t k = (uint64_t)(r->v[i].n - N + 1);
    if (u < k) {
      *rec = i;
      *first = (int)u;
      return;
    }
    u -= k;
  }
}

typedef struct {
  const gtmsm_model *m;
  const train_opts *o;
  const worldset *ws_photos;
  const maze3d_texture_set *textures;
  long step;
  int tid, nthreads;
  gtmsm_ws *ws;
  float *frames, *eps_z, *eps_s, *world;
  maze3d_truth *truth;  /* (episode) */
  float *disp;          /* (N, 3) displacement targets of the window */
  float *moved;         /* (N) imagenav: 1 the move succeeded, 0 it failed, -1 no move asked */
  imagenav_truth *itruth; /* (N) */
  int *actions; /* (episode) */
  float *grads; /* (batch, total) */
  gtmsm_seq_stats *stats; /* (batch) */
  int *rcs;
  float kl_weight;
  int k_now, memorize_now;
  double wallfree_share;
  float delta_now;
} worker;

static uint64_t seq_seed(uint64_t seed, long step, int b) {
  return rng_mix(seed ^ rng_mix((uint64_t)step * 4096u + (uint64_t)b));
}

/* The world of a sequence: a bundled photo with probability photo_frac,
 * otherwise a procedural world. */
void train_pick_world(float *world, const worldset *photos, double photo_frac, uint64_t s);
void train_pick_world(float *world, const worldset *photos, double photo_frac, uint64_t s) {
  rng_t r;
  rng_init(&r, s, 11);
  if (photos && photos->n > 0 && rng_uniform_d(&r) < photo_frac) {
    memcpy(world, worldset_get(photos, (int)rng_below(&r, (uint32_t)photos->n)),
           sizeof(float) * WORLD_SIZE * WORLD_SIZE * 3);
  } else {
    world_generate(world, s);
  }
}

static void *worker_run(void *arg) {
  worker *w = arg;
  const train_opts *o = w->o;
  int N = w->memorize_now + o->predict, Z = w->m->cfg.Z, S = w->m->cfg.S;
  imagenav_options eo = imagenav_default_options();
  eo.rate = o->rate;
  eo.obstacles = o->obstacles;
  gtmsm_seq_spec spec = {.N = N, .T = w->memorize_now, .aux = (float)o->aux, .kl_weight = w->kl_weight,
                         .K = w->k_now, .delta = w->delta_now, .still = (float)o->still,
                         .displacement = strcmp(o->env, "maze3d") == 0 && (!o->recs || o->recs->all_disp)
                                             ? w->disp : NULL,
                         .disp_weight = (float)o->disp_weight,
                         .moved = strcmp(o->env, "imagenav") == 0 && !o->recs && o->disp_weight > 0 ? w->moved : NULL};
  for (int b = w->tid; b < o->batch; b += w->nthreads) {
    uint64_t s = seq_seed(o->seed, w->step, b);
    const int *actions = w->actions;
    if (o->recs) {
      int ri = 0, first = 0;
      recordings_window(o->recs, N, s, &ri, &first);
      const eval_recording *rv = &o->recs->v[ri];
      size_t D = (size_t)gtmsm_config_D(&w->m->cfg);
      image_float_from_u8(w->frames, rv->frames + (size_t)first * D, (size_t)N * D);
      for (int t = 0; t < N; t++) w->actions[t] = rv->actions[first + t];
      if (o->recs->all_disp)
        for (int t = 0; t < N; t++) {
          const float *tr = rv->truth + (size_t)(first + t) * REC_TRUTH_N;
          w->disp[3 * t] = tr[REC_TRUTH_D_FORWARD];
          w->disp[3 * t + 1] = tr[REC_TRUTH_D_LEFT];
          w->disp[3 * t + 2] = tr[REC_TRUTH_D_HEADING];
        }
    } else if (strcmp(o->env, "maze3d") == 0) {
      /* a window of N consecutive steps at a random offset of the episode */
      rng_t wr;
      rng_init(&wr, s, 12);
      int first = (int)rng_below(&wr, (uint32_t)(o->episode - N + 1));
      maze3d_config mc;
      int scenario;
      char err[256];
      w->rcs[b] = opts_maze3d_config(&mc, &scenario, &o->maze, s, w->textures, err, sizeof err);
      if (!w->rcs[b])
        w->rcs[b] = maze3d_episode(&mc, scenario, s, first + N, first, w->frames, w->actions, w->truth, err,
                                   sizeof err);
      if (w->rcs[b]) {
        fprintf(stderr, "gtmsm train: %s\n", err);
        continue;
      }
      actions = w->actions + first;
      /* what the agent felt at each step of the window: training targets only */
      for (int t = 0; t < N; t++) {
        const maze3d_truth *tr = &w->truth[first + t];
        w->disp[3 * t] = (float)tr->d_forward;
        w->disp[3 * t + 1] = (float)tr->d_left;
        w->disp[3 * t + 2] = (float)tr->d_heading;
      }
    } else {
      train_pick_world(w->world, w->ws_photos, o->photo_frac, s);
      rng_t wr;
      rng_init(&wr, s, 12);
      eo.avoid_walls = rng_uniform_d(&wr) < w->wallfree_share;
      imagenav_episode(w->world, &eo, s, N, w->frames, w->actions, w->itruth);
      /* what the agent felt: whether each move went through (a training target only) */
      for (int t = 0; t < N; t++)
        w->moved[t] = t == 0 || w->actions[t] == IMAGENAV_STAY ? -1.0f : (float)w->itruth[t].moved;
    }
    rng_t r;
    rng_init(&r, s, 3);
    rng_normal_fill(&r, w->eps_z, (size_t)N * Z);
    rng_normal_fill(&r, w->eps_s, (size_t)N * S);
    float *g = w->grads + (size_t)b * w->m->p.total;
    memset(g, 0, w->m->p.total * sizeof(float));
    w->rcs[b] = gtmsm_seq_loss(w->m, w->ws, &spec, w->frames, actions, w->eps_z, w->eps_s, g,
                               &w->stats[b]);
  }
  return NULL;
}

/* --init: copies the tensors of the model at path that m has under the same
 * name with the same size; a tensor of the same name but another size is an
 * error (another architecture); prints what came from where. */
static int init_params(gtmsm_model *m, const char *path, char *err, size_t errlen) {
  gtmsm_model src = {0};
  if (gtmsm_model_load(&src, path, err, errlen)) return -1;
  int copied = 0, rc = 0;
  char fresh[512] = "";
  for (size_t i = 0; i < m->p.n && !rc; i++) {
    const param_entry *e = &m->p.entries[i];
    int j = params_find(&src.p, e->name);
    if (j < 0) {
      size_t l = strlen(fresh);
      snprintf(fresh + l, sizeof fresh - l, "%s%s", l ? ", " : "", e->name);
    } else if (src.p.entries[j].size != e->size) {
      snprintf(err, errlen, "%s: tensor %s has %zu floats, this model's %zu", path, e->name,
               src.p.entries[j].size, e->size);
      rc = -1;
    } else {
      memcpy(m->p.data + e->offset, src.p.data + src.p.entries[j].offset, sizeof(float) * e->size);
      copied++;
    }
  }
  if (!rc)
    fprintf(stderr, "init from %s (%s): %d of %zu tensors%s%s\n", path, src.content_hash, copied, m->p.n,
            fresh[0] ? "; as initialised: " : "", fresh);
  gtmsm_model_free(&src);
  return rc;
}

static json_t *opts_to_json(const train_opts *o, long step) {
  json_t *j = json_pack(
      "{s:I, s:i, s:i, s:i, s:i, s:f, s:f, s:s?, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:i, s:i, s:i,"
      " s:f, s:f, s:f, s:f, s:f, s:I, s:i, s:i, s:f, s:f, s:i, s:i, s:s, s:i, s:f, s:f}",
      "step", (json_int_t)step, "memorize", o->memorize, "predict", o->predict, "batch", o->batch,
      "obstacles", o->obstacles, "rate", o->rate, "photo_frac", o->photo_frac, "worlds", o->worlds,
      "latent", o->latent, "hidden", o->hidden, "gate_hidden", o->gate_hidden, "k", o->k, "delta",
      o->delta, "trans_std", o->trans_std, "decoder", o->decoder, "steps", o->steps, "anneal",
      o->anneal, "kl_warmup", o->kl_warmup, "lr", o->lr, "lr_final", o->lr_final, "clip", o->clip,
      "aux", o->aux, "kl_start", o->kl_start, "seed", (json_int_t)o->seed, "curriculum",
      o->curriculum, "k_start", o->k_start, "delta_start", o->delta_start, "ssm_lr_mult",
      o->ssm_lr_mult, "memorize_start", o->memorize_start, "wallfree", o->wallfree, "vae", o->vae, "channels",
      o->channels, "still", o->still, "b_lr_after", o->b_lr_after);
  /* keys that came with the 3-D models (absent in older checkpoints) */
  json_t *more = json_pack("{s:s, s:s, s:i, s:s?, s:i, s:s, s:s, s:i, s:s, s:i, s:f, s:i}", "env", o->env, "scenario",
                           o->maze.scenario, "size", o->maze.size, "textures", o->maze.textures, "episode",
                           o->episode, "transition", o->transition, "keymap", o->keymap, "keymap_learned",
                           o->keymap_learned, "prior", o->prior, "prior_hidden", o->prior_hidden,
                           "disp_weight", o->disp_weight, "b_lr_steps", o->b_lr_steps);
  if (j && more) json_object_update(j, more);
  json_decref(more);
  /* keys that came with landmark inference (absent in older checkpoints: off) */
  if (j && o->landmarks)
    json_object_update_new(j, json_pack("{s:i, s:i, s:i}", "landmarks", o->landmarks, "landmark_k", o->landmark_k,
                                        "landmark_hidden", o->landmark_hidden));
  if (j && o->init) json_object_set_new(j, "init", json_string(o->init));
  if (j && o->freeze) json_object_set_new(j, "freeze", json_integer(o->freeze));
  return j;
}

/* Restores the options a checkpoint was trained with (all but steps/threads). */
static int opts_from_json(train_opts *o, const json_t *j, long *step) {
  json_int_t st, seed;
  const char *worlds = NULL, *dec = NULL, *vae = NULL;
  int steps_ignored;
  if (json_unpack((json_t *)j,
                  "{s:I, s:i, s:i, s:i, s:i, s:F, s:F, s:i, s:i, s:i, s:i, s:F, s:F, s:s, s:i,"
                  " s:i, s:i, s:F, s:F, s:F, s:F, s:F, s:I, s:i, s:i, s:F, s:F, s:i, s:i, s?s, s?i, s?F, s?F}",
                  "step", &st, "memorize", &o->memorize, "predict", &o->predict, "batch", &o->batch,
                  "obstacles", &o->obstacles, "rate", &o->rate, "photo_frac", &o->photo_frac,
                  "latent", &o->latent, "hidden", &o->hidden, "gate_hidden",
                  &o->gate_hidden, "k", &o->k, "delta", &o->delta, "trans_std", &o->trans_std,
                  "decoder", &dec, "steps", &steps_ignored, "anneal", &o->anneal, "kl_warmup",
                  &o->kl_warmup, "lr", &o->lr, "lr_final", &o->lr_final, "clip", &o->clip, "aux",
                  &o->aux, "kl_start", &o->kl_start, "seed", &seed, "curriculum", &o->curriculum,
                  "k_start", &o->k_start, "delta_start", &o->delta_start, "ssm_lr_mult",
                  &o->ssm_lr_mult, "memorize_start", &o->memorize_start, "wallfree", &o->wallfree, "vae", &vae,
                  "channels", &o->channels, "still", &o->still, "b_lr_after", &o->b_lr_after) != 0)
    return -1;
  json_t *v;
  worlds = json_string_value(json_object_get(j, "worlds")); /* null: procedural worlds */
  if ((v = json_object_get(j, "env"))) o->env = json_string_value(v);
  if ((v = json_object_get(j, "scenario"))) o->maze.scenario = json_string_value(v);
  if ((v = json_object_get(j, "size"))) o->maze.size = (int)json_integer_value(v);
  if ((v = json_object_get(j, "textures"))) o->maze.textures = json_string_value(v);
  if ((v = json_object_get(j, "episode"))) o->episode = (int)json_integer_value(v);
  if ((v = json_object_get(j, "transition"))) o->transition = json_string_value(v);
  if ((v = json_object_get(j, "keymap"))) o->keymap = json_string_value(v);
  if ((v = json_object_get(j, "keymap_learned"))) o->keymap_learned = (int)json_integer_value(v);
  if ((v = json_object_get(j, "prior"))) o->prior = json_string_value(v);
  if ((v = json_object_get(j, "prior_hidden"))) o->prior_hidden = (int)json_integer_value(v);
  if ((v = json_object_get(j, "disp_weight"))) o->disp_weight = json_number_value(v);
  o->b_lr_steps = (v = json_object_get(j, "b_lr_steps")) ? (int)json_integer_value(v) : -1;
  if ((v = json_object_get(j, "landmarks"))) o->landmarks = (int)json_integer_value(v);
  if ((v = json_object_get(j, "init"))) o->init = json_string_value(v);
  if ((v = json_object_get(j, "freeze"))) o->freeze = (int)json_integer_value(v);
  if ((v = json_object_get(j, "landmark_k"))) o->landmark_k = (int)json_integer_value(v);
  if ((v = json_object_get(j, "landmark_hidden"))) o->landmark_hidden = (int)json_integer_value(v);
  if (!o->env || !o->maze.scenario || !o->transition || !o->keymap || !o->prior) return -1;
  /* strings borrowed from j: the caller keeps j alive for the run */
  o->worlds = worlds;
  o->decoder = dec;
  o->vae = vae ? vae : "fc";
  o->seed = (uint64_t)seed;
  *step = (long)st;
  return 0;
}

/* Index of s in names (n), or -1. */
/* Where the recordings of a run came from, for its checkpoint (new
 * reference, NULL on OOM): {"episodes": [{"path", "steps"}], "db", "sessions":
 * [{"id", "steps"}]}, steps as read, so a resume reads the same data even
 * when a daemon has appended to the sessions since. */
static json_t *recordings_to_json(const recordings *r, const char *db) {
  json_t *eps = json_array(), *ses = json_array();
  for (int i = 0; i < r->n; i++) {
    if (r->session[i])
      json_array_append_new(ses, json_pack("{s:s, s:i}", "id", r->session[i], "steps", r->v[i].n));
    else
      json_array_append_new(eps, json_pack("{s:s, s:i}", "path", r->names[i], "steps", r->v[i].n));
  }
  return json_pack("{s:o, s:s?, s:o}", "episodes", eps, "db", db, "sessions", ses);
}

/* Reloads the recordings a checkpoint names (j may be NULL: a simulator run)
 * into r, with o->env's actions; sets o->recs and *src (a new reference to
 * j). A file that no longer holds the steps it held is an error. */
static int recordings_from_json(recordings *r, train_opts *o, const json_t *j, json_t **src, char *err,
                                size_t errlen) {
  if (!j) return 0;
  recordings_env env;
  if (recordings_env_init(&env, o->env)) return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "unknown env '%s'", o->env);
  const json_t *eps = json_object_get(j, "episodes"), *ses = json_object_get(j, "sessions"), *v;
  const char *db = json_string_value(json_object_get(j, "db"));
  size_t i;
  int rc = 0;
  json_array_foreach(eps, i, v) {
    const char *path = json_string_value(json_object_get(v, "path"));
    long steps = (long)json_integer_value(json_object_get(v, "steps"));
    if (!path) return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "checkpoint: a recording without a path");
    if ((rc = recordings_load_ndjson(r, &env, path, steps, err, errlen))) return rc;
    if (r->v[r->n - 1].n != steps)
      return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s now holds %d steps, %ld when the run started", path,
                        r->v[r->n - 1].n, steps);
  }
  size_t ns = json_array_size(ses);
  if (db && ns > 0) {
    recordings_session *listed = calloc(ns, sizeof *listed);
    if (!listed) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    json_array_foreach(ses, i, v) listed[i] = (recordings_session){json_string_value(json_object_get(v, "id")),
                                                                  (long)json_integer_value(json_object_get(v, "steps"))};
    rc = recordings_load_db(r, &env, db, listed, (int)ns, NULL, err, errlen);
    free(listed);
    if (rc) return rc;
  }
  if (r->n == 0) return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "checkpoint names no recordings");
  o->recs = r;
  if (strcmp(o->env, "maze3d") == 0) o->maze.size = r->H;
  *src = json_incref((json_t *)j);
  return 0;
}

static int name_index(const char *s, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

static float kl_weight_at(const train_opts *o, long step) {
  if (o->kl_warmup <= 0 || step >= o->kl_warmup) return 1.0f;
  return (float)(o->kl_start + (1.0 - o->kl_start) * (double)step / o->kl_warmup);
}

/* Data curriculum: the share of episodes whose explorer never pushes into a
 * wall. Without bumps the state is a plain sum of displacements, so B can be
 * learned from loop closures alone; the wall gate then learns from the bumps
 * of ordinary episodes once B is right. */
static double wallfree_share_at(const train_opts *o, long step) {
  if (o->wallfree <= 0 || step >= 2L * o->wallfree) return 0.0;
  if (step < o->wallfree) return 1.0;
  return 1.0 - (double)(step - o->wallfree) / o->wallfree;
}

/* Retrieval curriculum (see docs/MODEL.md): K falls linearly and delta
 * log-linearly from their start values to the model's over `curriculum`
 * updates. A wide, soft neighbourhood gives the transition parameters a
 * gradient from many memory entries while the states are still wrong, so both
 * hold their soft start values until the walls are fully in (2 * wallfree
 * updates): the gate learns from bumps only while a state one cell off still
 * retrieves its true neighbours with some weight. Optionally the memorized
 * length grows from memorize_start over the first `curriculum` updates. */
static void curriculum_at(const train_opts *o, long step, int *k, float *delta, int *memorize) {
  long s = step - 2L * (o->wallfree > 0 ? o->wallfree : 0);
  double f = o->curriculum <= 0 || s >= o->curriculum ? 0.0 : s <= 0 ? 1.0 : 1.0 - (double)s / o->curriculum;
  double fm = o->curriculum > 0 && step < o->curriculum ? 1.0 - (double)step / o->curriculum : 0.0;
  *k = (int)lround(o->k + (o->k_start - o->k) * f);
  *delta = (float)exp(log(o->delta) + (log(o->delta_start) - log(o->delta)) * f);
  int m0 = o->memorize_start > 0 && o->memorize_start < o->memorize ? o->memorize_start : o->memorize;
  *memorize = (int)lround(o->memorize + (m0 - o->memorize) * fm);
}

int cmd_train(int argc, char **argv) {
  train_opts o = {.env = "imagenav", .maze = opts_maze3d_default(), .episode = 80,
                  .transition = "gated2d", .keymap = "identity", .keymap_learned = 0, .prior = "mixture",
                  .prior_hidden = 256, .b_lr_steps = -1, .landmarks = 0, .landmark_k = 4, .landmark_hidden = 16, .memorize = 256, .predict = 32, .batch = 16, .obstacles = 0, .rate = 2.0,
                  .photo_frac = 0.5, .worlds = NULL, .latent = 16, .hidden = 256, .channels = 32, .vae = "fc",
                  .gate_hidden = 32, .k = 5, .delta = 1e-4, .trans_std = 1e-3,
                  .decoder = "gaussian", .steps = 15000, .anneal = 15000, .kl_warmup = 0,
                  .lr = 1e-3, .lr_final = 1e-4, .clip = 100.0, .aux = 0.5, .kl_start = 1.0,
                  .curriculum = 4000, .k_start = 24, .delta_start = 1.0, .memorize_start = 0,
                  .wallfree = 1500, .ssm_lr_mult = 5.0, .still = 1.0, .b_lr_after = 0.1,
                  .seed = 1, .threads = 2};
  const char *out = "runs/imagenav", *model_out = NULL, *from_db = NULL, *db_model = NULL, *init_from = NULL,
             *freeze = NULL;
  int resume = 0, log_every = 25;
  double ckpt_every = 300;
  opt_list episodes = {0}, sessions = {0};
  opt_def defs[] = {
      {"out", OPT_STRING, &out, 1, 0, "run folder (created with its parents): checkpoint.bin, train.csv"},
      {"env", OPT_STRING, &o.env, 1, 0, "imagenav | maze3d (with recordings: whose actions they use)"},
      {"episodes", OPT_LIST, &episodes, 1, 0,
       "train on recorded episodes: NDJSON files as gen prints them (frames, actions, optional truth)"},
      {"from-db", OPT_STRING, &from_db, 1, 0, "train on the sessions a gtmsmd stored in this SQLite file (read-only)"},
      {"session", OPT_LIST, &sessions, 1, 0, "with --from-db: only these session ids (default all)"},
      {"db-model", OPT_STRING, &db_model, 1, 0, "with --from-db: only sessions created with this model name"},
      OPTS_MAZE3D_DEFS(&o.maze),
      {"episode", OPT_INT, &o.episode, 2, 100000, "maze3d: episode length (sequences are windows of it)"},
      {"transition", OPT_STRING, &o.transition, 1, 0, "gated2d (2-D, eq. 4) | rot3d (heading, eq. 5) | walk3d (momentum)"},
      {"keymap", OPT_STRING, &o.keymap, 1, 0, "identity | periodic (s1, s2, cos s3, sin s3)"},
      {"keymap-learned", OPT_INT, &o.keymap_learned, 0, 1, "periodic keys through a learned linear layer"},
      {"prior", OPT_STRING, &o.prior, 1, 0, "mixture (inverse distance) | mlp (learned view-combining)"},
      {"prior-hidden", OPT_INT, &o.prior_hidden, 1, 8192, "mlp prior width"},
      {"disp-weight", OPT_DOUBLE, &o.disp_weight, 0, 1e6,
       "walk3d: weight of the regression of Delta on the felt displacement; imagenav: of the wall gate on "
       "whether each move went through (training targets only)"},
      {"landmarks", OPT_FLAG, &o.landmarks, 1, 0,
       "imagenav: infer the state with landmarks (appendix D: a reverse memory query on the frame's latent)"},
      {"landmark-k", OPT_INT, &o.landmark_k, 1, GTMSM_MAX_LANDMARK_K, "landmarks: entries of the reverse query"},
      {"landmark-hidden", OPT_INT, &o.landmark_hidden, 1, 256, "landmarks: width of the gain network"},
      {"model-out", OPT_STRING, &model_out, 1, 0, "also write the model (.gtm) at each checkpoint"},
      {"freeze", OPT_STRING, &freeze, 1, 0,
       "roles not trained, comma-separated: vae, transition, keymap, prior, inference (e.g. with --init)"},
      {"init", OPT_STRING, &init_from, 1, 0,
       "start from this model's parameters where a tensor has the same name and size (e.g. a trained model "
       "gaining landmark inference); the rest as initialised; a fresh optimizer and schedule"},
      {"resume", OPT_FLAG, &resume, 1, 0, "continue from OUT/checkpoint.bin with its options"},
      {"steps", OPT_INT, &o.steps, 1, 1e8, "total optimizer updates"},
      {"batch", OPT_INT, &o.batch, 1, 1024, "sequences per update"},
      {"memorize", OPT_INT, &o.memorize, 2, 100000, "memorized steps per sequence"},
      {"predict", OPT_INT, &o.predict, 1, 100000, "predicted steps per sequence"},
      {"rate", OPT_DOUBLE, &o.rate, 0, 100, "explorer Poisson repeat rate"},
      {"obstacles", OPT_INT, &o.obstacles, 0, 80, "blocked cells per episode"},
      {"worlds", OPT_STRING, &o.worlds, 1, 0, "folder of PNG worlds (e.g. data/worlds/train)"},
      {"photo-frac", OPT_DOUBLE, &o.photo_frac, 0, 1, "share of sequences on --worlds images"},
      {"latent", OPT_INT, &o.latent, 1, 1024, "latent size Z"},
      {"vae", OPT_STRING, &o.vae, 1, 0, "fc | conv"},
      {"hidden", OPT_INT, &o.hidden, 1, 8192, "fc VAE hidden width"},
      {"channels", OPT_INT, &o.channels, 1, 512, "conv VAE channels of the first layer"},
      {"gate-hidden", OPT_INT, &o.gate_hidden, 1, GTMSM_MAX_GATE, "wall gate MLP width"},
      {"k", OPT_INT, &o.k, 1, GTMSM_MAX_K, "neighbours retrieved"},
      {"delta", OPT_DOUBLE, &o.delta, 1e-12, 1e6, "mixture weight regulariser"},
      {"trans-std", OPT_DOUBLE, &o.trans_std, 0, 10, "transition noise std"},
      {"decoder", OPT_STRING, &o.decoder, 1, 0, "gaussian | bernoulli"},
      {"lr", OPT_DOUBLE, &o.lr, 0, 1, "initial learning rate"},
      {"lr-final", OPT_DOUBLE, &o.lr_final, 0, 1, "learning rate after --anneal updates"},
      {"anneal", OPT_INT, &o.anneal, 0, 1e8, "updates of linear learning-rate annealing"},
      {"clip", OPT_DOUBLE, &o.clip, 0, 1e9, "gradient-norm clip (0: off)"},
      {"b-lr-after", OPT_DOUBLE, &o.b_lr_after, 0, 1000,
       "learning-rate factor of B after --b-lr-steps updates (imagenav: once walls appear)"},
      {"b-lr-steps", OPT_INT, &o.b_lr_steps, -1, 1e8,
       "updates with B at --ssm-lr-mult before --b-lr-after (-1: --wallfree)"},
      {"still", OPT_DOUBLE, &o.still, 0, 1000, "weight of the still-frame term (unchanged view: no move)"},
      {"aux", OPT_DOUBLE, &o.aux, 0, 100, "weight of the leave-one-out term on memorized steps"},
      {"kl-start", OPT_DOUBLE, &o.kl_start, 0, 1, "KL weight at step 0"},
      {"kl-warmup", OPT_INT, &o.kl_warmup, 0, 1e8, "updates to raise the KL weight to 1"},
      {"ssm-lr-mult", OPT_DOUBLE, &o.ssm_lr_mult, 0, 1000, "learning-rate factor of the transition parameters"},
      {"curriculum", OPT_INT, &o.curriculum, 0, 1e8, "updates of the retrieval curriculum (0: off)"},
      {"memorize-start", OPT_INT, &o.memorize_start, 0, 100000, "memorized steps at step 0 (0: no growth)"},
      {"wallfree", OPT_INT, &o.wallfree, 0, 1e8, "updates on wall-free episodes (then a ramp of as many to none)"},
      {"k-start", OPT_INT, &o.k_start, 1, GTMSM_MAX_K, "neighbours retrieved at step 0"},
      {"delta-start", OPT_DOUBLE, &o.delta_start, 1e-12, 1e6, "mixture delta at step 0"},
      {"seed", OPT_U64, &o.seed, 1, 0, "seed of data, noise and initialisation"},
      {"threads", OPT_INT, &o.threads, 1, 256, "worker threads"},
      {"log-every", OPT_INT, &log_every, 1, 1e6, "updates between progress lines"},
      {"ckpt-every", OPT_DOUBLE, &ckpt_every, 1, 1e6, "seconds between checkpoints"},
      {NULL, 0, NULL, 0, 0, NULL},
  };
  int prc = opts_parse("train",
                       "Train GTMSM on episodes generated on the fly (imagenav, or maze3d windows), or on\n"
                       "windows of recorded episodes (--episodes FILE..., --from-db gtmsm.db [--session ID...]).",
                       defs, argc, argv);
  if (prc) {
    opt_list_free(&episodes);
    opt_list_free(&sessions);
    return prc == 1 ? 0 : 2;
  }
  if (maze3d_scenario_from_name(o.maze.scenario) < 0) {
    fprintf(stderr, "gtmsm train: unknown --scenario '%s' (rotate, walk or multiroom)\n", o.maze.scenario);
    opt_list_free(&episodes);
    opt_list_free(&sessions);
    return 2;
  }
  if ((sessions.n || db_model) && !from_db) {
    fprintf(stderr, "gtmsm train: --session and --db-model need --from-db\n");
    opt_list_free(&episodes);
    opt_list_free(&sessions);
    return 2;
  }
  if (resume && (episodes.n || from_db || init_from || freeze)) {
    fprintf(stderr, "gtmsm train: --resume continues with the checkpoint's data and start: it takes no "
                    "--episodes, --from-db, --init or --freeze\n");
    opt_list_free(&episodes);
    opt_list_free(&sessions);
    return 2;
  }

  int rc = 1;
  char err[512], ckpt[4096], csvp[4096];
  gtmsm_model m = {0};
  json_t *state = NULL;
  worldset photos = {0};
  maze3d_texture_set textures = {0};
  worker *ws = NULL;
  pthread_t *tids = NULL;
  float *grads = NULL;
  gtmsm_seq_stats *stats = NULL;
  int *rcs = NULL;
  FILE *csv = NULL;
  long step = 0;
  int requested_steps = o.steps, requested_threads = o.threads;
  recordings recs = {0};
  json_t *rec_src = NULL; /* where the recordings came from, for the checkpoint */
  long rec_steps = 0;     /* their steps in all */
  recordings_session *listed = NULL;
  snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", out);
  snprintf(csvp, sizeof csvp, "%s/train.csv", out);
  if (opts_mkdir_p(out, err, sizeof err) || (model_out && opts_mkdir_parent(model_out, err, sizeof err))) {
    fprintf(stderr, "gtmsm train: %s\n", err);
    goto done;
  }

  if (resume) {
    if (gtmsm_checkpoint_load(&m, &state, ckpt, err, sizeof err)) {
      fprintf(stderr, "gtmsm train: --resume: %s\n", err);
      goto done;
    }
    if (opts_from_json(&o, state, &step)) {
      fprintf(stderr, "gtmsm train: %s: trainer state incomplete\n", ckpt);
      goto done;
    }
    o.steps = requested_steps;
    o.threads = requested_threads;
    fprintf(stderr, "resuming %s at step %ld of %d\n", ckpt, step, o.steps);
    if ((rc = recordings_from_json(&recs, &o, json_object_get(state, "recordings"), &rec_src, err, sizeof err))) {
      fprintf(stderr, "gtmsm train: --resume: %s\n", err);
      rc = rc == RECORDINGS_ENOENT ? 2 : 1;
      goto done;
    }
    rc = 1;
  } else {
    if (episodes.n || from_db) {
      recordings_env env;
      if (recordings_env_init(&env, o.env)) {
        fprintf(stderr, "gtmsm train: --env must be imagenav or maze3d\n");
        rc = 2;
        goto done;
      }
      listed = calloc((size_t)sessions.n + 1, sizeof *listed);
      for (int i = 0; listed && i < sessions.n; i++) listed[i] = (recordings_session){sessions.v[i], -1};
      int lrc = listed ? 0 : GTMSM_ENOMEM;
      for (int i = 0; !lrc && i < episodes.n; i++)
        lrc = recordings_load_ndjson(&recs, &env, episodes.v[i], -1, err, sizeof err);
      if (!lrc && from_db) lrc = recordings_load_db(&recs, &env, from_db, listed, sessions.n, db_model, err, sizeof err);
      if (!lrc && !(rec_src = recordings_to_json(&recs, from_db))) lrc = gtmsm_fail(err, sizeof err, GTMSM_ENOMEM, "out of memory");
      if (lrc) {
        fprintf(stderr, "gtmsm train: %s\n", err);
        rc = lrc == RECORDINGS_ENOENT ? 2 : 1;
        goto done;
      }
      o.recs = &recs;
      if (strcmp(o.env, "maze3d") == 0) o.maze.size = recs.H;
    }
    gtmsm_config cfg = gtmsm_default_config();
    if (strcmp(o.env, "maze3d") == 0) {
      /* first-person RGB frames, the 8 Labyrinth actions and the no-op that
       * labels an episode's first frame, a pose with a heading */
      cfg.H = cfg.W = o.maze.size;
      cfg.C = 3;
      cfg.A = maze3d_action_count() + 1;
      for (int a = 0; a < cfg.A; a++)
        snprintf(cfg.action_names[a], sizeof cfg.action_names[a], "%s", maze3d_action_name(a));
      cfg.S = 3;
    } else if (strcmp(o.env, "imagenav") != 0) {
      fprintf(stderr, "gtmsm train: --env must be imagenav or maze3d\n");
      rc = 2;
      goto done;
    }
    if (o.recs) { /* the frame shape of the recordings */
      cfg.H = recs.H;
      cfg.W = recs.W;
      cfg.C = recs.C;
    }
    static const char *const trans[] = {"gated2d", "rot3d", "walk3d"}, *const keymaps[] = {"identity", "periodic"},
                             *const priors[] = {"mixture", "mlp"};
    int tk = name_index(o.transition, trans, 3), kk = name_index(o.keymap, keymaps, 2),
        pk = name_index(o.prior, priors, 2);
    if (tk < 0 || kk < 0 || pk < 0) {
      fprintf(stderr, "gtmsm train: --transition gated2d|rot3d|walk3d, --keymap identity|periodic, --prior mixture|mlp\n");
      rc = 2;
      goto done;
    }
    cfg.trans = (gtmsm_trans)tk;
    cfg.keymap = (gtmsm_keymap)kk;
    cfg.keymap_learned = o.keymap_learned;
    cfg.prior = (gtmsm_prior)pk;
    cfg.prior_hidden = o.prior_hidden;
    cfg.Z = o.latent;
    cfg.hidden = o.hidden;
    cfg.channels = o.channels;
    if (strcmp(o.vae, "conv") == 0) cfg.vae = GTMSM_VAE_CONV;
    else if (strcmp(o.vae, "fc") != 0) {
      fprintf(stderr, "gtmsm train: --vae must be fc or conv\n");
      rc = 2;
      goto done;
    }
    cfg.gate_hidden = o.gate_hidden;
    cfg.K = o.k;
    cfg.delta = (float)o.delta;
    cfg.trans_std = (float)o.trans_std;
    if (o.landmarks) {
      cfg.infer = GTMSM_INFER_LANDMARK;
      cfg.landmark_k = o.landmark_k;
      cfg.landmark_hidden = o.landmark_hidden;
    }
    if (strcmp(o.decoder, "bernoulli") == 0) cfg.decoder = GTMSM_DEC_BERNOULLI;
    else if (strcmp(o.decoder, "gaussian") != 0) {
      fprintf(stderr, "gtmsm train: --decoder must be gaussian or bernoulli\n");
      rc = 2;
      goto done;
    }
    if (gtmsm_model_init(&m, &cfg, o.seed, err, sizeof err)) {
      fprintf(stderr, "gtmsm train: %s\n", err);
      goto done;
    }
    o.init = init_from;
    if (freeze && (o.freeze = parse_freeze(freeze)) < 0) {
      fprintf(stderr, "gtmsm train: --freeze %s: roles are vae, transition, keymap, prior, inference\n", freeze);
      rc = 2;
      goto done;
    }
    if (init_from && init_params(&m, init_from, err, sizeof err)) {
      fprintf(stderr, "gtmsm train: --init: %s\n", err);
      rc = 2;
      goto done;
    }
  }
  if (o.recs && (recs.H != m.cfg.H || recs.W != m.cfg.W || recs.C != m.cfg.C)) {
    fprintf(stderr, "gtmsm train: the recordings' frames are %dx%dx%d, the model's %dx%dx%d\n", recs.W, recs.H,
            recs.C, m.cfg.W, m.cfg.H, m.cfg.C);
    goto done;
  }
  if (o.recs) {
    int longest = 0, usable = 0;
    for (int i = 0; i < recs.n; i++) {
      if (recs.v[i].n > longest) longest = recs.v[i].n;
      if (recs.v[i].n >= o.memorize + o.predict) usable++;
      else if (!resume)
        fprintf(stderr, "gtmsm train: %s: %d steps, shorter than a window (%d): not sampled\n", recs.names[i],
                recs.v[i].n, o.memorize + o.predict);
    }
    if (!usable) {
      fprintf(stderr, "gtmsm train: no recording holds --memorize + --predict = %d steps (the longest: %d)\n",
              o.memorize + o.predict, longest);
      rc = 2;
      goto done;
    }
    if (o.disp_weight > 0 && m.cfg.trans == GTMSM_TRANS_WALK3D && !recs.all_disp) {
      fprintf(stderr, "gtmsm train: --disp-weight needs the displacement truth (d_forward, d_left, d_heading) "
                      "in every recording\n");
      rc = 2;
      goto done;
    }
  } else if (strcmp(o.env, "maze3d") == 0 && o.memorize + o.predict > o.episode) {
    fprintf(stderr, "gtmsm train: --memorize + --predict (%d) longer than --episode %d\n", o.memorize + o.predict,
            o.episode);
    rc = 2;
    goto done;
  }
  if (opts_maze3d_load_textures(&o.maze, &textures, err, sizeof err)) {
    fprintf(stderr, "gtmsm train: %s\n", err);
    goto done;
  }
  if (o.worlds && worldset_load(&photos, o.worlds, err, sizeof err)) {
    fprintf(stderr, "gtmsm train: %s\n", err);
    goto done;
  }
  openblas_set_num_threads(1); /* parallel over sequences instead */
  int N = o.memorize + o.predict, D = gtmsm_config_D(&m.cfg);
  size_t total = m.p.total;
  grads = malloc((size_t)o.batch * total * sizeof(float));
  stats = calloc((size_t)o.batch, sizeof *stats);
  rcs = calloc((size_t)o.batch, sizeof *rcs);
  ws = calloc((size_t)o.threads, sizeof *ws);
  tids = calloc((size_t)o.threads, sizeof *tids);
  if (!grads || !stats || !rcs || !ws || !tids) {
    fprintf(stderr, "gtmsm train: out of memory\n");
    goto done;
  }
  for (int t = 0; t < o.threads; t++) {
    worker *w = &ws[t];
    *w = (worker){.m = &m, .o = &o, .ws_photos = o.worlds ? &photos : NULL, .textures = &textures, .tid = t,
                  .nthreads = o.threads, .grads = grads, .stats = stats, .rcs = rcs};
    w->ws = gtmsm_ws_new(&m.cfg, N, 1);
    w->frames = malloc((size_t)N * D * sizeof(float));
    w->eps_z = malloc((size_t)N * m.cfg.Z * sizeof(float));
    w->eps_s = malloc((size_t)N * m.cfg.S * sizeof(float));
    w->world = malloc(sizeof(float) * WORLD_SIZE * WORLD_SIZE * 3);
    w->actions = malloc((size_t)(N > o.episode ? N : o.episode) * sizeof(int));
    w->truth = malloc((size_t)(N > o.episode ? N : o.episode) * sizeof(maze3d_truth));
    w->disp = malloc((size_t)N * 3 * sizeof(float));
    w->moved = malloc((size_t)N * sizeof(float));
    w->itruth = malloc((size_t)N * sizeof(imagenav_truth));
    if (!w->ws || !w->frames || !w->eps_z || !w->eps_s || !w->world || !w->actions || !w->truth || !w->disp ||
        !w->moved || !w->itruth) {
      fprintf(stderr, "gtmsm train: out of memory\n");
      goto done;
    }
  }
  csv = fopen(csvp, resume ? "a" : "w");
  if (!csv) {
    fprintf(stderr, "gtmsm train: cannot write %s\n", csvp);
    goto done;
  }
  const int lm = m.cfg.infer == GTMSM_INFER_LANDMARK;
  if (!resume)
    fprintf(csv, "step,loss,recon_pred,kl_pred,recon_mem,kl_mem,mse_pred,lr,grad_norm,seconds%s\n",
            lm ? ",kl_s,displacement" : "");
  adam_config ac = adam_default();
  ac.lr = (float)o.lr;
  ac.lr_final = (float)o.lr_final;
  ac.anneal_steps = o.anneal;
  ac.clip_norm = (float)o.clip;
  m.p.step = step;
  for (size_t e = 0; e < m.p.n; e++)
    if (strncmp(m.p.entries[e].name, "ssm.", 4) == 0 || strncmp(m.p.entries[e].name, "gate.", 5) == 0)
      m.p.entries[e].lr_scale = (float)o.ssm_lr_mult;
  for (int r = 0; r < GTMSM_ROLES; r++)
    for (int e = m.part_first[r]; (o.freeze >> r & 1) && e < m.part_first[r + 1]; e++) m.p.entries[e].lr_scale = 0;
  rec_steps = 0;
  for (int i = 0; i < recs.n; i++) rec_steps += recs.v[i].n;
  if (o.recs)
    fprintf(stderr,
            "training %zu parameters: batch %d x (%d memorized + %d predicted) windows of %d recordings "
            "(%ld steps of %dx%d frames, %s actions), %d threads\n",
            total, o.batch, o.memorize, o.predict, recs.n, rec_steps, recs.W, recs.H, o.env, o.threads);
  else if (strcmp(o.env, "maze3d") == 0)
    fprintf(stderr,
            "training %zu parameters: batch %d x (%d memorized + %d predicted) windows of %d-step maze3d %s "
            "episodes, %d threads, textures: %s\n",
            total, o.batch, o.memorize, o.predict, o.episode, o.maze.scenario, o.threads,
            o.maze.textures ? o.maze.textures : "procedural");
  else
    fprintf(stderr,
            "training %zu parameters: batch %d x (%d memorized + %d predicted), %d threads, "
            "worlds: %s (%d photos, share %.2f)\n",
            total, o.batch, o.memorize, o.predict, o.threads, o.worlds ? o.worlds : "procedural",
            photos.n, o.worlds ? o.photo_frac : 0.0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  double t0 = opts_now(), t_last_ckpt = t0, t_log = t0;
  long step0 = step, log_step = step;
  double acc[9] = {0};
  int acc_n = 0;
  while (step < o.steps) {
    /* B is learned on wall-free episodes; once walls appear it slows down so
     * that the gate, not a distorted B, absorbs the bumps */
    if (!(o.freeze >> GTMSM_ROLE_TRANS & 1))
      m.p.entries[params_find(&m.p, "ssm.B")].lr_scale =
          (float)(step < (o.b_lr_steps >= 0 ? o.b_lr_steps : o.wallfree) ? o.ssm_lr_mult : o.b_lr_after);
    float klw = kl_weight_at(&o, step), delta_now;
    int k_now, mem_now;
    curriculum_at(&o, step, &k_now, &delta_now, &mem_now);
    for (int t = 0; t < o.threads; t++) {
      ws[t].step = step;
      ws[t].kl_weight = klw;
      ws[t].k_now = k_now;
      ws[t].delta_now = delta_now;
      ws[t].memorize_now = mem_now;
      ws[t].wallfree_share = wallfree_share_at(&o, step);
      pthread_create(&tids[t], NULL, worker_run, &ws[t]);
    }
    for (int t = 0; t < o.threads; t++) pthread_join(tids[t], NULL);
    /* reduce in sequence order: identical sums for any thread count */
    memset(m.p.grad, 0, total * sizeof(float));
    int bad = 0;
    for (int b = 0; b < o.batch; b++) {
      if (rcs[b]) bad = 1;
      const float *g = grads + (size_t)b * total;
      for (size_t i = 0; i < total; i++) m.p.grad[i] += g[i];
    }
    for (size_t i = 0; i < total; i++) m.p.grad[i] /= (float)o.batch;
    double gnorm = bad ? NAN : adam_update(&m.p, &ac);
    if (!isfinite(gnorm)) {
      fprintf(stderr, "gtmsm train: non-finite loss or gradient at step %ld; skipped the update\n", step);
      m.p.step++;
    }
    step++;
    double sums[9] = {0};
    for (int b = 0; b < o.batch; b++) {
      double P = o.predict;
      sums[0] += stats[b].loss / o.batch;
      sums[1] += stats[b].recon_pred / P / o.batch;
      sums[2] += stats[b].kl_pred / P / o.batch;
      sums[3] += stats[b].recon_mem / mem_now / o.batch;
      sums[4] += stats[b].kl_mem / mem_now / o.batch;
      sums[5] += stats[b].mse_pred / o.batch;
      sums[7] += stats[b].kl_s / (mem_now + o.predict - 1) / o.batch; /* per step */
      sums[8] += stats[b].displacement / (mem_now + o.predict - 1) / o.batch;
    }
    sums[6] = gnorm;
    for (int i = 0; i < 9; i++) acc[i] += sums[i];
    acc_n++;
    double now = opts_now();
    fprintf(csv, "%ld,%.6f,%.4f,%.4f,%.4f,%.4f,%.6f,%.3g,%.4g,%.1f", step, sums[0], sums[1],
            sums[2], sums[3], sums[4], sums[5], adam_lr(&ac, step), gnorm, now - t0);
    if (lm) fprintf(csv, ",%.5f,%.5f", sums[7], sums[8]);
    fputc('\n', csv);
    if (step % log_every == 0 || step == o.steps) {
      double rate = (double)(step - log_step) / (now - t_log);
      double overall = (double)(step - step0) / (now - t0);
      char eta[32];
      if (lm) fprintf(stderr, "step %ld  landmarks: kl_s %.4f per step  displacement %.4f\n", step,
                      acc[7] / acc_n, acc[8] / acc_n);
      fprintf(stderr,
              "step %ld/%d  loss %.3f  recon %.2f  kl %.3f  (mem: recon %.2f kl %.3f)  mse %.5f  "
              "|g| %.3g  lr %.2g  K %d delta %.2g T %d wallfree %.2f  %.2f steps/s %.1f seq/s  ETA %s\n",
              step, o.steps, acc[0] / acc_n, acc[1] / acc_n, acc[2] / acc_n, acc[3] / acc_n,
              acc[4] / acc_n, acc[5] / acc_n, acc[6] / acc_n, adam_lr(&ac, step), k_now,
              (double)delta_now, mem_now, wallfree_share_at(&o, step), rate,
              rate * o.batch, opts_duration((o.steps - step) / overall, eta, sizeof eta));
      memset(acc, 0, sizeof acc);
      acc_n = 0;
      t_log = now;
      log_step = step;
      fflush(csv);
    }
    int stopping = stop_signal != 0;
    if (now - t_last_ckpt >= ckpt_every || step == o.steps || stopping) {
      json_t *st = opts_to_json(&o, step);
      if (st && rec_src) json_object_set(st, "recordings", rec_src);
      int crc = gtmsm_checkpoint_save(&m, st, ckpt, err, sizeof err);
      if (!crc && model_out && rec_src) {
        /* the model file's metadata is bounded (4 KiB): its provenance counts
         * the recordings, the checkpoint names them */
        json_t *brief = json_copy(st);
        json_decref(st);
        st = brief;
        if (st)
          json_object_set_new(st, "recordings",
                              json_pack("{s:i, s:I, s:O}", "count", recs.n, "steps", (json_int_t)rec_steps, "db",
                                        json_object_get(rec_src, "db")));
      }
      if (!crc && model_out) {
        json_t *extra = strcmp(o.env, "maze3d") == 0
                            ? json_pack("{s:s, s:s, s:o}", "environment", "maze3d", "scenario", o.maze.scenario,
                                        "training", st)
                            : json_pack("{s:s, s:o}", "environment", "imagenav", "training", st);
        crc = gtmsm_model_save(&m, model_out, extra, err, sizeof err);
        json_decref(extra);
      } else {
        json_decref(st);
      }
      if (crc) {
        fprintf(stderr, "gtmsm train: checkpoint: %s\n", err);
        goto done;
      }
      fprintf(stderr, "checkpoint at step %ld -> %s%s%s\n", step, ckpt, model_out ? " and " : "",
              model_out ? model_out : "");
      t_last_ckpt = now;
    }
    if (stopping) {
      fprintf(stderr, "gtmsm train: %s at step %ld of %d: checkpoint written; --resume continues\n",
              stop_signal == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)", step, o.steps);
      fflush(csv);
      rc = 128 + stop_signal;
      goto done;
    }
  }
  rc = 0;
done:
  if (csv) fclose(csv);
  for (int t = 0; ws && t < o.threads; t++) {
    gtmsm_ws_free(ws[t].ws);
    free(ws[t].frames);
    free(ws[t].eps_z);
    free(ws[t].eps_s);
    free(ws[t].world);
    free(ws[t].actions);
    free(ws[t].truth);
    free(ws[t].disp);
    free(ws[t].moved);
    free(ws[t].itruth);
  }
  free(ws);
  free(tids);
  free(grads);
  free(stats);
  free(rcs);
  worldset_free(&photos);
  maze3d_texture_set_free(&textures);
  gtmsm_model_free(&m);
  json_decref(state);
  json_decref(rec_src);
  recordings_free(&recs);
  free(listed);
  opt_list_free(&episodes);
  opt_list_free(&sessions);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  return rc;
}
