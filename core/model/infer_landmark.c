/* State inference with landmarks (paper appendix D): q(s_t | s_{t-1}, a_t,
 * x_t, DND). The one place of its mathematics (docs/MODEL.md says why each
 * choice). For t >= 1, with the transition's prediction mu_p = step(s_{t-1},
 * a_t) and its move m_t = mu_p - s_{t-1}:
 *   prior:     p(s_t | s_{t-1}, a_t) = (1 - pi) N(mu_p, v I) + pi N(s_{t-1}, v I),
 *              v = e^lv learned (how far the transition's predictions stray
 *              from where the frames put the agent), pi = sigmoid(f): the move goes through as
 *              the transition predicts, or fails (the agent stays) with a
 *              chance the transition cannot see (obstacles that change
 *              between episodes, a slippery floor)
 *   reverse query: the F <= landmark_k memory entries j nearest to the
 *     frame's encoder mean mu_z,t in latent space, d2_j = |mu_z,t - mu_z,j|^2,
 *     their states s_j (training: steps j < min(t, T); serving: every
 *     earlier observation);
 *   gains:     x_j = log(d2_j + LM_EPS),  o_j = w2 . tanh(w1 x_j + b1) + b2,
 *              kappa_j = exp(o_j) / (1 + sum_i exp(o_i))   (in (0, 1), sum < 1)
 *   mean:      mu_q = mu_p + r,  r = sum_j kappa_j (s_j - mu_p)
 *   variance:  v_q = sigma_0^2 e^delta,  delta = LM_LV tanh((vw sum_j kappa_j + vb) / LM_LV),
 *              sigma_0 = trans_std (the sampling noise, as from actions alone)
 *   sample:    s_t = mu_q + sqrt(v_q) eps_t
 *   KL:        the variational bound on KL(q || mixture) (Hershey & Olsen 2007; by
 *              Jensen an upper bound, so the ELBO stays a bound):
 *              KL = -log sum_c pi_c exp(-KL_c),  KL_c = 1/2 [ S (u - 1 - log u) + |mu_q - m_c|^2 / v ],
 *              u = v_q / v, m_go = mu_p (pi_go = 1 - pi), m_fail = s_{t-1} (pi_fail = pi):
 *              a corrected failed move costs -log pi, not |m_t|^2 / v
 * s_0 = 0 (the origin, as from actions). The gains depend on the latents
 * only, so s_t is linear in mu_p and the earlier states: the backward runs
 * t = N-1..1, each step passing d mu_p through the transition's step
 * backward, kappa_j d s_t to the retrieved s_j, and the failure component's
 * to mu_p and s_{t-1}. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "model/gtmsm_internal.h"
#include "nn/vecmath.h"

#define LM_EPS 1e-2f /* x_j = log(d2_j + LM_EPS): an identical frame (d2 = 0) is x = -4.6 */
#define LM_LV 4.0f   /* the variance network moves the log-variance by at most +-4 */
#define LM_MAX_HIDDEN 256
#define LM_STEP_D2 0.02f /* the gains start open below this distance: the same or a near-identical frame */
enum { W1, B1, W2, B2, VW, VB, FAIL, LOGV, NT };

static int lm_specs(const gtmsm_config *c, param_spec *out) {
  const size_t Hl = (size_t)c->landmark_hidden;
  param_spec s[NT] = {
      {"lm.w1", Hl, 1, 0},  {"lm.b1", Hl, 1, 0},        /* hidden units spread over x in about +-1 */
      /* far frames' gains start near 0.02 (lm_init opens the identical ones) */
      {"lm.w2", Hl, (int)Hl, 0}, {"lm.b2", 1, -1, -4.0f},
      /* q's std starts at a fifth of trans_std (delta = 4 tanh(-1) = -3.05): the sampled rollout
       * is nearly deterministic */
      {"lm.vw", 1, 0, 0},   {"lm.vb", 1, -1, -4.0f},
      {"lm.fail", 1, -1, -2.2f}, /* pi = sigmoid(-2.2) = 0.1: one move in ten may fail unseen */
      /* the prior's std starts at 0.05 state units (a 2-D model's cell is 1-3 units): its
       * Adam steps move lv by about the learning rate, so a start at trans_std (1e-3) would
       * charge every small inconsistency hundreds of nats for thousands of updates */
      {"lm.lv", 1, -1, -6.0f},
  };
  memcpy(out, s, sizeof s);
  return NT;
}

