/* GTMSM configuration, the parts a configuration selects, and the parameter
 * table built from the parts' specs (see gtmsm_internal.h). */
#include "model/gtmsm.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "model/gtmsm_internal.h"

gtmsm_config gtmsm_default_config(void) {
  gtmsm_config c = {.H = 8, .W = 8, .C = 3, .A = 5, .Z = 16, .vae = GTMSM_VAE_FC, .hidden = 256,
                    .channels = 32, .S = 2, .trans = GTMSM_TRANS_GATED2D, .gate_hidden = 32,
                    .keymap = GTMSM_KEYMAP_IDENTITY, .keymap_learned = 0, .prior = GTMSM_PRIOR_MIXTURE,
                    .prior_hidden = 256, .K = 5, .delta = 1e-4f, .trans_std = 1e-3f,
                    .decoder = GTMSM_DEC_GAUSS, .dec_logvar_init = -4.6f,
                    .infer = GTMSM_INFER_ACTIONS, .landmark_k = 4, .landmark_hidden = 16};
  const char *names[] = {"right", "left", "up", "down", "stay"};
  for (int i = 0; i < 5; i++) snprintf(c.action_names[i], sizeof c.action_names[i], "%s", names[i]);
  return c;
}

int gtmsm_config_check(const gtmsm_config *c, char *err, size_t errlen) {
  /* each side bounded first: the product of untrusted sizes must not overflow */
  if (c->H < 1 || c->W < 1 || c->H > 1 << 20 || c->W > 1 << 20 || (c->C != 1 && c->C != 3) ||
      (long long)c->H * c->W * c->C > 1 << 20)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "frame shape %dx%dx%d unsupported", c->H, c->W, c->C);
  if (c->A < 1 || c->A > GTMSM_MAX_ACTIONS)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "actions %d not in 1..%d", c->A, GTMSM_MAX_ACTIONS);
  if (c->Z < 1 || c->Z > 1024 || c->hidden < 1 || c->hidden > 8192 || c->gate_hidden < 1 ||
      c->gate_hidden > GTMSM_MAX_GATE || c->prior_hidden < 1 || c->prior_hidden > 8192)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "layer sizes out of range (Z %d, hidden %d, gate %d, prior hidden %d)", c->Z,
                      c->hidden, c->gate_hidden, c->prior_hidden);
  if (c->vae != GTMSM_VAE_FC && c->vae != GTMSM_VAE_CONV)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown VAE kind %d", (int)c->vae);
  if (c->vae == GTMSM_VAE_CONV && (c->H % 2 || c->W % 2 || c->channels < 1 || c->channels > 512))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "the convolutional VAE needs an even frame size and 1..512 channels (got %dx%d, %d)",
                      c->H, c->W, c->channels);
  if (c->S < 1 || c->S > GTMSM_MAX_S)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "state size %d not in 1..%d", c->S, GTMSM_MAX_S);
  if (c->trans != GTMSM_TRANS_GATED2D && c->trans != GTMSM_TRANS_ROT3D && c->trans != GTMSM_TRANS_WALK3D)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown transition kind %d", (int)c->trans);
  if (c->trans != GTMSM_TRANS_GATED2D && c->S != 3)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "the 3-D transitions need state 3 (got %d)", c->S);
  if (c->keymap != GTMSM_KEYMAP_IDENTITY && c->keymap != GTMSM_KEYMAP_PERIODIC)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown key map %d", (int)c->keymap);
  if (c->keymap == GTMSM_KEYMAP_PERIODIC && c->S != 3)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "the periodic key map needs state 3 (got %d)", c->S);
  if (c->keymap_learned != 0 && (c->keymap_learned != 1 || c->keymap != GTMSM_KEYMAP_PERIODIC))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "a learned key map is 0 or 1, and only periodic");
  if (c->prior != GTMSM_PRIOR_MIXTURE && c->prior != GTMSM_PRIOR_MLP)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown prior kind %d", (int)c->prior);
  if (c->K < 1 || c->K > GTMSM_MAX_K)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "K %d not in 1..%d", c->K, GTMSM_MAX_K);
  if (!(c->delta > 0) || !(c->trans_std >= 0))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "delta must be > 0 and trans_std >= 0");
  if (c->decoder != GTMSM_DEC_GAUSS && c->decoder != GTMSM_DEC_BERNOULLI)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown decoder %d", (int)c->decoder);
  if (c->infer != GTMSM_INFER_ACTIONS && c->infer != GTMSM_INFER_LANDMARK)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown state inference %d", (int)c->infer);
  if (c->infer == GTMSM_INFER_LANDMARK) {
    /* the reverse memory's keys are latents; its values states that a
     * stored entry must give back (the key itself, or the prior's extra) */
    if (c->landmark_k < 1 || c->landmark_k > GTMSM_MAX_LANDMARK_K || c->landmark_hidden < 1 ||
        c->landmark_hidden > 256)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "landmarks: k %d not in 1..%d or hidden %d not in 1..256",
                        c->landmark_k, GTMSM_MAX_LANDMARK_K, c->landmark_hidden);
    if (c->Z > DND_MAX_S)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "landmarks: latent %d over the memory's key limit %d", c->Z,
                        DND_MAX_S);
    if (c->trans != GTMSM_TRANS_GATED2D || !(c->trans_std > 0))
      return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                        "landmarks need the gated 2-D transition and a transition std > 0");
    if (c->keymap != GTMSM_KEYMAP_IDENTITY && c->prior != GTMSM_PRIOR_MLP)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "landmarks need identity keys or the learned prior");
  }
  return GTMSM_OK;
}

