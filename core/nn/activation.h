/* Elementwise activations with their backward passes (ELU, sigmoid, tanh,
 * softplus and exp on the vector kernels of nn/vecmath.h). */
#ifndef GTMSM_NN_ACTIVATION_H
#define GTMSM_NN_ACTIVATION_H

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
/* din (N) += f'(in) * dout, from in and out = f(in) (both as in the forward).
 * The derivatives are computed from in (ELU' = alpha e^x below 0, sigmoid'
 * and tanh' from x: forms of out such as 1 - out^2 cancel where f saturates);
 * only exp's uses out. din must not alias dout or in. */
void act_backward(float *din, const float *dout, const float *in, const float *out, size_t N,
                  act_kind kind, float alpha);
/* Name as used in configs ("relu", "elu", ...), and the reverse (-1 if unknown). */
const char *act_name(act_kind kind);
int act_from_name(const char *name);

#endif
