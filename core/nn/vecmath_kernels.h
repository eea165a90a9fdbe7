/* The bodies of the vecmath kernels (see vecmath.h), written once on GCC/clang
 * vector types of VM_LANES floats and compiled once per instruction set:
 * vecmath_generic.c (4 lanes: SSE2 on x86-64, or whatever the target has) and
 * vecmath_avx2.c (8 lanes, compiled with -mavx2). The includer defines
 * VM_LANES and VM_NAME(f) (the exported name of kernel f).
 *
 * Why the paths agree to the bit: every lane goes through the same sequence
 * of IEEE single operations (+ - * /, comparisons, bit selects, integer
 * exponent arithmetic), each correctly rounded, whatever the vector width.
 * There is no FMA (neither file enables it, and the file is compiled with
 * -ffp-contract=off, see core/CMakeLists.txt), no table lookup, no
 * float<->int conversion (rounding to an integer is the 1.5 * 2^23 trick),
 * and the tail of an array runs through the same vector code on a padded
 * copy. So a result does not depend on the CPU, on the path, on N or on an
 * element's position in the array.
 *
 * Branch-free: both sides of a case are computed and one is selected per lane;
 * inputs are clamped first so that no lane overflows, divides by zero or
 * produces NaN from a finite input. NaN lanes are replaced by 0 on entry and
 * get their NaN back on exit (no invalid-operation flag from the clamps),
 * except in the ELU, the hot one, where NaN flows through by itself.
 *
 * Accuracy (tests/unit/core/nn/test_vecmath.c, against libm in double): exp
 * 0.95 ulp, expm1 1.39, tanh 1.26, softplus 1.56; sigmoid, its derivative and
 * tanh's (1.38, 1.44, 1.44) divide by 1 + e, so they carry e^x and 1 + e^x as
 * unevaluated sums hi + lo (exp_hilo, one_plus, square_hilo, div_hilo): plain
 * float there was 2.3 and 4.1 ulp. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn/vecmath_internal.h"

typedef float vf __attribute__((vector_size(4 * VM_LANES)));
typedef int32_t vi __attribute__((vector_size(4 * VM_LANES)));
typedef uint32_t vu __attribute__((vector_size(4 * VM_LANES)));

#define VM_INLINE static inline __attribute__((always_inline))

VM_INLINE vf splat(float a) { return (vf){0} + a; }
VM_INLINE vu usplat(uint32_t a) { return (vu){0} + a; }
/* m ? a : b, per lane (m all ones or all zeros) */
VM_INLINE vf sel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }
VM_INLINE vf vabs(vf x) { return (vf)((vu)x & usplat(0x7fffffffu)); }
/* a with the sign bit of s */
VM_INLINE vf copysign_v(vf a, vf s) {
  return (vf)(((vu)a & usplat(0x7fffffffu)) | ((vu)s & usplat(0x80000000u)));
}
VM_INLINE vf vmin(vf a, float b) { return sel(a > splat(b), splat(b), a); }
VM_INLINE vf vmax(vf a, float b) { return sel(a < splat(b), splat(b), a); }
/* m ? a : b on integer lanes */
VM_INLINE vu usel(vi m, vu a, vu b) { return (a & (vu)m) | (b & ~(vu)m); }
/* 2^k as a float, for integer k in [-126, 127] held as k + 127 in e */
VM_INLINE vf pow2_biased(vu e) { return (vf)(e << 23); }

/* Range reduction for exp: x = n ln2 + r, |r| <= ln2 / 2 (a little more after
 * rounding), with n returned as n + 256 (unsigned, so no signed overflow) for
 * x in [EXP_LO, EXP_HI]. ln2 in two parts: n * LN2_HI is exact for
 * |n| < 2^9 (LN2_HI has 9 significant bits) and so is x - n * LN2_HI. */
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
#define LOG2E 1.44269504088896341f
#define EXP_HI 88.72283172607421875f
#define EXP_LO (-120.0f)
#define ROUND_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
VM_INLINE vf exp_reduce(vf x, vu *nb) {
  vf t = x * splat(LOG2E) + splat(ROUND_MAGIC);
  vf n = t - splat(ROUND_MAGIC);
  *nb = (vu)t - (vu)splat(ROUND_MAGIC) + usplat(256); /* the low bits of t hold n */
  return (x - n * splat(LN2_HI)) - n * splat(LN2_LO);
}

