/* The maze3d evaluator's position map: the least-squares similarity fit
 * recovers a known rotation, scale, translation and mirror image exactly, and
 * a degenerate (stationary) trajectory maps to its point. */
#include <math.h>

#include "model/eval_maze3d.h"
#include "testlib.h"

static void check_map(int mirror) {
  enum { n = 30 };
  float w[2 * n];
  double z[2 * n], f[5];
  test_fill_uniform(w, 2 * n, -3, 3, (uint64_t)(21 + mirror));
  double th = 0.7, sc = 1.8, tx = 4.5, ty = -2.0;
  for (int i = 0; i < n; i++) {
    double x = w[2 * i], y = mirror ? -w[2 * i + 1] : w[2 * i + 1];
    z[2 * i] = sc * (cos(th) * x - sin(th) * y) + tx;
    z[2 * i + 1] = sc * (sin(th) * x + cos(th) * y) + ty;
  }
  eval_similarity_fit(w, z, n, f);
  CHECK(f[4] == mirror, "mirror %d detected as %g", mirror, f[4]);
  double err = 0;
  for (int i = 0; i < n; i++) {
    double x, y;
    eval_similarity_apply(f, w[2 * i], w[2 * i + 1], &x, &y);
    err = fmax(err, hypot(x - z[2 * i], y - z[2 * i + 1]));
  }
  printf("similarity (mirror %d): scale %.6f, max residual %.3g\n", mirror, hypot(f[0], f[1]), err);
  CHECK(err < 1e-5, "residual %g", err);
  CHECK_NEAR(hypot(f[0], f[1]), sc, 1e-6, 1e-6, "scale");
}

int main(void) {
  check_map(0);
  check_map(1);
  float w[6] = {1, 2, 1, 2, 1, 2};
  double z[6] = {5, 5, 5, 5, 5, 5}, f[5], x, y;
  eval_similarity_fit(w, z, 3, f);
  eval_similarity_apply(f, 1, 2, &x, &y);
  CHECK(fabs(x - 5) < 1e-9 && fabs(y - 5) < 1e-9, "stationary: (%g, %g)", x, y);
  return test_finish("eval_maze3d");
}
