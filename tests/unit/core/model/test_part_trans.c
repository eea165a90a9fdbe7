/* The transition parts (trans_gated2d.c, trans_rot3d.c) alone: the geometry
 * of the rotation (R turns the agent-frame displacement into state space),
 * and gradient checks of a rollout of several steps under the projection
 * L = sum_t r_t . s_t, for the transition's parameters, the noise draws (the
 * gradient with respect to s_t after the backward, times trans_std) and the
 * start state. The rollout is gtmsm_infer_actions; a copy of it that starts
 * from a given state (checked equal to it from the origin) gives the start
 * state's gradient. Tolerance 1e-3. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm.h"
#include "model/gtmsm_internal.h"
#include "nn/rng.h"
#include "testlib.h"

#define PI_F 3.14159265358979f
enum { N = 8 }; /* steps of the rollout */

typedef struct {
  gtmsm_model m;
  void *tws;
  int S;
  int actions[N];
  float eps_s[N * GTMSM_MAX_S];
  float s0[GTMSM_MAX_S]; /* start state (from_s0) */
  int from_s0;
  float s[N * GTMSM_MAX_S], r[N * GTMSM_MAX_S];
} ctx_t;

/* gtmsm_infer_actions from s0 instead of the origin */
static void rollout_from(const gtmsm_model *m, void *tws, const int *actions, const float *eps_s,
                         const float *s0, float *s) {
  const int S = m->cfg.S;
  memcpy(s, s0, sizeof(float) * (size_t)S);
  for (int t = 1; t < N; t++) {
    m->trans->step(m, s + (size_t)(t - 1) * S, NULL, actions[t], s + (size_t)t * S, NULL, tws, t);
    for (int k = 0; k < S; k++) s[(size_t)t * S + k] += m->cfg.trans_std * eps_s[(size_t)t * S + k];
  }
}

static double rollout_loss(void *p) {
  ctx_t *c = p;
  if (c->from_s0)
    rollout_from(&c->m, c->tws, c->actions, c->eps_s, c->s0, c->s);
  else
    gtmsm_infer_actions(&c->m, c->tws, c->actions, c->eps_s, N, c->s, NULL);
  return test_dot(c->s, c->r, (size_t)N * c->S);
}

/* sin, cos, tanh, sigmoid of O(1) arguments: smooth, no kinks. Richardson's
 * extrapolation cancels the eps^2 error, so a wide step can divide the float
 * rounding of the loss (about 1e-7 here) well below the gradients. */
static gc_opts opts(void) {
  gc_opts o = gc_default();
  o.eps = 7e-2;
  o.richardson = 1;
  o.noise = 1;
  o.tol = 1e-3;
  o.floor = 1e-2; /* states and most gradients are O(0.1..1) */
  return o;
}

static void check_rollout(const char *kind, gtmsm_config cfg, uint64_t seed) {
  static ctx_t c;
  memset(&c, 0, sizeof c);
  char err[256];
  int rc = gtmsm_model_init(&c.m, &cfg, seed, err, sizeof err);
  CHECK(rc == 0, "%s init: %s", kind, err);
  if (rc) return;
  c.S = cfg.S;
  c.tws = c.m.trans->ws_new(&cfg, N);
  float *grad = calloc(c.m.p.total, sizeof(float));
  CHECK(c.tws && grad, "%s: out of memory", kind);
  if (!c.tws || !grad) goto done;
  rng_t r;
  rng_init(&r, seed, 5);
  for (int t = 0; t < N; t++) c.actions[t] = (int)rng_below(&r, (uint32_t)cfg.A);
  rng_normal_fill(&r, c.eps_s, (size_t)N * c.S);
  test_fill_uniform(c.r, (size_t)N * c.S, -1, 1, seed + 1);
  float *Bm = gtmsm_tensor(&c.m, GTMSM_ROLE_TRANS, 0, c.m.p.data);
  if (cfg.trans == GTMSM_TRANS_ROT3D) {
    /* displacements and turns of order 1 (the init's are 0.1), so headings
     * sweep a good part of the circle over the rollout */
    test_fill_uniform(Bm, (size_t)cfg.A * 3, -1, 1, seed + 2);
  } else {
    params_get(&c.m.p, "gate.b3")[0] = 0.3f; /* a gate neither open nor closed */
  }

  /* the copy of the rollout equals gtmsm_infer_actions from the origin */
  float s_ref[N * GTMSM_MAX_S];
  gtmsm_infer_actions(&c.m, c.tws, c.actions, c.eps_s, N, s_ref, NULL);
  rollout_from(&c.m, c.tws, c.actions, c.eps_s, c.s0, c.s);
  CHECK(memcmp(s_ref, c.s, sizeof(float) * (size_t)N * c.S) == 0,
        "%s: rollout_from(0) != gtmsm_infer_actions", kind);

  for (int from_s0 = 0; from_s0 < 2; from_s0++) {
    c.from_s0 = from_s0;
    if (from_s0) /* a start away from the origin, heading included */
      test_fill_uniform(c.s0, (size_t)c.S, -2, 2, seed + 3);
    memset(grad, 0, c.m.p.total * sizeof(float));
    float ds[N * GTMSM_MAX_S];
    rollout_loss(&c);
    memcpy(ds, c.r, sizeof(float) * (size_t)N * c.S); /* d L / d s_t = r_t */
    c.m.trans->backward(&c.m, c.tws, c.actions, N, c.s, ds, NULL, grad);
    const char *from = from_s0 ? "from s0" : "infer_actions";
    const int first = c.m.part_first[GTMSM_ROLE_TRANS], last = c.m.part_first[GTMSM_ROLE_TRANS + 1];
    char label[96];
    for (int e = first; e < last; e++) {
      const param_entry *pe = &c.m.p.entries[e];
      gc_opts o = opts();
      snprintf(label, sizeof label, "%s %s/%s", kind, from, pe->name);
      gradcheck(label, c.m.p.data + pe->offset, grad + pe->offset, pe->size, rollout_loss, &c, &o);
    }
    /* s_t = step(s_{t-1}) + trans_std eps_t: d L / d eps_t = trans_std ds_t (t >= 1) */
    float deps[N * GTMSM_MAX_S];
    for (int i = 0; i < N * c.S; i++) deps[i] = i < c.S ? 0 : cfg.trans_std * ds[i];
    gc_opts o = opts();
    snprintf(label, sizeof label, "%s %s/eps_s (ds)", kind, from);
    gradcheck(label, c.eps_s + c.S, deps + c.S, (size_t)(N - 1) * c.S, rollout_loss, &c, &o);
    if (from_s0) {
      snprintf(label, sizeof label, "%s %s/s0 (ds_0)", kind, from);
      gradcheck(label, c.s0, ds, (size_t)c.S, rollout_loss, &c, &o);
    }
  }
done:
  free(grad);
  if (c.tws) c.m.trans->ws_free(c.tws);
  gtmsm_model_free(&c.m);
}

