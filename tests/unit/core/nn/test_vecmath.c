/* Tests of core/nn/vecmath: the accuracy of every function and of every
 * derivative the backward passes use, against libm in double, over
 *  - a strided sweep of the float bit patterns (every 509th float of either
 *    sign: ~8.4 million points from the smallest subnormal to +-inf),
 *  - a dense uniform sweep of [-20, 20] (4 million points, the range the
 *    networks' pre-activations live in), and
 *  - special values: +-0, subnormals, FLT_MIN, FLT_MAX, +-inf, NaN and the
 *    saturation / overflow / underflow edges;
 * the bit-identity of the generic and AVX2 paths on all of those (forced with
 * vm_set_isa) and of an array's tail with its body; and that finite inputs
 * raise no invalid, divide-by-zero or overflow flag.
 *
 * Error measure: |y - ref| in units of the ulp of the float nearest to the
 * double reference ref (the spacing of floats in ref's binade; 2^-149 in the
 * subnormals). Near zero this is relative accuracy down to the subnormals
 * (expm1, tanh, softplus of tiny x are held to 2 ulp of their tiny value);
 * there the spacing is fixed, so a subnormal result is held to 2 * 2^-149
 * absolute. A reference that rounds to +-inf wants +-inf. The test fails
 * above 2 ulp on any point. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/activation.h"
#include "nn/vecmath.h"
#include "testlib.h"

#define MAX_ULP 2.0

typedef struct {
  const char *name;
  void (*f)(float *y, const float *x, size_t n); /* the kernel under test */
  double (*ref)(double x);                       /* libm in double */
} fn_case;

/* ---- references in double ---- */
static double ref_exp(double x) { return exp(x); }
static double ref_expm1(double x) { return expm1(x); }
static double ref_tanh(double x) { return tanh(x); }
static double ref_sech2(double x) { /* 1 - tanh^2, without the cancellation */
  double e = exp(-2 * fabs(x));
  return 4 * e / ((1 + e) * (1 + e));
}
static double ref_sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }
static double ref_dsigmoid(double x) {
  double e = exp(-fabs(x));
  return e / ((1 + e) * (1 + e));
}
static double ref_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double ref_elu(double x) { return x > 0 ? x : expm1(x); }
static double ref_delu(double x) { return x > 0 ? 1 : exp(x); }

/* ---- what the layers compute, as y = f(x) ---- */
static void elu1(float *y, const float *x, size_t n) { act_forward(y, x, n, ACT_ELU, 1.0f); }
/* act_backward with din = 0 and dout = 1 leaves exactly f'(x) in din */
static void backward_of(act_kind k, float *y, const float *x, size_t n) {
  static float ones[1 << 12];
  if (ones[0] != 1.0f)
    for (size_t i = 0; i < sizeof ones / sizeof *ones; i++) ones[i] = 1.0f;
  static float fwd[1 << 12];
  for (size_t i0 = 0; i0 < n; i0 += 1 << 12) {
    size_t m = n - i0 < (1 << 12) ? n - i0 : (1 << 12);
    act_forward(fwd, x + i0, m, k, 1.0f);
    memset(y + i0, 0, m * sizeof(float));
    act_backward(y + i0, ones, x + i0, fwd, m, k, 1.0f);
  }
}
static void delu1(float *y, const float *x, size_t n) { backward_of(ACT_ELU, y, x, n); }
static void dtanh_act(float *y, const float *x, size_t n) { backward_of(ACT_TANH, y, x, n); }
static void dsigmoid_act(float *y, const float *x, size_t n) { backward_of(ACT_SIGMOID, y, x, n); }
static void dsoftplus_act(float *y, const float *x, size_t n) { backward_of(ACT_SOFTPLUS, y, x, n); }

static const fn_case CASES[] = {
    {"exp", vm_exp, ref_exp},
    {"expm1", vm_expm1, ref_expm1},
    {"tanh", vm_tanh, ref_tanh},
    {"sech2 (tanh')", vm_sech2, ref_sech2},
    {"sigmoid", vm_sigmoid, ref_sigmoid},
    {"dsigmoid (sigmoid')", vm_dsigmoid, ref_dsigmoid},
    {"softplus", vm_softplus, ref_softplus},
    /* what act_forward / act_backward compute (their own fused kernels; the
     * forwards of tanh, sigmoid, softplus and exp are the vm_ calls above,
     * and exp' is exp's forward value, so those are not swept twice) */
    {"act ELU(1) fwd", elu1, ref_elu},
    {"act ELU(1) bwd", delu1, ref_delu},
    {"act tanh bwd", dtanh_act, ref_sech2},
    {"act sigmoid bwd", dsigmoid_act, ref_dsigmoid},
    {"act softplus bwd", dsoftplus_act, ref_sigmoid},
};
#define NCASES (sizeof CASES / sizeof *CASES)

