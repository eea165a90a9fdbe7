/* The training loss of one sequence: orchestration only. The parts run in
 * order (VAE encoder, state inference, VAE decoder, key map, retrieval,
 * prior) and their backwards in reverse; the loss is a sum of named terms.
 *
 * Objective of one sequence of N steps, T memorized (see docs/MODEL.md):
 *   loss = 1/(N-T) * sum_t w_t [ -log p(x_t|z_t) + beta KL_t ] + still-frame term
 * with z_t ~ q(z_t|x_t) reparameterised and KL_t the prior's KL term of
 * q(z_t|x_t) against p(z_t|s_t, DND), the prior formed from the K memory
 * entries nearest to s_t (in key space). w_t = 1 on prediction steps
 * (t >= T); on memorized steps w_t = aux and the memory is every other
 * memorized step (leave-one-out), an unsupervised auxiliary term that gives
 * the transition a signal on every step, not only the last N-T. With
 * landmark inference the states are samples of q(s_t | s_{t-1}, a_t, x_t,
 * DND) (infer_landmark.c) and the loss gains beta w_t KL(q(s_t) || p(s_t |
 * s_{t-1}, a_t)) / (N-T) for t >= 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "model/gtmsm_internal.h"
#include "nn/activation.h"
#include "nn/density.h"
#include "nn/vecmath.h"

#define STILL_TAU 1e-4f /* frames closer than 40 dB PSNR count as unchanged */

struct gtmsm_ws {
  int N_max, train;
  const struct gtmsm_vae_ops *vae_ops;
  const struct gtmsm_trans_ops *trans_ops;
  const struct gtmsm_prior_ops *prior_ops;
  const struct gtmsm_infer_ops *infer_ops;
  void *vae, *trans, *prior, *infer; /* the parts' own workspaces */
  float *eo, *mu, *lv, *z;    /* (N, 2Z), (N, Z) x3 */
  float *xm, *lvtile, *recon; /* (N, D) x2, (N) */
  float *s, *h, *keys;        /* (N, S), (N, hidden), (N, KS) */
  float *d2, *still_w, *rowc; /* (N, MAX_K), (N), (N) */
  int *idx, *q_row;           /* (N, MAX_K), (N) */
  double *kl, *kl_s;          /* (N) x2: the prior's KL terms, the state posterior's */
  /* gradients: training only */
  float *d_eo, *d_mu, *d_lv, *d_z, *d_xm, *d_lvtile, *d_s, *d_h, *d_keys, *dd2, *drow;
  float *dkl_s, *dgate;       /* (N) x2 */
};

void gtmsm_ws_free(gtmsm_ws *ws) {
  if (!ws) return;
  float *all[] = {ws->eo, ws->mu, ws->lv, ws->z, ws->xm, ws->lvtile, ws->recon, ws->s, ws->h, ws->keys,
                  ws->d2, ws->still_w, ws->rowc, ws->d_eo, ws->d_mu, ws->d_lv, ws->d_z, ws->d_xm,
                  ws->d_lvtile, ws->d_s, ws->d_h, ws->d_keys, ws->dd2, ws->drow, ws->dkl_s, ws->dgate};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(ws->idx);
  free(ws->q_row);
  free(ws->kl);
  free(ws->kl_s);
  if (ws->infer) ws->infer_ops->ws_free(ws->infer);
  if (ws->vae) ws->vae_ops->ws_free(ws->vae);
  if (ws->trans) ws->trans_ops->ws_free(ws->trans);
  if (ws->prior) ws->prior_ops->ws_free(ws->prior);
  free(ws);
}

