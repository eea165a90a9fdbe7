/* Tests of core/nn/params: layout and offsets from the size table, the three
 * kinds of initialisation and their determinism by seed, bad specs, the
 * checkpoint round trip (byte-identical re-save) and rejection of other
 * layouts or damaged files; Adam against hand-computed updates (python3,
 * quoted), the annealed learning rate, clipping, non-finite gradients, and
 * minimising a small quadratic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "nn/params.h"
#include "testlib.h"

static const param_spec SPECS[] = {
    {"enc.w", 6, 3, 0},      // uniform(+-1/sqrt(3))
    {"enc.b", 2, 0, 0},      // zeros
    {"logvar", 3, -1, 0.5f}, // constant 0.5
    {"dec.w", 4, 16, 0},     // uniform(+-1/4)
};
enum { NSPECS = sizeof SPECS / sizeof *SPECS, TOTAL = 15 };

static void test_layout(void) {
  param_block pb;
  char err[128] = "";
  int rc = params_init(&pb, SPECS, NSPECS, 7, err, sizeof err);
  CHECK(rc == 0, "params_init: %s", err);
  if (rc) return;
  CHECK(pb.n == NSPECS && pb.total == TOTAL, "n %zu total %zu", pb.n, pb.total);
  const size_t offsets[NSPECS] = {0, 6, 8, 11};
  for (size_t i = 0; i < NSPECS; i++) {
    CHECK(pb.entries[i].offset == offsets[i] && pb.entries[i].size == SPECS[i].size,
          "%s at %zu size %zu", pb.entries[i].name, pb.entries[i].offset, pb.entries[i].size);
    CHECK(params_find(&pb, SPECS[i].name) == (int)i, "params_find(%s)", SPECS[i].name);
    CHECK(params_get(&pb, SPECS[i].name) == pb.data + offsets[i], "params_get(%s)", SPECS[i].name);
  }
  CHECK(params_find(&pb, "nope") == -1 && params_get(&pb, "nope") == NULL, "unknown name found");
  /* gradients and moments in the same layout, one after the other */
  CHECK(pb.grad == pb.data + TOTAL && pb.m == pb.grad + TOTAL && pb.v == pb.m + TOTAL, "layout");
  const float *w = params_get(&pb, "enc.w"), *b = params_get(&pb, "enc.b");
  const float *lv = params_get(&pb, "logvar"), *dw = params_get(&pb, "dec.w");
  int in_bound = 1, distinct = 0;
  for (int i = 0; i < 6; i++) in_bound &= fabsf(w[i]) <= 1 / sqrtf(3), distinct += w[i] != w[0];
  for (int i = 0; i < 4; i++) in_bound &= fabsf(dw[i]) <= 0.25f;
  CHECK(in_bound && distinct > 0, "uniform init out of bound or constant");
  CHECK(b[0] == 0 && b[1] == 0, "zero init");
  CHECK(lv[0] == 0.5f && lv[1] == 0.5f && lv[2] == 0.5f, "constant init");
  int zero = 1;
  for (size_t i = 0; i < TOTAL; i++) zero &= pb.grad[i] == 0 && pb.m[i] == 0 && pb.v[i] == 0;
  CHECK(zero && pb.step == 0, "grad/m/v/step not zero after init");

  /* norm and zeroing of the gradient */
  pb.grad[0] = 3, pb.grad[TOTAL - 1] = 4;
  CHECK_NEAR(params_grad_norm(&pb), 5, 0, 1e-12, "grad norm of (3, ..., 4)");
  params_zero_grad(&pb);
  CHECK(params_grad_norm(&pb) == 0, "zero_grad");

  /* same seed: same bytes; another seed: different values */
  param_block p2, p3;
  params_init(&p2, SPECS, NSPECS, 7, NULL, 0);
  params_init(&p3, SPECS, NSPECS, 8, NULL, 0);
  CHECK(memcmp(pb.data, p2.data, TOTAL * sizeof(float)) == 0, "init not deterministic by seed");
  CHECK(memcmp(pb.data, p3.data, 6 * sizeof(float)) != 0, "seeds 7 and 8 gave the same init");
  params_free(&pb), params_free(&p2), params_free(&p3);
  CHECK(pb.data == NULL && pb.entries == NULL, "params_free leaves dangling pointers");

  /* bad specs */
  const param_spec dup[] = {{"a", 1, 0, 0}, {"a", 2, 0, 0}};
  err[0] = 0;
  rc = params_init(&pb, dup, 2, 1, err, sizeof err);
  CHECK(rc == GTMSM_EINVAL && strstr(err, "duplicate"), "duplicate name: rc %d '%s'", rc, err);
  char longname[PARAMS_NAME_MAX + 8];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  const param_spec lng[] = {{longname, 1, 0, 0}};
  err[0] = 0;
  rc = params_init(&pb, lng, 1, 1, err, sizeof err);
  CHECK(rc == GTMSM_EINVAL && strstr(err, "too long"), "long name: rc %d '%s'", rc, err);
  printf("layout, offsets, initialisation and bad specs checked\n");
}