/* Error of y against ref in ulps of the float nearest ref (see the top). */
static double ulp_err(float y, double ref) {
  if (isnan(ref)) return isnan(y) ? 0 : INFINITY;
  if (isnan(y)) return INFINITY;
  float rf = (float)ref;
  if (isinf(rf) || isinf(y)) return rf == y ? 0 : INFINITY;
  double a = fabs((double)rf);
  int e;
  frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
  double ulp = a < FLT_MIN ? ldexp(1, -149) : ldexp(1, e - 24);
  return fabs((double)y - ref) / ulp;
}

typedef struct {
  double max_ulp;
  float worst_x;
  size_t n, above1;
} stats;

static void account(stats *s, const float *x, const float *y, size_t n, double (*ref)(double)) {
  for (size_t i = 0; i < n; i++) {
    double e = ulp_err(y[i], ref((double)x[i]));
    if (e > s->max_ulp || (isnan(e) && !isnan(s->max_ulp))) s->max_ulp = e, s->worst_x = x[i];
    if (e > 1) s->above1++;
  }
  s->n += n;
}

/* The sweep points, generated in blocks: block b of the bit-pattern sweep or
 * of the uniform sweep. Returns the count (0 past the end). */
#define BLOCK 4096
#define STRIDE 509u
#define UNIFORM 4000000u
static size_t sweep_block(float *x, size_t b) {
  /* bit patterns 0, STRIDE, 2 STRIDE, ... up to 0x7f800000 (+inf), both signs */
  const size_t nbits = 0x7f800000u / STRIDE + 1;
  size_t first = b * BLOCK, n = 0;
  for (; n < BLOCK; n++) {
    size_t k = first + n;
    if (k < 2 * nbits) {
      uint32_t u = (uint32_t)((k % nbits) * STRIDE) | (k >= nbits ? 0x80000000u : 0);
      memcpy(&x[n], &u, 4);
    } else if (k < 2 * nbits + UNIFORM) {
      x[n] = (float)(-20.0 + 40.0 * (double)(k - 2 * nbits) / UNIFORM);
    } else {
      break;
    }
  }
  return n;
}

static const float SPECIAL[] = {
    0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, -1e-40f, FLT_MIN, -FLT_MIN, 1e-30f, -1e-30f, 1e-8f,
    -1e-8f, 6e-8f, -6e-8f, 1e-4f, -1e-4f, 0.3466f, -0.3466f, 0.34657359f, -0.34657359f, 0.625f,
    -0.625f, 0.62499994f, -0.62499994f, 1.0f, -1.0f, 9.01f, -9.01f, 10.0f, -10.0f, 16.6f, -16.6f,
    17.33f, -17.33f, 20.0f, -20.0f, 30.0f, -30.0f, 44.0f, 80.0f, 80.00001f, 87.33655f, -87.33655f,
    88.37626f, 88.7228317f, 88.7228394f, 89.0f, -88.0f, -100.0f, -103.972f, -103.973f, -104.0f,
    -110.0f, -120.0f, -150.0f, 1000.0f, -1000.0f, 1e30f, -1e30f, FLT_MAX, -FLT_MAX, INFINITY,
    -INFINITY, NAN, -NAN,
};
#define NSPECIAL (sizeof SPECIAL / sizeof *SPECIAL)

static void test_accuracy(void) {
  static float x[BLOCK], y[BLOCK], y2[BLOCK];
  printf("max error in ulps against libm in double (sweep: every %uth float of either sign + "
         "%u points on [-20, 20] + %zu special values), path %s:\n",
         STRIDE, UNIFORM, NSPECIAL, vm_isa_name(vm_get_isa()));
  printf("| function | points | max ulp | at x | points > 1 ulp |\n|---|---:|---:|---:|---:|\n");
  for (size_t c = 0; c < NCASES; c++) {
    stats s = {0};
    size_t n;
    for (size_t b = 0; (n = sweep_block(x, b)) > 0; b++) {
      CASES[c].f(y, x, n);
      account(&s, x, y, n, CASES[c].ref);
    }
    CASES[c].f(y, SPECIAL, NSPECIAL);
    account(&s, SPECIAL, y, NSPECIAL, CASES[c].ref);
    for (size_t i = 0; i < NSPECIAL; i++) { /* the signs of zeros and NaN as libm */
      double r = CASES[c].ref((double)SPECIAL[i]);
      if (isnan(SPECIAL[i])) CHECK(isnan(y[i]), "%s(NaN) = %g", CASES[c].name, y[i]);
      if (r == 0) CHECK(!signbit(y[i]) == !signbit(r) && y[i] == 0, "%s(%g) = %g, libm %g", CASES[c].name,
                        SPECIAL[i], y[i], r);
    }
    (void)y2;
    printf("| %s | %zu | %.3f | %.9g | %zu |\n", CASES[c].name, s.n, s.max_ulp, s.worst_x, s.above1);
    CHECK(s.max_ulp <= MAX_ULP, "%s: %.3f ulp at x = %.9g", CASES[c].name, s.max_ulp, s.worst_x);
  }
}