/* R(s3) B a: actions are displacements in the agent's frame. */
static void check_rotation_geometry(void) {
  gtmsm_config cfg = gtmsm_default_config();
  cfg.S = 3;
  cfg.trans = GTMSM_TRANS_ROT3D;
  cfg.A = 3;
  gtmsm_model m;
  char err[256];
  int rc = gtmsm_model_init(&m, &cfg, 1, err, sizeof err);
  CHECK(rc == 0, "rot3d init: %s", err);
  if (rc) return;
  float *Bm = gtmsm_tensor(&m, GTMSM_ROLE_TRANS, 0, m.p.data);
  const float rows[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 0.3f}}; /* forward, left, turn */
  memcpy(Bm, rows, sizeof rows);
  struct {
    float h;
    int a;
    float want[3]; /* s' from s = (0.5, -0.25, h) */
  } cases[] = {
      {0, 0, {1.5f, -0.25f, 0}},                 /* heading 0: forward is +x */
      {PI_F / 2, 0, {0.5f, 0.75f, PI_F / 2}},    /* heading pi/2: forward is +y */
      {PI_F / 2, 1, {-0.5f, -0.25f, PI_F / 2}},  /* ... and left is -x */
      {PI_F, 0, {-0.5f, -0.25f, PI_F}},          /* heading pi: forward is -x */
      {-PI_F / 2, 1, {1.5f, -0.25f, -PI_F / 2}}, /* heading -pi/2: left is +x */
      {1.0f, 2, {0.5f, -0.25f, 1.3f}},           /* a turn turns, in place */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    float s[3] = {0.5f, -0.25f, cases[i].h}, sn[3];
    m.trans->step(&m, s, NULL, cases[i].a, sn, NULL, NULL, 1);
    for (int k = 0; k < 3; k++)
      CHECK(fabsf(sn[k] - cases[i].want[k]) <= 1e-6f,
            "rot3d case %zu (heading %g, action %d): s'[%d] %.8g, want %.8g", i, cases[i].h, cases[i].a, k,
            sn[k], cases[i].want[k]);
  }
  /* a general heading against R(h) written out: s' = s + R(h) u */
  const float u[3] = {0.7f, -0.4f, 0.2f}, h = 2.2f;
  memcpy(Bm, u, sizeof u);
  float s[3] = {0.1f, 0.2f, h}, sn[3];
  m.trans->step(&m, s, NULL, 0, sn, NULL, NULL, 1);
  double want[3] = {0.1 + cos(h) * u[0] - sin(h) * u[1], 0.2 + sin(h) * u[0] + cos(h) * u[1], h + u[2]};
  for (int k = 0; k < 3; k++) CHECK_NEAR(sn[k], want[k], 1e-6, 0, "rot3d s' = s + R(h) u");
  printf("rot3d geometry: forward at heading pi/2 moves along +y; R(h) u matches (1e-6)\n");
  gtmsm_model_free(&m);
}

int main(void) {
  check_rotation_geometry();

  gtmsm_config cfg = gtmsm_default_config();
  cfg.S = 3;
  cfg.trans = GTMSM_TRANS_ROT3D;
  cfg.keymap = GTMSM_KEYMAP_PERIODIC;
  cfg.trans_std = 0.1f;
  check_rollout("rot3d", cfg, 21);

  cfg = gtmsm_default_config();
  cfg.gate_hidden = 5;
  cfg.trans_std = 0.1f;
  check_rollout("gated2d", cfg, 22);
  return test_finish("test_part_trans");
}
