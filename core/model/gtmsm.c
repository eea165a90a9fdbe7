/* GTMSM for 2-D navigation: configuration, parameters, the per-sequence ELBO
 * with its hand-written backward pass, and the building blocks (encoder,
 * decoder, transition, kNN, mixture weights) that inference reuses.
 *
 * Objective of one sequence of N steps, T memorized (see docs/MODEL.md):
 *   loss = 1/(N-T) * sum_t w_t [ -log p(x_t|z_t) + beta (log q(z_t|x_t) - log p(z_t|s_t, DND)) ]
 * with z_t ~ q(z_t|x_t) reparameterised, log q(z_t|x_t) taken in expectation
 * (minus the entropy, closed form), p(z_t|s_t, DND) the mixture of the K
 * memory entries nearest to s_t. w_t = 1 on prediction steps (t >= T); on
 * memorized steps w_t = aux and the memory is every other memorized step
 * (leave-one-out), an unsupervised auxiliary term that gives the transition
 * model a signal on every step, not only the last N-T. */
#include "model/gtmsm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "nn/density.h"
#include "nn/linear.h"
#include "nn/rng.h"
#include "model/vae_conv.h"

#define LV_RANGE 8.0f   /* encoder log-variance = LV_RANGE * tanh(raw / LV_RANGE) */
#define VAE_ACT ACT_ELU
#define GATE_BIAS_INIT 3.0f /* gate starts open: sigmoid(3) = 0.95 */
/* The gate sees the projected position times this: learned states span about
 * +-10 units, and unscaled inputs would saturate its tanh units from the start. */
#define GATE_IN 0.25f
#define LOG_2PIE 2.8378770664093453f
#define STILL_TAU 1e-4f /* frames closer than 40 dB PSNR count as unchanged */

gtmsm_config gtmsm_default_config(void) {
  gtmsm_config c = {.H = 8, .W = 8, .C = 3, .A = 5, .Z = 16, .vae = GTMSM_VAE_FC, .hidden = 256,
                    .channels = 32, .S = 2,
                    .gate_hidden = 32, .K = 5, .delta = 1e-4f, .trans_std = 1e-3f,
                    .decoder = GTMSM_DEC_GAUSS, .dec_logvar_init = -4.6f};
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
      c->gate_hidden > GTMSM_MAX_GATE)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "layer sizes out of range (Z %d, hidden %d, gate %d)",
                      c->Z, c->hidden, c->gate_hidden);
  if (c->vae != GTMSM_VAE_FC && c->vae != GTMSM_VAE_CONV)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown VAE kind %d", (int)c->vae);
  if (c->vae == GTMSM_VAE_CONV && (c->H % 2 || c->W % 2 || c->channels < 1 || c->channels > 512))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "the convolutional VAE needs an even frame size and 1..512 channels (got %dx%d, %d)",
                      c->H, c->W, c->channels);
  if (c->S < 1 || c->S > GTMSM_MAX_S)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "state size %d not in 1..%d", c->S, GTMSM_MAX_S);
  if (c->K < 1 || c->K > GTMSM_MAX_K)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "K %d not in 1..%d", c->K, GTMSM_MAX_K);
  if (!(c->delta > 0) || !(c->trans_std >= 0))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "delta must be > 0 and trans_std >= 0");
  if (c->decoder != GTMSM_DEC_GAUSS && c->decoder != GTMSM_DEC_BERNOULLI)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "unknown decoder %d", (int)c->decoder);
  return GTMSM_OK;
}

int gtmsm_param_specs(const gtmsm_config *c, param_spec *specs, int cap) {
  int D = gtmsm_config_D(c), Hd = c->hidden, Z = c->Z, G = c->gate_hidden, S = c->S;
  int c1 = c->channels, c2 = 2 * c1, F = c2 * (c->H / 2) * (c->W / 2), C = c->C;
  param_spec fc[] = {
      {"enc.w1", (size_t)Hd * D, D, 0},       {"enc.b1", (size_t)Hd, 0, 0},
      {"enc.w2", (size_t)Hd * Hd, Hd, 0},     {"enc.b2", (size_t)Hd, 0, 0},
      {"enc.w3", (size_t)2 * Z * Hd, Hd, 0},  {"enc.b3", (size_t)2 * Z, 0, 0},
      {"dec.w1", (size_t)Hd * Z, Z, 0},       {"dec.b1", (size_t)Hd, 0, 0},
      {"dec.w2", (size_t)Hd * Hd, Hd, 0},     {"dec.b2", (size_t)Hd, 0, 0},
      {"dec.w3", (size_t)D * Hd, Hd, 0},      {"dec.b3", (size_t)D, -1, 0.5f},
  };
  param_spec conv[] = {
      {"enc.c1w", (size_t)c1 * C * 9, C * 9, 0},     {"enc.c1b", (size_t)c1, 0, 0},
      {"enc.c2w", (size_t)c2 * c1 * 16, c1 * 16, 0}, {"enc.c2b", (size_t)c2, 0, 0},
      {"enc.fw", (size_t)2 * Z * F, F, 0},           {"enc.fb", (size_t)2 * Z, 0, 0},
      {"dec.fw", (size_t)F * Z, Z, 0},               {"dec.fb", (size_t)F, 0, 0},
      {"dec.t1w", (size_t)c2 * c1 * 16, c2 * 4, 0},  {"dec.t1b", (size_t)c1, 0, 0},
      {"dec.c2w", (size_t)C * c1 * 9, c1 * 9, 0},    {"dec.c2b", (size_t)C, -1, 0.5f},
  };
  param_spec rest[] = {
      {"dec.logvar", (size_t)D, -1, c->dec_logvar_init},
      {"ssm.B", (size_t)c->A * S, 1, 0},
      {"gate.w1", (size_t)G * S, S, 0},       {"gate.b1", (size_t)G, 0, 0},
      {"gate.w2", (size_t)G * G, G, 0},       {"gate.b2", (size_t)G, 0, 0},
      {"gate.w3", (size_t)G, G, 0},           {"gate.b3", 1, -1, GATE_BIAS_INIT},
  };
  param_spec *vae = c->vae == GTMSM_VAE_CONV ? conv : fc;
  if (c->decoder == GTMSM_DEC_BERNOULLI) vae[11].init_value = 0.0f; /* output bias: logits 0 */
  int n = 0;
  for (int i = 0; i < 12; i++, n++)
    if (n < cap) specs[n] = vae[i];
  for (size_t i = 0; i < sizeof rest / sizeof *rest; i++, n++)
    if (n < cap) specs[n] = rest[i];
  return n;
}