/* expm1(r) for |r| <= 0.35: Taylor to degree 8 (the truncation is below
 * 6e-10 relative), Horner from the small terms up so that the result is
 * r + (a correction of at most 19% of r). */
VM_INLINE vf expm1_poly(vf r) {
  vf p = splat(1.0f / 40320);
  p = p * r + splat(1.0f / 5040);
  p = p * r + splat(1.0f / 720);
  p = p * r + splat(1.0f / 120);
  p = p * r + splat(1.0f / 24);
  p = p * r + splat(1.0f / 6);
  p = p * r + splat(0.5f);
  return r + (r * r) * p;
}

/* e^x = 2^n (ph + pl) for x in [EXP_LO, EXP_HI] (EXP_HI: the largest float
 * whose exp is finite; EXP_LO: far enough below the subnormals that e^x and
 * 4 e^x round to 0): ph = 1 + q rounded and pl its rounding error (exact,
 * Fast2Sum: |q| < 1), so ph + pl carries e^r to the polynomial's accuracy;
 * n is returned as n + 256 in nb. */
VM_INLINE void exp_parts(vf x, vf *ph, vf *pl, vu *nb) {
  vf q = expm1_poly(exp_reduce(x, nb));
  *ph = splat(1.0f) + q;
  *pl = q - (*ph - splat(1.0f));
}

/* 2^(n + k) p for k in {0, 2}: one rounding at the end, also into the
 * subnormals. n + k (in [-174, 130]) is split into two halves so that each
 * power of two is a normal float; p 2^n1 is exact (a normal float for
 * p in [0.5, 2]), the second product rounds once. */
VM_INLINE vf exp_scale(vf p, vu nb, uint32_t k) {
  nb = nb + usplat(k);   /* n + k + 256 in [82, 386] */
  vu h = nb >> 1;        /* n1 + 128 */
  vu e1 = h - usplat(1), e2 = nb - h - usplat(1); /* n1 + 127, n2 + 127 */
  return (p * pow2_biased(e1)) * pow2_biased(e2);
}

/* 2^k e^x for x clamped to [EXP_LO, EXP_HI], k in {0, 2}: within an ulp. */
VM_INLINE vf exp_core(vf x, uint32_t k) {
  vu nb;
  vf ph, pl;
  exp_parts(x, &ph, &pl, &nb);
  return exp_scale(ph, nb, k);
}

/* e^x as an unevaluated sum hi + lo (hi = exp_core(x, 0)), for the formulas
 * below that divide by 1 + e^x: their error then is that of the division
 * (half an ulp) and the polynomial's, not also the exp's rounding. lo is
 * exact where hi is a normal float (and negligible where it is not). */
VM_INLINE vf exp_hilo(vf x, vf *lo) {
  vu nb;
  vf ph, pl;
  exp_parts(x, &ph, &pl, &nb);
  *lo = exp_scale(pl, nb, 0);
  return exp_scale(ph, nb, 0);
}

/* 1 + e with e = eh + el in [0, 1]: dh + dl, dh = 1 + eh rounded, dl its
 * rounding error (Fast2Sum, exact) plus el. */
VM_INLINE vf one_plus(vf eh, vf el, vf *dl) {
  vf dh = splat(1.0f) + eh;
  *dl = (eh - (dh - splat(1.0f))) + el;
  return dh;
}

/* (nh + nl) / (dh + dl) to about half an ulp: q0 = nh / dh and its first-order
 * correction (nl - q0 dl) / dh, |dl| << dh. */
VM_INLINE vf div_hilo(vf nh, vf nl, vf dh, vf dl) {
  vf q0 = nh / dh;
  return q0 + (nl - q0 * dl) / dh;
}

/* d^2 for d = dh + dl, dh in [1, 2]: sh + sl, with dh^2 exact as a sum
 * (Dekker's product: Veltkamp's split into 12-bit halves, no FMA needed). */
VM_INLINE vf square_hilo(vf dh, vf dl, vf *sl) {
  vf c = splat(4097.0f) * dh;
  vf h = c - (c - dh), l = dh - h;
  vf sh = dh * dh;
  *sl = (((h * h - sh) + splat(2.0f) * (h * l)) + l * l) + splat(2.0f) * (dh * dl);
  return sh;
}