#define P(i) gtmsm_tensor(m, GTMSM_ROLE_INFER, (i), m->p.data)

/* After the spec init: the first hidden unit a step from +1 (d2 below
 * LM_STEP_D2) to -1 (above), weighted so that the logit is b2 + 12 = +8 for
 * an identical frame (kappa 0.9997: a gain short of 1 leaves a residual that
 * the sharp prior charges |e|^2 / 2 sigma_0^2 at every later step) and about
 * -16 far away. Whatever the encoder, an
 * identical frame is at d2 = 0: seeing again exactly what was seen is the one
 * landmark that needs no learned latents, and the gains must start open on it
 * (a correction's KL rises before it falls, so closed gains stay closed). */
static void lm_init(gtmsm_model *m, uint64_t seed) {
  (void)seed;
  float *w1 = gtmsm_tensor(m, GTMSM_ROLE_INFER, W1, m->p.data), *b1 = gtmsm_tensor(m, GTMSM_ROLE_INFER, B1, m->p.data),
        *w2 = gtmsm_tensor(m, GTMSM_ROLE_INFER, W2, m->p.data);
  w1[0] = -4.0f;
  b1[0] = 4.0f * logf(LM_STEP_D2 + LM_EPS);
  w2[0] = 12.0f;
}

static float lm_sigmoid(float x) { return 1.0f / (1.0f + vm_expf(-x)); }

/* The mixture prior's KL bound at step t (in double: the components' terms
 * are |e|^2 / v, large for a small v): r = mu_q - mu_p, mv = mu_p - s_{t-1},
 * u = v_q / v. Returns the KL; *w_fail the failure component's
 * responsibility, *e2w = sum_c w_c |e_c|^2. */
static double lm_kl(int S, const float *r, const float *mv, double u, float v, float pf, float *w_fail, float *e2w) {
  double e_go = 0, e_fail = 0;
  for (int k = 0; k < S; k++) {
    e_go += (double)r[k] * r[k];
    e_fail += ((double)r[k] + mv[k]) * ((double)r[k] + mv[k]);
  }
  const double E_go = 0.5 * e_go / v - log1p(-(double)pf), E_fail = 0.5 * e_fail / v - log((double)pf);
  const double lo = E_go < E_fail ? E_go : E_fail, wf = exp(lo - E_fail), wg = exp(lo - E_go);
  const double w = wf / (wf + wg);
  *w_fail = (float)w;
  *e2w = (float)((1.0 - w) * e_go + w * e_fail);
  return 0.5 * S * (u - 1.0 - log(u)) + lo - log(wf + wg);
}

/* Gains kappa (F) of F entries at squared distances d2 (F); keeps x (F) and
 * the hidden activations a (F, Hl). Returns sum_j kappa_j. */
static float lm_gains(const gtmsm_model *m, const float *d2, int F, float *x, float *a, float *kappa) {
  const int Hl = m->cfg.landmark_hidden;
  const float *w1 = P(W1), *b1 = P(B1), *w2 = P(W2), b2 = P(B2)[0];
  float o[GTMSM_MAX_LANDMARK_K], mx = 0; /* the null option's logit is 0 */
  for (int j = 0; j < F; j++) {
    x[j] = (float)log((double)d2[j] + LM_EPS); /* in double, then rounded: the same float on any libm variant */
    float acc = b2, *aj = a + (size_t)j * Hl;
    for (int i = 0; i < Hl; i++) {
      aj[i] = vm_tanhf(w1[i] * x[j] + b1[i]);
      acc += w2[i] * aj[i];
    }
    o[j] = acc;
    if (acc > mx) mx = acc;
  }
  float den = vm_expf(-mx), sum = 0;
  for (int j = 0; j < F; j++) den += (kappa[j] = vm_expf(o[j] - mx));
  for (int j = 0; j < F; j++) sum += (kappa[j] /= den);
  return sum;
}

