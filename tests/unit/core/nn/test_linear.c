/* Tests of core/nn/linear: a hand-worked forward and backward, a random forward
 * against a direct double loop, and gradchecks of din, dw, db (accumulating
 * into pre-filled buffers, each gradient alone and all together); the
 * inference form linear_infer against the order of operations it promises,
 * on every vector path, each row alone and in batches of every height. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/linear.h"
#include "nn/vecmath.h"
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

/* linear_infer's promise, written out: each output from its bias, adding
 * x_k w_k in order, every product and sum rounded to float. */
static float infer_ref(const float *x, const float *w, const float *b, int n_in, int o) {
  float acc = b ? b[o] : 0.0f;
  for (int k = 0; k < n_in; k++) {
    volatile float p = x[k] * w[(size_t)o * n_in + k]; /* rounded on its own: no contraction */
    acc = acc + p;
  }
  return acc;
}

static void test_infer_shape(int Bn, int INn, int OUTn, int with_bias, uint64_t seed) {
  float *in = malloc(sizeof(float) * (size_t)Bn * INn), *w = malloc(sizeof(float) * (size_t)OUTn * INn);
  float *b = malloc(sizeof(float) * (size_t)OUTn), *pk = malloc(sizeof(float) * linear_infer_floats(INn, OUTn));
  const size_t no = (size_t)Bn * OUTn + 16; /* 16 sentinels past the end */
  float *ref = malloc(sizeof(float) * no), *out = malloc(sizeof(float) * no), *one = malloc(sizeof(float) * OUTn);
  test_fill_uniform(in, (size_t)Bn * INn, -2, 2, seed);
  test_fill_uniform(w, (size_t)OUTn * INn, -1, 1, seed + 1);
  test_fill_uniform(b, (size_t)OUTn, -1, 1, seed + 2);
  linear_infer_pack(pk, w, with_bias ? b : NULL, INn, OUTn);
  double maxrel = 0;
  for (int r = 0; r < Bn; r++)
    for (int o = 0; o < OUTn; o++) {
      const float *x = in + (size_t)r * INn;
      ref[(size_t)r * OUTn + o] = infer_ref(x, w, with_bias ? b : NULL, INn, o);
      double d = with_bias ? b[o] : 0, mag = fabs(d);
      for (int k = 0; k < INn; k++) {
        const double t = (double)x[k] * w[(size_t)o * INn + k];
        d += t, mag += fabs(t);
      }
      const double rel = fabs(ref[(size_t)r * OUTn + o] - d) / (mag > 0 ? mag : 1);
      if (rel > maxrel) maxrel = rel;
    }
  CHECK(maxrel < 1e-6 * (INn + 1), "%dx%d->%d: the written-out order within %g of double (sum of |terms|)", Bn, INn,
        OUTn, maxrel);
  const vm_isa keep = vm_get_isa();
  for (int isa = VM_ISA_GENERIC; isa <= VM_ISA_AVX2; isa++) {
    if (vm_set_isa((vm_isa)isa)) continue;
    for (size_t i = 0; i < no; i++) out[i] = -7.0f;
    linear_infer(out, in, pk, Bn, INn, OUTn);
    CHECK(memcmp(out, ref, sizeof(float) * (size_t)Bn * OUTn) == 0, "%s: %dx%d->%d the bits of the written-out order",
          vm_isa_name((vm_isa)isa), Bn, INn, OUTn);
    int kept = 1;
    for (size_t i = (size_t)Bn * OUTn; i < no; i++) kept &= out[i] == -7.0f;
    CHECK(kept, "%s: %dx%d->%d nothing written past the output", vm_isa_name((vm_isa)isa), Bn, INn, OUTn);
    for (int r = 0; r < Bn; r++) { /* each row alone */
      linear_infer(one, in + (size_t)r * INn, pk, 1, INn, OUTn);
      CHECK(memcmp(one, ref + (size_t)r * OUTn, sizeof(float) * OUTn) == 0, "%s: row %d alone",
            vm_isa_name((vm_isa)isa), r);
    }
    for (int h = 1; h < Bn; h++) { /* a batch of every height from row 0 */
      linear_infer(out, in, pk, h, INn, OUTn);
      CHECK(memcmp(out, ref, sizeof(float) * (size_t)h * OUTn) == 0, "%s: the first %d rows", vm_isa_name((vm_isa)isa),
            h);
    }
  }
  vm_set_isa(keep);
  free(in), free(w), free(b), free(pk), free(ref), free(out), free(one);
}

static void test_infer(void) {
  static const int shapes[][4] = {{1, 1, 1, 1},     {7, 13, 5, 1},    {13, 192, 256, 1}, {12, 256, 32, 1},
                                  {25, 33, 40, 0},  {6, 16, 16, 1},   {5, 3, 17, 1},     {48, 256, 256, 1}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    test_infer_shape(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], 100 + 10 * i);
  printf("linear_infer: 8 shapes, bits of the written-out order on every vector path, rows alone and in batches\n");
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
  test_infer();
  return test_finish("test_linear");
}