/* Resolves the named views; tensors of the other VAE kind stay NULL. */
static void model_bind(gtmsm_model *m) {
  struct {
    float **view;
    const char *name;
  } views[] = {
      {&m->enc_w1, "enc.w1"},   {&m->enc_b1, "enc.b1"},   {&m->enc_w2, "enc.w2"},
      {&m->enc_b2, "enc.b2"},   {&m->enc_w3, "enc.w3"},   {&m->enc_b3, "enc.b3"},
      {&m->dec_w1, "dec.w1"},   {&m->dec_b1, "dec.b1"},   {&m->dec_w2, "dec.w2"},
      {&m->dec_b2, "dec.b2"},   {&m->dec_w3, "dec.w3"},   {&m->dec_b3, "dec.b3"},
      {&m->enc_c1w, "enc.c1w"}, {&m->enc_c1b, "enc.c1b"}, {&m->enc_c2w, "enc.c2w"},
      {&m->enc_c2b, "enc.c2b"}, {&m->enc_fw, "enc.fw"},   {&m->enc_fb, "enc.fb"},
      {&m->dec_fw, "dec.fw"},   {&m->dec_fb, "dec.fb"},   {&m->dec_t1w, "dec.t1w"},
      {&m->dec_t1b, "dec.t1b"}, {&m->dec_c2w, "dec.c2w"}, {&m->dec_c2b, "dec.c2b"},
      {&m->dec_logvar, "dec.logvar"}, {&m->ssm_B, "ssm.B"}, {&m->gate_w1, "gate.w1"},
      {&m->gate_b1, "gate.b1"}, {&m->gate_w2, "gate.w2"}, {&m->gate_b2, "gate.b2"},
      {&m->gate_w3, "gate.w3"}, {&m->gate_b3, "gate.b3"},
  };
  for (size_t i = 0; i < sizeof views / sizeof *views; i++) *views[i].view = params_get(&m->p, views[i].name);
}

int gtmsm_model_init(gtmsm_model *m, const gtmsm_config *cfg, uint64_t seed, char *err,
                     size_t errlen) {
  memset(m, 0, sizeof *m);
  int rc = gtmsm_config_check(cfg, err, errlen);
  if (rc) return rc;
  m->cfg = *cfg;
  param_spec specs[32];
  int n = gtmsm_param_specs(cfg, specs, 32);
  rc = params_init(&m->p, specs, (size_t)n, seed, err, errlen);
  if (rc) return rc;
  model_bind(m);
  /* Displacements start as one random unit-ish vector per action, so the
   * states of a random walk spread out from the first update on. */
  rng_t r;
  rng_init(&r, seed, 77);
  for (int i = 0; i < cfg->A * cfg->S; i++) m->ssm_B[i] = rng_normal(&r) * 0.7f;
  snprintf(m->meta_json, sizeof m->meta_json, "{}");
  return GTMSM_OK;
}

void gtmsm_model_free(gtmsm_model *m) {
  params_free(&m->p);
  memset(m, 0, sizeof *m);
}

/* ---- workspace ------------------------------------------------------------ */

struct gtmsm_ws {
  int N_max;
  vae_conv_ws *conv; /* the convolutional VAE's buffers (conv models only) */
  /* encoder (N, .) */
  float *eh1_pre, *eh1, *eh2_pre, *eh2, *eo, *mu, *lv;
  /* decoder (N, .) */
  float *dh1_pre, *dh1, *dh2_pre, *dh2, *xm, *lvtile, *recon;
  /* latents and states */
  float *z;
  float *s, *p, *g, *gh1_pre, *gh1, *gh2_pre, *gh2, *gjac; /* (N, S), (N, G), (N, S) */
  /* retrieval (N, K, .) */
  int *idx;
  float *d2, *w, *mix_mu, *mix_lv, *mix_scratch, *logp, *still_w;
  /* gradients */
  float *d_eo, *d_mu, *d_lv, *d_z, *d_eh1, *d_eh2, *d_dh1, *d_dh2, *d_xm, *d_lvtile, *d_s,
      *d_w, *d_mixmu, *d_mixlv, *d_go, *d_gh1, *d_gh2, *rowc;
};

