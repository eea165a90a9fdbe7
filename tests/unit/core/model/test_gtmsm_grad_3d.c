/* Gradient check of the whole sequence loss of a 3-D configuration (the
 * rotation transition, the periodic key map, learned or not, the learned
 * view-combining prior, the convolutional VAE on 4x4x3 frames) through
 * gtmsm_seq_loss, for every parameter tensor, as test_gtmsm_grad.c does for
 * 2-D. It checks the orchestration (the parts wired together, the memory
 * values, states and keys shared by several terms); the checks of each part
 * on its own small graph are test_part_*.c. Perturbations that change which
 * memory entries are retrieved are skipped: the loss is not differentiable
 * there. */
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm.h"
#include "model/gtmsm_internal.h"
#include "nn/rng.h"
#include "testlib.h"

enum { N = 12, T = 8, D = 48, Z = 3, S = 3, K = 3 };

typedef struct {
  gtmsm_model m;
  gtmsm_ws *ws;
  gtmsm_seq_spec spec;
  float frames[N * D];
  int actions[N];
  float eps_z[N * Z], eps_s[N * S];
  int base_idx[N * K];
  float *x; /* the tensor being checked */
} ctx_t;

static double loss_fn(void *p) {
  ctx_t *c = p;
  gtmsm_seq_stats st;
  int rc = gtmsm_seq_loss(&c->m, c->ws, &c->spec, c->frames, c->actions, c->eps_z, c->eps_s, NULL, &st);
  return rc ? NAN : st.loss;
}

static int skip_fn(void *p, size_t i, double eps) {
  ctx_t *c = p;
  float x0 = c->x[i];
  int changed = 0;
  /* at the scales of the steps the check takes (eps / 8 to 1.1 eps) */
  for (double h = 1.1 * eps; h > eps / 10; h /= 2)
    for (int sgn = -1; sgn <= 1; sgn += 2) {
      c->x[i] = (float)(x0 + sgn * h);
      loss_fn(c);
      changed |= memcmp(gtmsm_ws_idx(c->ws), c->base_idx, sizeof c->base_idx) != 0;
    }
  c->x[i] = x0;
  loss_fn(c);
  return changed;
}

static void check_loss(const char *kind, int learned, gtmsm_decoder dec, uint64_t seed) {
  static ctx_t c;
  memset(&c, 0, sizeof c);
  gtmsm_config cfg = gtmsm_default_config();
  cfg.H = cfg.W = 4;
  cfg.C = 3;
  cfg.Z = Z;
  cfg.vae = GTMSM_VAE_CONV;
  cfg.channels = 2;
  cfg.S = S;
  cfg.trans = GTMSM_TRANS_ROT3D;
  cfg.keymap = GTMSM_KEYMAP_PERIODIC;
  cfg.keymap_learned = learned;
  cfg.prior = GTMSM_PRIOR_MLP;
  cfg.prior_hidden = 6;
  cfg.K = K;
  cfg.delta = 0.05f;
  cfg.trans_std = 0.01f;
  cfg.decoder = dec;
  cfg.dec_logvar_init = 0.0f; /* unit decoder variance: see test_gtmsm_grad.c */
  char err[256];
  int rc = gtmsm_model_init(&c.m, &cfg, seed, err, sizeof err);
  CHECK(rc == 0, "%s init: %s", kind, err);
  if (rc) return;
  c.ws = gtmsm_ws_new(&cfg, N, 1);
  float *grad = calloc(c.m.p.total, sizeof(float));
  CHECK(c.ws && grad, "out of memory");
  if (!c.ws || !grad) goto done;
  c.spec = (gtmsm_seq_spec){.N = N, .T = T, .aux = 0.5f, .kl_weight = 1.0f, .still = 2.0f};
  rng_t r;
  rng_init(&r, seed, 1);
  for (int i = 0; i < N * D; i++) c.frames[i] = rng_uniform(&r);
  for (int t = 0; t < N; t++) c.actions[t] = (int)rng_below(&r, (uint32_t)cfg.A);
  for (int t = 3; t < N; t += 4)
    memcpy(c.frames + t * D, c.frames + (t - 1) * D, D * sizeof(float)); /* still */
  rng_normal_fill(&r, c.eps_z, N * Z);
  rng_normal_fill(&r, c.eps_s, N * S);
  /* moves and turns of order 1, so states spread and headings matter */
  test_fill_uniform(params_get(&c.m.p, "ssm.B"), (size_t)cfg.A * S, -1, 1, seed + 1);
  /* a live output layer, so the prior's MLP has a gradient */
  test_fill_uniform(params_get(&c.m.p, "prior.w3"), (size_t)2 * Z * cfg.prior_hidden, -0.5f, 0.5f, seed + 2);
  test_fill_uniform(params_get(&c.m.p, "prior.b3"), 2 * Z, -0.3f, 0.3f, seed + 3);
  if (learned) { /* a key map away from the identity */
    float *w = params_get(&c.m.p, "keymap.w"), noise[16];
    test_fill_uniform(noise, 16, -0.3f, 0.3f, seed + 4);
    for (int i = 0; i < 16; i++) w[i] += noise[i];
    test_fill_uniform(params_get(&c.m.p, "keymap.b"), 4, -0.3f, 0.3f, seed + 5);
  }
  gtmsm_seq_stats st;
  rc = gtmsm_seq_loss(&c.m, c.ws, &c.spec, c.frames, c.actions, c.eps_z, c.eps_s, grad, &st);
  CHECK(rc == 0, "loss rc %d", rc);
  memcpy(c.base_idx, gtmsm_ws_idx(c.ws), sizeof c.base_idx);
  printf("%s: loss %.6f recon_pred %.4f kl_pred %.4f recon_mem %.4f kl_mem %.4f still %.4f\n", kind, st.loss,
         st.recon_pred, st.kl_pred, st.recon_mem, st.kl_mem, st.still);
  for (size_t e = 0; e < c.m.p.n; e++) {
    const param_entry *pe = &c.m.p.entries[e];
    if (dec == GTMSM_DEC_BERNOULLI && strcmp(pe->name, "dec.logvar") == 0) continue;
    c.x = c.m.p.data + pe->offset;
    /* tol 1e-3 where the float rounding of the loss allows it: the loss
     * sums O(100) float terms (its difference quotients carry about 5e-5 of
     * noise), so the VAE's gradients come out noise-limited (held to 5
     * sigma) and the transition's, key map's and prior's are mostly held to
     * 1e-3; the output says which */
    gc_opts o = gc_default();
    o.eps = 1e-2;
    o.tol = 1e-3;
    o.floor = 1e-2;
    o.kink_tol = 5e-4;
    o.noise = 1;
    o.max_checks = 30;
    o.skip = skip_fn;
    char label[80];
    snprintf(label, sizeof label, "%s/%s", kind, pe->name);
    gradcheck(label, c.x, grad + pe->offset, pe->size, loss_fn, &c, &o);
  }
done:
  free(grad);
  gtmsm_ws_free(c.ws);
  gtmsm_model_free(&c.m);
}

int main(void) {
  check_loss("3d-learned-gauss", 1, GTMSM_DEC_GAUSS, 71);
  check_loss("3d-periodic-bern", 0, GTMSM_DEC_BERNOULLI, 72);
  return test_finish("test_gtmsm_grad_3d");
}
