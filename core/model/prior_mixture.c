/* The inverse-distance mixture prior of 2-D navigation (paper section 3):
 *   p(z_t | s_t, DND) = sum_j w_j N(z_t; mu_j, diag exp(lv_j)),
 *   w_j = (1 / (d_j^2 + delta)) / sum_i (1 / (d_i^2 + delta)),
 * over the K retrieved entries. The KL has no closed form: it is estimated at
 * the reparameterised sample, with the entropy of q in closed form:
 *   kl_t = -H[q(z_t | x_t)] - log p(z_t | s_t, DND). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm_internal.h"
#include "nn/density.h"
#include "nn/vecmath.h"

#define LOG_2PIE 2.8378770664093453f

void gtmsm_mixture_weights(const float *d2, int k, float delta, float *w) {
  double sum = 0;
  for (int i = 0; i < k; i++) sum += 1.0 / ((double)d2[i] + delta);
  for (int i = 0; i < k; i++) w[i] = (float)(1.0 / ((double)d2[i] + delta) / sum);
}

/* w_j = v_j / sum v, v_j = 1 / (d2_j + delta) */
void gtmsm_mixture_weights_backward(const float *d2, const float *w, const float *dw, int k, float delta,
                                    float *dd2) {
  double vsum = 0, wdw = 0;
  for (int j = 0; j < k; j++) {
    vsum += 1.0 / ((double)d2[j] + delta);
    wdw += (double)w[j] * dw[j];
  }
  for (int j = 0; j < k; j++) {
    double v = 1.0 / ((double)d2[j] + delta);
    double dv = (dw[j] - wdw) / vsum;
    dd2[j] = (float)(-dv * v * v);
  }
}

static int mix_specs(const gtmsm_config *c, param_spec *out) {
  (void)c;
  (void)out;
  return 0;
}

static int mix_value_extra(const gtmsm_config *c) {
  (void)c;
  return 0;
}

typedef struct {
  float *w;                /* (R, K) mixture weights */
  float *mix_mu, *mix_lv;  /* (R, K, Z) gathered components */
  float *scratch, *logp;   /* (R, K), (R) */
  float *dlogp, *d_w, *d_mixmu, *d_mixlv; /* gradients (training) */
} mix_ws;

static void mix_ws_free(void *p) {
  mix_ws *ws = p;
  if (!ws) return;
  float *all[] = {ws->w, ws->mix_mu, ws->mix_lv, ws->scratch, ws->logp, ws->dlogp, ws->d_w, ws->d_mixmu,
                  ws->d_mixlv};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(ws);
}

/* Buffers hold GTMSM_MAX_K neighbours: a curriculum may retrieve more than K. */
static void *mix_ws_new(const gtmsm_config *c, int R, int train) {
  mix_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  size_t n = (size_t)R, K = GTMSM_MAX_K, Z = (size_t)c->Z;
  struct {
    float **p;
    size_t n;
  } bufs[] = {{&ws->w, n * K},       {&ws->mix_mu, n * K * Z}, {&ws->mix_lv, n * K * Z},
              {&ws->scratch, n * K}, {&ws->logp, n},           {&ws->dlogp, n},
              {&ws->d_w, n * K},     {&ws->d_mixmu, n * K * Z}, {&ws->d_mixlv, n * K * Z}};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
    if (!train && bufs[i].p == &ws->dlogp) break;
    if (!(*bufs[i].p = calloc(bufs[i].n ? bufs[i].n : 1, sizeof(float)))) {
      mix_ws_free(ws);
      return NULL;
    }
  }
  return ws;
}