/* r (S) = sum_j kappa_j (s_j - mu_p), s_j (S) each. */
static void lm_pull(int S, const float *mu_p, int F, const float *kappa, const float *const *sj, float *r) {
  for (int k = 0; k < S; k++) r[k] = 0;
  for (int j = 0; j < F; j++)
    for (int k = 0; k < S; k++) r[k] += kappa[j] * (sj[j][k] - mu_p[k]);
}

typedef struct {
  int N, K, Hl;
  float *mu_p, *r;          /* (N, S) */
  int *idx, *found;         /* (N, K), (N) */
  float *d2, *x, *kappa;    /* (N, K) */
  float *a;                 /* (N, K, Hl) */
  float *ksum, *th, *delta; /* (N) */
  float *w_fail, *e2w;      /* (N) responsibility of the prior's failure component, sum_c w_c |e_c|^2 */
} lm_ws;

static void lm_ws_free(void *p) {
  lm_ws *ws = p;
  if (!ws) return;
  float *all[] = {ws->mu_p, ws->r, ws->d2, ws->x, ws->kappa, ws->a, ws->ksum, ws->th, ws->delta, ws->w_fail, ws->e2w};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(ws->idx);
  free(ws->found);
  free(ws);
}

static void *lm_ws_new(const gtmsm_config *c, int N) {
  lm_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  ws->N = N;
  ws->K = c->landmark_k;
  ws->Hl = c->landmark_hidden;
  size_t n = (size_t)N, S = (size_t)c->S, K = (size_t)ws->K, Hl = (size_t)ws->Hl;
  struct {
    float **p;
    size_t n;
  } bufs[] = {{&ws->mu_p, n * S}, {&ws->r, n * S},      {&ws->d2, n * K},   {&ws->x, n * K},
              {&ws->kappa, n * K}, {&ws->a, n * K * Hl}, {&ws->ksum, n},     {&ws->th, n},
              {&ws->delta, n},   {&ws->w_fail, n},
              {&ws->e2w, n}};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (!(*bufs[i].p = calloc(bufs[i].n ? bufs[i].n : 1, sizeof(float)))) goto fail;
  ws->idx = calloc(n * K + 1, sizeof(int));
  ws->found = calloc(n + 1, sizeof(int));
  if (!ws->idx || !ws->found) goto fail;
  return ws;
fail:
  lm_ws_free(ws);
  return NULL;
}

static void lm_forward(const gtmsm_model *m, void *p, void *trans_ws, const gtmsm_infer_in *in, float *s, float *h,
                       double *kl) {
  lm_ws *ws = p;
  const int S = m->cfg.S, Z = m->cfg.Z, K = ws->K, Hl = ws->Hl, N = in->N;
  const int H = m->trans->hidden_size(&m->cfg);
  const float sp = m->cfg.trans_std, vw = P(VW)[0], vb = P(VB)[0], pf = lm_sigmoid(P(FAIL)[0]);
  const float v = vm_expf(P(LOGV)[0]);
  memset(s, 0, (size_t)S * sizeof(float));
  if (h && H) memset(h, 0, (size_t)H * sizeof(float));
  kl[0] = 0;
  for (int t = 1; t < N; t++) {
    float *st = s + (size_t)t * S, *mu_p = ws->mu_p + (size_t)t * S, *r = ws->r + (size_t)t * S;
    int *idx = ws->idx + (size_t)t * K;
    float *d2 = ws->d2 + (size_t)t * K, *kappa = ws->kappa + (size_t)t * K;
    m->trans->step(m, st - S, h && H ? h + (size_t)(t - 1) * H : NULL, in->actions[t], mu_p,
                   h && H ? h + (size_t)t * H : NULL, trans_ws, t);
    const int n = t < in->T ? t : in->T;
    const int F = gtmsm_knn_brute(in->mu_z, n, Z, in->mu_z + (size_t)t * Z, K, -1, idx, d2);
    ws->found[t] = F;
    const float ksum = lm_gains(m, d2, F, ws->x + (size_t)t * K, ws->a + (size_t)t * K * Hl, kappa);
    const float *sj[GTMSM_MAX_LANDMARK_K];
    for (int j = 0; j < F; j++) sj[j] = s + (size_t)idx[j] * S;
    lm_pull(S, mu_p, F, kappa, sj, r);
    const float th = vm_tanhf((vw * ksum + vb) / LM_LV), delta = LM_LV * th, sd = sp * vm_expf(0.5f * delta);
    const float *sprev = st - S;
    float mv[GTMSM_MAX_S];
    for (int k = 0; k < S; k++) mv[k] = mu_p[k] - sprev[k];
    ws->ksum[t] = ksum;
    ws->th[t] = th;
    ws->delta[t] = delta;
    kl[t] = lm_kl(S, r, mv, (double)sd * sd / v, v, pf, &ws->w_fail[t], &ws->e2w[t]);
    for (int k = 0; k < S; k++) st[k] = mu_p[k] + r[k] + sd * in->eps_s[(size_t)t * S + k];
  }
}

