/* State inference from the actions alone (paper eq. 2): the transition is its
 * own posterior, rolled out from the origin with its small noise. As a part
 * it has no tensors and no KL (q(s_t) is p(s_t | s_{t-1}, a_t)). */
#include <string.h>

#include "model/gtmsm_internal.h"

void gtmsm_infer_actions(const gtmsm_model *m, void *trans_ws, const int *actions, const float *eps_s,
                         int N, float *s, float *h) {
  const int S = m->cfg.S, H = m->trans->hidden_size(&m->cfg);
  const float trans_std = m->cfg.trans_std;
  memset(s, 0, (size_t)S * sizeof(float));
  if (h && H) memset(h, 0, (size_t)H * sizeof(float));
  for (int t = 1; t < N; t++) {
    float *st = s + (size_t)t * S;
    m->trans->step(m, st - S, h && H ? h + (size_t)(t - 1) * H : NULL, actions[t], st,
                   h && H ? h + (size_t)t * H : NULL, trans_ws, t);
    for (int k = 0; k < S; k++) st[k] += trans_std * eps_s[(size_t)t * S + k];
  }
}

static int actions_specs(const gtmsm_config *c, param_spec *out) {
  (void)c;
  (void)out;
  return 0;
}

static void *actions_ws_new(const gtmsm_config *c, int N) {
  (void)c;
  (void)N;
  static char none; /* no workspace; a non-NULL token */
  return &none;
}

static void actions_ws_free(void *ws) { (void)ws; }

static void actions_forward(const gtmsm_model *m, void *ws, void *trans_ws, const gtmsm_infer_in *in, float *s,
                            float *h, double *kl) {
  (void)ws;
  gtmsm_infer_actions(m, trans_ws, in->actions, in->eps_s, in->N, s, h);
  memset(kl, 0, sizeof(double) * (size_t)in->N);
}

static void actions_backward(const gtmsm_model *m, void *ws, void *trans_ws, const gtmsm_infer_in *in,
                             const float *s, float *ds, float *dh, const float *dkl, float *d_mu_z, float *grad) {
  (void)ws;
  (void)dkl;
  (void)d_mu_z;
  m->trans->backward(m, trans_ws, in->actions, in->N, s, ds, dh, grad);
}

static int actions_observe(const gtmsm_model *m, const float *s_prev, const float *h_prev, int a, const float *mu_z,
                           const dnd *rev, float *s, float *h, float *mu_p) {
  (void)mu_z;
  (void)rev;
  m->trans->step(m, s_prev, h_prev, a, s, h, NULL, 0);
  if (mu_p) memcpy(mu_p, s, sizeof(float) * (size_t)m->cfg.S);
  return 0;
}

const struct gtmsm_infer_ops gtmsm_infer_actions_part = {"actions", actions_specs, NULL, actions_ws_new, actions_ws_free,
                                                         actions_forward, actions_backward, actions_observe};
