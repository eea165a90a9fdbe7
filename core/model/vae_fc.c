/* The fully connected frame VAE: encoder x (D) -> ELU (hidden) -> ELU (hidden)
 * -> (mu, raw logvar) (2Z); decoder z (Z) -> ELU (hidden) -> ELU (hidden) ->
 * (D) Gaussian mean or Bernoulli logits; and the decoder's per-pixel
 * log-variance (the last tensor of every VAE part). */
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm_internal.h"
#include "nn/activation.h"
#include "nn/linear.h"

#define ACT ACT_ELU
enum { EW1, EB1, EW2, EB2, EW3, EB3, DW1, DB1, DW2, DB2, DW3, DB3, LOGVAR, NT };

static int fc_specs(const gtmsm_config *c, param_spec *out) {
  int D = gtmsm_config_D(c), Hd = c->hidden, Z = c->Z;
  param_spec s[NT] = {
      {"enc.w1", (size_t)Hd * D, D, 0},       {"enc.b1", (size_t)Hd, 0, 0},
      {"enc.w2", (size_t)Hd * Hd, Hd, 0},     {"enc.b2", (size_t)Hd, 0, 0},
      {"enc.w3", (size_t)2 * Z * Hd, Hd, 0},  {"enc.b3", (size_t)2 * Z, 0, 0},
      {"dec.w1", (size_t)Hd * Z, Z, 0},       {"dec.b1", (size_t)Hd, 0, 0},
      {"dec.w2", (size_t)Hd * Hd, Hd, 0},     {"dec.b2", (size_t)Hd, 0, 0},
      {"dec.w3", (size_t)D * Hd, Hd, 0},      {"dec.b3", (size_t)D, -1, 0.5f},
      {"dec.logvar", (size_t)D, -1, c->dec_logvar_init},
  };
  if (c->decoder == GTMSM_DEC_BERNOULLI) s[DB3].init_value = 0.0f; /* output bias: logits 0 */
  memcpy(out, s, sizeof s);
  return NT;
}

typedef struct {
  float *eh1_pre, *eh1, *eh2_pre, *eh2; /* (N, Hd) encoder activations */
  float *dh1_pre, *dh1, *dh2_pre, *dh2; /* (N, Hd) decoder activations */
  float *g1, *g2;                       /* (N, Hd) gradient scratch (training) */
} fc_ws;

