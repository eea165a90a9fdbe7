/* The walking transition (paper 4.2.2): its gradient through a rollout,
 * including the Delta recursion through time, against central differences in
 * double on a projection loss of the states and of Delta; the displacement
 * regression term of the loss; and Delta's persistence in a session memory
 * (serialise / deserialise, observe in two batches). */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "model/api.h"
#include "model/gtmsm.h"
#include "model/gtmsm_internal.h"
#include "nn/rng.h"
#include "testlib.h"

enum { N = 12, A = 4 };

typedef struct {
  gtmsm_model m;
  void *ws;
  int actions[N];
  float eps_s[N * 3], s[N * 3], h[N * 3];
  float rs[N * 3], rh[N * 3];
} ctx_t;

static double rollout_loss(void *p) {
  ctx_t *c = p;
  gtmsm_infer_actions(&c->m, c->ws, c->actions, c->eps_s, N, c->s, c->h);
  return test_dot(c->s, c->rs, N * 3) + test_dot(c->h, c->rh, N * 3);
}

static void test_gradcheck(void) {
  static ctx_t c;
  gtmsm_config cfg = gtmsm_default_config();
  cfg.S = 3;
  cfg.A = A;
  cfg.trans = GTMSM_TRANS_WALK3D;
  cfg.trans_std = 0.05f;
  char err[256];
  CHECK(gtmsm_model_init(&c.m, &cfg, 7, err, sizeof err) == 0, "init: %s", err);
  /* displacements of order 1 so that tanh and the rotation are well inside their curved range */
  float *B = params_get(&c.m.p, "ssm.B"), *alpha = params_get(&c.m.p, "ssm.alpha"),
        *beta = params_get(&c.m.p, "ssm.beta");
  test_fill_uniform(B, (size_t)A * 3, -0.9f, 0.9f, 3);
  test_fill_uniform(alpha, 3, -1, 1, 4);
  test_fill_uniform(beta, 3, 0.5f, 1.5f, 5);
  rng_t r;
  rng_init(&r, 9, 1);
  for (int t = 0; t < N; t++) c.actions[t] = (int)rng_below(&r, A);
  rng_normal_fill(&r, c.eps_s, N * 3);
  test_fill_uniform(c.rs, N * 3, -1, 1, 11);
  test_fill_uniform(c.rh, N * 3, -1, 1, 12);
  c.ws = c.m.trans->ws_new(&c.m.cfg, N);
  float *grad = calloc(c.m.p.total, sizeof(float)), ds[N * 3], dh[N * 3];
  rollout_loss(&c);
  memcpy(ds, c.rs, sizeof ds);
  memcpy(dh, c.rh, sizeof dh);
  c.m.trans->backward(&c.m, c.ws, c.actions, N, c.s, ds, dh, grad);
  const char *names[] = {"ssm.B", "ssm.alpha", "ssm.beta"};
  for (int e = 0; e < 3; e++) {
    const param_entry *pe = &c.m.p.entries[params_find(&c.m.p, names[e])];
    gc_opts o = gc_default();
    o.eps = 1e-2;
    o.tol = 1e-3;
    o.floor = 1e-2;
    char label[64];
    snprintf(label, sizeof label, "walk3d/%s", pe->name);
    gradcheck(label, c.m.p.data + pe->offset, grad + pe->offset, pe->size, rollout_loss, &c, &o);
  }
  c.m.trans->ws_free(c.ws);
  free(grad);
  gtmsm_model_free(&c.m);
}

/* The regression term alone (a model whose other terms are constant in the
 * transition's parameters would hide it): its value and its gradient through
 * the whole sequence loss. */
typedef struct {
  gtmsm_model m;
  gtmsm_ws *ws;
  gtmsm_seq_spec spec;
  float frames[N * 12], eps_z[N * 3], eps_s[N * 3], target[N * 3];
  int actions[N];
} loss_ctx;

static double seq_loss(void *p) {
  loss_ctx *c = p;
  gtmsm_seq_stats st;
  int rc = gtmsm_seq_loss(&c->m, c->ws, &c->spec, c->frames, c->actions, c->eps_z, c->eps_s, NULL, &st);
  return rc ? NAN : st.loss;
}

