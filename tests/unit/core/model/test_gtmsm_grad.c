/* Gradient check of the whole GTMSM sequence loss (ELBO over the prediction
 * steps plus the leave-one-out term) against central finite differences, on a
 * tiny configuration, for every parameter tensor. Perturbations that change
 * which memory entries are retrieved (the kNN is piecewise constant) are
 * skipped: the loss is not differentiable there. A last pass turns on
 * landmark inference (appendix D: the KL of the state posterior joins the
 * loss, the encoder keys the reverse query) with the gate regressed on
 * whether each move succeeded. */
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm.h"
#include "model/gtmsm_internal.h"
#include "nn/rng.h"
#include "testlib.h"

enum { N = 14, T = 10 };

typedef struct {
  gtmsm_model m;
  gtmsm_ws *ws;
  gtmsm_seq_spec spec;
  float frames[N * 48];
  int actions[N];
  float eps_z[N * 3], eps_s[N * 2];
  int base_idx[N * 3];
  float moved[N];
  float *x; /* the tensor being checked */
  /* landmarks: the reverse query's neighbours, recomputed from the encoder */
  gtmsm_ws *iws;
  int lm_idx[N * 4];
} ctx_t;

static double loss_fn(void *p) {
  ctx_t *c = p;
  gtmsm_seq_stats st;
  int rc = gtmsm_seq_loss(&c->m, c->ws, &c->spec, c->frames, c->actions, c->eps_z, c->eps_s, NULL, &st);
  return rc ? NAN : st.loss;
}

/* The landmark neighbours of every step as infer_landmark.c finds them. */
static void landmark_idx(ctx_t *c, int *idx) {
  float mu[N * 3], lv[N * 3], d2[4];
  const int K = c->m.cfg.landmark_k;
  memset(idx, 0, sizeof c->lm_idx);
  gtmsm_encode(&c->m, c->iws, c->frames, N, mu, lv);
  for (int t = 1; t < N; t++) gtmsm_knn_brute(mu, t < T ? t : T, c->m.cfg.Z, mu + t * c->m.cfg.Z, K, -1, idx + t * K, d2);
}

static int idx_changed(ctx_t *c) {
  int R = N; /* aux > 0: every row queries */
  (void)R;
  if (c->iws) {
    int idx[N * 4];
    landmark_idx(c, idx);
    if (memcmp(idx, c->lm_idx, sizeof idx) != 0) return 1;
  }
  return memcmp(gtmsm_ws_idx(c->ws), c->base_idx, sizeof c->base_idx) != 0;
}

static int skip_fn(void *p, size_t i, double eps) {
  ctx_t *c = p;
  float x0 = c->x[i];
  int changed = 0;
  for (int sgn = -1; sgn <= 1; sgn += 2) {
    c->x[i] = (float)(x0 + sgn * eps);
    loss_fn(c);
    changed |= idx_changed(c);
  }
  c->x[i] = x0;
  loss_fn(c);
  return changed;
}

/* The state rollout alone, under the projection loss sum_t r_t . s_t: its
 * gradient with respect to the states is r, fed to gtmsm_ssm_backward. States
 * are O(1) floats, so the check is tight even for small gradients. */
static float proj[N * 2], states[N * 2], dstates[N * 2];
static void *trans_ws;

static double ssm_loss(void *p) {
  ctx_t *c = p;
  gtmsm_infer_actions(&c->m, trans_ws, c->actions, c->eps_s, N, states, NULL);
  return test_dot(states, proj, N * 2);
}

static void check_ssm(ctx_t *c) {
  test_fill_uniform(proj, N * 2, -1, 1, 11);
  float *grad = calloc(c->m.p.total, sizeof(float));
  trans_ws = c->m.trans->ws_new(&c->m.cfg, N);
  ssm_loss(c);
  memcpy(dstates, proj, sizeof proj);
  c->m.trans->backward(&c->m, trans_ws, c->actions, N, states, dstates, NULL, grad);
  const char *names[] = {"ssm.B", "gate.w1", "gate.b1", "gate.w2", "gate.b2", "gate.w3", "gate.b3"};
  for (int e = 0; e < 7; e++) {
    const param_entry *pe = &c->m.p.entries[params_find(&c->m.p, names[e])];
    gc_opts o = gc_default();
    o.eps = 2e-2; /* smooth (tanh, sigmoid): a wider step divides the float rounding noise */
    o.tol = 2e-2;
    o.floor = 1e-4;
    char label[80];
    snprintf(label, sizeof label, "rollout/%s", pe->name);
    gradcheck(label, c->m.p.data + pe->offset, grad + pe->offset, pe->size, ssm_loss, c, &o);
  }
  c->m.trans->ws_free(trans_ws);
  free(grad);
}

