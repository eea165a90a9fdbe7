/* Log-densities, KL divergences and the reparameterised sample, batched over
 * rows: every function works on B rows of D dimensions and reduces over D.
 * Backward passes accumulate (+=) and skip NULL gradient pointers. */
#ifndef GTMSM_NN_DENSITY_H
#define GTMSM_NN_DENSITY_H

#define LOG_2PI 1.8378770664093453f

/* out (B) = sum_d log N(x; mu, exp(logvar)) with x, mu (B, D); logvar (B, D),
 * or NULL for a fixed log-variance fixed_logvar shared by all elements. */
void gauss_logpdf_forward(float *out, const float *x, const float *mu, const float *logvar,
                          float fixed_logvar, int B, int D);
void gauss_logpdf_backward(float *dx, float *dmu, float *dlogvar, const float *dout,
                           const float *x, const float *mu, const float *logvar,
                           float fixed_logvar, int B, int D);

/* out (B) = sum_d [x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))], x in [0, 1],
 * logits l (B, D). The gradient is with respect to the logits. */
void bernoulli_logpmf_forward(float *out, const float *x, const float *logits, int B, int D);
void bernoulli_logpmf_backward(float *dlogits, const float *dout, const float *x,
                               const float *logits, int B, int D);

/* out (B) = KL( N(mu1, exp(lv1)) || N(mu2, exp(lv2)) ), all (B, D). */
void kl_gauss_forward(float *out, const float *mu1, const float *lv1, const float *mu2,
                      const float *lv2, int B, int D);
void kl_gauss_backward(float *dmu1, float *dlv1, float *dmu2, float *dlv2, const float *dout,
                       const float *mu1, const float *lv1, const float *mu2, const float *lv2,
                       int B, int D);

/* Mixture of K diagonal Gaussians with given weights:
 * out (B) = log sum_k w[b,k] N(x[b]; mu[b,k], exp(logvar[b,k])), via log-sum-exp.
 * x (B, D); mu, logvar (B, K, D); w (B, K), w >= 0, each row summing to 1 (not
 * checked: the formula is the same for unnormalised weights).
 * scratch (B, K) receives the per-component log w_k + log N_k, which the
 * backward pass reuses (keep it between the two calls). */
void mixture_logpdf_forward(float *out, float *scratch, const float *x, const float *mu,
                            const float *logvar, const float *w, int B, int K, int D);
void mixture_logpdf_backward(float *dx, float *dmu, float *dlogvar, float *dw, const float *dout,
                             const float *out, const float *scratch, const float *x,
                             const float *mu, const float *logvar, const float *w, int B, int K,
                             int D);

/* z (N) = mu + exp(logvar / 2) * eps, with eps (N) given (drawn by the caller). */
void reparam_forward(float *z, const float *mu, const float *logvar, const float *eps, int N);
void reparam_backward(float *dmu, float *dlogvar, const float *dz, const float *logvar,
                      const float *eps, int N);

#endif