int gtmsm_key_size(const gtmsm_config *c) { return c->keymap == GTMSM_KEYMAP_PERIODIC ? c->S + 1 : c->S; }

void gtmsm_parts_of(const gtmsm_config *c, const struct gtmsm_vae_ops **vae,
                     const struct gtmsm_trans_ops **trans, const struct gtmsm_keymap_ops **keymap,
                     const struct gtmsm_prior_ops **prior) {
  *vae = c->vae == GTMSM_VAE_CONV ? &gtmsm_vae_conv : &gtmsm_vae_fc;
  *trans = c->trans == GTMSM_TRANS_ROT3D   ? &gtmsm_trans_rot3d
           : c->trans == GTMSM_TRANS_WALK3D ? &gtmsm_trans_walk3d
                                            : &gtmsm_trans_gated2d;
  *keymap = c->keymap == GTMSM_KEYMAP_PERIODIC ? &gtmsm_keymap_periodic : &gtmsm_keymap_identity;
  *prior = c->prior == GTMSM_PRIOR_MLP ? &gtmsm_prior_mlp : &gtmsm_prior_mixture;
}

const struct gtmsm_infer_ops *gtmsm_infer_of(const gtmsm_config *c) {
  return c->infer == GTMSM_INFER_LANDMARK ? &gtmsm_infer_landmark : &gtmsm_infer_actions_part;
}

int gtmsm_param_specs(const gtmsm_config *c, param_spec *specs, int cap, int *part_first) {
  const struct gtmsm_vae_ops *vae;
  const struct gtmsm_trans_ops *trans;
  const struct gtmsm_keymap_ops *keymap;
  const struct gtmsm_prior_ops *prior;
  gtmsm_parts_of(c, &vae, &trans, &keymap, &prior);
  int (*spec_fns[GTMSM_ROLES])(const gtmsm_config *, param_spec *) = {
      vae->specs, trans->specs, keymap->specs, prior->specs, gtmsm_infer_of(c)->specs};
  int n = 0;
  for (int role = 0; role < GTMSM_ROLES; role++) {
    param_spec part[GTMSM_PART_MAX_TENSORS];
    int k = spec_fns[role](c, part);
    if (part_first) part_first[role] = n;
    for (int i = 0; i < k; i++, n++)
      if (n < cap) specs[n] = part[i];
  }
  if (part_first) part_first[GTMSM_ROLES] = n;
  return n;
}

int gtmsm_model_init(gtmsm_model *m, const gtmsm_config *cfg, uint64_t seed, char *err,
                     size_t errlen) {
  memset(m, 0, sizeof *m);
  int rc = gtmsm_config_check(cfg, err, errlen);
  if (rc) return rc;
  m->cfg = *cfg;
  gtmsm_parts_of(cfg, &m->vae, &m->trans, &m->keymap, &m->prior);
  m->infer = gtmsm_infer_of(cfg);
  param_spec specs[GTMSM_MAX_TENSORS];
  int n = gtmsm_param_specs(cfg, specs, GTMSM_MAX_TENSORS, m->part_first);
  if (n > GTMSM_MAX_TENSORS)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "%d tensors, at most %d", n, GTMSM_MAX_TENSORS);
  rc = params_init(&m->p, specs, (size_t)n, seed, err, errlen);
  if (rc) return rc;
  if (m->trans->init) m->trans->init(m, seed);
  if (m->keymap->init) m->keymap->init(m);
  if (m->infer->init) m->infer->init(m, seed);
  snprintf(m->meta_json, sizeof m->meta_json, "{}");
  return GTMSM_OK;
}

void gtmsm_model_free(gtmsm_model *m) {
  gtmsm_ws_pool_free(m);
  params_free(&m->p);
  memset(m, 0, sizeof *m);
}

float *gtmsm_vae_dec_logvar(const gtmsm_model *m, const float *base) {
  return gtmsm_tensor(m, GTMSM_ROLE_VAE, m->part_first[GTMSM_ROLE_VAE + 1] - m->part_first[GTMSM_ROLE_VAE] - 1,
                      base);
}

const char *gtmsm_part_name(const gtmsm_model *m, int role) {
  switch (role) {
  case GTMSM_ROLE_VAE: return m->vae->name;
  case GTMSM_ROLE_TRANS: return m->trans->name;
  case GTMSM_ROLE_KEYMAP: return m->keymap->name;
  case GTMSM_ROLE_PRIOR: return m->prior->name;
  case GTMSM_ROLE_INFER: return m->infer->name;
  default: return "";
  }
}