gtmsm_ws *gtmsm_ws_new(const gtmsm_config *c, int N, int train) {
  gtmsm_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  const struct gtmsm_keymap_ops *keymap;
  gtmsm_parts_of(c, &ws->vae_ops, &ws->trans_ops, &keymap, &ws->prior_ops);
  ws->infer_ops = gtmsm_infer_of(c);
  ws->N_max = N;
  ws->train = train;
  size_t D = (size_t)gtmsm_config_D(c), Z = (size_t)c->Z, S = (size_t)c->S, K = GTMSM_MAX_K,
         H = (size_t)ws->trans_ops->hidden_size(c), KS = (size_t)gtmsm_key_size(c), n = (size_t)N;
  struct {
    float **ptr;
    size_t size;
  } bufs[] = {
      {&ws->eo, n * 2 * Z}, {&ws->mu, n * Z},   {&ws->lv, n * Z},      {&ws->z, n * Z},
      {&ws->xm, n * D},     {&ws->lvtile, n * D}, {&ws->recon, n},     {&ws->s, n * S},
      {&ws->h, n * H},      {&ws->keys, n * KS}, {&ws->d2, n * K},     {&ws->still_w, n},
      {&ws->rowc, n},
      /* gradients: training only */
      {&ws->d_eo, n * 2 * Z}, {&ws->d_mu, n * Z}, {&ws->d_lv, n * Z},  {&ws->d_z, n * Z},
      {&ws->d_xm, n * D},   {&ws->d_lvtile, n * D}, {&ws->d_s, n * S}, {&ws->d_h, n * H},
      {&ws->d_keys, n * KS}, {&ws->dd2, n * K},  {&ws->drow, n}, {&ws->dkl_s, n}, {&ws->dgate, n},
  };
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
    if (!train && bufs[i].ptr == &ws->d_eo) break;
    if (!(*bufs[i].ptr = calloc(bufs[i].size ? bufs[i].size : 1, sizeof(float)))) goto fail;
  }
  ws->idx = calloc(n * K, sizeof(int));
  ws->q_row = calloc(n, sizeof(int));
  ws->kl = calloc(n, sizeof(double));
  ws->kl_s = calloc(n, sizeof(double));
  ws->infer = ws->infer_ops->ws_new(c, N);
  ws->vae = ws->vae_ops->ws_new(c, N, train);
  ws->trans = ws->trans_ops->ws_new(c, N);
  ws->prior = ws->prior_ops->ws_new(c, N, train);
  if (!ws->idx || !ws->q_row || !ws->kl || !ws->kl_s || !ws->infer || !ws->vae || !ws->trans || !ws->prior) goto fail;
  return ws;
fail:
  gtmsm_ws_free(ws);
  return NULL;
}

const int *gtmsm_ws_idx(const gtmsm_ws *ws) { return ws->idx; }

/* ---- encoder / decoder ----------------------------------------------------- */

/* mu, lv rows r0 .. r0 + rows - 1 from the encoder's raw output in ws->eo. */
static void split_eo(const gtmsm_model *m, const gtmsm_ws *ws, int r0, int rows, float *mu, float *lv) {
  const int Z = m->cfg.Z;
  for (int n = r0; n < r0 + rows; n++) {
    float *l = lv + (size_t)n * Z;
    for (int k = 0; k < Z; k++) {
      mu[(size_t)n * Z + k] = ws->eo[(size_t)n * 2 * Z + k];
      l[k] = ws->eo[(size_t)n * 2 * Z + Z + k] / LV_RANGE;
    }
    vm_tanh(l, l, (size_t)Z);
    for (int k = 0; k < Z; k++) l[k] *= LV_RANGE;
  }
}

void gtmsm_encode_rows(const gtmsm_model *m, gtmsm_ws *ws, const float *x, int N, int r0, int rows, float *mu,
                       float *lv) {
  if (m->vae->encode_rows)
    m->vae->encode_rows(m, ws->vae, x, N, r0, rows, ws->eo);
  else
    m->vae->encode(m, ws->vae, x, N, ws->eo);
  split_eo(m, ws, r0, rows, mu, lv);
}

void gtmsm_encode_infer(const gtmsm_model *m, gtmsm_ws *ws, const void *pk, const float *x, int N, float *mu,
                        float *lv) {
  m->vae->encode_infer(m, pk, ws->vae, x, N, ws->eo);
  split_eo(m, ws, 0, N, mu, lv);
}