/* Bytes of f from the start. Returns malloc'd buffer (caller frees), length in *n. */
static unsigned char *file_bytes(FILE *f, size_t *n) {
  fflush(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  rewind(f);
  unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
  *n = buf ? fread(buf, 1, (size_t)len, f) : 0;
  return buf;
}

static void test_save_load(void) {
  param_block a, b, c;
  char err[256] = "";
  params_init(&a, SPECS, NSPECS, 1, NULL, 0);
  params_init(&b, SPECS, NSPECS, 2, NULL, 0);
  /* give m, v and step non-trivial values */
  adam_config cfg = adam_default();
  for (int s = 0; s < 3; s++) {
    for (size_t i = 0; i < a.total; i++) a.grad[i] = 0.1f * (float)i - 0.5f;
    adam_update(&a, &cfg);
  }
  FILE *f1 = tmpfile(), *f2 = tmpfile();
  if (!f1 || !f2) {
    CHECK(0, "tmpfile failed");
    return;
  }
  int rc = params_save(&a, f1, err, sizeof err);
  CHECK(rc == 0, "save: %s", err);
  rewind(f1);
  rc = params_load(&b, f1, err, sizeof err);
  CHECK(rc == 0, "load: %s", err);
  CHECK(memcmp(a.data, b.data, a.total * sizeof(float)) == 0 &&
            memcmp(a.m, b.m, a.total * sizeof(float)) == 0 &&
            memcmp(a.v, b.v, a.total * sizeof(float)) == 0 && a.step == b.step && b.step == 3,
        "loaded block differs (step %ld vs %ld)", b.step, a.step);
  params_save(&b, f2, NULL, 0);
  size_t n1, n2;
  unsigned char *b1 = file_bytes(f1, &n1), *b2 = file_bytes(f2, &n2);
  CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0, "re-saved file differs (%zu vs %zu bytes)",
        n1, n2);
  printf("save/load round trip: %zu bytes, re-save byte-identical\n", n1);

  /* A layout with one size changed: rejected with a message naming the tensor, and
   * the receiving block untouched. */
  param_spec other[NSPECS];
  memcpy(other, SPECS, sizeof other);
  other[1].size = 3;
  params_init(&c, other, NSPECS, 3, NULL, 0);
  float before[16];
  memcpy(before, c.data, c.total * sizeof(float));
  rewind(f1);
  err[0] = 0;
  rc = params_load(&c, f1, err, sizeof err);
  printf("load into another layout: rc %d, '%s'\n", rc, err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "enc.b"), "other layout accepted: rc %d '%s'", rc, err);
  CHECK(memcmp(before, c.data, c.total * sizeof(float)) == 0, "rejected load changed parameters");
  params_free(&c);

  /* fewer tensors; a renamed tensor of the same size */
  params_init(&c, SPECS, NSPECS - 1, 3, NULL, 0);
  rewind(f1);
  err[0] = 0;
  rc = params_load(&c, f1, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && err[0], "different tensor count accepted: rc %d", rc);
  params_free(&c);
  memcpy(other, SPECS, sizeof other);
  other[2].name = "logvar2";
  params_init(&c, other, NSPECS, 3, NULL, 0);
  rewind(f1);
  err[0] = 0;
  rc = params_load(&c, f1, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "logvar"), "renamed tensor accepted: rc %d '%s'", rc, err);
  params_free(&c);

  /* damaged files: bad magic, truncated in the table, truncated in the data */
  FILE *g = tmpfile();
  fwrite("NOTAPB!!", 1, 8, g), fwrite(b1 + 8, 1, n1 - 8, g);
  rewind(g);
  err[0] = 0;
  rc = params_load(&b, g, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "magic"), "bad magic: rc %d '%s'", rc, err);
  fclose(g);
  const size_t cuts[] = {4, 30, 100, n1 - 4};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    g = tmpfile();
    fwrite(b1, 1, cuts[i], g);
    rewind(g);
    err[0] = 0;
    rc = params_load(&b, g, err, sizeof err);
    CHECK(rc == GTMSM_EFORMAT && err[0], "file cut at %zu bytes accepted: rc %d", cuts[i], rc);
    fclose(g);
  }
  free(b1), free(b2);
  fclose(f1), fclose(f2);
  params_free(&a), params_free(&b);
}

