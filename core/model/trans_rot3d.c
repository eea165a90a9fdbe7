/* The rotating transition (paper eq. 5): s = (s1, s2, s3),
 *   s' = s + R(s3) B a,  R(h) = [[cos h, -sin h, 0], [sin h, cos h, 0], [0, 0, 1]],
 * B (A, 3) learned: each action is a displacement in the agent's frame
 * (forward, left, turn) that R turns into state space. The model is never
 * told that s3 is an angle; the periodic key map makes it behave as one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm_internal.h"

static int rot_specs(const gtmsm_config *c, param_spec *out) {
  out[0] = (param_spec){"ssm.B", (size_t)c->A * 3, 1, 0};
  return 1;
}

void gtmsm_trans_init_3d(gtmsm_model *m, float *B, uint64_t seed) {
  rng_t r;
  rng_init(&r, seed, 77);
  for (int i = 0; i < m->cfg.A * 3; i++) B[i] = rng_normal(&r) * 0.1f;
  for (int a = 0; a < m->cfg.A; a++)
    if (strcmp(m->cfg.action_names[a], "none") == 0) memset(B + (size_t)a * 3, 0, 3 * sizeof(float));
}

static void rot_init(gtmsm_model *m, uint64_t seed) {
  gtmsm_trans_init_3d(m, gtmsm_tensor(m, GTMSM_ROLE_TRANS, 0, m->p.data), seed);
}

static int rot_hidden(const gtmsm_config *c) {
  (void)c;
  return 0;
}

/* Nothing is cached: the backward recomputes R from the states. */
static void *rot_ws_new(const gtmsm_config *c, int N) {
  (void)c;
  (void)N;
  return malloc(1);
}

static void rot_ws_free(void *ws) { free(ws); }

static void rot_step(const gtmsm_model *m, const float *s, const float *h, int a, float *s_next,
                     float *h_next, void *ws, int t) {
  (void)h;
  (void)h_next;
  (void)ws;
  (void)t;
  const float *u = gtmsm_tensor(m, GTMSM_ROLE_TRANS, 0, m->p.data) + (size_t)a * 3;
  float c = cosf(s[2]), sn = sinf(s[2]);
  s_next[0] = s[0] + (c * u[0] - sn * u[1]);
  s_next[1] = s[1] + (sn * u[0] + c * u[1]);
  s_next[2] = s[2] + u[2];
}

static void rot_backward(const gtmsm_model *m, void *ws, const int *actions, int N, const float *s,
                         float *d_s, float *dh, float *grad) {
  (void)ws;
  (void)dh;
  const float *Bm = gtmsm_tensor(m, GTMSM_ROLE_TRANS, 0, m->p.data);
  float *dB = gtmsm_tensor(m, GTMSM_ROLE_TRANS, 0, grad);
  for (int t = N - 1; t >= 1; t--) {
    const float *u = Bm + (size_t)actions[t] * 3, *sp = s + (size_t)(t - 1) * 3;
    const float *ds = d_s + (size_t)t * 3;
    float *dsp = d_s + (size_t)(t - 1) * 3, *db = dB + (size_t)actions[t] * 3;
    float c = cosf(sp[2]), sn = sinf(sp[2]);
    dsp[0] += ds[0];
    dsp[1] += ds[1];
    dsp[2] += ds[2] + ds[0] * (-sn * u[0] - c * u[1]) + ds[1] * (c * u[0] - sn * u[1]);
    db[0] += c * ds[0] + sn * ds[1];
    db[1] += -sn * ds[0] + c * ds[1];
    db[2] += ds[2];
  }
}

const struct gtmsm_trans_ops gtmsm_trans_rot3d = {"rot3d", rot_specs, rot_init, rot_hidden, rot_ws_new,
                                                  rot_ws_free, rot_step, rot_backward, NULL, NULL, NULL, NULL};