static void test_regression(void) {
  static loss_ctx c;
  gtmsm_config cfg = gtmsm_default_config();
  cfg.H = cfg.W = 2;
  cfg.Z = 3;
  cfg.hidden = 4;
  cfg.S = 3;
  cfg.A = A;
  cfg.K = 2;
  cfg.trans = GTMSM_TRANS_WALK3D;
  cfg.keymap = GTMSM_KEYMAP_PERIODIC;
  cfg.delta = 0.5f;
  char err[256];
  CHECK(gtmsm_model_init(&c.m, &cfg, 8, err, sizeof err) == 0, "init: %s", err);
  c.ws = gtmsm_ws_new(&cfg, N, 1);
  rng_t r;
  rng_init(&r, 10, 1);
  for (int i = 0; i < N * 12; i++) c.frames[i] = rng_uniform(&r);
  for (int t = 0; t < N; t++) c.actions[t] = (int)rng_below(&r, A);
  rng_normal_fill(&r, c.eps_z, N * 3);
  rng_normal_fill(&r, c.eps_s, N * 3);
  test_fill_uniform(c.target, N * 3, -0.5f, 0.5f, 13);
  c.spec = (gtmsm_seq_spec){.N = N, .T = 8, .aux = 0, .kl_weight = 1, .displacement = c.target,
                            .disp_weight = 50.0f};
  gtmsm_seq_stats with, without;
  gtmsm_seq_loss(&c.m, c.ws, &c.spec, c.frames, c.actions, c.eps_z, c.eps_s, NULL, &with);
  gtmsm_seq_spec plain = c.spec;
  plain.displacement = NULL;
  gtmsm_seq_loss(&c.m, c.ws, &plain, c.frames, c.actions, c.eps_z, c.eps_s, NULL, &without);
  CHECK(with.displacement > 0 && without.displacement == 0, "regression term %g / %g", with.displacement,
        without.displacement);
  CHECK_NEAR(with.loss - without.loss, 50.0 * with.displacement / (N - 8), 1e-3, 1e-4, "regression in the loss");
  float *grad = calloc(c.m.p.total, sizeof(float));
  CHECK(gtmsm_seq_loss(&c.m, c.ws, &c.spec, c.frames, c.actions, c.eps_z, c.eps_s, grad, &with) == 0, "loss");
  /* alpha and beta: the regression dominates their gradient (disp_weight 50) */
  const char *names[] = {"ssm.alpha", "ssm.beta"};
  for (int e = 0; e < 2; e++) {
    const param_entry *pe = &c.m.p.entries[params_find(&c.m.p, names[e])];
    gc_opts o = gc_default();
    o.eps = 1e-2;
    o.tol = 2e-2; /* the whole loss: kNN and float rounding of the other terms */
    o.floor = 1e-1;
    char label[64];
    snprintf(label, sizeof label, "walk3d loss/%s", pe->name);
    gradcheck(label, c.m.p.data + pe->offset, grad + pe->offset, pe->size, seq_loss, &c, &o);
  }
  free(grad);
  gtmsm_ws_free(c.ws);
  gtmsm_model_free(&c.m);
}

/* Delta is part of the session's belief: it survives serialisation, and
 * observing in two batches equals one. */
static void test_memory(void) {
  gtmsm_config cfg = gtmsm_default_config();
  cfg.H = cfg.W = 4;
  cfg.Z = 4;
  cfg.hidden = 8;
  cfg.S = 3;
  cfg.A = A;
  cfg.K = 2;
  cfg.trans = GTMSM_TRANS_WALK3D;
  cfg.keymap = GTMSM_KEYMAP_PERIODIC;
  gtmsm_model m;
  char err[256];
  CHECK(gtmsm_model_init(&m, &cfg, 9, err, sizeof err) == 0, "init: %s", err);
  enum { T = 20 };
  static float frames[T * 48];
  int actions[T];
  test_fill_uniform(frames, T * 48, 0, 1, 14);
  for (int t = 0; t < T; t++) actions[t] = t % A;
  gtmsm_memory *a = gtmsm_memory_new(&m), *b = gtmsm_memory_new(&m), *back = NULL;
  CHECK(gtmsm_observe(&m, a, actions, frames, T, err, sizeof err) == 0, "%s", err);
  CHECK(gtmsm_observe(&m, b, actions, frames, 7, err, sizeof err) == 0, "%s", err);
  CHECK(gtmsm_observe(&m, b, actions + 7, frames + 7 * 48, T - 7, err, sizeof err) == 0, "%s", err);
  CHECK(a->H == 3 && memcmp(a->hidden, b->hidden, sizeof a->hidden) == 0 && a->hidden[0] != 0,
        "Delta after one or two batches");
  uint8_t *buf = NULL;
  size_t len = 0;
  CHECK(gtmsm_memory_serialize(a, cfg.S, &buf, &len) == 0, "serialize");
  CHECK(gtmsm_memory_deserialize(&m, buf, len, &back, err, sizeof err) == 0, "deserialize: %s", err);
  CHECK(back && memcmp(back->hidden, a->hidden, sizeof a->hidden) == 0, "Delta restored bit for bit");
  int pa[3] = {0, 1, 2};
  float f1[3 * 48], f2[3 * 48];
  gtmsm_predict(&m, a, pa, 3, GTMSM_PREDICT_MEAN, 0, f1, NULL, NULL, 0);
  gtmsm_predict(&m, back, pa, 3, GTMSM_PREDICT_MEAN, 0, f2, NULL, NULL, 0);
  CHECK(memcmp(f1, f2, sizeof f1) == 0, "same predictions after the round trip");
  /* a dump whose transition state was cut off is refused */
  gtmsm_memory *cut = NULL;
  CHECK(gtmsm_memory_deserialize(&m, buf, 24 + 12 + 6, &cut, err, sizeof err) == GTMSM_EFORMAT && !cut,
        "truncated dump");
  printf("memory: Delta = (%g, %g, %g), %zu bytes serialised\n", a->hidden[0], a->hidden[1], a->hidden[2], len);
  free(buf);
  gtmsm_memory_free(a);
  gtmsm_memory_free(b);
  gtmsm_memory_free(back);
  gtmsm_model_free(&m);
}

int main(void) {
  test_gradcheck();
  test_regression();
  test_memory();
  return test_finish("trans_walk3d");
}