/* A load that fails (here: a file truncated inside the moments) leaves the
 * block untouched, so a caller can fall back to its fresh parameters. */
static void test_failed_load_leaves_block(void) {
  const param_spec spec[] = {{"x", 1000, 0, 0}};
  param_block a, b;
  params_init(&a, spec, 1, 1, NULL, 0);
  params_init(&b, spec, 1, 2, NULL, 0);
  for (size_t i = 0; i < 1000; i++) a.data[i] = 1.0f, b.data[i] = 2.0f;
  FILE *f = tmpfile(), *g = tmpfile();
  params_save(&a, f, NULL, 0);
  size_t n;
  unsigned char *bytes = file_bytes(f, &n);
  fwrite(bytes, 1, n - 8000, g); // cut inside m: data complete, m and v missing
  rewind(g);
  char err[128] = "";
  int rc = params_load(&b, g, err, sizeof err);
  int untouched = 1;
  for (size_t i = 0; i < 1000; i++) untouched &= b.data[i] == 2.0f;
  CHECK(rc == GTMSM_EFORMAT, "truncated data accepted: rc %d", rc);
  CHECK(untouched, "failed load (%s) modified the parameter block", err);
  free(bytes), fclose(f), fclose(g);
  params_free(&a), params_free(&b);
}

/* One tensor "x" (2) on the quadratic f = 0.5 (x0^2 + 4 x1^2), gradient (x0, 4 x1). */
static void quad_grad(param_block *pb) {
  pb->grad[0] = pb->data[0];
  pb->grad[1] = 4 * pb->data[1];
}

