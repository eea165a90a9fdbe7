/* State inference from the actions alone (paper eq. 2): the transition is its
 * own posterior, rolled out from the origin with its small noise. */
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