void gtmsm_encode(const gtmsm_model *m, gtmsm_ws *ws, const float *x, int N, float *mu, float *lv) {
  gtmsm_encode_rows(m, ws, x, N, 0, N, mu, lv);
}

/* d_mu, d_lv (N, Z) (in ws) -> parameter gradients; uses the activations left
 * in ws (the raw encoder output eo: tanh' from its input, not 1 - tanh^2). */
static void encode_backward(const gtmsm_model *m, gtmsm_ws *ws, const float *x, int N, float *grad) {
  const int Z = m->cfg.Z;
  for (int n = 0; n < N; n++) {
    float *de = ws->d_eo + (size_t)n * 2 * Z;
    for (int k = 0; k < Z; k++) {
      de[k] = ws->d_mu[(size_t)n * Z + k];
      de[Z + k] = ws->eo[(size_t)n * 2 * Z + Z + k] / LV_RANGE;
    }
    vm_sech2(de + Z, de + Z, (size_t)Z);
    for (int k = 0; k < Z; k++) de[Z + k] *= ws->d_lv[(size_t)n * Z + k];
  }
  m->vae->encode_backward(m, ws->vae, x, N, ws->d_eo, grad);
}

/* out (n, D) = the decoder's mean of the n frames in ws->xm. */
static void mean_of_xm(const gtmsm_model *m, gtmsm_ws *ws, int n, float *out) {
  int D = gtmsm_config_D(&m->cfg);
  if (m->cfg.decoder == GTMSM_DEC_BERNOULLI)
    act_forward(out, ws->xm, (size_t)n * D, ACT_SIGMOID, 0);
  else
    memcpy(out, ws->xm, (size_t)n * D * sizeof(float));
}

void gtmsm_decode_mean_first(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, int n, float *out) {
  if (m->vae->decode_first)
    m->vae->decode_first(m, ws->vae, z, N, n, ws->xm);
  else
    m->vae->decode(m, ws->vae, z, N, ws->xm);
  mean_of_xm(m, ws, n, out);
}

size_t gtmsm_decode_head_floats(const gtmsm_model *m) {
  return m->vae->head_floats ? m->vae->head_floats(&m->cfg) : 0;
}

void gtmsm_decode_head(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, float *h) {
  m->vae->decode_head(m, ws->vae, z, N, h);
}

void gtmsm_decode_mean_tail(const gtmsm_model *m, gtmsm_ws *ws, const float *h, int n, float *out) {
  m->vae->decode_tail(m, ws->vae, h, n, ws->xm);
  mean_of_xm(m, ws, n, out);
}

void gtmsm_decode_mean(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, float *out) {
  gtmsm_decode_mean_first(m, ws, z, N, N, out);
}

/* ---- the loss of one sequence ---------------------------------------------- */