static void test_adam_hand(void) {
  const param_spec spec[] = {{"x", 2, 0, 0}};
  param_block pb;
  params_init(&pb, spec, 1, 1, NULL, 0);
  pb.data[0] = 1, pb.data[1] = -2;
  adam_config c = adam_default();
  c.lr = c.lr_final = 0.1f;
  /* python3, Adam with lr 0.1, betas (0.9, 0.999), eps 1e-8 from x = (1, -2):
   *   step 1: g = (1, -8), |g| = 8.06225774829855, x = (0.900000001, -1.900000000125)
   *     (the first step is lr * g / |g| per element: m_hat = g, v_hat = g^2);
   *   step 2: g = (0.9, -7.6), |g| = 7.653103946073122, m = (0.18, -1.48),
   *     v = (0.001809, 0.121696), x = (0.8004122297123382, -1.8001664858630053). */
  quad_grad(&pb);
  double n1 = adam_update(&pb, &c);
  CHECK_NEAR(n1, 8.06225774829855, 0, 1e-7, "adam step 1 grad norm");
  CHECK_NEAR(pb.data[0], 0.900000001, 1e-6, 0, "adam step 1 x0");
  CHECK_NEAR(pb.data[1], -1.900000000125, 1e-6, 0, "adam step 1 x1");
  quad_grad(&pb);
  double n2 = adam_update(&pb, &c);
  CHECK_NEAR(n2, 7.653103946073122, 0, 1e-6, "adam step 2 grad norm");
  CHECK_NEAR(pb.m[0], 0.18, 1e-7, 0, "adam m0");
  CHECK_NEAR(pb.m[1], -1.48, 1e-6, 0, "adam m1");
  /* 1 - 0.999f is 0.00099998713 in float, 1.3e-5 relative off 0.001: rtol 3e-5 for v */
  CHECK_NEAR(pb.v[0], 0.001809, 0, 3e-5, "adam v0");
  CHECK_NEAR(pb.v[1], 0.121696, 0, 3e-5, "adam v1");
  CHECK_NEAR(pb.data[0], 0.8004122297123382, 1e-6, 0, "adam step 2 x0");
  CHECK_NEAR(pb.data[1], -1.8001664858630053, 1e-6, 0, "adam step 2 x1");
  CHECK(pb.step == 2, "step %ld", pb.step);
  printf("adam: two steps on a quadratic match the hand computation\n");

  /* Annealing: lr 1e-3 -> 1e-4 over 100 steps. */
  adam_config a = adam_default();
  a.lr = 1e-3f, a.lr_final = 1e-4f, a.anneal_steps = 100;
  CHECK_NEAR(adam_lr(&a, 0), 1e-3, 0, 1e-6, "lr at step 0");
  CHECK_NEAR(adam_lr(&a, 25), 7.75e-4, 0, 1e-6, "lr at step 25");
  CHECK_NEAR(adam_lr(&a, 50), 5.5e-4, 0, 1e-6, "lr at half");
  CHECK_NEAR(adam_lr(&a, 100), 1e-4, 0, 1e-6, "lr at end");
  CHECK_NEAR(adam_lr(&a, 100000), 1e-4, 0, 1e-6, "lr beyond end");
  a.anneal_steps = 0;
  CHECK_NEAR(adam_lr(&a, 0), 1e-3, 0, 1e-6, "constant lr");
  CHECK_NEAR(adam_lr(&a, 100000), 1e-3, 0, 1e-6, "constant lr later");
  /* The update uses the rate of the step it starts from: from step 50 with fresh
   * moments and g = (1, -8), python3: the step is lr(50) * (0.1/(1-0.9^51)) /
   * sqrt(0.001/(1-0.999^51)) = 5.5e-4 * 0.7085921798550544 = 3.8972567e-4 per element. */
  a.anneal_steps = 100;
  memset(pb.m, 0, 2 * sizeof(float)), memset(pb.v, 0, 2 * sizeof(float));
  pb.data[0] = 1, pb.data[1] = -2, pb.grad[0] = 1, pb.grad[1] = -8, pb.step = 50;
  adam_update(&pb, &a);
  CHECK_NEAR(1 - pb.data[0], 3.8972567e-4, 0, 3e-4, "annealed step x0"); // float betas: ~1e-4
  CHECK_NEAR(pb.data[1] + 2, 3.8972567e-4, 0, 3e-4, "annealed step x1");
  CHECK(pb.step == 51, "step %ld after annealed update", pb.step);
  printf("adam: lr 1e-3 -> 1e-4 over 100 steps: %g %g %g %g at steps 0 25 50 100, %g beyond\n",
         adam_lr(&a, 0), adam_lr(&a, 25), adam_lr(&a, 50), adam_lr(&a, 100), adam_lr(&a, 100000));
  params_free(&pb);
}

/* Clipping: with eps = 1 the step lr g / (|g| + 1) depends on the scale of g, so
 * scaling g = (6, 8), norm 10, down to norm 1 shows: (0.6/1.6, 0.8/1.8) =
 * (0.375, 0.4444) instead of (6/7, 8/9) = (0.8571, 0.8889) unclipped. The returned
 * norm is the one before clipping. */