/* The whole loss for one VAE kind: every parameter tensor against finite differences. */
static void check_loss(ctx_t *pc, const char *kind, int vae_only);

int main(void) {
  static ctx_t c;
  gtmsm_config cfg = gtmsm_default_config();
  cfg.H = 2;
  cfg.W = 2;
  cfg.C = 3;
  cfg.Z = 3;
  cfg.hidden = 6;
  cfg.gate_hidden = 5;
  cfg.K = 3;
  cfg.delta = 0.05f;
  cfg.trans_std = 0.01f;
  char err[256];
  int rc = gtmsm_model_init(&c.m, &cfg, 42, err, sizeof err);
  CHECK(rc == 0, "init: %s", err);
  if (rc) return test_finish("test_gtmsm_grad");
  c.ws = gtmsm_ws_new(&cfg, N, 1);
  c.spec = (gtmsm_seq_spec){.N = N, .T = T, .aux = 0.5f, .kl_weight = 1.0f, .still = 2.0f};
  rng_t r;
  rng_init(&r, 5, 1);
  for (int i = 0; i < N * 12; i++) c.frames[i] = rng_uniform(&r);
  for (int t = 0; t < N; t++) c.actions[t] = (int)rng_below(&r, 5);
  /* a few unchanged views, so the still-frame term is active */
  for (int t = 3; t < N; t += 4) memcpy(c.frames + t * 12, c.frames + (t - 1) * 12, 12 * sizeof(float));
  rng_normal_fill(&r, c.eps_z, N * 3);
  rng_normal_fill(&r, c.eps_s, N * 2);
  /* A gate that is neither fully open nor closed, so its gradient matters. */
  params_get(&c.m.p, "gate.b3")[0] = 0.3f;

  /* Gaussian and Bernoulli decoders. */
  check_ssm(&c);
  for (int dec = 0; dec < 2; dec++) {
    c.m.cfg.decoder = dec ? GTMSM_DEC_BERNOULLI : GTMSM_DEC_GAUSS;
    check_loss(&c, dec ? "bern" : "gauss", 0);
  }
  gtmsm_ws_free(c.ws);
  gtmsm_model_free(&c.m);

  /* the convolutional VAE: 4x4x3 frames, 2 and 4 channels */
  static ctx_t v;
  cfg.H = cfg.W = 4;
  cfg.vae = GTMSM_VAE_CONV;
  cfg.channels = 2;
  /* unit decoder variance: the sharp default (0.01) makes the loss so curved in
   * the decoder's early layers that central differences lose accuracy */
  cfg.dec_logvar_init = 0.0f;
  rc = gtmsm_model_init(&v.m, &cfg, 43, err, sizeof err);
  CHECK(rc == 0, "conv init: %s", err);
  if (rc) return test_finish("test_gtmsm_grad");
  v.ws = gtmsm_ws_new(&cfg, N, 1);
  v.spec = c.spec;
  rng_init(&r, 6, 1);
  for (int i = 0; i < N * 48; i++) v.frames[i] = rng_uniform(&r);
  memcpy(v.actions, c.actions, sizeof v.actions);
  rng_normal_fill(&r, v.eps_z, N * 3);
  rng_normal_fill(&r, v.eps_s, N * 2);
  params_get(&v.m.p, "gate.b3")[0] = 0.3f;
  check_loss(&v, "conv", 1);
  gtmsm_ws_free(v.ws);
  gtmsm_model_free(&v.m);

  /* landmark inference (2x2 frames again), the inferred state regressed on the failed moves */
  static ctx_t l;
  cfg = gtmsm_default_config();
  cfg.H = cfg.W = 2;
  cfg.Z = 3;
  cfg.hidden = 6;
  cfg.gate_hidden = 5;
  cfg.K = 3;
  cfg.delta = 0.05f;
  cfg.trans_std = 0.3f;
  cfg.infer = GTMSM_INFER_LANDMARK;
  cfg.landmark_k = 3;
  cfg.landmark_hidden = 4;
  rc = gtmsm_model_init(&l.m, &cfg, 44, err, sizeof err);
  CHECK(rc == 0, "landmark init: %s", err);
  if (rc) return test_finish("test_gtmsm_grad");
  l.ws = gtmsm_ws_new(&cfg, N, 1);
  l.iws = gtmsm_ws_new(&cfg, N, 0);
  memcpy(l.frames, c.frames, sizeof l.frames);
  memcpy(l.actions, c.actions, sizeof l.actions);
  memcpy(l.eps_z, c.eps_z, sizeof l.eps_z);
  memcpy(l.eps_s, c.eps_s, sizeof l.eps_s);
  /* a frame seen again (step 8 sees step 2's view), so a gain is large */
  memcpy(l.frames + 8 * 12, l.frames + 2 * 12, 12 * sizeof(float));
  for (int t = 0; t < N; t++) l.moved[t] = t == 0 || l.actions[t] == 4 ? -1.0f : (float)(t % 3 != 0);
  l.spec = c.spec;
  l.spec.moved = l.moved;
  l.spec.disp_weight = 0.7f;
  params_get(&l.m.p, "gate.b3")[0] = 0.3f;
  test_fill_uniform(params_get(&l.m.p, "lm.w1"), 4, -1, 1, 46); /* smooth gains, not the init's step */
  test_fill_uniform(params_get(&l.m.p, "lm.b1"), 4, -1, 1, 47);
  test_fill_uniform(params_get(&l.m.p, "lm.w2"), 4, -2, 2, 45);
  params_get(&l.m.p, "lm.b2")[0] = 0.5f;
  params_get(&l.m.p, "lm.vw")[0] = -1.0f;
  params_get(&l.m.p, "lm.vb")[0] = 0.0f; /* q as wide as the prior: states apart, few retrieval ties */
  params_get(&l.m.p, "lm.lv")[0] = 2.0f * logf(cfg.trans_std) + 0.5f; /* not at its optimum: an O(1) gradient */
  landmark_idx(&l, l.lm_idx);
  {
    /* the forward alone runs on an inference workspace (no gradient buffers) with the same loss */
    gtmsm_seq_stats a, b;
    int ra = gtmsm_seq_loss(&l.m, l.iws, &l.spec, l.frames, l.actions, l.eps_z, l.eps_s, NULL, &a);
    int rb = gtmsm_seq_loss(&l.m, l.ws, &l.spec, l.frames, l.actions, l.eps_z, l.eps_s, NULL, &b);
    CHECK(ra == 0 && rb == 0 && a.loss == b.loss && a.kl_s == b.kl_s, "landmark loss on an inference workspace: "
          "rc %d/%d, %.9g vs %.9g", ra, rb, a.loss, b.loss);
  }
  check_loss(&l, "landmark", 0);
  gtmsm_ws_free(l.iws);
  gtmsm_ws_free(l.ws);
  gtmsm_model_free(&l.m);
  return test_finish("test_gtmsm_grad");
}