gtmsm_ws *gtmsm_ws_new(const gtmsm_config *c, int N, int train) {
  gtmsm_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  ws->N_max = N;
  /* retrieval buffers hold GTMSM_MAX_K neighbours: a curriculum may retrieve more than K */
  size_t D = (size_t)gtmsm_config_D(c), Hd = (size_t)c->hidden, Z = (size_t)c->Z,
         S = (size_t)c->S, G = (size_t)c->gate_hidden, K = GTMSM_MAX_K, n = (size_t)N;
  struct {
    float **ptr;
    size_t size;
  } bufs[] = {
      {&ws->eh1_pre, n * Hd}, {&ws->eh1, n * Hd},   {&ws->eh2_pre, n * Hd},  {&ws->eh2, n * Hd},
      {&ws->eo, n * 2 * Z},   {&ws->mu, n * Z},     {&ws->lv, n * Z},        {&ws->dh1_pre, n * Hd},
      {&ws->dh1, n * Hd},     {&ws->dh2_pre, n * Hd}, {&ws->dh2, n * Hd},    {&ws->xm, n * D},
      {&ws->lvtile, n * D},   {&ws->recon, n},      {&ws->z, n * Z},
      {&ws->s, n * S},        {&ws->p, n * S},      {&ws->g, n},             {&ws->gh1_pre, n * G},
      {&ws->gh1, n * G},      {&ws->gh2_pre, n * G}, {&ws->gh2, n * G},      {&ws->gjac, n * S},
      {&ws->d2, n * K},       {&ws->w, n * K},      {&ws->mix_mu, n * K * Z}, {&ws->mix_lv, n * K * Z},
      {&ws->mix_scratch, n * K}, {&ws->logp, n},   {&ws->still_w, n},
      /* gradients: training only */
      {&ws->d_eo, n * 2 * Z},  {&ws->d_mu, n * Z},
      {&ws->d_lv, n * Z},     {&ws->d_z, n * Z},    {&ws->d_eh1, n * Hd},    {&ws->d_eh2, n * Hd},
      {&ws->d_dh1, n * Hd},   {&ws->d_dh2, n * Hd}, {&ws->d_xm, n * D},      {&ws->d_lvtile, n * D},
      {&ws->d_s, n * S},      {&ws->d_w, n * K},    {&ws->d_mixmu, n * K * Z}, {&ws->d_mixlv, n * K * Z},
      {&ws->d_go, n},         {&ws->d_gh1, n * G},  {&ws->d_gh2, n * G},     {&ws->rowc, n},
  };
  size_t nbufs = sizeof bufs / sizeof *bufs;
  for (size_t i = 0; i < nbufs; i++) {
    if (!train && bufs[i].ptr == &ws->d_eo) break;
    *bufs[i].ptr = calloc(bufs[i].size ? bufs[i].size : 1, sizeof(float));
    if (!*bufs[i].ptr) {
      gtmsm_ws_free(ws);
      return NULL;
    }
  }
  ws->idx = calloc(n * K, sizeof(int));
  if (c->vae == GTMSM_VAE_CONV) ws->conv = vae_conv_ws_new(c, N, train);
  if (!ws->idx || (c->vae == GTMSM_VAE_CONV && !ws->conv)) {
    gtmsm_ws_free(ws);
    return NULL;
  }
  return ws;
}

void gtmsm_ws_free(gtmsm_ws *ws) {
  if (!ws) return;
  float *all[] = {ws->eh1_pre, ws->eh1, ws->eh2_pre, ws->eh2, ws->eo, ws->mu, ws->lv, ws->dh1_pre,
                  ws->dh1, ws->dh2_pre, ws->dh2, ws->xm, ws->lvtile, ws->recon, ws->z,
                  ws->s, ws->p, ws->g, ws->gh1_pre, ws->gh1, ws->gh2_pre, ws->gh2,
                  ws->gjac, ws->d2, ws->w, ws->mix_mu, ws->mix_lv, ws->mix_scratch, ws->logp, ws->still_w,
                  ws->d_eo, ws->d_mu, ws->d_lv, ws->d_z, ws->d_eh1, ws->d_eh2, ws->d_dh1, ws->d_dh2,
                  ws->d_xm, ws->d_lvtile, ws->d_s, ws->d_w, ws->d_mixmu, ws->d_mixlv, ws->d_go,
                  ws->d_gh1, ws->d_gh2, ws->rowc};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(ws->idx);
  vae_conv_ws_free(ws->conv);
  free(ws);
}

const int *gtmsm_ws_idx(const gtmsm_ws *ws) { return ws->idx; }

/* ---- encoder / decoder ----------------------------------------------------- */

