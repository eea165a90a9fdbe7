/* Log-densities, KL and reparameterisation. Sums are accumulated in double:
 * a frame log-likelihood sums hundreds of terms of either sign. */
#include "nn/density.h"

#include <math.h>

#include "nn/activation.h"

void gauss_logpdf_forward(float *out, const float *x, const float *mu, const float *logvar,
                          float fixed_logvar, int B, int D) {
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      float lv = logvar ? logvar[i] : fixed_logvar;
      float r = x[i] - mu[i];
      s += -0.5 * (LOG_2PI + lv + r * r * expf(-lv));
    }
    out[b] = (float)s;
  }
}

void gauss_logpdf_backward(float *dx, float *dmu, float *dlogvar, const float *dout,
                           const float *x, const float *mu, const float *logvar,
                           float fixed_logvar, int B, int D) {
  for (int b = 0; b < B; b++) {
    float g = dout[b];
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      float lv = logvar ? logvar[i] : fixed_logvar;
      float iv = expf(-lv), r = x[i] - mu[i];
      if (dx) dx[i] -= g * r * iv;
      if (dmu) dmu[i] += g * r * iv;
      if (dlogvar && logvar) dlogvar[i] += g * 0.5f * (r * r * iv - 1.0f);
    }
  }
}

void bernoulli_logpmf_forward(float *out, const float *x, const float *logits, int B, int D) {
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      s += x[i] * logits[i] - softplusf(logits[i]);
    }
    out[b] = (float)s;
  }
}

void bernoulli_logpmf_backward(float *dlogits, const float *dout, const float *x,
                               const float *logits, int B, int D) {
  if (!dlogits) return;
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      dlogits[i] += dout[b] * (x[i] - sigmoidf(logits[i]));
    }
}

void kl_gauss_forward(float *out, const float *mu1, const float *lv1, const float *mu2,
                      const float *lv2, int B, int D) {
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      float r = mu1[i] - mu2[i];
      s += 0.5 * (lv2[i] - lv1[i] + (expf(lv1[i]) + r * r) * expf(-lv2[i]) - 1.0f);
    }
    out[b] = (float)s;
  }
}

void kl_gauss_backward(float *dmu1, float *dlv1, float *dmu2, float *dlv2, const float *dout,
                       const float *mu1, const float *lv1, const float *mu2, const float *lv2,
                       int B, int D) {
  for (int b = 0; b < B; b++) {
    float g = dout[b];
    for (int d = 0; d < D; d++) {
      size_t i = (size_t)b * D + d;
      float r = mu1[i] - mu2[i], iv2 = expf(-lv2[i]), v1 = expf(lv1[i]);
      if (dmu1) dmu1[i] += g * r * iv2;
      if (dmu2) dmu2[i] -= g * r * iv2;
      if (dlv1) dlv1[i] += g * 0.5f * (v1 * iv2 - 1.0f);
      if (dlv2) dlv2[i] += g * 0.5f * (1.0f - (v1 + r * r) * iv2);
    }
  }
}

void mixture_logpdf_forward(float *out, float *scratch, const float *x, const float *mu,
                            const float *logvar, const float *w, int B, int K, int D) {
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * D;
    float *lc = scratch + (size_t)b * K;
    float mx = -INFINITY;
    for (int k = 0; k < K; k++) {
      const float *m = mu + ((size_t)b * K + k) * D, *lv = logvar + ((size_t)b * K + k) * D;
      double s = 0;
      for (int d = 0; d < D; d++) {
        float r = xb[d] - m[d];
        s += -0.5 * (LOG_2PI + lv[d] + r * r * expf(-lv[d]));
      }
      float wk = w[(size_t)b * K + k];
      lc[k] = wk > 0 ? (float)(s + log(wk)) : -INFINITY;
      if (lc[k] > mx) mx = lc[k];
    }
    double acc = 0;
    for (int k = 0; k < K; k++) acc += exp((double)lc[k] - mx);
    out[b] = (float)(mx + log(acc));
  }
}

void mixture_logpdf_backward(float *dx, float *dmu, float *dlogvar, float *dw, const float *dout,
                             const float *out, const float *scratch, const float *x,
                             const float *mu, const float *logvar, const float *w, int B, int K,
                             int D) {
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * D, *lc = scratch + (size_t)b * K;
    float g = dout[b];
    for (int k = 0; k < K; k++) {
      /* responsibility r_k = w_k N_k / p; d out / d w_k = N_k / p = exp(log N_k - out). */
      float resp = expf(lc[k] - out[b]);
      float wk = w[(size_t)b * K + k];
      if (dw) {
        const float *m = mu + ((size_t)b * K + k) * D, *lv = logvar + ((size_t)b * K + k) * D;
        if (wk > 0) {
          dw[(size_t)b * K + k] += g * resp / wk;
        } else { /* component log-density computed afresh, weight is zero */
          double s = 0;
          for (int d = 0; d < D; d++) {
            float r = xb[d] - m[d];
            s += -0.5 * (LOG_2PI + lv[d] + r * r * expf(-lv[d]));
          }
          dw[(size_t)b * K + k] += g * (float)exp(s - out[b]);
        }
      }
      if (resp == 0.0f) continue;
      size_t o = ((size_t)b * K + k) * D;
      for (int d = 0; d < D; d++) {
        float iv = expf(-logvar[o + d]), r = xb[d] - mu[o + d];
        float gr = g * resp;
        if (dx) dx[(size_t)b * D + d] -= gr * r * iv;
        if (dmu) dmu[o + d] += gr * r * iv;
        if (dlogvar) dlogvar[o + d] += gr * 0.5f * (r * r * iv - 1.0f);
      }
    }
  }
}

void reparam_forward(float *z, const float *mu, const float *logvar, const float *eps, int N) {
  for (int i = 0; i < N; i++) z[i] = mu[i] + expf(0.5f * logvar[i]) * eps[i];
}

void reparam_backward(float *dmu, float *dlogvar, const float *dz, const float *logvar,
                      const float *eps, int N) {
  for (int i = 0; i < N; i++) {
    if (dmu) dmu[i] += dz[i];
    if (dlogvar) dlogvar[i] += dz[i] * 0.5f * expf(0.5f * logvar[i]) * eps[i];
  }
}