static void test_adam_clip(void) {
  const param_spec spec[] = {{"x", 2, 0, 0}};
  adam_config c = adam_default();
  c.lr = c.lr_final = 1, c.eps = 1;
  for (int clip = 0; clip < 2; clip++) {
    param_block pb;
    params_init(&pb, spec, 1, 1, NULL, 0);
    c.clip_norm = clip ? 1.0f : 0.0f;
    pb.grad[0] = 6, pb.grad[1] = 8;
    double norm = adam_update(&pb, &c);
    CHECK_NEAR(norm, 10, 0, 1e-7, "norm before clipping");
    CHECK_NEAR(-pb.data[0], clip ? 0.375 : 6.0 / 7, 0, 1e-5, clip ? "clipped x0" : "unclipped x0");
    CHECK_NEAR(-pb.data[1], clip ? 0.8 / 1.8 : 8.0 / 9, 0, 1e-5, clip ? "clipped x1" : "unclipped x1");
    printf("adam clip_norm %g: step (%.4f, %.4f)\n", c.clip_norm, -pb.data[0], -pb.data[1]);
    params_free(&pb);
  }
  /* A gradient already under the clip norm is not scaled (same step as clip 0). */
  param_block pb;
  params_init(&pb, spec, 1, 1, NULL, 0);
  c.clip_norm = 100;
  pb.grad[0] = 6, pb.grad[1] = 8;
  adam_update(&pb, &c);
  CHECK_NEAR(-pb.data[0], 6.0 / 7, 0, 1e-5, "clip above the norm changed the step");
  params_free(&pb);
}

/* A NaN or Inf in the gradient: NaN returned, parameters, moments and step untouched. */
static void test_adam_nonfinite(void) {
  param_block pb;
  params_init(&pb, SPECS, NSPECS, 5, NULL, 0);
  adam_config c = adam_default();
  for (size_t i = 0; i < pb.total; i++) pb.grad[i] = 0.01f * (float)i;
  adam_update(&pb, &c); // non-zero moments to compare against
  const float bad[2] = {NAN, INFINITY};
  for (int t = 0; t < 2; t++) {
    size_t bytes = 3 * pb.total * sizeof(float); // data is followed by grad; compare data, m, v
    float *snap = malloc(bytes);
    memcpy(snap, pb.data, pb.total * sizeof(float));
    memcpy(snap + pb.total, pb.m, 2 * pb.total * sizeof(float)); // m and v are contiguous
    long step = pb.step;
    pb.grad[3] = bad[t];
    double r = adam_update(&pb, &c);
    CHECK(isnan(r), "non-finite gradient returned %g", r);
    CHECK(memcmp(snap, pb.data, pb.total * sizeof(float)) == 0 &&
              memcmp(snap + pb.total, pb.m, 2 * pb.total * sizeof(float)) == 0 && pb.step == step,
          "non-finite gradient (%g) changed the block", bad[t]);
    free(snap);
  }
  printf("adam: NaN and Inf gradients return NaN and leave the block untouched\n");
  params_free(&pb);
}

/* Adam minimises f = 0.5 sum_i a_i (x_i - c_i)^2 with condition number 100. */
static void test_adam_minimises(void) {
  enum { N = 5 };
  const float a[N] = {0.1f, 1, 3, 10, 0.5f}, cst[N] = {1, -2, 0.5f, 3, -1};
  const param_spec spec[] = {{"x", N, 0, 0}};
  param_block pb;
  params_init(&pb, spec, 1, 1, NULL, 0);
  adam_config c = adam_default();
  c.lr = 0.05f, c.lr_final = 1e-4f, c.anneal_steps = 3000;
  double f0 = 0, f = 0;
  for (int i = 0; i < N; i++) f0 += 0.5 * a[i] * cst[i] * cst[i];
  for (int s = 0; s < 3000; s++) {
    for (int i = 0; i < N; i++) pb.grad[i] = a[i] * (pb.data[i] - cst[i]);
    adam_update(&pb, &c);
  }
  double worst = 0;
  for (int i = 0; i < N; i++) {
    f += 0.5 * a[i] * (pb.data[i] - cst[i]) * (pb.data[i] - cst[i]);
    worst = fmax(worst, fabs(pb.data[i] - cst[i]));
  }
  printf("adam on a 5-d quadratic: f %.3g -> %.3g after 3000 steps, max |x - x*| %.2e (tol 1e-3)\n",
         f0, f, worst);
  CHECK(worst < 1e-3, "Adam did not minimise the quadratic: max |x - x*| = %g", worst);
  params_free(&pb);
}

int main(void) {
  test_layout();
  test_save_load();
  test_failed_load_leaves_block();
  test_adam_hand();
  test_adam_clip();
  test_adam_nonfinite();
  test_adam_minimises();
  return test_finish("test_params");
}