void gtmsm_encode(const gtmsm_model *m, gtmsm_ws *ws, const float *x, int N, float *mu, float *lv) {
  const gtmsm_config *c = &m->cfg;
  int D = gtmsm_config_D(c), Hd = c->hidden, Z = c->Z;
  if (c->vae == GTMSM_VAE_CONV) {
    vae_conv_encode(m, ws->conv, x, N, ws->eo);
  } else {
    linear_forward(ws->eh1_pre, x, m->enc_w1, m->enc_b1, N, D, Hd);          /* (N, Hd) */
    act_forward(ws->eh1, ws->eh1_pre, (size_t)N * Hd, VAE_ACT, 1.0f);
    linear_forward(ws->eh2_pre, ws->eh1, m->enc_w2, m->enc_b2, N, Hd, Hd);   /* (N, Hd) */
    act_forward(ws->eh2, ws->eh2_pre, (size_t)N * Hd, VAE_ACT, 1.0f);
    linear_forward(ws->eo, ws->eh2, m->enc_w3, m->enc_b3, N, Hd, 2 * Z);     /* (N, 2Z) */
  }
  for (int n = 0; n < N; n++)
    for (int k = 0; k < Z; k++) {
      mu[(size_t)n * Z + k] = ws->eo[(size_t)n * 2 * Z + k];
      lv[(size_t)n * Z + k] = LV_RANGE * tanhf(ws->eo[(size_t)n * 2 * Z + Z + k] / LV_RANGE);
    }
}

/* d_mu, d_lv (N, Z) -> parameter gradients; uses the activations left in ws. */
static void encode_backward(const gtmsm_model *m, gtmsm_ws *ws, const float *x, int N,
                            const float *lv, float *grad) {
  const gtmsm_config *c = &m->cfg;
  int D = gtmsm_config_D(c), Hd = c->hidden, Z = c->Z;
  const float *base = m->p.data;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < Z; k++) {
      float l = lv[(size_t)n * Z + k] / LV_RANGE;
      ws->d_eo[(size_t)n * 2 * Z + k] = ws->d_mu[(size_t)n * Z + k];
      ws->d_eo[(size_t)n * 2 * Z + Z + k] = ws->d_lv[(size_t)n * Z + k] * (1.0f - l * l);
    }
  if (c->vae == GTMSM_VAE_CONV) {
    vae_conv_encode_backward(m, ws->conv, N, ws->d_eo, grad);
    return;
  }
  memset(ws->d_eh2, 0, (size_t)N * Hd * sizeof(float));
  linear_backward(ws->d_eh2, grad + (m->enc_w3 - base), grad + (m->enc_b3 - base), ws->d_eo, ws->eh2,
                  m->enc_w3, N, Hd, 2 * Z);
  memset(ws->d_eh1, 0, (size_t)N * Hd * sizeof(float));
  act_backward(ws->d_eh1, ws->d_eh2, ws->eh2_pre, ws->eh2, (size_t)N * Hd, VAE_ACT, 1.0f);
  memset(ws->d_eh2, 0, (size_t)N * Hd * sizeof(float));
  linear_backward(ws->d_eh2, grad + (m->enc_w2 - base), grad + (m->enc_b2 - base), ws->d_eh1, ws->eh1,
                  m->enc_w2, N, Hd, Hd);
  memset(ws->d_eh1, 0, (size_t)N * Hd * sizeof(float));
  act_backward(ws->d_eh1, ws->d_eh2, ws->eh1_pre, ws->eh1, (size_t)N * Hd, VAE_ACT, 1.0f);
  linear_backward(NULL, grad + (m->enc_w1 - base), grad + (m->enc_b1 - base), ws->d_eh1, x,
                  m->enc_w1, N, D, Hd);
}

/* Decoder forward into ws->xm (N, D): the Gaussian mean or the Bernoulli logits. */
static void decode_forward(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N) {
  const gtmsm_config *c = &m->cfg;
  int D = gtmsm_config_D(c), Hd = c->hidden, Z = c->Z;
  if (c->vae == GTMSM_VAE_CONV) {
    vae_conv_decode(m, ws->conv, z, N, ws->xm);
    return;
  }
  linear_forward(ws->dh1_pre, z, m->dec_w1, m->dec_b1, N, Z, Hd);
  act_forward(ws->dh1, ws->dh1_pre, (size_t)N * Hd, VAE_ACT, 1.0f);
  linear_forward(ws->dh2_pre, ws->dh1, m->dec_w2, m->dec_b2, N, Hd, Hd);
  act_forward(ws->dh2, ws->dh2_pre, (size_t)N * Hd, VAE_ACT, 1.0f);
  linear_forward(ws->xm, ws->dh2, m->dec_w3, m->dec_b3, N, Hd, D);
}