/* e^x with the special values: NaN -> NaN, +inf (and everything above
 * EXP_HI, where the float result overflows) -> +inf, -inf -> 0. The clamp
 * keeps the overflow flag for x > EXP_HI only in the selected-away lane. */
VM_INLINE vf exp_v(vf x) {
  vi nan = x != x;
  vf x0 = sel(nan, splat(0), x);
  vi big = x0 > splat(EXP_HI);
  vf y = exp_core(vmax(vmin(x0, EXP_HI), EXP_LO), 0);
  y = sel(big, splat(__builtin_inff()), y);
  return sel(nan, x, y);
}

/* expm1: x in [-30, 88.72]; below -30 the float result is -1 (e^-30 is far
 * below half an ulp of 1), and the clamp gives exactly that. Small and
 * moderate x: (2^n - 1) + 2^n q, both parts exact or nearly, so that there is
 * no cancellation near 0 (n = 0 returns q itself). For n > 116 the form
 * 2^n (1 + q) of exp is used (the -1 is below the result's half ulp there
 * too); n may be 128 there, so it scales in two steps. -0 stays -0. */
VM_INLINE vf expm1_v(vf x) {
  vi nan = x != x;
  vf x0 = sel(nan, splat(0), x);
  vi big = x0 > splat(EXP_HI);
  vf xc = vmax(vmin(x0, EXP_HI), -30.0f);
  vu nb;
  vf r = exp_reduce(xc, &nb);
  vf q = expm1_poly(r);
  /* n + 256 in [212, 384]; 2^min(n, 127) */
  vu nc = usel(nb > usplat(383), usplat(383), nb);
  vf s = pow2_biased(nc - usplat(129));
  vf small = (s - splat(1.0f)) + s * q;
  /* 2^(n - 64) 2^64 for the large lanes; clamped so that the others stay
   * finite and normal (their value is not used) */
  vu nl = usel(nb < usplat(256 + 64 - 126), usplat(256 + 64 - 126), nb);
  vf large = ((splat(1.0f) + q) * pow2_biased(nl - usplat(256 + 64 - 127))) * splat(18446744073709551616.0f);
  vf y = sel(xc > splat(80.0f), large, small);
  y = sel(big, splat(__builtin_inff()), y);
  y = sel(x0 == splat(0), x0, y);
  return sel(nan, x, y);
}

/* tanh on a = |x|, sign copied back (tanh(-0) = -0):
 *   a < 0.625: a + a z P(z), z = a^2 (Cephes' tanhf polynomial);
 *   otherwise 1 - 2 / (e^(2a) + 1), with 2a clamped to 20 (tanh(10) is 1 in
 *   float), so the exp stays finite. */
VM_INLINE vf tanh_v(vf x) {
  vi nan = x != x;
  vf x0 = sel(nan, splat(0), x);
  vf a = vabs(x0);
  vf as = vmin(a, 0.625f); /* the polynomial's side, kept finite */
  vf z = as * as;
  vf p = splat(-5.70498872745e-3f);
  p = p * z + splat(2.06390887954e-2f);
  p = p * z + splat(-5.37397155531e-2f);
  p = p * z + splat(1.33314422036e-1f);
  p = p * z + splat(-3.33332819422e-1f);
  vf lo = as + (as * z) * p;
  vf e = exp_core(splat(2.0f) * vmin(a, 10.0f), 0);
  vf hi = splat(1.0f) - splat(2.0f) / (e + splat(1.0f));
  vf y = copysign_v(sel(a < splat(0.625f), lo, hi), x0);
  return sel(nan, x, y);
}

/* tanh'(x) = 1 - tanh(x)^2 = 4 e^(-2a) / (1 + e^(-2a))^2, a = |x|: from x,
 * not from tanh(x), where 1 - y^2 cancels once |y| nears 1. The factor 4 is
 * folded into the exponent of the numerator (one rounding, also in the
 * subnormals); numerator and denominator as hi + lo sums. */
