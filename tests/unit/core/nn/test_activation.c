/* Tests of core/nn/activation: every activation's forward at hand-worked points
 * (values from python3's math module, quoted below), softplus and sigmoid at
 * large |x| (no overflow, relative accuracy where the value is tiny), names,
 * and a gradcheck of every backward, with the ReLU-family kinks skipped. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/activation.h"
#include "testlib.h"

#define NPTS 5
static const float PTS[NPTS] = {-2, -0.5f, 0, 0.5f, 3};

typedef struct {
  act_kind kind;
  float alpha;
  double expect[NPTS];
} fwd_case;

/* python3: [math.expm1(x) ...], [1/(1+math.exp(-x)) ...], [math.tanh(x) ...],
 * [math.log1p(math.exp(x)) ...], [math.exp(x) ...] at x = -2, -0.5, 0, 0.5, 3. */
static const fwd_case FWD[] = {
    {ACT_IDENTITY, 0, {-2, -0.5, 0, 0.5, 3}},
    {ACT_RELU, 0, {0, 0, 0, 0.5, 3}},
    {ACT_LEAKY_RELU, 0.1f, {-0.2, -0.05, 0, 0.5, 3}},
    {ACT_ELU, 1.0f, {-0.8646647167633873, -0.3934693402873666, 0, 0.5, 3}},
    {ACT_ELU, 0.5f, {-0.43233235838169365, -0.1967346701436833, 0, 0.5, 3}},
    {ACT_SIGMOID, 0,
     {0.11920292202211755, 0.3775406687981454, 0.5, 0.6224593312018546, 0.9525741268224334}},
    {ACT_TANH, 0,
     {-0.9640275800758169, -0.46211715726000974, 0, 0.46211715726000974, 0.9950547536867305}},
    {ACT_SOFTPLUS, 0,
     {0.1269280110429725, 0.4740769841801067, 0.6931471805599453, 0.9740769841801067,
      3.048587351573742}},
    {ACT_EXP, 0, {0.1353352832366127, 0.6065306597126334, 1, 1.6487212707001282, 20.085536923187668}},
};

static void test_forward_values(void) {
  for (size_t t = 0; t < sizeof FWD / sizeof *FWD; t++) {
    float out[NPTS];
    act_forward(out, PTS, NPTS, FWD[t].kind, FWD[t].alpha);
    char what[64];
    for (int i = 0; i < NPTS; i++) {
      snprintf(what, sizeof what, "%s(alpha %g) at %g", act_name(FWD[t].kind), FWD[t].alpha, PTS[i]);
      CHECK_NEAR(out[i], FWD[t].expect[i], 1e-7, 2e-7, what); // float rounding: ~1 ulp
    }
  }
  /* out may alias in */
  float x[NPTS];
  memcpy(x, PTS, sizeof x);
  act_forward(x, x, NPTS, ACT_TANH, 0);
  CHECK_NEAR(x[4], 0.9950547536867305, 1e-7, 2e-7, "tanh in place");
  printf("forward values of %zu activation cases compared at %d points\n", sizeof FWD / sizeof *FWD,
         NPTS);
}

static void test_large_inputs(void) {
  /* python3: math.log1p(math.exp(-20)) = 2.061153620314381e-09,
   * math.log1p(math.exp(-80)) = 1.8048513878454153e-35 (a normal float), and
   * log(1 + e^x) = x to float precision for x >= 80. Sigmoid(-80) is the same
   * 1.8048513878454153e-35; the naive 1/(1+exp(80)) would also work, but exp(x)/(1+exp(x))
   * at x = 100 would be inf/inf = NaN, which is what the stable forms avoid. */
  const float x[] = {-1000, -80, -20, 20, 80, 100, 1000};
  const double sp[] = {0, 1.8048513878454153e-35, 2.061153620314381e-09, 20.000000002061153,
                       80, 100, 1000};
  const double sg[] = {0, 1.8048513878454153e-35, 2.0611536181902037e-09, 0.9999999979388464, 1, 1, 1};
  float y[7];
  act_forward(y, x, 7, ACT_SOFTPLUS, 0);
  for (int i = 0; i < 7; i++) CHECK_NEAR(y[i], sp[i], 0, 1e-6, "softplus at large |x|");
  act_forward(y, x, 7, ACT_SIGMOID, 0);
  for (int i = 0; i < 7; i++) CHECK_NEAR(y[i], sg[i], 1e-45, 1e-6, "sigmoid at large |x|");
  act_forward(y, x, 7, ACT_TANH, 0);
  for (int i = 0; i < 7; i++) CHECK(isfinite(y[i]) && fabsf(y[i]) <= 1, "tanh(%g) = %g", x[i], y[i]);
  float din[7] = {0}, dout[7] = {1, 1, 1, 1, 1, 1, 1};
  act_forward(y, x, 7, ACT_SOFTPLUS, 0);
  act_backward(din, dout, x, y, 7, ACT_SOFTPLUS, 0);
  for (int i = 0; i < 7; i++) CHECK_NEAR(din[i], sg[i], 1e-45, 1e-6, "softplus' = sigmoid at large |x|");
  printf("softplus, sigmoid, tanh at |x| up to 1000: finite, relative error <= 1e-6\n");
}