/* ws->d_xm (N, D) -> parameter gradients and dz (N, Z) (accumulated). */
static void decode_backward(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, float *dz,
                            float *grad) {
  const gtmsm_config *c = &m->cfg;
  int D = gtmsm_config_D(c), Hd = c->hidden, Z = c->Z;
  const float *base = m->p.data;
  if (c->vae == GTMSM_VAE_CONV) {
    vae_conv_decode_backward(m, ws->conv, z, N, ws->d_xm, dz, grad);
    return;
  }
  memset(ws->d_dh2, 0, (size_t)N * Hd * sizeof(float));
  linear_backward(ws->d_dh2, grad + (m->dec_w3 - base), grad + (m->dec_b3 - base), ws->d_xm, ws->dh2,
                  m->dec_w3, N, Hd, D);
  memset(ws->d_dh1, 0, (size_t)N * Hd * sizeof(float));
  act_backward(ws->d_dh1, ws->d_dh2, ws->dh2_pre, ws->dh2, (size_t)N * Hd, VAE_ACT, 1.0f);
  memset(ws->d_dh2, 0, (size_t)N * Hd * sizeof(float));
  linear_backward(ws->d_dh2, grad + (m->dec_w2 - base), grad + (m->dec_b2 - base), ws->d_dh1, ws->dh1,
                  m->dec_w2, N, Hd, Hd);
  memset(ws->d_dh1, 0, (size_t)N * Hd * sizeof(float));
  act_backward(ws->d_dh1, ws->d_dh2, ws->dh1_pre, ws->dh1, (size_t)N * Hd, VAE_ACT, 1.0f);
  linear_backward(dz, grad + (m->dec_w1 - base), grad + (m->dec_b1 - base), ws->d_dh1, z, m->dec_w1,
                  N, Z, Hd);
}

void gtmsm_decode_mean(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, float *out) {
  int D = gtmsm_config_D(&m->cfg);
  decode_forward(m, ws, z, N);
  if (m->cfg.decoder == GTMSM_DEC_BERNOULLI)
    act_forward(out, ws->xm, (size_t)N * D, ACT_SIGMOID, 0);
  else
    memcpy(out, ws->xm, (size_t)N * D * sizeof(float));
}

/* ---- state-space model ----------------------------------------------------- */

/* Gate at input x = GATE_IN * (projected position) (S): fills hidden
 * activations h1_pre, h1, h2_pre, h2 (G) and, when jac is given, d gate / d x
 * (S). Returns the gate in (0, 1). */
static float gate_forward(const gtmsm_model *m, const float *p, float *h1_pre, float *h1,
                          float *h2_pre, float *h2, float *jac) {
  int S = m->cfg.S, G = m->cfg.gate_hidden;
  linear_forward(h1_pre, p, m->gate_w1, m->gate_b1, 1, S, G);
  act_forward(h1, h1_pre, (size_t)G, ACT_TANH, 0);
  /* G x G matvec by hand: sgemm's overhead dominates at this size. */
  for (int i = 0; i < G; i++) {
    float acc = m->gate_b2[i];
    const float *wr = m->gate_w2 + (size_t)i * G;
    for (int j = 0; j < G; j++) acc += wr[j] * h1[j];
    h2_pre[i] = acc;
    h2[i] = tanhf(acc);
  }
  float o = m->gate_b3[0];
  for (int j = 0; j < G; j++) o += m->gate_w3[j] * h2[j];
  float g = sigmoidf(o);
  if (jac) {
    float dh2[GTMSM_MAX_GATE], dh1[GTMSM_MAX_GATE];
    float dgo = g * (1.0f - g);
    for (int j = 0; j < G; j++) dh2[j] = dgo * m->gate_w3[j] * (1.0f - h2[j] * h2[j]);
    for (int j = 0; j < G; j++) dh1[j] = 0;
    for (int i = 0; i < G; i++) {
      const float *wr = m->gate_w2 + (size_t)i * G;
      for (int j = 0; j < G; j++) dh1[j] += wr[j] * dh2[i];
    }
    for (int j = 0; j < G; j++) dh1[j] *= 1.0f - h1[j] * h1[j];
    for (int k = 0; k < S; k++) {
      float acc = 0;
      for (int j = 0; j < G; j++) acc += m->gate_w1[(size_t)j * S + k] * dh1[j];
      jac[k] = acc;
    }
  }
  return g;
}

void gtmsm_transition(const gtmsm_model *m, const float *s, int a, float *s_next) {
  int S = m->cfg.S;
  float x[GTMSM_MAX_S] = {0}, h[4][GTMSM_MAX_GATE];
  const float *u = m->ssm_B + (size_t)a * S;
  for (int k = 0; k < S; k++) x[k] = GATE_IN * (s[k] + u[k]);
  float g = gate_forward(m, x, h[0], h[1], h[2], h[3], NULL);
  for (int k = 0; k < S; k++) s_next[k] = s[k] + g * u[k];
}

/* ---- retrieval ------------------------------------------------------------- */

int gtmsm_knn_brute(const float *keys, int n, int S, const float *q, int K, int skip, int *idx,
                    float *d2) {
  int found = 0;
  for (int i = 0; i < n; i++) {
    if (i == skip) continue;
    float d = 0;
    for (int k = 0; k < S; k++) {
      float r = q[k] - keys[(size_t)i * S + k];
      d += r * r;
    }
    /* insertion into the sorted top-K; equal distances keep index order */
    if (found == K && !(d < d2[K - 1])) continue;
    int j = found < K ? found++ : K - 1;
    while (j > 0 && d < d2[j - 1]) {
      d2[j] = d2[j - 1];
      idx[j] = idx[j - 1];
      j--;
    }
    d2[j] = d;
    idx[j] = i;
  }
  return found;
}