static void lm_backward(const gtmsm_model *m, void *p, void *trans_ws, const gtmsm_infer_in *in, const float *s,
                        float *ds, float *dh, const float *dkl, float *d_mu_z, float *grad) {
  (void)dh; /* landmark inference runs on transitions without their own state (config check) */
  lm_ws *ws = p;
  const int S = m->cfg.S, Z = m->cfg.Z, K = ws->K, Hl = ws->Hl, N = in->N;
  const float sp = m->cfg.trans_std, vw = P(VW)[0], pf = lm_sigmoid(P(FAIL)[0]), v = vm_expf(P(LOGV)[0]);
  const float *w1 = P(W1), *w2 = P(W2);
  float *dw1 = gtmsm_tensor(m, GTMSM_ROLE_INFER, W1, grad), *db1 = gtmsm_tensor(m, GTMSM_ROLE_INFER, B1, grad),
        *dw2 = gtmsm_tensor(m, GTMSM_ROLE_INFER, W2, grad), *db2 = gtmsm_tensor(m, GTMSM_ROLE_INFER, B2, grad),
        *dvw = gtmsm_tensor(m, GTMSM_ROLE_INFER, VW, grad), *dvb = gtmsm_tensor(m, GTMSM_ROLE_INFER, VB, grad),
        *dfail = gtmsm_tensor(m, GTMSM_ROLE_INFER, FAIL, grad), *dlv = gtmsm_tensor(m, GTMSM_ROLE_INFER, LOGV, grad);
  for (int t = N - 1; t >= 1; t--) {
    const float *dst = ds + (size_t)t * S, *mu_p = ws->mu_p + (size_t)t * S, *r = ws->r + (size_t)t * S;
    const float *eps = in->eps_s + (size_t)t * S, *kappa = ws->kappa + (size_t)t * K, *d2 = ws->d2 + (size_t)t * K;
    const float *x = ws->x + (size_t)t * K, *a = ws->a + (size_t)t * K * Hl, *sprev = s + (size_t)(t - 1) * S;
    const int *idx = ws->idx + (size_t)t * K, F = ws->found[t];
    const float delta = ws->delta[t], sd = sp * vm_expf(0.5f * delta), ksum = ws->ksum[t], wf = ws->w_fail[t];
    const float iv = 1.0f / v, u = sd * sd * iv;
    /* s_t = mu_p + r + sd eps, and the KL: d/dr = (r + w_fail mv) / v,
     * d/dmv = w_fail (r + mv) / v, d/ddelta = S (u - 1) / 2, d/df = pi - w_fail,
     * d/dlv = S (1 - u) / 2 - sum_c w_c |e_c|^2 / 2v */
    float dr[GTMSM_MAX_S], dmu_p[GTMSM_MAX_S], dkappa[GTMSM_MAX_LANDMARK_K];
    float ddelta = 0.5f * dkl[t] * (float)S * (u - 1.0f);
    dlv[0] += dkl[t] * (0.5f * (float)S * (1.0f - u) - 0.5f * ws->e2w[t] * iv);
    for (int k = 0; k < S; k++) {
      const float mv = mu_p[k] - sprev[k], dmv = dkl[t] * wf * (r[k] + mv) * iv;
      dr[k] = dst[k] + dkl[t] * (r[k] + wf * mv) * iv;
      ddelta += dst[k] * 0.5f * sd * eps[k];
      dmu_p[k] = dst[k] - ksum * dr[k] + dmv;
      ds[(size_t)(t - 1) * S + k] -= dmv;
    }
    dfail[0] += dkl[t] * (pf - wf);
    /* r = sum_j kappa_j (s_j - mu_p) */
    for (int j = 0; j < F; j++) {
      const float *sj = s + (size_t)idx[j] * S;
      float *dsj = ds + (size_t)idx[j] * S, acc = 0;
      for (int k = 0; k < S; k++) {
        acc += dr[k] * (sj[k] - mu_p[k]);
        dsj[k] += kappa[j] * dr[k];
      }
      dkappa[j] = acc;
    }
    /* delta = LM_LV tanh((vw ksum + vb) / LM_LV) */
    const float dv = ddelta * (1.0f - ws->th[t] * ws->th[t]);
    dvw[0] += dv * ksum;
    dvb[0] += dv;
    float kdk = 0;
    for (int j = 0; j < F; j++) kdk += kappa[j] * (dkappa[j] += dv * vw);
    /* kappa = softmax over (0, o_1..o_F), the null option dropped */
    const float *mt = in->mu_z + (size_t)t * Z;
    for (int j = 0; j < F; j++) {
      const float dout = kappa[j] * (dkappa[j] - kdk);
      const float *aj = a + (size_t)j * Hl;
      float dx = 0;
      db2[0] += dout;
      for (int i = 0; i < Hl; i++) {
        float dpre = dout * w2[i] * (1.0f - aj[i] * aj[i]);
        dw2[i] += dout * aj[i];
        dw1[i] += dpre * x[j];
        db1[i] += dpre;
        dx += dpre * w1[i];
      }
      /* x = log(d2 + eps), d2 = |mu_z,t - mu_z,j|^2 */
      const float g = 2.0f * dx / (d2[j] + LM_EPS);
      const float *mj = in->mu_z + (size_t)idx[j] * Z;
      for (int k = 0; k < Z; k++) {
        float diff = mt[k] - mj[k];
        d_mu_z[(size_t)t * Z + k] += g * diff;
        d_mu_z[(size_t)idx[j] * Z + k] -= g * diff;
      }
    }
    m->trans->step_backward(m, trans_ws, t, in->actions[t], dmu_p, ds + (size_t)(t - 1) * S, grad);
  }
  m->trans->backward_finish(m, trans_ws, N, grad);
}

