/* Benchmarks of the image-navigation pipeline, single thread:
 * - environment: imagenav frames/s (episode generation incl. the world);
 * - training: sequences/s of the full loss forward+backward (256 + 32 steps),
 *   as a ratio to the encoder+decoder GEMM work alone timed in the same run;
 * - prediction: frames/s of gtmsm_predict (state rollout, kNN, batched
 *   decoder) for 256 actions after 256 observations, and observations/s. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/api.h"
#include "model/gtmsm.h"
#include "nn/blas_core.h"
#include "nn/linear.h"
#include "nn/rng.h"
#include "sim/imagenav.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
  char core[128];
  printf("BLAS core: %s\n\n", blas_core_describe(core, sizeof core));
  openblas_set_num_threads(1);
  enum { T = 256, P = 32, N = T + P, PRED = 256 };
  gtmsm_config c = gtmsm_default_config();
  gtmsm_model m;
  char err[256];
  if (gtmsm_model_init(&m, &c, 1, err, sizeof err)) return 1;
  static float world[WORLD_SIZE * WORLD_SIZE * 3];
  float *frames = malloc(sizeof(float) * (T + PRED) * IMAGENAV_FRAME);
  int actions[T + PRED];
  imagenav_options o = imagenav_default_options();
  printf("| benchmark | rate | note |\n|---|---:|---|\n");

  /* environment */
  double t0 = now();
  long eps = 0;
  while (now() - t0 < 1.0) {
    world_generate(world, (uint64_t)eps);
    imagenav_episode(world, &o, (uint64_t)eps, N, frames, actions, NULL);
    eps++;
  }
  double dt = now() - t0;
  printf("| imagenav episode generation | %.0f frames/s | procedural world + %d-step episode |\n",
         eps * (double)N / dt, N);

  /* training loss forward + backward */
  gtmsm_ws *ws = gtmsm_ws_new(&c, N, 1);
  float *grad = calloc(m.p.total, sizeof(float));
  float *ez = malloc(sizeof(float) * N * c.Z), *es = malloc(sizeof(float) * N * c.S);
  rng_t r;
  rng_init(&r, 1, 1);
  rng_normal_fill(&r, ez, (size_t)N * c.Z);
  rng_normal_fill(&r, es, (size_t)N * c.S);
  gtmsm_seq_spec spec = {.N = N, .T = T, .aux = 0.5f, .kl_weight = 1};
  gtmsm_seq_stats st;
  gtmsm_seq_loss(&m, ws, &spec, frames, actions, ez, es, grad, &st); /* warm-up */
  t0 = now();
  long seqs = 0;
  while (now() - t0 < 2.0) {
    gtmsm_seq_loss(&m, ws, &spec, frames, actions, ez, es, grad, &st);
    seqs++;
  }
  double seq_rate = seqs / (now() - t0);
  /* baseline: the same GEMMs (encoder over N rows, decoder over N rows, forward
   * + two backward products each) with nothing else */
  int D = gtmsm_config_D(&c), H = c.hidden, Z = c.Z;
  float *a = calloc((size_t)N * 1024, sizeof(float)), *b = calloc((size_t)N * 1024, sizeof(float));
  int shapes[6][2] = {{D, H}, {H, H}, {H, 2 * Z}, {Z, H}, {H, H}, {H, D}};
  t0 = now();
  long reps = 0;
  while (now() - t0 < 2.0) {
    for (int s = 0; s < 6; s++) {
      int in = shapes[s][0], out = shapes[s][1];
      linear_forward(b, a, m.p.data, NULL, N, in, out);
      linear_backward(a, m.p.grad, NULL, b, a, m.p.data, N, in, out);
    }
    reps++;
  }
  double gemm_rate = reps / (now() - t0);
  printf("| training loss fwd+bwd | %.1f sequences/s | %d+%d steps, hidden %d; GEMMs alone %.1f/s, ratio %.2f |\n",
         seq_rate, T, P, c.hidden, gemm_rate, seq_rate / gemm_rate);

  /* observation and prediction */
  world_generate(world, 7);
  imagenav_episode(world, &o, 7, T + PRED, frames, actions, NULL);
  gtmsm_memory *mem = gtmsm_memory_new(&m);
  t0 = now();
  long obs = 0;
  while (now() - t0 < 1.0) {
    gtmsm_memory_free(mem);
    mem = gtmsm_memory_new(&m);
    gtmsm_observe(&m, mem, actions, frames, T, NULL, 0);
    obs += T;
  }
  printf("| observe (encode + transition + insert) | %.0f observations/s | batches of %d |\n", obs / (now() - t0), T);
  float *out = malloc(sizeof(float) * PRED * D);
  t0 = now();
  long preds = 0;
  while (now() - t0 < 2.0) {
    gtmsm_predict(&m, mem, actions + T, PRED, GTMSM_PREDICT_MEAN, 0, out, NULL, NULL, 0);
    preds++;
  }
  dt = now() - t0;
  printf("| predict %d steps (mean mode) | %.0f frames/s | %.2f ms per request |\n", PRED, preds * PRED / dt,
         1e3 * dt / preds);
  gtmsm_memory_free(mem);
  gtmsm_ws_free(ws);
  free(grad);
  free(ez);
  free(es);
  free(a);
  free(b);
  free(out);
  free(frames);
  gtmsm_model_free(&m);
  return 0;
}
