/* Log-densities, KL and reparameterisation. Sums are accumulated in double:
 * a frame log-likelihood sums hundreds of terms of either sign. The float
 * exponentials, softplus and sigmoid run on the vector kernels of nn/vecmath,
 * CHUNK elements at a time into stack buffers; the sums keep their order. */
#include "nn/density.h"

#include <math.h>

#include "nn/vecmath.h"

#define CHUNK 256

/* out (n) = e^(scale x), n <= CHUNK; scale x rounded as the scalar code did */
static void exp_scaled(float *out, const float *x, float scale, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = scale * x[i];
  vm_exp(out, out, n);
}

void gauss_logpdf_forward(float *out, const float *x, const float *mu, const float *logvar,
                          float fixed_logvar, int B, int D) {
  float iv[CHUNK];
  const float fixed_iv = vm_expf(-fixed_logvar);
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (int d0 = 0; d0 < D; d0 += CHUNK) {
      int n = D - d0 < CHUNK ? D - d0 : CHUNK;
      if (logvar) exp_scaled(iv, logvar + (size_t)b * D + d0, -1.0f, (size_t)n);
      for (int j = 0; j < n; j++) {
        size_t i = (size_t)b * D + d0 + j;
        float lv = logvar ? logvar[i] : fixed_logvar;
        float r = x[i] - mu[i];
        s += -0.5 * (LOG_2PI + lv + r * r * (logvar ? iv[j] : fixed_iv));
      }
    }
    out[b] = (float)s;
  }
}

void gauss_logpdf_backward(float *dx, float *dmu, float *dlogvar, const float *dout,
                           const float *x, const float *mu, const float *logvar,
                           float fixed_logvar, int B, int D) {
  float ivs[CHUNK];
  const float fixed_iv = vm_expf(-fixed_logvar);
  for (int b = 0; b < B; b++) {
    float g = dout[b];
    for (int d0 = 0; d0 < D; d0 += CHUNK) {
      int n = D - d0 < CHUNK ? D - d0 : CHUNK;
      if (logvar) exp_scaled(ivs, logvar + (size_t)b * D + d0, -1.0f, (size_t)n);
      for (int j = 0; j < n; j++) {
        size_t i = (size_t)b * D + d0 + j;
        float iv = logvar ? ivs[j] : fixed_iv, r = x[i] - mu[i];
        if (dx) dx[i] -= g * r * iv;
        if (dmu) dmu[i] += g * r * iv;
        if (dlogvar && logvar) dlogvar[i] += g * 0.5f * (r * r * iv - 1.0f);
      }
    }
  }
}

void bernoulli_logpmf_forward(float *out, const float *x, const float *logits, int B, int D) {
  float sp[CHUNK];
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (int d0 = 0; d0 < D; d0 += CHUNK) {
      int n = D - d0 < CHUNK ? D - d0 : CHUNK;
      vm_softplus(sp, logits + (size_t)b * D + d0, (size_t)n);
      for (int j = 0; j < n; j++) {
        size_t i = (size_t)b * D + d0 + j;
        s += x[i] * logits[i] - sp[j];
      }
    }
    out[b] = (float)s;
  }
}

void bernoulli_logpmf_backward(float *dlogits, const float *dout, const float *x,
                               const float *logits, int B, int D) {
  if (!dlogits) return;
  float sg[CHUNK];
  for (int b = 0; b < B; b++)
    for (int d0 = 0; d0 < D; d0 += CHUNK) {
      int n = D - d0 < CHUNK ? D - d0 : CHUNK;
      vm_sigmoid(sg, logits + (size_t)b * D + d0, (size_t)n);
      for (int j = 0; j < n; j++) {
        size_t i = (size_t)b * D + d0 + j;
        dlogits[i] += dout[b] * (x[i] - sg[j]);
      }
    }
}

void kl_gauss_forward(float *out, const float *mu1, const float *lv1, const float *mu2,
                      const float *lv2, int B, int D) {
  float v1[CHUNK], iv2[CHUNK];
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (int d0 = 0; d0 < D; d0 += CHUNK) {
      int n = D - d0 < CHUNK ? D - d0 : CHUNK;
      size_t o = (size_t)b * D + d0;
      exp_scaled(v1, lv1 + o, 1.0f, (size_t)n);
      exp_scaled(iv2, lv2 + o, -1.0f, (size_t)n);
      for (int j = 0; j < n; j++) {
        size_t i = o + j;
        float r = mu1[i] - mu2[i];
        s += 0.5 * (lv2[i] - lv1[i] + (v1[j] + r * r) * iv2[j] - 1.0f);
      }
    }
    out[b] = (float)s;
  }
}