/* Same bits on both paths and for every array length / position. */
static void test_paths_identical(void) {
  if (!vm_isa_supported(VM_ISA_AVX2)) {
    printf("this CPU has no AVX2: only the generic path runs here (identity not checked)\n");
  }
  static float x[BLOCK], yg[BLOCK], ya[BLOCK], yt[BLOCK];
  vm_isa was = vm_get_isa();
  size_t mismatches = 0, compared = 0, n;
  for (size_t c = 0; c < NCASES; c++) {
    for (size_t b = 0; (n = sweep_block(x, b)) > 0; b++) {
      vm_set_isa(VM_ISA_GENERIC);
      CASES[c].f(yg, x, n);
      /* the tail path: odd lengths and positions give the same bits */
      for (size_t i0 = 0; i0 < n; i0 += 13) {
        size_t m = n - i0 < 13 ? n - i0 : 13;
        CASES[c].f(yt + i0, x + i0, m);
      }
      if (memcmp(yg, yt, n * sizeof(float))) mismatches++;
      if (vm_set_isa(VM_ISA_AVX2) == 0) {
        CASES[c].f(ya, x, n);
        if (memcmp(yg, ya, n * sizeof(float))) mismatches++;
      }
      compared += n;
    }
    vm_set_isa(VM_ISA_GENERIC);
    CASES[c].f(yg, SPECIAL, NSPECIAL);
    if (vm_set_isa(VM_ISA_AVX2) == 0) {
      CASES[c].f(ya, SPECIAL, NSPECIAL);
      if (memcmp(yg, ya, NSPECIAL * sizeof(float))) mismatches++;
    }
  }
  vm_set_isa(was);
  CHECK(mismatches == 0, "%zu blocks differ between the generic and AVX2 paths or with the tail", mismatches);
  printf("generic vs avx2 and body vs tail: %zu points x %zu functions, %zu blocks differ\n",
         compared / NCASES, NCASES, mismatches);
  /* the scalar entry points are the array kernels */
  const float xs[] = {-3.5f, -0.2f, 0.0f, 0.7f, 12.0f};
  for (size_t i = 0; i < 5; i++) {
    float y;
    vm_exp(&y, &xs[i], 1);
    CHECK(y == vm_expf(xs[i]), "vm_expf");
    vm_tanh(&y, &xs[i], 1);
    CHECK(y == vm_tanhf(xs[i]), "vm_tanhf");
    vm_sech2(&y, &xs[i], 1);
    CHECK(y == vm_sech2f(xs[i]), "vm_sech2f");
    vm_sigmoid(&y, &xs[i], 1);
    CHECK(y == vm_sigmoidf(xs[i]), "vm_sigmoidf");
    vm_dsigmoid(&y, &xs[i], 1);
    CHECK(y == vm_dsigmoidf(xs[i]), "vm_dsigmoidf");
    vm_softplus(&y, &xs[i], 1);
    CHECK(y == vm_softplusf(xs[i]), "vm_softplusf");
  }
}

/* Finite and infinite inputs raise none of the flags that signal a problem
 * (invalid, divide-by-zero, overflow); underflow and inexact are expected. */
static void test_exceptions(void) {
  static float x[BLOCK], y[BLOCK];
  size_t n;
  int bad = 0;
  for (size_t c = 0; c < NCASES; c++) {
    feclearexcept(FE_ALL_EXCEPT);
    for (size_t b = 0; (n = sweep_block(x, b)) > 0; b++) CASES[c].f(y, x, n);
    CASES[c].f(y, SPECIAL, NSPECIAL - 2); /* all but the NaNs (last two) */
    int f = fetestexcept(FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW);
    if (f) {
      bad++;
      fprintf(stderr, "%s raised%s%s%s\n", CASES[c].name, f & FE_INVALID ? " invalid" : "",
              f & FE_DIVBYZERO ? " divide-by-zero" : "", f & FE_OVERFLOW ? " overflow" : "");
    }
  }
  CHECK(bad == 0, "%d functions raised invalid, divide-by-zero or overflow on non-NaN input", bad);
  printf("floating-point flags on non-NaN inputs: no invalid, divide-by-zero or overflow (%zu functions)\n",
         NCASES);
}

int main(void) {
  printf("vecmath path at start: %s (AVX2 %ssupported)\n", vm_isa_name(vm_get_isa()),
         vm_isa_supported(VM_ISA_AVX2) ? "" : "not ");
  test_accuracy();
  test_paths_identical();
  test_exceptions();
  return test_finish("test_vecmath");
}