void gtmsm_mixture_weights(const float *d2, int k, float delta, float *w) {
  double sum = 0;
  for (int i = 0; i < k; i++) sum += 1.0 / ((double)d2[i] + delta);
  for (int i = 0; i < k; i++) w[i] = (float)(1.0 / ((double)d2[i] + delta) / sum);
}

void gtmsm_ssm_forward(const gtmsm_model *m, gtmsm_ws *ws, const int *actions, const float *eps_s,
                       int N) {
  const gtmsm_config *c = &m->cfg;
  const int S = c->S, G = c->gate_hidden;
  memset(ws->s, 0, (size_t)S * sizeof(float));
  for (int t = 1; t < N; t++) {
    const float *u = m->ssm_B + (size_t)actions[t] * S;
    float *x = ws->p + (size_t)t * S, *s = ws->s + (size_t)t * S, *sp = s - S;
    float *jac = ws->gjac + (size_t)t * S;
    for (int k = 0; k < S; k++) x[k] = GATE_IN * (sp[k] + u[k]);
    float g = gate_forward(m, x, ws->gh1_pre + (size_t)t * G, ws->gh1 + (size_t)t * G,
                           ws->gh2_pre + (size_t)t * G, ws->gh2 + (size_t)t * G, jac);
    for (int k = 0; k < S; k++) jac[k] *= GATE_IN; /* d gate / d (s_{t-1} + u_t) */
    ws->g[t] = g;
    for (int k = 0; k < S; k++) s[k] = sp[k] + g * u[k] + c->trans_std * eps_s[(size_t)t * S + k];
  }
}

float *gtmsm_ws_states(gtmsm_ws *ws) { return ws->s; }
float *gtmsm_ws_dstates(gtmsm_ws *ws) { return ws->d_s; }

void gtmsm_ssm_backward(const gtmsm_model *m, gtmsm_ws *ws, const int *actions, int N, float *grad) {
  const gtmsm_config *c = &m->cfg;
  const int S = c->S, G = c->gate_hidden;
  const float *base = m->p.data;
  /* states, backwards in time through s_t = s_{t-1} + g(s_{t-1} + u_t) u_t */
  float *dB = grad + (m->ssm_B - base);
  for (int t = N - 1; t >= 1; t--) {
    const float *u = m->ssm_B + (size_t)actions[t] * S, *jac = ws->gjac + (size_t)t * S;
    float *ds = ws->d_s + (size_t)t * S, *dsp = ds - S;
    float g = ws->g[t], dsu = 0;
    for (int k = 0; k < S; k++) dsu += ds[k] * u[k];
    for (int k = 0; k < S; k++) {
      dsp[k] += ds[k] + dsu * jac[k];
      dB[(size_t)actions[t] * S + k] += g * ds[k] + dsu * jac[k];
    }
    ws->d_go[t] = dsu * g * (1.0f - g); /* through the sigmoid */
  }
  /* gate parameters, batched over steps 1..N-1 */
  int n1 = N - 1;
  const float *gh2 = ws->gh2 + G, *gh1 = ws->gh1 + G, *pin = ws->p + S;
  float *dgw3 = grad + (m->gate_w3 - base), *dgb3 = grad + (m->gate_b3 - base);
  memset(ws->d_gh2, 0, (size_t)N * G * sizeof(float));
  for (int t = 1; t < N; t++) {
    float dgo = ws->d_go[t];
    dgb3[0] += dgo;
    for (int j = 0; j < G; j++) {
      dgw3[j] += dgo * ws->gh2[(size_t)t * G + j];
      ws->d_gh2[(size_t)t * G + j] = dgo * m->gate_w3[j];
    }
  }
  memset(ws->d_gh1, 0, (size_t)N * G * sizeof(float));
  act_backward(ws->d_gh1 + G, ws->d_gh2 + G, ws->gh2_pre + G, gh2, (size_t)n1 * G, ACT_TANH, 0);
  memset(ws->d_gh2, 0, (size_t)N * G * sizeof(float));
  linear_backward(ws->d_gh2 + G, grad + (m->gate_w2 - base), grad + (m->gate_b2 - base),
                  ws->d_gh1 + G, gh1, m->gate_w2, n1, G, G);
  memset(ws->d_gh1, 0, (size_t)N * G * sizeof(float));
  act_backward(ws->d_gh1 + G, ws->d_gh2 + G, ws->gh1_pre + G, gh1, (size_t)n1 * G, ACT_TANH, 0);
  linear_backward(NULL, grad + (m->gate_w1 - base), grad + (m->gate_b1 - base), ws->d_gh1 + G, pin,
                  m->gate_w1, n1, S, G);
}

/* ---- the loss of one sequence ---------------------------------------------- */

