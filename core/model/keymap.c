/* Key maps: what the DND's Euclidean distance sees of a state.
 * - identity: the state itself (2-D navigation);
 * - periodic: (s1, s2, cos s3, sin s3), so that headings h and h + 2 pi are the
 *   same key (paper 4.2), optionally through a learned linear layer W k + b
 *   (4 x 4, initialised to the identity). */
#include <math.h>
#include <string.h>

#include "model/gtmsm_internal.h"

#define KS 4 /* periodic keys of a state (s1, s2, s3) */

static int identity_specs(const gtmsm_config *c, param_spec *out) {
  (void)c;
  (void)out;
  return 0;
}

static void identity_forward(const gtmsm_model *m, const float *s, int N, float *keys) {
  memcpy(keys, s, sizeof(float) * (size_t)N * m->cfg.S);
}

static void identity_backward(const gtmsm_model *m, const float *s, int N, const float *dkeys, float *ds,
                              float *grad) {
  (void)s;
  (void)grad;
  for (size_t i = 0; i < (size_t)N * m->cfg.S; i++) ds[i] += dkeys[i];
}

const struct gtmsm_keymap_ops gtmsm_keymap_identity = {"identity", identity_specs, NULL, identity_forward,
                                                       identity_backward};

static int periodic_specs(const gtmsm_config *c, param_spec *out) {
  if (!c->keymap_learned) return 0;
  out[0] = (param_spec){"keymap.w", KS * KS, 0, 0};
  out[1] = (param_spec){"keymap.b", KS, 0, 0};
  return 2;
}

static void periodic_init(gtmsm_model *m) {
  if (!m->cfg.keymap_learned) return;
  float *w = gtmsm_tensor(m, GTMSM_ROLE_KEYMAP, 0, m->p.data);
  for (int i = 0; i < KS; i++) w[i * KS + i] = 1.0f;
}

static void periodic_raw(const float *s, float *k) {
  k[0] = s[0];
  k[1] = s[1];
  k[2] = cosf(s[2]);
  k[3] = sinf(s[2]);
}

static void periodic_forward(const gtmsm_model *m, const float *s, int N, float *keys) {
  const float *w = m->cfg.keymap_learned ? gtmsm_tensor(m, GTMSM_ROLE_KEYMAP, 0, m->p.data) : NULL;
  const float *b = w ? gtmsm_tensor(m, GTMSM_ROLE_KEYMAP, 1, m->p.data) : NULL;
  for (int n = 0; n < N; n++) {
    float k[KS], *out = keys + (size_t)n * KS;
    periodic_raw(s + (size_t)n * 3, k);
    if (!w) {
      memcpy(out, k, sizeof k);
      continue;
    }
    for (int i = 0; i < KS; i++) {
      float acc = b[i];
      for (int j = 0; j < KS; j++) acc += w[i * KS + j] * k[j];
      out[i] = acc;
    }
  }
}

static void periodic_backward(const gtmsm_model *m, const float *s, int N, const float *dkeys, float *ds,
                              float *grad) {
  const float *w = m->cfg.keymap_learned ? gtmsm_tensor(m, GTMSM_ROLE_KEYMAP, 0, m->p.data) : NULL;
  float *dw = w ? gtmsm_tensor(m, GTMSM_ROLE_KEYMAP, 0, grad) : NULL;
  float *db = w ? gtmsm_tensor(m, GTMSM_ROLE_KEYMAP, 1, grad) : NULL;
  for (int n = 0; n < N; n++) {
    const float *sn = s + (size_t)n * 3, *dk = dkeys + (size_t)n * KS;
    float draw[KS];
    if (w) {
      float k[KS];
      periodic_raw(sn, k);
      for (int j = 0; j < KS; j++) draw[j] = 0;
      for (int i = 0; i < KS; i++) {
        db[i] += dk[i];
        for (int j = 0; j < KS; j++) {
          dw[i * KS + j] += dk[i] * k[j];
          draw[j] += w[i * KS + j] * dk[i];
        }
      }
    } else {
      memcpy(draw, dk, sizeof draw);
    }
    float *d = ds + (size_t)n * 3;
    d[0] += draw[0];
    d[1] += draw[1];
    d[2] += -sinf(sn[2]) * draw[2] + cosf(sn[2]) * draw[3];
  }
}

const struct gtmsm_keymap_ops gtmsm_keymap_periodic = {"periodic", periodic_specs, periodic_init,
                                                       periodic_forward, periodic_backward};