VM_INLINE vf sech2_v(vf x) {
  vi nan = x != x;
  vf x0 = sel(nan, splat(0), x);
  vf m = splat(-2.0f) * vmin(vabs(x0), 60.0f); /* exact; e^-120 rounds to 0 */
  vu nb;
  vf ph, pl;
  exp_parts(m, &ph, &pl, &nb);
  vf eh = exp_scale(ph, nb, 0), el = exp_scale(pl, nb, 0);
  vf nh = exp_scale(ph, nb, 2), nl = exp_scale(pl, nb, 2); /* 4 e^-2a */
  vf dl, sl;
  vf dh = one_plus(eh, el, &dl);
  vf sh = square_hilo(dh, dl, &sl);
  return sel(nan, x, div_hilo(nh, nl, sh, sl));
}

/* sigmoid(x) = 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: one exp of
 * -|x| (never overflows), and the quotient from the hi + lo sums. */
VM_INLINE vf sigmoid_v(vf x) {
  vi nan = x != x;
  vf x0 = sel(nan, splat(0), x);
  vf el, dl;
  vf eh = exp_hilo(vmax(splat(0) - vabs(x0), EXP_LO), &el);
  vf dh = one_plus(eh, el, &dl);
  vi neg = x0 < splat(0);
  vf y = div_hilo(sel(neg, eh, splat(1.0f)), sel(neg, el, splat(0)), dh, dl);
  return sel(nan, x, y);
}

/* sigmoid'(x) = sigmoid(x) sigmoid(-x) = e / (1 + e)^2, e = e^-|x|: from x,
 * not from y (1 - y), which cancels for large x. */
VM_INLINE vf dsigmoid_v(vf x) {
  vi nan = x != x;
  vf x0 = sel(nan, splat(0), x);
  vf el, dl, sl;
  vf eh = exp_hilo(vmax(splat(0) - vabs(x0), EXP_LO), &el);
  vf dh = one_plus(eh, el, &dl);
  vf sh = square_hilo(dh, dl, &sl);
  return sel(nan, x, div_hilo(eh, el, sh, sl));
}

/* log1p(u) for u in [0, 1] (fdlibm's method): w = 1 + u rounded, c = u -
 * (w - 1) its rounding error (exact); w = 2^k m with m in [sqrt2/2, sqrt2],
 * f = m - 1 (exact), s = f / (2 + f), log(1 + f) = f - hfsq + s (hfsq + R(s^2))
 * with hfsq = f^2 / 2 and R the series of 2 atanh(s) / s - 2 past its first
 * term (Taylor to s^10: |s| <= 0.172, truncation below 1e-10); the leading f
 * is exact, so the rounding errors are those of small corrections; plus
 * k ln2 (in two parts) and log(1 + c / w) = c / w. */
