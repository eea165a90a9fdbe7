/* Benchmark of maze3d, single thread: rendering frames/s at 32x32 and 64x64
 * (single room and multiroom, the default supersample of 2) and physics steps/s,
 * with and without the walking explorer choosing the actions. Each figure
 * follows a warm-up and runs for at least 0.5 s; prints a markdown table.
 * Usage: bench_maze3d [seconds_per_measurement] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn/blas_core.h"
#include "nn/rng.h"
#include "sim/maze3d.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static maze3d *make(int layout, int res) {
  maze3d_config c = maze3d_config_default();
  c.layout = layout;
  c.W = c.H = res;
  c.seed = 17;
  maze3d *m = NULL;
  char err[256];
  if (maze3d_new(&m, &c, err, sizeof err) != 0) {
    fprintf(stderr, "bench_maze3d: %s\n", err);
    exit(1);
  }
  return m;
}

/* Renders while turning in place so every frame differs. */
static double bench_render(int layout, int res, double secs) {
  maze3d *m = make(layout, res);
  float *frame = malloc(sizeof(float) * (size_t)res * res * 3);
  if (!frame) exit(1);
  maze3d_pose p = maze3d_get_pose(m);
  volatile float sink = 0.0f;
  for (int i = 0; i < 50; i++) { /* warm-up */
    p.heading += 0.05;
    maze3d_render_at(m, &p, frame);
  }
  long n = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < 50; i++, n++) {
      p.heading += 0.05;
      maze3d_render_at(m, &p, frame);
      sink += frame[0];
    }
    t = now_s() - t0;
  } while (t < secs);
  free(frame);
  maze3d_free(m);
  return n / t;
}

/* Physics steps/s; explorer != 0: the walker picks each action (planning,
 * line of sight and its shield simulation included), else random actions. */
static double bench_steps(int layout, int explorer, double secs) {
  maze3d *m = make(layout, 8);
  maze3d_explorer ex;
  int scenario = layout == MAZE3D_LAYOUT_MULTIROOM ? MAZE3D_SCENARIO_MULTIROOM : MAZE3D_SCENARIO_WALK;
  if (maze3d_explorer_init(&ex, m, scenario, 3, NULL, 0) != 0) exit(1);
  rng_t r;
  rng_init(&r, 3, 4);
  maze3d_truth tr;
  for (int i = 0; i < 300; i++) maze3d_step(m, explorer ? maze3d_explorer_next(&ex) : (int)rng_below(&r, 8), &tr);
  long n = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < 300; i++, n++) {
      int a = explorer ? maze3d_explorer_next(&ex) : (int)rng_below(&r, 8);
      maze3d_step(m, a, &tr);
    }
    t = now_s() - t0;
  } while (t < secs);
  maze3d_explorer_free(&ex);
  maze3d_free(m);
  return n / t;
}

int main(int argc, char **argv) {
  char core[128];
  printf("BLAS core: %s\n\n", blas_core_describe(core, sizeof core));
  double secs = argc > 1 ? atof(argv[1]) : 0.6;
  if (!(secs > 0.0)) secs = 0.6;
  printf("| measurement | layout | rate |\n|---|---|---|\n");
  static const char *lname[] = {"single room", "multiroom"};
  for (int layout = 0; layout < 2; layout++)
    for (int res = 32; res <= 64; res *= 2)
      printf("| render %dx%d (supersample 2) | %s | %.0f frames/s |\n", res, res, lname[layout],
             bench_render(layout, res, secs));
  for (int layout = 0; layout < 2; layout++) {
    printf("| physics step, random actions | %s | %.0f steps/s |\n", lname[layout],
           bench_steps(layout, 0, secs));
    printf("| explorer + physics step | %s | %.0f steps/s |\n", lname[layout],
           bench_steps(layout, 1, secs));
  }
  return 0;
}
