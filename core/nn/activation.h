/* Elementwise activations with their backward passes. */
#ifndef GTMSM_NN_ACTIVATION_H
#define GTMSM_NN_ACTIVATION_H

#include <math.h>
#include <stddef.h>

typedef enum {
  ACT_IDENTITY,
  ACT_RELU,
  ACT_LEAKY_RELU, /* slope alpha below 0 */
  ACT_ELU,        /* alpha * (exp(x) - 1) below 0 */
  ACT_SIGMOID,
  ACT_TANH,
  ACT_SOFTPLUS,   /* log(1 + exp(x)), computed stably */
  ACT_EXP,
} act_kind;

/* out (N) = f(in (N)); out may alias in. */
void act_forward(float *out, const float *in, size_t N, act_kind kind, float alpha);
/* din (N) += f'(in) * dout, from in and out = f(in) (both as in the forward;
 * out is what the sigmoid/tanh/exp/elu derivatives use). din must not alias dout. */
void act_backward(float *din, const float *dout, const float *in, const float *out, size_t N,
                  act_kind kind, float alpha);
/* Name as used in configs ("relu", "elu", ...), and the reverse (-1 if unknown). */
const char *act_name(act_kind kind);
int act_from_name(const char *name);

static inline float softplusf(float x) {
  /* log1p(exp(x)) without overflow: x + log1p(exp(-x)) for large x. */
  return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
}
static inline float sigmoidf(float x) {
  if (x >= 0) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

#endif
