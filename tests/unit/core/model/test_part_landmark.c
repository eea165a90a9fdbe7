/* The landmark inference part (infer_landmark.c, paper appendix D) alone:
 * - what it is for: a frame seen before (the same latent) with sharp gains
 *   puts the state back where that frame was seen, in training (the part's
 *   forward) and in serving (gtmsm_observe through the reverse index), where
 *   a move into an obstacle would have lost the place for good; the memory
 *   then records the stop, and a prediction of the same move from there
 *   stays;
 * - with its gains shut (b2 very negative) it is the rollout from the
 *   actions, and with no unseen failures (pi = 0) its KL vanishes;
 * - gradient checks, double-precision central differences (testlib), of
 *   L = sum_t r_t . s_t + sum_t c_t KL_t for its own tensors, the
 *   transition's (the step backwards it drives) and the latent means that
 *   key the reverse query. Perturbations that change which entries are
 *   retrieved are skipped (the kNN is piecewise constant). Tolerance 1e-3. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/api.h"
#include "model/gtmsm.h"
#include "model/gtmsm_internal.h"
#include "nn/rng.h"
#include "testlib.h"

enum { N = 12, T = 8, Z = 3, S = 2, KL = 3 };

typedef struct {
  gtmsm_model m;
  void *tws, *lws;
  int actions[N];
  float mu_z[N * Z], eps_s[N * S];
  float s[N * S], r[N * S], c[N];
  double kl[N];
  int base_idx[N * KL];
  float *x; /* the tensor being checked */
} ctx_t;

static gtmsm_config config(void) {
  gtmsm_config cfg = gtmsm_default_config();
  cfg.H = cfg.W = 2;
  cfg.Z = Z;
  cfg.hidden = 6;
  cfg.gate_hidden = 5;
  cfg.K = 3;
  cfg.trans_std = 0.3f; /* obstacles: the transition is not near-deterministic */
  cfg.infer = GTMSM_INFER_LANDMARK;
  cfg.landmark_k = KL;
  cfg.landmark_hidden = 4;
  return cfg;
}

/* The workspace's retrieved indices: the part keeps them after its ws header
 * fields; reading them through a forward of the reference is simpler: the
 * states of a run with the retrieved set fixed are what the skip compares. */
static void forward(ctx_t *c) {
  gtmsm_infer_in in = {.N = N, .T = T, .actions = c->actions, .mu_z = c->mu_z, .eps_s = c->eps_s};
  c->m.infer->forward(&c->m, c->lws, c->tws, &in, c->s, NULL, c->kl);
}

static double loss_fn(void *p) {
  ctx_t *c = p;
  forward(c);
  double L = test_dot(c->s, c->r, (size_t)N * S);
  for (int t = 0; t < N; t++) L += c->c[t] * c->kl[t];
  return L;
}

/* the neighbours of every step, recomputed as the part does (brute force) */
static void neighbours(const ctx_t *c, int *idx) {
  float d2[KL];
  for (int t = 1; t < N; t++)
    gtmsm_knn_brute(c->mu_z, t < T ? t : T, Z, c->mu_z + t * Z, KL, -1, idx + t * KL, d2);
}

static int skip_fn(void *p, size_t i, double eps) {
  ctx_t *c = p;
  float x0 = c->x[i];
  int changed = 0, idx[N * KL];
  for (int sgn = -1; sgn <= 1; sgn += 2) {
    c->x[i] = (float)(x0 + sgn * eps);
    memset(idx, 0, sizeof idx);
    neighbours(c, idx);
    changed |= memcmp(idx, c->base_idx, sizeof idx) != 0;
  }
  c->x[i] = x0;
  return changed;
}

static gc_opts opts(void) {
  gc_opts o = gc_default();
  o.eps = 2e-2;
  o.richardson = 1;
  o.noise = 1;
  o.tol = 1e-3;
  o.floor = 1e-2;
  o.skip = skip_fn;
  return o;
}

