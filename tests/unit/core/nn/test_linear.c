/* Tests of core/nn/linear: a hand-worked forward and backward, a random forward
 * against a direct double loop, and gradchecks of din, dw, db (accumulating
 * into pre-filled buffers, each gradient alone and all together). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/linear.h"
#include "testlib.h"

static void test_hand_worked(void) {
  /* in (2, 3) = [[1,2,3],[4,5,6]], w (2, 3) = [[1,0,-1],[0.5,0.5,0.5]], b = [0.1, -0.2]
   * out = in @ w^T + b = [[1-3, 0.5*6], [4-6, 0.5*15]] + b = [[-1.9, 2.8], [-1.9, 7.3]]. */
  const float in[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[2] = {0.1f, -0.2f};
  float out[4] = {NAN, NAN, NAN, NAN}; // NaN: the forward must overwrite, not add
  linear_forward(out, in, w, b, 2, 3, 2);
  const float e[4] = {-1.9f, 2.8f, -1.9f, 7.3f};
  for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], e[i], 1e-6, 1e-6, "hand linear with bias");
  for (int i = 0; i < 4; i++) out[i] = NAN;
  linear_forward(out, in, w, NULL, 2, 3, 2);
  const float e0[4] = {-2, 3, -2, 7.5f};
  for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], e0[i], 1e-6, 1e-6, "hand linear no bias");

  /* dout = [[1, 0], [0, 2]]: din = dout @ w = [[1,0,-1],[1,1,1]],
   * dw = dout^T @ in = [[1,2,3],[8,10,12]], db = [1, 2]; all added to buffers holding 1. */
  const float dout[4] = {1, 0, 0, 2};
  float din[6], dw[6], db[2];
  for (int i = 0; i < 6; i++) din[i] = dw[i] = 1.0f;
  db[0] = db[1] = 1.0f;
  linear_backward(din, dw, db, dout, in, w, 2, 3, 2);
  const float edin[6] = {2, 1, 0, 2, 2, 2}, edw[6] = {2, 3, 4, 9, 11, 13}, edb[2] = {2, 3};
  for (int i = 0; i < 6; i++) CHECK_NEAR(din[i], edin[i], 1e-6, 0, "hand linear din");
  for (int i = 0; i < 6; i++) CHECK_NEAR(dw[i], edw[i], 1e-6, 0, "hand linear dw");
  for (int i = 0; i < 2; i++) CHECK_NEAR(db[i], edb[i], 1e-6, 0, "hand linear db");
  printf("hand-worked linear forward (with and without bias) and backward compared\n");
}

enum { B = 7, IN = 13, OUT = 5 };

typedef struct {
  float in[B * IN], w[OUT * IN], b[OUT], out[B * OUT], r[B * OUT];
} lin_ctx;

static double lin_loss(void *p) {
  lin_ctx *c = p;
  linear_forward(c->out, c->in, c->w, c->b, B, IN, OUT);
  return test_dot(c->out, c->r, B * OUT);
}

static void test_random_forward(lin_ctx *c) {
  linear_forward(c->out, c->in, c->w, c->b, B, IN, OUT);
  double worst = 0;
  for (int i = 0; i < B; i++)
    for (int o = 0; o < OUT; o++) {
      double s = c->b[o];
      for (int k = 0; k < IN; k++) s += (double)c->in[i * IN + k] * c->w[o * IN + k];
      worst = fmax(worst, fabs(c->out[i * OUT + o] - s));
    }
  /* 13 products of values in [-1, 1]: float rounding is ~1e-6. */
  printf("random linear (B %d, IN %d, OUT %d) vs double loop: max abs err %.3g (tol 1e-5)\n", B, IN,
         OUT, worst);
  CHECK(worst <= 1e-5, "random forward max abs err %.3g", worst);
}

static void test_gradients(lin_ctx *c) {
  float din0[B * IN], dw0[OUT * IN], db0[OUT];
  test_fill_uniform(din0, B * IN, -1, 1, 11);
  test_fill_uniform(dw0, OUT * IN, -1, 1, 12);
  test_fill_uniform(db0, OUT, -1, 1, 13);
  float din[B * IN], dw[OUT * IN], db[OUT], din2[B * IN], dw2[OUT * IN], db2[OUT];
  memcpy(din, din0, sizeof din), memcpy(dw, dw0, sizeof dw), memcpy(db, db0, sizeof db);
  memcpy(din2, din0, sizeof din), memcpy(dw2, dw0, sizeof dw), memcpy(db2, db0, sizeof db);
  linear_backward(din, NULL, NULL, c->r, c->in, c->w, B, IN, OUT);
  linear_backward(NULL, dw, NULL, c->r, c->in, c->w, B, IN, OUT);
  linear_backward(NULL, NULL, db, c->r, c->in, c->w, B, IN, OUT);
  linear_backward(din2, dw2, db2, c->r, c->in, c->w, B, IN, OUT);
  CHECK(memcmp(din, din2, sizeof din) == 0 && memcmp(dw, dw2, sizeof dw) == 0 &&
            memcmp(db, db2, sizeof db) == 0,
        "backward with all gradients differs from one at a time");
  /* The analytic gradient is what backward added to the pre-filled buffer. */
  for (int i = 0; i < B * IN; i++) din[i] -= din0[i];
  for (int i = 0; i < OUT * IN; i++) dw[i] -= dw0[i];
  for (int i = 0; i < OUT; i++) db[i] -= db0[i];
  /* Linear in each input: central differences are exact but for float rounding of
   * the forward, so a big eps (0.25) shrinks that noise; a wrong index or a missing
   * transpose gives O(1) errors, far above tol 1e-3. */
  gc_opts o = gc_default();
  o.eps = 0.25, o.tol = 1e-3, o.floor = 1e-2;
  gradcheck("linear din", c->in, din, B * IN, lin_loss, c, &o);
  gradcheck("linear dw", c->w, dw, OUT * IN, lin_loss, c, &o);
  gradcheck("linear db", c->b, db, OUT, lin_loss, c, &o);
}

int main(void) {
  test_hand_worked();
  static lin_ctx c;
  test_fill_uniform(c.in, B * IN, -1, 1, 1);
  test_fill_uniform(c.w, OUT * IN, -1, 1, 2);
  test_fill_uniform(c.b, OUT, -1, 1, 3);
  test_fill_uniform(c.r, B * OUT, -1, 1, 4);
  test_random_forward(&c);
  test_gradients(&c);
  return test_finish("test_linear");
}