static void check_loss(ctx_t *pc, const char *kind, int vae_only) {
  float *grad = calloc(pc->m.p.total, sizeof(float));
  gtmsm_seq_stats st;
  int rc = gtmsm_seq_loss(&pc->m, pc->ws, &pc->spec, pc->frames, pc->actions, pc->eps_z, pc->eps_s, grad, &st);
  CHECK(rc == 0, "loss rc %d", rc);
  memcpy(pc->base_idx, gtmsm_ws_idx(pc->ws), sizeof pc->base_idx);
  printf("%s: loss %.6f recon_pred %.4f kl_pred %.4f recon_mem %.4f kl_mem %.4f still %.4f kl_s %.4f "
         "displacement %.4f\n", kind, st.loss, st.recon_pred, st.kl_pred, st.recon_mem, st.kl_mem, st.still,
         st.kl_s, st.displacement);
  if (pc->m.cfg.infer == GTMSM_INFER_LANDMARK)
    CHECK(st.kl_s > 0 && st.displacement > 0, "landmark pass: kl_s %g displacement %g", st.kl_s, st.displacement);
  for (size_t e = 0; e < pc->m.p.n; e++) {
    const param_entry *pe = &pc->m.p.entries[e];
    int is_vae = strncmp(pe->name, "enc.", 4) == 0 || strncmp(pe->name, "dec.", 4) == 0;
    if (vae_only && !is_vae) continue; /* the transition is the same code, checked in the FC passes */
    if (pc->m.cfg.decoder == GTMSM_DEC_BERNOULLI && strcmp(pe->name, "dec.logvar") == 0) continue;
    pc->x = pc->m.p.data + pe->offset;
    gc_opts o = gc_default();
    /* The floor keeps float rounding of the loss (~1e-5 absolute) from
     * dominating tiny gradients; the transition parameters, whose gradients
     * are that small here, are checked tightly by check_ssm(). */
    o.eps = 1e-2;
    o.tol = 2e-2;
    o.floor = 2e-2;
    /* and the noise option measures that rounding per element: a few checks
     * (the first encoder bias) sit at it, 3 sigma from the analytic value,
     * and passed or failed on the exp/ELU kernels' last bits */
    o.noise = 1;
    o.max_checks = 60;
    o.skip = skip_fn;
    char label[80];
    snprintf(label, sizeof label, "%s/%s", kind, pe->name);
    gradcheck(label, pc->x, grad + pe->offset, pe->size, loss_fn, pc, &o);
  }
  free(grad);
}
