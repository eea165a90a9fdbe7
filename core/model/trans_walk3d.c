/* The walking transition (paper 4.2.2): a velocity-like state Delta (the
 * transition's own hidden state, 3 floats: forward, left, turn in the agent's
 * frame) with momentum, friction and saturation,
 *   Delta_t = beta (.) tanh( sigmoid(alpha) (.) Delta_{t-1} + B a_t ),
 *   s_t     = s_{t-1} + R(s3_{t-1}) Delta_t,
 * alpha, beta (3) and B (A, 3) learned; Delta_0 = 0. Delta lives in the
 * session's belief (api.h: hidden) and is the displacement that training may
 * regress on the true agent-frame displacement (elbo.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm_internal.h"
#include "nn/activation.h"
#include "nn/vecmath.h"

enum { B, ALPHA, BETA, NT };
#define H3 3

static int walk_specs(const gtmsm_config *c, param_spec *out) {
  param_spec s[NT] = {
      {"ssm.B", (size_t)c->A * H3, 1, 0},
      {"ssm.alpha", H3, 0, 0},       /* sigmoid(0) = 0.5: half the velocity carries over */
      {"ssm.beta", H3, -1, 1.0f},    /* saturation at one unit a step */
  };
  memcpy(out, s, sizeof s);
  return NT;
}

static void walk_init(gtmsm_model *m, uint64_t seed) {
  gtmsm_trans_init_3d(m, gtmsm_tensor(m, GTMSM_ROLE_TRANS, B, m->p.data), seed);
}

static int walk_hidden(const gtmsm_config *c) {
  (void)c;
  return H3;
}

typedef struct {
  float *pre, *delta, *h_prev; /* (N, 3): tanh input, Delta_t, Delta_{t-1} */
} walk_ws;

static void walk_ws_free(void *p) {
  walk_ws *ws = p;
  if (!ws) return;
  free(ws->pre);
  free(ws->delta);
  free(ws->h_prev);
  free(ws);
}

static void *walk_ws_new(const gtmsm_config *c, int N) {
  (void)c;
  walk_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  ws->pre = calloc((size_t)N * H3, sizeof(float));
  ws->delta = calloc((size_t)N * H3, sizeof(float));
  ws->h_prev = calloc((size_t)N * H3, sizeof(float));
  if (!ws->pre || !ws->delta || !ws->h_prev) {
    walk_ws_free(ws);
    return NULL;
  }
  return ws;
}

static void walk_step(const gtmsm_model *m, const float *s, const float *h, int a, float *s_next, float *h_next,
                      void *p, int t) {
  walk_ws *ws = p;
  const float *w = m->p.data, *u = gtmsm_tensor(m, GTMSM_ROLE_TRANS, B, w) + (size_t)a * H3;
  const float *alpha = gtmsm_tensor(m, GTMSM_ROLE_TRANS, ALPHA, w), *beta = gtmsm_tensor(m, GTMSM_ROLE_TRANS, BETA, w);
  float d[H3];
  for (int k = 0; k < H3; k++) {
    float pre = vm_sigmoidf(alpha[k]) * h[k] + u[k];
    d[k] = beta[k] * vm_tanhf(pre);
    if (ws) {
      ws->pre[(size_t)t * H3 + k] = pre;
      ws->delta[(size_t)t * H3 + k] = d[k];
      ws->h_prev[(size_t)t * H3 + k] = h[k];
    }
  }
  float c = cosf(s[2]), sn = sinf(s[2]);
  s_next[0] = s[0] + (c * d[0] - sn * d[1]);
  s_next[1] = s[1] + (sn * d[0] + c * d[1]);
  s_next[2] = s[2] + d[2];
  memcpy(h_next, d, sizeof d);
}

static void walk_backward(const gtmsm_model *m, void *p, const int *actions, int N, const float *s, float *d_s,
                          float *dh, float *grad) {
  walk_ws *ws = p;
  const float *w = m->p.data;
  const float *alpha = gtmsm_tensor(m, GTMSM_ROLE_TRANS, ALPHA, w), *beta = gtmsm_tensor(m, GTMSM_ROLE_TRANS, BETA, w);
  float *dB = gtmsm_tensor(m, GTMSM_ROLE_TRANS, B, grad), *dalpha = gtmsm_tensor(m, GTMSM_ROLE_TRANS, ALPHA, grad),
        *dbeta = gtmsm_tensor(m, GTMSM_ROLE_TRANS, BETA, grad);
  float carry[H3] = {0}; /* d loss / d Delta_t through Delta_{t+1} */
  for (int t = N - 1; t >= 1; t--) {
    const float *sp = s + (size_t)(t - 1) * 3, *ds = d_s + (size_t)t * 3, *d = ws->delta + (size_t)t * H3;
    float *dsp = d_s + (size_t)(t - 1) * 3;
    float c = cosf(sp[2]), sn = sinf(sp[2]);
    /* s_t = s_{t-1} + R(s3_{t-1}) Delta_t */
    float dd[H3] = {c * ds[0] + sn * ds[1], -sn * ds[0] + c * ds[1], ds[2]};
    for (int k = 0; k < H3; k++) dd[k] += carry[k] + (dh ? dh[(size_t)t * H3 + k] : 0.0f);
    dsp[0] += ds[0];
    dsp[1] += ds[1];
    dsp[2] += ds[2] + ds[0] * (-sn * d[0] - c * d[1]) + ds[1] * (c * d[0] - sn * d[1]);
    /* Delta_t = beta tanh(pre), pre = sigmoid(alpha) Delta_{t-1} + B a_t */
    float *db = dB + (size_t)actions[t] * H3;
    for (int k = 0; k < H3; k++) {
      float pre = ws->pre[(size_t)t * H3 + k], th = vm_tanhf(pre), sg = vm_sigmoidf(alpha[k]);
      /* tanh' and sigmoid' from their inputs (1 - th^2 cancels near |th| = 1) */
      float dpre = dd[k] * beta[k] * vm_sech2f(pre);
      dbeta[k] += dd[k] * th;
      db[k] += dpre;
      dalpha[k] += dpre * ws->h_prev[(size_t)t * H3 + k] * vm_dsigmoidf(alpha[k]);
      carry[k] = dpre * sg;
    }
  }
  /* Delta_0 = 0 is no parameter: nothing flows further */
}

const struct gtmsm_trans_ops gtmsm_trans_walk3d = {"walk3d", walk_specs, walk_init, walk_hidden, walk_ws_new,
                                                   walk_ws_free, walk_step, walk_backward, NULL, NULL, NULL, NULL};