static void fc_ws_free(void *p) {
  fc_ws *ws = p;
  if (!ws) return;
  float *all[] = {ws->eh1_pre, ws->eh1, ws->eh2_pre, ws->eh2, ws->dh1_pre, ws->dh1, ws->dh2_pre, ws->dh2,
                  ws->g1, ws->g2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(ws);
}

static void *fc_ws_new(const gtmsm_config *c, int N, int train) {
  fc_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  size_t n = (size_t)N * c->hidden;
  float **all[] = {&ws->eh1_pre, &ws->eh1, &ws->eh2_pre, &ws->eh2, &ws->dh1_pre, &ws->dh1, &ws->dh2_pre,
                   &ws->dh2, &ws->g1, &ws->g2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    if (!train && all[i] == &ws->g1) break;
    if (!(*all[i] = calloc(n ? n : 1, sizeof(float)))) {
      fc_ws_free(ws);
      return NULL;
    }
  }
  return ws;
}

static void fc_encode(const gtmsm_model *m, void *p, const float *x, int N, float *eo) {
  fc_ws *ws = p;
  const float *w = m->p.data;
  int D = gtmsm_config_D(&m->cfg), Hd = m->cfg.hidden, Z = m->cfg.Z;
#define T(i) gtmsm_tensor(m, GTMSM_ROLE_VAE, (i), w)
  linear_forward(ws->eh1_pre, x, T(EW1), T(EB1), N, D, Hd);         /* (N, Hd) */
  act_forward(ws->eh1, ws->eh1_pre, (size_t)N * Hd, ACT, 1.0f);
  linear_forward(ws->eh2_pre, ws->eh1, T(EW2), T(EB2), N, Hd, Hd);  /* (N, Hd) */
  act_forward(ws->eh2, ws->eh2_pre, (size_t)N * Hd, ACT, 1.0f);
  linear_forward(eo, ws->eh2, T(EW3), T(EB3), N, Hd, 2 * Z);        /* (N, 2Z) */
}

/* The inference encoder: the same layers on linear_infer, each frame's
 * encoding its own (api.c encodes observations with it). The packed
 * weights of the three layers, one after the other. */
static void *fc_infer_new(const gtmsm_model *m) {
  const float *w = m->p.data;
  int D = gtmsm_config_D(&m->cfg), Hd = m->cfg.hidden, Z = m->cfg.Z;
  const size_t n1 = linear_infer_floats(D, Hd), n2 = linear_infer_floats(Hd, Hd);
  float *pk = malloc(sizeof(float) * (n1 + n2 + linear_infer_floats(Hd, 2 * Z)));
  if (!pk) return NULL;
  linear_infer_pack(pk, T(EW1), T(EB1), D, Hd);
  linear_infer_pack(pk + n1, T(EW2), T(EB2), Hd, Hd);
  linear_infer_pack(pk + n1 + n2, T(EW3), T(EB3), Hd, 2 * Z);
  return pk;
}

static void fc_encode_infer(const gtmsm_model *m, const void *p, void *wsp, const float *x, int N, float *eo) {
  fc_ws *ws = wsp;
  const float *pk = p;
  int D = gtmsm_config_D(&m->cfg), Hd = m->cfg.hidden, Z = m->cfg.Z;
  const size_t n1 = linear_infer_floats(D, Hd), n2 = linear_infer_floats(Hd, Hd);
  linear_infer(ws->eh1_pre, x, pk, N, D, Hd);
  act_forward(ws->eh1, ws->eh1_pre, (size_t)N * Hd, ACT, 1.0f);
  linear_infer(ws->eh2_pre, ws->eh1, pk + n1, N, Hd, Hd);
  act_forward(ws->eh2, ws->eh2_pre, (size_t)N * Hd, ACT, 1.0f);
  linear_infer(eo, ws->eh2, pk + n1 + n2, N, Hd, 2 * Z);
}

#define G(i) gtmsm_tensor(m, GTMSM_ROLE_VAE, (i), grad)

static void fc_encode_backward(const gtmsm_model *m, void *p, const float *x, int N, const float *d_eo,
                               float *grad) {
  fc_ws *ws = p;
  const float *w = m->p.data;
  int D = gtmsm_config_D(&m->cfg), Hd = m->cfg.hidden, Z = m->cfg.Z;
  size_t nh = (size_t)N * Hd * sizeof(float);
  memset(ws->g2, 0, nh);
  linear_backward(ws->g2, G(EW3), G(EB3), d_eo, ws->eh2, T(EW3), N, Hd, 2 * Z);
  memset(ws->g1, 0, nh);
  act_backward(ws->g1, ws->g2, ws->eh2_pre, ws->eh2, (size_t)N * Hd, ACT, 1.0f);
  memset(ws->g2, 0, nh);
  linear_backward(ws->g2, G(EW2), G(EB2), ws->g1, ws->eh1, T(EW2), N, Hd, Hd);
  memset(ws->g1, 0, nh);
  act_backward(ws->g1, ws->g2, ws->eh1_pre, ws->eh1, (size_t)N * Hd, ACT, 1.0f);
  linear_backward(NULL, G(EW1), G(EB1), ws->g1, x, T(EW1), N, D, Hd);
}

static void fc_decode(const gtmsm_model *m, void *p, const float *z, int N, float *xm) {
  fc_ws *ws = p;
  const float *w = m->p.data;
  int D = gtmsm_config_D(&m->cfg), Hd = m->cfg.hidden, Z = m->cfg.Z;
  linear_forward(ws->dh1_pre, z, T(DW1), T(DB1), N, Z, Hd);
  act_forward(ws->dh1, ws->dh1_pre, (size_t)N * Hd, ACT, 1.0f);
  linear_forward(ws->dh2_pre, ws->dh1, T(DW2), T(DB2), N, Hd, Hd);
  act_forward(ws->dh2, ws->dh2_pre, (size_t)N * Hd, ACT, 1.0f);
  linear_forward(xm, ws->dh2, T(DW3), T(DB3), N, Hd, D);
}

static void fc_decode_backward(const gtmsm_model *m, void *p, const float *z, int N, const float *d_xm,
                               float *dz, float *grad) {
  fc_ws *ws = p;
  const float *w = m->p.data;
  int D = gtmsm_config_D(&m->cfg), Hd = m->cfg.hidden, Z = m->cfg.Z;
  size_t nh = (size_t)N * Hd * sizeof(float);
  memset(ws->g2, 0, nh);
  linear_backward(ws->g2, G(DW3), G(DB3), d_xm, ws->dh2, T(DW3), N, Hd, D);
  memset(ws->g1, 0, nh);
  act_backward(ws->g1, ws->g2, ws->dh2_pre, ws->dh2, (size_t)N * Hd, ACT, 1.0f);
  memset(ws->g2, 0, nh);
  linear_backward(ws->g2, G(DW2), G(DB2), ws->g1, ws->dh1, T(DW2), N, Hd, Hd);
  memset(ws->g1, 0, nh);
  act_backward(ws->g1, ws->g2, ws->dh1_pre, ws->dh1, (size_t)N * Hd, ACT, 1.0f);
  linear_backward(dz, G(DW1), G(DB1), ws->g1, z, T(DW1), N, Z, Hd);
}

const struct gtmsm_vae_ops gtmsm_vae_fc = {"fc", fc_specs, fc_ws_new, fc_ws_free, fc_encode,
                                           fc_encode_backward, fc_decode, fc_decode_backward, NULL, NULL,
                                           NULL, NULL, NULL, fc_infer_new, fc_encode_infer, free};