static void test_names(void) {
  for (int k = ACT_IDENTITY; k <= ACT_EXP; k++)
    CHECK(act_from_name(act_name((act_kind)k)) == k, "name round trip for %d", k);
  CHECK(act_from_name("relu") == ACT_RELU && act_from_name("softplus") == ACT_SOFTPLUS, "names");
  CHECK(act_from_name("gelu") == -1 && act_from_name("") == -1, "unknown name accepted");
}

/* ---- gradchecks ---- */

enum { N = 64 };

typedef struct {
  act_kind kind;
  float alpha;
  float x[N], y[N], r[N];
} act_ctx;

static double act_loss(void *p) {
  act_ctx *c = p;
  act_forward(c->y, c->x, N, c->kind, c->alpha);
  return test_dot(c->y, c->r, N);
}

/* Skip elements within eps of the kink at 0 (central differences straddle it). */
static int skip_kink(void *p, size_t i, double eps) { return fabs(((act_ctx *)p)->x[i]) < eps; }

static double check_act(act_kind kind, float alpha, float lo, float hi, double eps, double tol,
                        double floor, int skip, uint64_t seed) {
  static act_ctx c;
  c.kind = kind, c.alpha = alpha;
  test_fill_uniform(c.x, N, lo, hi, seed);
  test_fill_uniform(c.r, N, -1, 1, seed + 1);
  if (skip) c.x[0] = 0.0f, c.x[1] = 1e-4f; // make sure the kink itself is exercised and skipped
  /* din starts from din0 so that the check covers accumulation; where the
   * derivative is tiny (floor < 1e-3) din0 is 0, else adding it would round the
   * gradient away in float. */
  float din[N], din0[N] = {0};
  if (floor >= 1e-3) test_fill_uniform(din0, N, -1, 1, seed + 2);
  memcpy(din, din0, sizeof din);
  act_forward(c.y, c.x, N, kind, alpha);
  act_backward(din, c.r, c.x, c.y, N, kind, alpha);
  for (int i = 0; i < N; i++) din[i] -= din0[i]; // backward accumulates into din0
  gc_opts o = gc_default();
  o.eps = eps, o.tol = tol, o.floor = floor, o.seed = seed;
  o.skip = skip ? skip_kink : NULL;
  char label[64];
  snprintf(label, sizeof label, "%s(alpha %g) on [%g, %g]", act_name(kind), alpha, lo, hi);
  return gradcheck(label, c.x, din, N, act_loss, &c, &o);
}

static void test_gradients(void) {
  /* eps 1e-2: truncation error f'''eps^2/6 ~ 2e-5 relative, float rounding of f
   * ~6e-8 |f| / 2e-2 ~ 3e-6 |f|; tol 1e-3 is ~30x the worst seen and a wrong
   * derivative (sign, missing alpha, y vs x) is off by O(1). Piecewise-linear
   * ReLU/leaky ReLU are exact away from the kink, so they get tol 1e-4. */
  check_act(ACT_IDENTITY, 0, -3, 3, 1e-2, 1e-4, 1e-3, 0, 10);
  check_act(ACT_RELU, 0, -3, 3, 1e-2, 1e-4, 1e-3, 1, 20);
  check_act(ACT_LEAKY_RELU, 0.2f, -3, 3, 1e-2, 1e-4, 1e-3, 1, 30); // not the 0.1 of the forward table
  check_act(ACT_ELU, 1.0f, -3, 3, 1e-2, 1e-3, 1e-3, 1, 40);
  check_act(ACT_ELU, 0.5f, -3, 3, 1e-2, 1e-3, 1e-3, 1, 50); // a kink at 0 when alpha != 1
  /* Sigmoid only on [-4, 4]: beyond, y is within 3e-3 of 0 or 1 where float
   * resolution of y (6e-8) over 2 eps makes ~1e-3 noise; [-30, -15] below checks
   * the tail relative to its own size. */
  check_act(ACT_SIGMOID, 0, -4, 4, 1e-2, 1e-3, 1e-3, 0, 60);
  check_act(ACT_TANH, 0, -3, 3, 1e-2, 1e-3, 1e-3, 0, 70);
  check_act(ACT_SOFTPLUS, 0, -6, 6, 1e-2, 1e-3, 1e-3, 0, 80);
  check_act(ACT_EXP, 0, -3, 3, 1e-2, 1e-3, 1e-3, 0, 90);
  /* Large |x|: the derivative of softplus is sigmoid(x) ~ 1e-9..1e-13 below -20, so
   * the floor is lowered to 1e-30 to compare it in relative terms there; above 20
   * it is 1 - tiny, and the forward is x to float precision. */
  check_act(ACT_SOFTPLUS, 0, -30, -20, 1e-2, 1e-3, 1e-30, 0, 100);
  check_act(ACT_SOFTPLUS, 0, 20, 60, 1e-2, 1e-3, 1e-3, 0, 110);
  check_act(ACT_SIGMOID, 0, -30, -15, 1e-2, 1e-3, 1e-30, 0, 120);
  /* No such check for tanh: the analytic derivative is computed from x
   * (sech^2, see nn/vecmath.h) but the numeric one differences y, which is
   * within a few ulp of 1 for |x| > ~5, so it would test float, not the code;
   * test_vecmath.c measures tanh' against libm there instead. */
}

int main(void) {
  test_forward_values();
  test_large_inputs();
  test_names();
  test_gradients();
  return test_finish("test_activation");
}