void kl_gauss_backward(float *dmu1, float *dlv1, float *dmu2, float *dlv2, const float *dout,
                       const float *mu1, const float *lv1, const float *mu2, const float *lv2,
                       int B, int D) {
  float v1s[CHUNK], iv2s[CHUNK];
  for (int b = 0; b < B; b++) {
    float g = dout[b];
    for (int d0 = 0; d0 < D; d0 += CHUNK) {
      int n = D - d0 < CHUNK ? D - d0 : CHUNK;
      size_t o = (size_t)b * D + d0;
      exp_scaled(v1s, lv1 + o, 1.0f, (size_t)n);
      exp_scaled(iv2s, lv2 + o, -1.0f, (size_t)n);
      for (int j = 0; j < n; j++) {
        size_t i = o + j;
        float r = mu1[i] - mu2[i], iv2 = iv2s[j], v1 = v1s[j];
        if (dmu1) dmu1[i] += g * r * iv2;
        if (dmu2) dmu2[i] -= g * r * iv2;
        if (dlv1) dlv1[i] += g * 0.5f * (v1 * iv2 - 1.0f);
        if (dlv2) dlv2[i] += g * 0.5f * (1.0f - (v1 + r * r) * iv2);
      }
    }
  }
}

/* sum_d log N(x_d; m_d, exp(lv_d)) of one component, in double, in d order */
static double comp_logpdf(const float *xb, const float *m, const float *lv, int D) {
  float iv[CHUNK];
  double s = 0;
  for (int d0 = 0; d0 < D; d0 += CHUNK) {
    int n = D - d0 < CHUNK ? D - d0 : CHUNK;
    exp_scaled(iv, lv + d0, -1.0f, (size_t)n);
    for (int j = 0; j < n; j++) {
      int d = d0 + j;
      float r = xb[d] - m[d];
      s += -0.5 * (LOG_2PI + lv[d] + r * r * iv[j]);
    }
  }
  return s;
}

void mixture_logpdf_forward(float *out, float *scratch, const float *x, const float *mu,
                            const float *logvar, const float *w, int B, int K, int D) {
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * D;
    float *lc = scratch + (size_t)b * K;
    float mx = -INFINITY;
    for (int k = 0; k < K; k++) {
      const float *m = mu + ((size_t)b * K + k) * D, *lv = logvar + ((size_t)b * K + k) * D;
      double s = comp_logpdf(xb, m, lv, D);
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
  float ivs[CHUNK];
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * D, *lc = scratch + (size_t)b * K;
    float g = dout[b];
    for (int k = 0; k < K; k++) {
      /* responsibility r_k = w_k N_k / p; d out / d w_k = N_k / p = exp(log N_k - out). */
      float resp = vm_expf(lc[k] - out[b]);
      float wk = w[(size_t)b * K + k];
      if (dw) {
        const float *m = mu + ((size_t)b * K + k) * D, *lv = logvar + ((size_t)b * K + k) * D;
        if (wk > 0) {
          dw[(size_t)b * K + k] += g * resp / wk;
        } else { /* component log-density computed afresh, weight is zero */
          double s = comp_logpdf(xb, m, lv, D);
          dw[(size_t)b * K + k] += g * (float)exp(s - out[b]);
        }
      }
      if (resp == 0.0f) continue;
      size_t o = ((size_t)b * K + k) * D;
      for (int d0 = 0; d0 < D; d0 += CHUNK) {
        int n = D - d0 < CHUNK ? D - d0 : CHUNK;
        exp_scaled(ivs, logvar + o + d0, -1.0f, (size_t)n);
        for (int j = 0; j < n; j++) {
          int d = d0 + j;
          float iv = ivs[j], r = xb[d] - mu[o + d];
          float gr = g * resp;
          if (dx) dx[(size_t)b * D + d] -= gr * r * iv;
          if (dmu) dmu[o + d] += gr * r * iv;
          if (dlogvar) dlogvar[o + d] += gr * 0.5f * (r * r * iv - 1.0f);
        }
      }
    }
  }
}

void reparam_forward(float *z, const float *mu, const float *logvar, const float *eps, int N) {
  float sd[CHUNK];
  for (int i0 = 0; i0 < N; i0 += CHUNK) {
    int n = N - i0 < CHUNK ? N - i0 : CHUNK;
    exp_scaled(sd, logvar + i0, 0.5f, (size_t)n);
    for (int j = 0; j < n; j++) z[i0 + j] = mu[i0 + j] + sd[j] * eps[i0 + j];
  }
}

void reparam_backward(float *dmu, float *dlogvar, const float *dz, const float *logvar,
                      const float *eps, int N) {
  float sd[CHUNK];
  for (int i0 = 0; i0 < N; i0 += CHUNK) {
    int n = N - i0 < CHUNK ? N - i0 : CHUNK;
    exp_scaled(sd, logvar + i0, 0.5f, (size_t)n);
    for (int j = 0; j < n; j++) {
      int i = i0 + j;
      if (dmu) dmu[i] += dz[i];
      if (dlogvar) dlogvar[i] += dz[i] * 0.5f * sd[j] * eps[i];
    }
  }
}