static int lm_observe(const gtmsm_model *m, const float *s_prev, const float *h_prev, int a, const float *mu_z,
                      const dnd *rev, float *s, float *h, float *mu_p_out) {
  const int S = m->cfg.S, K = m->cfg.landmark_k;
  float mu_p[GTMSM_MAX_S];
  m->trans->step(m, s_prev, h_prev, a, mu_p, h, NULL, 0);
  memcpy(s, mu_p, sizeof(float) * (size_t)S);
  if (mu_p_out) memcpy(mu_p_out, mu_p, sizeof(float) * (size_t)S);
  if (!rev || dnd_size(rev) == 0) return GTMSM_OK;
  int idx[GTMSM_MAX_LANDMARK_K];
  float d2[GTMSM_MAX_LANDMARK_K], x[GTMSM_MAX_LANDMARK_K], kappa[GTMSM_MAX_LANDMARK_K], r[GTMSM_MAX_S];
  float act[GTMSM_MAX_LANDMARK_K * LM_MAX_HIDDEN];
  const int F = dnd_query(rev, mu_z, K, idx, d2);
  if (F < 0) return F;
  lm_gains(m, d2, F, x, act, kappa);
  const float *sj[GTMSM_MAX_LANDMARK_K];
  for (int j = 0; j < F; j++) sj[j] = dnd_value(rev, (size_t)idx[j]);
  lm_pull(S, mu_p, F, kappa, sj, r);
  for (int k = 0; k < S; k++) s[k] = mu_p[k] + r[k];
  return GTMSM_OK;
}

const struct gtmsm_infer_ops gtmsm_infer_landmark = {"landmark", lm_specs, lm_init, lm_ws_new, lm_ws_free,
                                                     lm_forward, lm_backward, lm_observe};