static int mix_forward(const gtmsm_model *m, void *p, const gtmsm_prior_in *in, float delta, double *kl) {
  (void)m;
  mix_ws *ws = p;
  const int R = in->R, K = in->K, Z = in->Z;
  for (int r = 0; r < R; r++) {
    const int *idx = in->idx + (size_t)r * K;
    gtmsm_mixture_weights(in->d2 + (size_t)r * K, K, delta, ws->w + (size_t)r * K);
    for (int j = 0; j < K; j++) {
      memcpy(ws->mix_mu + ((size_t)r * K + j) * Z, in->mem_mu + (size_t)idx[j] * Z, (size_t)Z * sizeof(float));
      memcpy(ws->mix_lv + ((size_t)r * K + j) * Z, in->mem_lv + (size_t)idx[j] * Z, (size_t)Z * sizeof(float));
    }
  }
  mixture_logpdf_forward(ws->logp, ws->scratch, in->z, ws->mix_mu, ws->mix_lv, ws->w, R, K, Z);
  for (int r = 0; r < R; r++) {
    double neg_entropy = 0;
    for (int k = 0; k < Z; k++) neg_entropy += -0.5 * (LOG_2PIE + in->lv[(size_t)r * Z + k]);
    kl[r] = neg_entropy - ws->logp[r];
  }
  return 0;
}

static void mix_backward(const gtmsm_model *m, void *p, const gtmsm_prior_in *in, float delta, float beta,
                         const float *rowc, const gtmsm_prior_grad *g, float *grad) {
  (void)m;
  (void)grad;
  mix_ws *ws = p;
  const int R = in->R, K = in->K, Z = in->Z;
  /* KL: d loss / d logp_r = -beta rowc; d loss / d lv (entropy) = -0.5 beta rowc */
  for (int r = 0; r < R; r++) {
    ws->dlogp[r] = -beta * rowc[r];
    for (int k = 0; k < Z; k++) g->d_lv[(size_t)r * Z + k] += -0.5f * beta * rowc[r];
  }
  memset(ws->d_w, 0, (size_t)R * K * sizeof(float));
  memset(ws->d_mixmu, 0, (size_t)R * K * Z * sizeof(float));
  memset(ws->d_mixlv, 0, (size_t)R * K * Z * sizeof(float));
  mixture_logpdf_backward(g->d_z, ws->d_mixmu, ws->d_mixlv, ws->d_w, ws->dlogp, ws->logp, ws->scratch,
                          in->z, ws->mix_mu, ws->mix_lv, ws->w, R, K, Z);
  for (int r = 0; r < R; r++) {
    const int *idx = in->idx + (size_t)r * K;
    /* memory values: scatter back to the encoder outputs of the retrieved steps */
    for (int j = 0; j < K; j++)
      for (int k = 0; k < Z; k++) {
        g->d_mem_mu[(size_t)idx[j] * Z + k] += ws->d_mixmu[((size_t)r * K + j) * Z + k];
        g->d_mem_lv[(size_t)idx[j] * Z + k] += ws->d_mixlv[((size_t)r * K + j) * Z + k];
      }
    gtmsm_mixture_weights_backward(in->d2 + (size_t)r * K, ws->w + (size_t)r * K, ws->d_w + (size_t)r * K, K,
                                   delta, g->dd2 + (size_t)r * K);
  }
}

static void mix_predict(const gtmsm_model *m, void *ws, const float *s, const float *d2,
                        const float *const *values, int found, int sample, rng_t *r, float *z) {
  (void)ws;
  (void)s;
  const int Z = m->cfg.Z;
  float w[GTMSM_MAX_K];
  gtmsm_mixture_weights(d2, found, m->cfg.delta, w);
  if (!sample) {
    for (int k = 0; k < Z; k++) z[k] = 0;
    for (int j = 0; j < found; j++)
      for (int k = 0; k < Z; k++) z[k] += w[j] * values[j][k];
    return;
  }
  float u = rng_uniform(r), c = 0;
  int j = 0;
  for (; j < found - 1; j++) {
    c += w[j];
    if (u < c) break;
  }
  const float *v = values[j];
  for (int k = 0; k < Z; k++) z[k] = v[k] + vm_expf(0.5f * v[Z + k]) * rng_normal(r);
}

const struct gtmsm_prior_ops gtmsm_prior_mixture = {"mixture", mix_specs, mix_value_extra, mix_ws_new,
                                                    mix_ws_free, mix_forward, mix_backward, mix_predict};