int gtmsm_seq_loss(const gtmsm_model *m, gtmsm_ws *ws, const gtmsm_seq_spec *spec,
                   const float *frames, const int *actions, const float *eps_z,
                   const float *eps_s, float *grad, gtmsm_seq_stats *stats) {
  const gtmsm_config *c = &m->cfg;
  const int Kc = spec->K > 0 ? spec->K : c->K;
  const int N = spec->N, T = spec->T, D = gtmsm_config_D(c), Z = c->Z, S = c->S,
            K = Kc < T - 1 ? Kc : T - 1;
  const float delta = spec->delta > 0 ? spec->delta : c->delta;
  const float *base = m->p.data;
  const float beta = spec->kl_weight;
  /* Rows r0..N-1 carry loss terms: all of them with the auxiliary term. */
  const int r0 = spec->aux > 0 ? 0 : T, R = N - r0;
  memset(stats, 0, sizeof *stats);

  /* 1. encoder over every frame (memory values need all of them) */
  gtmsm_encode(m, ws, frames, N, ws->mu, ws->lv);
  /* 2. reparameterised latents of the loss rows */
  for (int t = r0; t < N; t++)
    for (int k = 0; k < Z; k++) {
      size_t i = (size_t)t * Z + k;
      ws->z[i] = ws->mu[i] + expf(0.5f * ws->lv[i]) * eps_z[i];
    }
  /* 3. states: s_0 = 0, then the gated transition with noise */
  gtmsm_ssm_forward(m, ws, actions, eps_s, N);
  /* 4. decoder and reconstruction term on the loss rows */
  const float *zr = ws->z + (size_t)r0 * Z, *xr = frames + (size_t)r0 * D;
  decode_forward(m, ws, zr, R);
  if (c->decoder == GTMSM_DEC_GAUSS) {
    for (int r = 0; r < R; r++) memcpy(ws->lvtile + (size_t)r * D, m->dec_logvar, (size_t)D * sizeof(float));
    gauss_logpdf_forward(ws->recon, xr, ws->xm, ws->lvtile, 0, R, D);
  } else {
    bernoulli_logpmf_forward(ws->recon, xr, ws->xm, R, D);
  }
  /* 5. retrieval and mixture prior: memory = memorized steps 0..T-1 */
  for (int r = 0; r < R; r++) {
    int t = r0 + r;
    int *idx = ws->idx + (size_t)r * K;
    float *d2 = ws->d2 + (size_t)r * K, *w = ws->w + (size_t)r * K;
    gtmsm_knn_brute(ws->s, T, S, ws->s + (size_t)t * S, K, t < T ? t : -1, idx, d2);
    gtmsm_mixture_weights(d2, K, delta, w);
    for (int j = 0; j < K; j++) {
      memcpy(ws->mix_mu + ((size_t)r * K + j) * Z, ws->mu + (size_t)idx[j] * Z, (size_t)Z * sizeof(float));
      memcpy(ws->mix_lv + ((size_t)r * K + j) * Z, ws->lv + (size_t)idx[j] * Z, (size_t)Z * sizeof(float));
    }
  }
  mixture_logpdf_forward(ws->logp, ws->mix_scratch, zr, ws->mix_mu, ws->mix_lv, ws->w, R, K, Z);
  /* 6. sum up; rowc = d loss / d (row term) */
  double loss = 0;
  for (int r = 0; r < R; r++) {
    int t = r0 + r;
    double neg_entropy = 0;
    for (int k = 0; k < Z; k++) neg_entropy += -0.5 * (LOG_2PIE + ws->lv[(size_t)t * Z + k]);
    double kl = neg_entropy - ws->logp[r];
    float wt = (t < T ? spec->aux : 1.0f) / (float)(N - T);
    ws->rowc[r] = wt;
    loss += wt * (-(double)ws->recon[r] + beta * kl);
    if (t < T) {
      stats->recon_mem += ws->recon[r];
      stats->kl_mem += kl;
    } else {
      stats->recon_pred += ws->recon[r];
      stats->kl_pred += kl;
      double se = 0;
      for (int d = 0; d < D; d++) {
        float mean = ws->xm[(size_t)r * D + d];
        if (c->decoder == GTMSM_DEC_BERNOULLI) mean = sigmoidf(mean);
        float e = mean - frames[(size_t)t * D + d];
        se += (double)e * e;
      }
      stats->mse_pred += se / D / (N - T);
    }
  }
  /* 7. still-frame term over consecutive steps */
  if (spec->still > 0) {
    for (int t = 1; t < N; t++) {
      double mse = 0, d2 = 0;
      const float *a = frames + (size_t)t * D, *b = a - D;
      for (int d = 0; d < D; d++) mse += (double)(a[d] - b[d]) * (a[d] - b[d]);
      mse /= D;
      float w = expf(-(float)mse / STILL_TAU);
      ws->still_w[t] = w;
      if (w < 1e-6f) continue;
      for (int k = 0; k < S; k++) {
        double r = (double)ws->s[(size_t)t * S + k] - ws->s[(size_t)(t - 1) * S + k];
        d2 += r * r;
      }
      stats->still += w * d2;
      loss += spec->still * w * d2 / (N - T);
    }
  }
  stats->loss = loss;
  if (!isfinite(loss)) return GTMSM_ENAN;
  if (!grad) return GTMSM_OK;

  /* ---- backward ---- */
  memset(ws->d_mu, 0, (size_t)N * Z * sizeof(float));
  memset(ws->d_lv, 0, (size_t)N * Z * sizeof(float));
  memset(ws->d_z, 0, (size_t)N * Z * sizeof(float));
  memset(ws->d_s, 0, (size_t)N * S * sizeof(float));
  /* reconstruction: d loss / d recon_r = -rowc */
  float *drow = ws->d_w; /* reuse as (R) scratch before the mixture needs d_w */
  for (int r = 0; r < R; r++) drow[r] = -ws->rowc[r];
  memset(ws->d_xm, 0, (size_t)R * D * sizeof(float));
  if (c->decoder == GTMSM_DEC_GAUSS) {
    memset(ws->d_lvtile, 0, (size_t)R * D * sizeof(float));
    gauss_logpdf_backward(NULL, ws->d_xm, ws->d_lvtile, drow, xr, ws->xm, ws->lvtile, 0, R, D);
    float *dlogvar = grad + (m->dec_logvar - base);
    for (int r = 0; r < R; r++)
      for (int d = 0; d < D; d++) dlogvar[d] += ws->d_lvtile[(size_t)r * D + d];
  } else {
    bernoulli_logpmf_backward(ws->d_xm, drow, xr, ws->xm, R, D);
  }
  float *dzr = ws->d_z + (size_t)r0 * Z;
  decode_backward(m, ws, zr, R, dzr, grad);
  /* KL: d loss / d logp_r = -beta rowc; d loss / d lv (entropy) = -0.5 beta rowc */
  float *dlogp = ws->recon; /* recon values are no longer needed */
  for (int r = 0; r < R; r++) {
    dlogp[r] = -beta * ws->rowc[r];
    for (int k = 0; k < Z; k++) ws->d_lv[(size_t)(r0 + r) * Z + k] += -0.5f * beta * ws->rowc[r];
  }
  memset(ws->d_w, 0, (size_t)R * K * sizeof(float));
  memset(ws->d_mixmu, 0, (size_t)R * K * Z * sizeof(float));
  memset(ws->d_mixlv, 0, (size_t)R * K * Z * sizeof(float));
  mixture_logpdf_backward(dzr, ws->d_mixmu, ws->d_mixlv, ws->d_w, dlogp, ws->logp, ws->mix_scratch,
                          zr, ws->mix_mu, ws->mix_lv, ws->w, R, K, Z);
  for (int r = 0; r < R; r++) {
    int t = r0 + r;
    const int *idx = ws->idx + (size_t)r * K;
    const float *d2 = ws->d2 + (size_t)r * K, *w = ws->w + (size_t)r * K, *dw = ws->d_w + (size_t)r * K;
    /* memory values: scatter back to the encoder outputs of the retrieved steps */
    for (int j = 0; j < K; j++)
      for (int k = 0; k < Z; k++) {
        ws->d_mu[(size_t)idx[j] * Z + k] += ws->d_mixmu[((size_t)r * K + j) * Z + k];
        ws->d_lv[(size_t)idx[j] * Z + k] += ws->d_mixlv[((size_t)r * K + j) * Z + k];
      }
    /* weights w_j = v_j / sum v, v_j = 1 / (d2_j + delta) */
    double vsum = 0, wdw = 0;
    for (int j = 0; j < K; j++) {
      vsum += 1.0 / ((double)d2[j] + delta);
      wdw += (double)w[j] * dw[j];
    }
    const float *st = ws->s + (size_t)t * S;
    for (int j = 0; j < K; j++) {
      double v = 1.0 / ((double)d2[j] + delta);
      double dv = (dw[j] - wdw) / vsum;
      float dd2 = (float)(-dv * v * v);
      const float *si = ws->s + (size_t)idx[j] * S;
      for (int k = 0; k < S; k++) {
        float diff = st[k] - si[k];
        ws->d_s[(size_t)t * S + k] += 2.0f * dd2 * diff;
        ws->d_s[(size_t)idx[j] * S + k] -= 2.0f * dd2 * diff;
      }
    }
  }
  if (spec->still > 0)
    for (int t = 1; t < N; t++) {
      float w = ws->still_w[t];
      if (w < 1e-6f) continue;
      float c2 = 2.0f * spec->still * w / (float)(N - T);
      for (int k = 0; k < S; k++) {
        float r = ws->s[(size_t)t * S + k] - ws->s[(size_t)(t - 1) * S + k];
        ws->d_s[(size_t)t * S + k] += c2 * r;
        ws->d_s[(size_t)(t - 1) * S + k] -= c2 * r;
      }
    }
  /* reparameterisation of the loss rows */
  for (int t = r0; t < N; t++)
    for (int k = 0; k < Z; k++) {
      size_t i = (size_t)t * Z + k;
      float sd = expf(0.5f * ws->lv[i]);
      ws->d_mu[i] += ws->d_z[i];
      ws->d_lv[i] += ws->d_z[i] * 0.5f * sd * eps_z[i];
    }
  encode_backward(m, ws, frames, N, ws->lv, grad);
  gtmsm_ssm_backward(m, ws, actions, N, grad);
  return GTMSM_OK;
}