static int setup(ctx_t *c, uint64_t seed) {
  memset(c, 0, sizeof *c);
  gtmsm_config cfg = config();
  char err[256];
  int rc = gtmsm_model_init(&c->m, &cfg, seed, err, sizeof err);
  CHECK(rc == 0, "init: %s", err);
  if (rc) return rc;
  CHECK(c->m.infer == &gtmsm_infer_landmark && strcmp(gtmsm_part_name(&c->m, GTMSM_ROLE_INFER), "landmark") == 0,
        "the landmark part is not selected");
  c->tws = c->m.trans->ws_new(&cfg, N);
  c->lws = c->m.infer->ws_new(&cfg, N);
  rng_t r;
  rng_init(&r, seed, 5);
  for (int t = 0; t < N; t++) c->actions[t] = (int)rng_below(&r, 5);
  rng_normal_fill(&r, c->eps_s, (size_t)N * S);
  test_fill_uniform(c->mu_z, (size_t)N * Z, -1, 1, seed + 1);
  /* frames seen again: steps 5 and 9 see what steps 2 and 4 saw (nearly) */
  for (int k = 0; k < Z; k++) {
    c->mu_z[5 * Z + k] = c->mu_z[2 * Z + k] + 0.05f * (float)(k + 1);
    c->mu_z[9 * Z + k] = c->mu_z[4 * Z + k] - 0.04f * (float)(k + 1);
  }
  test_fill_uniform(c->r, (size_t)N * S, -1, 1, seed + 2);
  test_fill_uniform(c->c, N, 0.2f, 1, seed + 3);
  params_get(&c->m.p, "gate.b3")[0] = 0.3f; /* a gate neither open nor closed */
  /* gains that matter, smooth enough in d2 for differences of 2e-2 (the
   * part's own init, a step at d2 = 0.02, is too steep for them) */
  test_fill_uniform(params_get(&c->m.p, "lm.w1"), 4, -1, 1, seed + 5);
  test_fill_uniform(params_get(&c->m.p, "lm.b1"), 4, -1, 1, seed + 6);
  test_fill_uniform(params_get(&c->m.p, "lm.w2"), 4, -2, 2, seed + 4);
  params_get(&c->m.p, "lm.fail")[0] = -1.0f; /* failed moves likely: the failure component matters */
  params_get(&c->m.p, "lm.lv")[0] = 2.0f * logf(cfg.trans_std); /* the prior as wide as q's base: round KLs */
  params_get(&c->m.p, "lm.b2")[0] = 0.5f;
  params_get(&c->m.p, "lm.vw")[0] = -1.5f;
  params_get(&c->m.p, "lm.vb")[0] = 0.2f;
  return c->tws && c->lws ? 0 : -1;
}

static void teardown(ctx_t *c) {
  if (c->tws) c->m.trans->ws_free(c->tws);
  if (c->lws) c->m.infer->ws_free(c->lws);
  gtmsm_model_free(&c->m);
}

static void check_gradients(void) {
  static ctx_t c;
  if (setup(&c, 31)) goto done;
  float *grad = calloc(c.m.p.total, sizeof(float));
  float ds[N * S], dkl[N], dmu[N * Z];
  memset(dmu, 0, sizeof dmu);
  loss_fn(&c);
  memcpy(ds, c.r, sizeof ds);
  memcpy(dkl, c.c, sizeof dkl);
  neighbours(&c, c.base_idx);
  gtmsm_infer_in in = {.N = N, .T = T, .actions = c.actions, .mu_z = c.mu_z, .eps_s = c.eps_s};
  c.m.infer->backward(&c.m, c.lws, c.tws, &in, c.s, ds, NULL, dkl, dmu, grad);
  double klsum = 0;
  for (int t = 0; t < N; t++) klsum += c.kl[t];
  printf("landmark: sum KL %.4f, s_%d = (%.4f, %.4f)\n", klsum, N - 1, c.s[(N - 1) * S], c.s[(N - 1) * S + 1]);
  CHECK(klsum > 1e-3, "the KL does not depend on the landmarks (%g)", klsum);
  char label[96];
  for (int role = GTMSM_ROLE_TRANS; role <= GTMSM_ROLE_INFER; role += GTMSM_ROLE_INFER - GTMSM_ROLE_TRANS)
    for (int e = c.m.part_first[role]; e < c.m.part_first[role + 1]; e++) {
      const param_entry *pe = &c.m.p.entries[e];
      gc_opts o = opts();
      snprintf(label, sizeof label, "landmark/%s", pe->name);
      c.x = c.m.p.data + pe->offset;
      gradcheck(label, c.x, grad + pe->offset, pe->size, loss_fn, &c, &o);
    }
  gc_opts o = opts();
  c.x = c.mu_z;
  gradcheck("landmark/mu_z (reverse keys)", c.mu_z, dmu, (size_t)N * Z, loss_fn, &c, &o);
  free(grad);
done:
  teardown(&c);
}

/* Gains shut, no unseen failures (pi = 0) and q as wide as the prior: the
 * rollout from the actions, no KL. */
static void check_shut_gains(void) {
  static ctx_t c;
  if (setup(&c, 32)) goto done;
  params_get(&c.m.p, "lm.b2")[0] = -60.0f;
  params_get(&c.m.p, "lm.fail")[0] = -200.0f;
  params_get(&c.m.p, "lm.lv")[0] = 2.0f * logf(c.m.cfg.trans_std);
  params_get(&c.m.p, "lm.vw")[0] = 0;
  params_get(&c.m.p, "lm.vb")[0] = 0;
  forward(&c);
  float ref[N * S];
  gtmsm_infer_actions(&c.m, c.tws, c.actions, c.eps_s, N, ref, NULL);
  double maxd = 0, klsum = 0;
  for (int i = 0; i < N * S; i++) maxd = fmax(maxd, fabs((double)c.s[i] - ref[i]));
  for (int t = 0; t < N; t++) klsum += c.kl[t];
  printf("gains shut: max |s - s_actions| %.3g, sum KL %.3g\n", maxd, klsum);
  CHECK(maxd < 1e-6 && klsum < 1e-12, "gains shut: states differ by %g from the actions' rollout, KL %g", maxd,
        klsum);
done:
  teardown(&c);
}