#define LN2F_HI 6.9313812256e-01f /* fdlibm's ln2_hi and ln2_lo (k is 0 or 1 here) */
#define LN2F_LO 9.0580006145e-06f
VM_INLINE vf log1p01(vf u) {
  vf w = splat(1.0f) + u;
  vf c = u - (w - splat(1.0f));
  vi k = w > splat(1.41421356237f);
  vf m = sel(k, w * splat(0.5f), w);
  vf kf = sel(k, splat(1.0f), splat(0));
  vf f = m - splat(1.0f);
  vf s = f / (splat(2.0f) + f);
  vf z = s * s;
  vf R = splat(2.0f / 11);
  R = R * z + splat(2.0f / 9);
  R = R * z + splat(2.0f / 7);
  R = R * z + splat(2.0f / 5);
  R = R * z + splat(2.0f / 3);
  R = R * z;
  vf hfsq = splat(0.5f) * f * f;
  return kf * splat(LN2F_HI) + (f - (hfsq - (s * (hfsq + R) + (kf * splat(LN2F_LO) + c / w))));
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, and
 * relative accuracy where the value is tiny (x << 0: log1p(e^x) ~ e^x). */
VM_INLINE vf softplus_v(vf x) {
  vi nan = x != x;
  vf x0 = sel(nan, splat(0), x);
  vf e = exp_core(vmax(splat(0) - vabs(x0), EXP_LO), 0);
  vf y = vmax(x0, 0.0f) + log1p01(e);
  return sel(nan, x, y);
}

/* ---- loops: full vectors, then the tail through the same code on a padded copy ---- */

#define VM_UNARY(name, expr)                                          \
  void VM_NAME(name)(float *y, const float *x, size_t n) {            \
    size_t i = 0;                                                     \
    for (; i + VM_LANES <= n; i += VM_LANES) {                        \
      vf v;                                                           \
      memcpy(&v, x + i, sizeof v);                                    \
      v = expr;                                                       \
      memcpy(y + i, &v, sizeof v);                                    \
    }                                                                 \
    if (i < n) {                                                      \
      vf v = {0};                                                     \
      memcpy(&v, x + i, (n - i) * sizeof(float));                     \
      v = expr;                                                       \
      memcpy(y + i, &v, (n - i) * sizeof(float));                     \
    }                                                                 \
  }

VM_UNARY(exp, exp_v(v))
VM_UNARY(expm1, expm1_v(v))
VM_UNARY(tanh, tanh_v(v))
VM_UNARY(sech2, sech2_v(v))
VM_UNARY(sigmoid, sigmoid_v(v))
VM_UNARY(dsigmoid, dsigmoid_v(v))
VM_UNARY(softplus, softplus_v(v))

/* ELU: x > 0 ? x : alpha expm1(x). Only x <= 0 needs expm1, so it is
 * expm1_v's small-x branch alone on x clamped to [-30, 0] (n in [-44, 0]): the
 * same operations, so the same bits as expm1_v there, in fewer steps. */
VM_INLINE vf elu_v(vf x, float alpha) {
  /* NaN needs no select here: it survives the clamps (comparisons are
   * false), makes q NaN and so the result (the exponent bits computed from it
   * are garbage, but unsigned and only multiplied into a NaN) */
  vf xc = vmax(vmin(x, 0.0f), -30.0f);
  vu nb;
  vf q = expm1_poly(exp_reduce(xc, &nb));
  vf s = pow2_biased(nb - usplat(129));
  vf e = (s - splat(1.0f)) + s * q;
  e = sel(xc == splat(0), xc, e); /* expm1(-0) = -0 */
  return sel(x > splat(0), x, splat(alpha) * e);
}
/* ELU': x > 0 ? 1 : alpha e^x (from x: y + alpha would cancel for x << 0);
 * e^x of x clamped to [EXP_LO, 0], as exp_v there. */
VM_INLINE vf delu_v(vf x, float alpha) {
  vi nan = x != x;
  vf x0 = sel(nan, splat(0), x);
  vf e = exp_core(vmax(vmin(x0, 0.0f), EXP_LO), 0);
  vf d = sel(x0 > splat(0), splat(1.0f), splat(alpha) * e);
  return sel(nan, x, d);
}

void VM_NAME(elu)(float *y, const float *x, size_t n, float alpha) {
  size_t i = 0;
  for (; i + VM_LANES <= n; i += VM_LANES) {
    vf v;
    memcpy(&v, x + i, sizeof v);
    v = elu_v(v, alpha);
    memcpy(y + i, &v, sizeof v);
  }
  if (i < n) {
    vf v = {0};
    memcpy(&v, x + i, (n - i) * sizeof(float));
    v = elu_v(v, alpha);
    memcpy(y + i, &v, (n - i) * sizeof(float));
  }
}

/* din += f'(x) dout */
#define VM_BACKWARD(name, dexpr)                                                      \
  void VM_NAME(name)(float *din, const float *dout, const float *x, size_t n, float alpha) { \
    (void)alpha;                                                                      \
    size_t i = 0;                                                                     \
    for (; i + VM_LANES <= n; i += VM_LANES) {                                        \
      vf v, g, d;                                                                     \
      memcpy(&v, x + i, sizeof v);                                                    \
      memcpy(&g, dout + i, sizeof g);                                                 \
      memcpy(&d, din + i, sizeof d);                                                  \
      d = d + (dexpr) * g;                                                            \
      memcpy(din + i, &d, sizeof d);                                                  \
    }                                                                                 \
    if (i < n) {                                                                      \
      size_t k = (n - i) * sizeof(float);                                             \
      vf v = {0}, g = {0}, d = {0};                                                   \
      memcpy(&v, x + i, k);                                                           \
      memcpy(&g, dout + i, k);                                                        \
      memcpy(&d, din + i, k);                                                         \
      d = d + (dexpr) * g;                                                            \
      memcpy(din + i, &d, k);                                                         \
    }                                                                                 \
  }

VM_BACKWARD(elu_backward, delu_v(v, alpha))
VM_BACKWARD(tanh_backward, sech2_v(v))
VM_BACKWARD(sigmoid_backward, dsigmoid_v(v))
VM_BACKWARD(softplus_backward, sigmoid_v(v))

/* The row-independent dense layer (linear.h, linear_infer): out (B, OUT) =
 * in (B, IN) @ w^T + b on weights packed in panels of VM_DENSE_COLS outputs
 * (vecmath_internal.h). Each output lane runs acc = b; acc = acc + x_k w_k
 * for k = 0 .. IN - 1, every product and sum rounded (no FMA), so an output
 * is the same whatever the vector width, the row's place in the batch or B.
 * Rows are taken DENSE_ROWS at a time (accumulators that fit the registers:
 * 6 x 2 vectors of 8 on AVX2, 2 x 4 of 4 on SSE2), the last few through the
 * same code with fewer rows. */
#define DENSE_V (VM_DENSE_COLS / VM_LANES)
#define DENSE_ROWS (VM_LANES >= 8 ? 6 : 2)

VM_INLINE void dense_rows(float *out, const float *in, const float *panel, int R, int IN, int ncols, int OUT) {
  vf acc[DENSE_ROWS][DENSE_V]; /* in registers: the loops over r and v unrolled (R is a constant) */
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int v = 0; v < DENSE_V; v++) memcpy(&acc[r][v], panel + v * VM_LANES, sizeof(vf));
  const float *w = panel + VM_DENSE_COLS;
  for (int k = 0; k < IN; k++, w += VM_DENSE_COLS) {
    vf wv[DENSE_V];
#pragma GCC unroll 8
    for (int v = 0; v < DENSE_V; v++) memcpy(&wv[v], w + v * VM_LANES, sizeof(vf));
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const float x = in[(size_t)r * IN + k]; /* broadcast by the vector operation */
#pragma GCC unroll 8
      for (int v = 0; v < DENSE_V; v++) acc[r][v] = acc[r][v] + x * wv[v];
    }
  }
  for (int r = 0; r < R; r++) {
    if (ncols == VM_DENSE_COLS) {
      for (int v = 0; v < DENSE_V; v++) memcpy(out + (size_t)r * OUT + v * VM_LANES, &acc[r][v], sizeof(vf));
    } else {
      float tmp[VM_DENSE_COLS];
      memcpy(tmp, acc[r], sizeof tmp);
      memcpy(out + (size_t)r * OUT, tmp, sizeof(float) * (size_t)ncols);
    }
  }
}