int gtmsm_seq_loss(const gtmsm_model *m, gtmsm_ws *ws, const gtmsm_seq_spec *spec,
                   const float *frames, const int *actions, const float *eps_z,
                   const float *eps_s, float *grad, gtmsm_seq_stats *stats) {
  const gtmsm_config *c = &m->cfg;
  const int N = spec->N, T = spec->T, D = gtmsm_config_D(c), Z = c->Z, S = c->S,
            KS = gtmsm_key_size(c);
  memset(stats, 0, sizeof *stats);
  if (T < 2 || N <= T || N > ws->N_max || (grad && !ws->train)) return GTMSM_EINVAL;
  /* the learned prior's input has a fixed number of neighbours */
  const int Kc = m->prior == &gtmsm_prior_mlp ? c->K : spec->K > 0 ? spec->K : c->K;
  const int K = Kc < T - 1 ? Kc : T - 1;
  if (K > GTMSM_MAX_K || (m->prior == &gtmsm_prior_mlp && K != c->K)) return GTMSM_EINVAL;
  const float delta = spec->delta > 0 ? spec->delta : c->delta;
  const float beta = spec->kl_weight;
  /* Rows r0..N-1 carry loss terms: all of them with the auxiliary term. */
  const int r0 = spec->aux > 0 ? 0 : T, R = N - r0;

  /* 1. encoder over every frame (memory values need all of them) */
  gtmsm_encode(m, ws, frames, N, ws->mu, ws->lv);
  /* 2. reparameterised latents of the loss rows: z = mu + exp(lv / 2) eps */
  {
    size_t i0 = (size_t)r0 * Z, nz = (size_t)(N - r0) * Z;
    for (size_t i = i0; i < i0 + nz; i++) ws->z[i] = 0.5f * ws->lv[i];
    vm_exp(ws->z + i0, ws->z + i0, nz);
    for (size_t i = i0; i < i0 + nz; i++) ws->z[i] = ws->mu[i] + ws->z[i] * eps_z[i];
  }
  /* 3. states: s_0 = 0, then samples of q(s_t) (from the actions: the
   * transition with its noise; with landmarks: moved toward the states of
   * earlier steps whose frames match this one) */
  const gtmsm_infer_in iin = {.N = N, .T = T, .actions = actions, .mu_z = ws->mu, .eps_s = eps_s};
  const int landmarks = m->infer != &gtmsm_infer_actions_part;
  m->infer->forward(m, ws->infer, ws->trans, &iin, ws->s, ws->h, ws->kl_s);
  /* 4. decoder and reconstruction term on the loss rows */
  const float *zr = ws->z + (size_t)r0 * Z, *xr = frames + (size_t)r0 * D;
  const float *dec_logvar = gtmsm_vae_dec_logvar(m, m->p.data);
  m->vae->decode(m, ws->vae, zr, R, ws->xm);
  if (c->decoder == GTMSM_DEC_GAUSS) {
    for (int r = 0; r < R; r++) memcpy(ws->lvtile + (size_t)r * D, dec_logvar, (size_t)D * sizeof(float));
    gauss_logpdf_forward(ws->recon, xr, ws->xm, ws->lvtile, 0, R, D);
  } else {
    bernoulli_logpmf_forward(ws->recon, xr, ws->xm, R, D);
  }
  /* 5. keys, retrieval (memory = memorized steps 0..T-1) and the prior */
  m->keymap->forward(m, ws->s, N, ws->keys);
  for (int r = 0; r < R; r++) {
    int t = r0 + r;
    ws->q_row[r] = t;
    gtmsm_knn_brute(ws->keys, T, KS, ws->keys + (size_t)t * KS, K, t < T ? t : -1, ws->idx + (size_t)r * K,
                    ws->d2 + (size_t)r * K);
  }
  gtmsm_prior_in pin = {.R = R, .K = K, .Z = Z, .S = S, .idx = ws->idx, .d2 = ws->d2, .mem_mu = ws->mu,
                        .mem_lv = ws->lv, .mem_s = ws->s, .s = ws->s + (size_t)r0 * S,
                        .mu = ws->mu + (size_t)r0 * Z, .lv = ws->lv + (size_t)r0 * Z, .z = zr};
  if (m->prior->forward(m, ws->prior, &pin, delta, ws->kl)) return GTMSM_EINVAL;
  /* 6. sum up; rowc = d loss / d (row term) */
  double loss = 0;
  for (int r = 0; r < R; r++) {
    int t = r0 + r;
    double kl = ws->kl[r];
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
      float mean[256];
      for (int d0 = 0; d0 < D; d0 += 256) {
        int n = D - d0 < 256 ? D - d0 : 256;
        const float *xm = ws->xm + (size_t)r * D + d0;
        if (c->decoder == GTMSM_DEC_BERNOULLI) vm_sigmoid(mean, xm, (size_t)n);
        else memcpy(mean, xm, (size_t)n * sizeof(float));
        for (int j = 0; j < n; j++) {
          float e = mean[j] - frames[(size_t)t * D + d0 + j];
          se += (double)e * e;
        }
      }
      stats->mse_pred += se / D / (N - T);
    }
  }
  /* 7. no-move terms over consecutive steps, c_t ||s_t - s_{t-1}||^2 / (N - T):
   * an unchanged view means no move (still-frame term, c_t = still w_t); with
   * landmarks, a move the agent felt fail too (c_t += disp_weight: the felt
   * displacement is a target for the inferred state, not for the wall gate,
   * whose chance of a move going through then stays the walls' alone) */
  const int regress_state = landmarks && spec->moved && spec->disp_weight > 0;
  if (spec->still > 0 || regress_state) {
    for (int t = 1; t < N; t++) {
      float w = 0, felt = regress_state && spec->moved[t] == 0 ? (float)spec->disp_weight : 0.0f;
      if (spec->still > 0) {
        double mse = 0;
        const float *a = frames + (size_t)t * D, *b = a - D;
        for (int d = 0; d < D; d++) mse += (double)(a[d] - b[d]) * (a[d] - b[d]);
        w = vm_expf(-(float)(mse / D) / STILL_TAU);
        if (w < 1e-6f) w = 0;
      }
      ws->still_w[t] = spec->still * w + felt;
      if (ws->still_w[t] == 0) continue;
      double d2 = 0;
      for (int k = 0; k < S; k++) {
        double r = (double)ws->s[(size_t)t * S + k] - ws->s[(size_t)(t - 1) * S + k];
        d2 += r * r;
      }
      stats->still += w * d2;
      if (felt > 0) stats->displacement += d2;
      loss += ws->still_w[t] * d2 / (N - T);
    }
  }
  /* 8. the state posterior's KL, weighted as the step's other terms */
  if (landmarks)
    for (int t = 1; t < N; t++) {
      float wt = (t < T ? spec->aux : 1.0f) / (float)(N - T);
      stats->kl_s += ws->kl_s[t];
      loss += (double)beta * wt * ws->kl_s[t];
    }
  /* 9. displacement regression: the transition's own state against what the agent felt */
  const int H = m->trans->hidden_size(c);
  const int regress = spec->displacement && spec->disp_weight > 0 && H > 0;
  if (regress)
    for (int t = 1; t < N; t++)
      for (int k = 0; k < H; k++) {
        double r = (double)ws->h[(size_t)t * H + k] - spec->displacement[(size_t)t * H + k];
        stats->displacement += r * r;
        loss += spec->disp_weight * r * r / (N - T);
      }
  /* ... or the wall gate against whether the move succeeded (image navigation) */
  const int regress_gate = !landmarks && spec->moved && spec->disp_weight > 0 && m->trans->gate;
  if (regress_gate)
    for (int t = 1; t < N; t++) {
      if (spec->moved[t] < 0) continue;
      double r = (double)m->trans->gate(ws->trans, t) - spec->moved[t];
      stats->displacement += r * r;
      loss += spec->disp_weight * r * r / (N - T);
    }
  stats->loss = loss;
  if (!isfinite(loss)) return GTMSM_ENAN;
  if (!grad) return GTMSM_OK;

  /* ---- backward ---- */
  memset(ws->d_mu, 0, (size_t)N * Z * sizeof(float));
  memset(ws->d_lv, 0, (size_t)N * Z * sizeof(float));
  memset(ws->d_z, 0, (size_t)N * Z * sizeof(float));
  memset(ws->d_s, 0, (size_t)N * S * sizeof(float));
  memset(ws->d_h, 0, (size_t)N * H * sizeof(float));
  memset(ws->d_keys, 0, (size_t)N * KS * sizeof(float));
  /* reconstruction: d loss / d recon_r = -rowc */
  for (int r = 0; r < R; r++) ws->drow[r] = -ws->rowc[r];
  memset(ws->d_xm, 0, (size_t)R * D * sizeof(float));
  if (c->decoder == GTMSM_DEC_GAUSS) {
    memset(ws->d_lvtile, 0, (size_t)R * D * sizeof(float));
    gauss_logpdf_backward(NULL, ws->d_xm, ws->d_lvtile, ws->drow, xr, ws->xm, ws->lvtile, 0, R, D);
    float *dlogvar = gtmsm_vae_dec_logvar(m, grad);
    for (int r = 0; r < R; r++)
      for (int d = 0; d < D; d++) dlogvar[d] += ws->d_lvtile[(size_t)r * D + d];
  } else {
    bernoulli_logpmf_backward(ws->d_xm, ws->drow, xr, ws->xm, R, D);
  }
  float *dzr = ws->d_z + (size_t)r0 * Z;
  m->vae->decode_backward(m, ws->vae, zr, R, ws->d_xm, dzr, grad);
  /* prior -> latents, memory values, distances; distances -> keys -> states */
  gtmsm_prior_grad pg = {.d_mem_mu = ws->d_mu, .d_mem_lv = ws->d_lv, .d_mem_s = ws->d_s,
                         .d_s = ws->d_s + (size_t)r0 * S, .d_mu = ws->d_mu + (size_t)r0 * Z,
                         .d_lv = ws->d_lv + (size_t)r0 * Z, .d_z = dzr, .dd2 = ws->dd2};
  m->prior->backward(m, ws->prior, &pin, delta, beta, ws->rowc, &pg, grad);
  gtmsm_knn_d2_backward(ws->keys, KS, ws->q_row, ws->idx, ws->dd2, R, K, ws->d_keys);
  m->keymap->backward(m, ws->s, N, ws->d_keys, ws->d_s, grad);
  if (spec->still > 0 || regress_state)
    for (int t = 1; t < N; t++) {
      if (ws->still_w[t] == 0) continue;
      float c2 = 2.0f * ws->still_w[t] / (float)(N - T);
      for (int k = 0; k < S; k++) {
        float r = ws->s[(size_t)t * S + k] - ws->s[(size_t)(t - 1) * S + k];
        ws->d_s[(size_t)t * S + k] += c2 * r;
        ws->d_s[(size_t)(t - 1) * S + k] -= c2 * r;
      }
    }
  /* reparameterisation of the loss rows */
  for (size_t i0 = (size_t)r0 * Z; i0 < (size_t)N * Z; i0 += 256) {
    size_t n = (size_t)N * Z - i0 < 256 ? (size_t)N * Z - i0 : 256;
    float sd[256];
    for (size_t j = 0; j < n; j++) sd[j] = 0.5f * ws->lv[i0 + j];
    vm_exp(sd, sd, n);
    for (size_t j = 0; j < n; j++) {
      size_t i = i0 + j;
      ws->d_mu[i] += ws->d_z[i];
      ws->d_lv[i] += ws->d_z[i] * 0.5f * sd[j] * eps_z[i];
    }
  }
  if (regress)
    for (int t = 1; t < N; t++)
      for (int k = 0; k < H; k++) {
        float r = ws->h[(size_t)t * H + k] - spec->displacement[(size_t)t * H + k];
        ws->d_h[(size_t)t * H + k] += 2.0f * spec->disp_weight * r / (float)(N - T);
      }
  if (regress_gate) {
    for (int t = 0; t < N; t++)
      ws->dgate[t] = t == 0 || spec->moved[t] < 0
                         ? 0.0f
                         : 2.0f * spec->disp_weight * (m->trans->gate(ws->trans, t) - spec->moved[t]) / (float)(N - T);
    m->trans->gate_grad(ws->trans, N, ws->dgate);
  }
  if (landmarks) /* d loss / d KL_t of the state posterior */
    for (int t = 0; t < N; t++) ws->dkl_s[t] = t == 0 ? 0.0f : beta * (t < T ? spec->aux : 1.0f) / (float)(N - T);
  /* states -> transition (and, with landmarks, the latents of the reverse
   * query: before the encoder's backward) */
  m->infer->backward(m, ws->infer, ws->trans, &iin, ws->s, ws->d_s, H ? ws->d_h : NULL, ws->dkl_s, ws->d_mu, grad);
  encode_backward(m, ws, frames, N, grad);
  return GTMSM_OK;
}
