/* Elementwise activations. */
#include "nn/activation.h"

#include <math.h>
#include <string.h>

static const char *const ACT_NAMES[] = {"identity", "relu", "leaky_relu", "elu",
                                        "sigmoid",  "tanh", "softplus",   "exp"};

const char *act_name(act_kind kind) { return ACT_NAMES[kind]; }

int act_from_name(const char *name) {
  for (int i = 0; i < (int)(sizeof ACT_NAMES / sizeof *ACT_NAMES); i++)
    if (strcmp(ACT_NAMES[i], name) == 0) return i;
  return -1;
}

void act_forward(float *out, const float *in, size_t N, act_kind kind, float alpha) {
  for (size_t i = 0; i < N; i++) {
    float x = in[i], y;
    switch (kind) {
      case ACT_RELU: y = x > 0 ? x : 0; break;
      case ACT_LEAKY_RELU: y = x > 0 ? x : alpha * x; break;
      case ACT_ELU: y = x > 0 ? x : alpha * expm1f(x); break;
      case ACT_SIGMOID: y = sigmoidf(x); break;
      case ACT_TANH: y = tanhf(x); break;
      case ACT_SOFTPLUS: y = softplusf(x); break;
      case ACT_EXP: y = expf(x); break;
      default: y = x; break;
    }
    out[i] = y;
  }
}

void act_backward(float *din, const float *dout, const float *in, const float *out, size_t N,
                  act_kind kind, float alpha) {
  for (size_t i = 0; i < N; i++) {
    float x = in[i], y = out[i], d;
    switch (kind) {
      case ACT_RELU: d = x > 0 ? 1.0f : 0.0f; break;
      case ACT_LEAKY_RELU: d = x > 0 ? 1.0f : alpha; break;
      case ACT_ELU: d = x > 0 ? 1.0f : y + alpha; break;
      case ACT_SIGMOID: d = y * (1.0f - y); break;
      case ACT_TANH: d = 1.0f - y * y; break;
      case ACT_SOFTPLUS: d = sigmoidf(x); break;
      case ACT_EXP: d = y; break;
      default: d = 1.0f; break;
    }
    din[i] += d * dout[i];
  }
}