/* Sharp gains (kappa near 1 for a latent seen before, near 0 otherwise): a
 * repeated frame snaps the state to where it was seen. Then the same through
 * gtmsm_observe: a move into a wall (the frame does not change) keeps the
 * belief where it was, while the actions alone would move it. */
static void sharp_gains(gtmsm_model *m) {
  /* one hidden unit: a = tanh(-(x + 3.5)) is +0.8 at d2 = 0 (x = -4.6) and below -0.8 at d2 >= 0.1 */
  float *w1 = params_get(&m->p, "lm.w1"), *b1 = params_get(&m->p, "lm.b1"), *w2 = params_get(&m->p, "lm.w2");
  for (int i = 0; i < m->cfg.landmark_hidden; i++) w1[i] = b1[i] = w2[i] = 0;
  w1[0] = -1;
  b1[0] = -3.5f;
  w2[0] = 14;
  params_get(&m->p, "lm.b2")[0] = 0;
}

static void check_snap(void) {
  static ctx_t c;
  if (setup(&c, 33)) goto done;
  sharp_gains(&c.m);
  memset(c.eps_s, 0, sizeof c.eps_s);
  test_fill_uniform(c.mu_z, (size_t)N * Z, -3, 3, 77);
  memcpy(c.mu_z + 6 * Z, c.mu_z + 3 * Z, sizeof(float) * Z); /* step 6 sees step 3's frame */
  forward(&c);
  double d = hypot(c.s[6 * S] - c.s[3 * S], c.s[6 * S + 1] - c.s[3 * S + 1]);
  printf("snap: |s_6 - s_3| = %.3g (a frame seen at step 3)\n", d);
  CHECK(d < 1e-3, "a repeated frame did not snap to its earlier state (%g)", d);
done:
  teardown(&c);
}

static void check_observe_wall(void) {
  gtmsm_config cfg = gtmsm_default_config(); /* 8x8 frames, the image-navigation actions */
  cfg.infer = GTMSM_INFER_LANDMARK;
  cfg.trans_std = 0.3f;
  gtmsm_model m;
  char err[256];
  int rc = gtmsm_model_init(&m, &cfg, 9, err, sizeof err);
  CHECK(rc == 0, "init: %s", err);
  if (rc) return;
  sharp_gains(&m);
  const int D = gtmsm_config_D(&cfg);
  float *frames = malloc(sizeof(float) * 4 * (size_t)D);
  test_fill_uniform(frames, (size_t)3 * D, 0, 1, 5);
  memcpy(frames + 3 * D, frames + 2 * D, sizeof(float) * (size_t)D); /* step 3 bumps: the view is unchanged */
  int actions[4] = {4, 0, 0, 0};
  gtmsm_memory *mem = gtmsm_memory_new(&m);
  rc = mem ? gtmsm_observe(&m, mem, actions, frames, 4, err, sizeof err) : -1;
  CHECK(rc == 0, "observe: %s", err);
  if (!rc) {
    const float *s2 = dnd_key(mem->mem, 2), *s3 = dnd_key(mem->mem, 3);
    float moved[GTMSM_MAX_S];
    m.trans->step(&m, s2, NULL, 0, moved, NULL, NULL, 0);
    double stay = hypot(s3[0] - s2[0], s3[1] - s2[1]), would = hypot(moved[0] - s2[0], moved[1] - s2[1]);
    printf("observe into a wall: the belief moved %.3g (the actions alone: %.3g)\n", stay, would);
    CHECK(stay < 1e-3 && would > 0.1, "observe: a bump moved the belief %g (actions alone %g)", stay, would);
    CHECK(dnd_size(mem->rev) == 4 && memcmp(dnd_value(mem->rev, 3), s3, sizeof(float) * 2) == 0,
          "the reverse index does not hold the observed states");
    /* the memory knows where the move failed: predicting it again from there fails too, another doesn't */
    const int D8 = gtmsm_config_D(&cfg);
    float *pf = malloc(sizeof(float) * 2 * (size_t)D8), ps[4];
    int again[2] = {0, 1};
    rc = pf ? gtmsm_predict(&m, mem, again, 2, GTMSM_PREDICT_MEAN, 0, pf, ps, err, sizeof err) : -1;
    const double d_again = hypot(ps[0] - mem->state[0], ps[1] - mem->state[1]);
    const double d_other = hypot(ps[2] - ps[0], ps[3] - ps[1]);
    printf("predicting the failed move again: moved %.3g; then the other way: %.3g\n", d_again, d_other);
    CHECK(rc == 0 && d_again == 0 && d_other > 0.1, "a recorded stop: the same move predicted from there stays "
          "(moved %g), another moves (%g)", d_again, d_other);
    free(pf);
  }
  gtmsm_memory_free(mem);
  free(frames);
  gtmsm_model_free(&m);
}

int main(void) {
  check_gradients();
  check_shut_gains();
  check_snap();
  check_observe_wall();
  return test_finish("test_part_landmark");
}