void VM_NAME(dense)(float *out, const float *in, const float *pk, int B, int IN, int OUT) {
  const int panels = (OUT + VM_DENSE_COLS - 1) / VM_DENSE_COLS;
  for (int p = 0; p < panels; p++) {
    const float *panel = pk + (size_t)p * VM_DENSE_COLS * (IN + 1);
    const int c0 = p * VM_DENSE_COLS, ncols = OUT - c0 < VM_DENSE_COLS ? OUT - c0 : VM_DENSE_COLS;
    int r = 0;
    for (; r + DENSE_ROWS <= B; r += DENSE_ROWS)
      dense_rows(out + (size_t)r * OUT + c0, in + (size_t)r * IN, panel, DENSE_ROWS, IN, ncols, OUT);
    switch (B - r) { /* constant row counts, so the accumulators stay in registers */
#if DENSE_ROWS > 5
    case 5: dense_rows(out + (size_t)r * OUT + c0, in + (size_t)r * IN, panel, 5, IN, ncols, OUT); break;
    case 4: dense_rows(out + (size_t)r * OUT + c0, in + (size_t)r * IN, panel, 4, IN, ncols, OUT); break;
    case 3: dense_rows(out + (size_t)r * OUT + c0, in + (size_t)r * IN, panel, 3, IN, ncols, OUT); break;
    case 2: dense_rows(out + (size_t)r * OUT + c0, in + (size_t)r * IN, panel, 2, IN, ncols, OUT); break;
#endif
    case 1: dense_rows(out + (size_t)r * OUT + c0, in + (size_t)r * IN, panel, 1, IN, ncols, OUT); break;
    default: break;
    }
  }
}
