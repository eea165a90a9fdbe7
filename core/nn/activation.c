/* Elementwise activations: ELU, sigmoid, tanh, softplus and exp run on the
 * vector kernels of nn/vecmath (the backward from the input x); the
 * piecewise-linear ones are plain loops. */
#include "nn/activation.h"

#include <math.h>
#include <string.h>

#include "nn/vecmath.h"

static const char *const ACT_NAMES[] = {"identity", "relu", "leaky_relu", "elu",
                                        "sigmoid",  "tanh", "softplus",   "exp"};

const char *act_name(act_kind kind) { return ACT_NAMES[kind]; }

int act_from_name(const char *name) {
  for (int i = 0; i < (int)(sizeof ACT_NAMES / sizeof *ACT_NAMES); i++)
    if (strcmp(ACT_NAMES[i], name) == 0) return i;
  return -1;
}

void act_forward(float *out, const float *in, size_t N, act_kind kind, float alpha) {
  switch (kind) {
    case ACT_ELU: vm_elu(out, in, N, alpha); return;
    case ACT_SIGMOID: vm_sigmoid(out, in, N); return;
    case ACT_TANH: vm_tanh(out, in, N); return;
    case ACT_SOFTPLUS: vm_softplus(out, in, N); return;
    case ACT_EXP: vm_exp(out, in, N); return;
    default: break;
  }
  for (size_t i = 0; i < N; i++) {
    float x = in[i], y;
    switch (kind) {
      case ACT_RELU: y = x > 0 ? x : 0; break;
      case ACT_LEAKY_RELU: y = x > 0 ? x : alpha * x; break;
      default: y = x; break;
    }
    out[i] = y;
  }
}

void act_backward(float *din, const float *dout, const float *in, const float *out, size_t N,
                  act_kind kind, float alpha) {
  switch (kind) {
    case ACT_ELU: vm_elu_backward(din, dout, in, N, alpha); return;
    case ACT_SIGMOID: vm_sigmoid_backward(din, dout, in, N); return;
    case ACT_TANH: vm_tanh_backward(din, dout, in, N); return;
    case ACT_SOFTPLUS: vm_softplus_backward(din, dout, in, N); return;
    default: break;
  }
  for (size_t i = 0; i < N; i++) {
    float x = in[i], y = out[i], d;
    switch (kind) {
      case ACT_RELU: d = x > 0 ? 1.0f : 0.0f; break;
      case ACT_LEAKY_RELU: d = x > 0 ? 1.0f : alpha; break;
      case ACT_EXP: d = y; break;
      default: d = 1.0f; break;
    }
    din[i] += d * dout[i];
  }
}
