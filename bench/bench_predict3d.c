/* Benchmark of 3-D prediction (maze3d models, convolutional VAE), single
 * thread, in process: after a walk episode's first T = 150 steps are
 * observed,
 * - a 150-step prediction (mean mode): frames/s and ms per request;
 * - one predicted frame (the interactive case: one action, one frame);
 * each against the conv decoder's GEMMs alone (its linear layer over all the
 * frames, the transposed conv and the conv per image, as plain cblas_sgemm
 * calls of the same shapes on the same number of frames) timed in the same
 * run, as a ratio; then the 150-step and a 48-step (one block) prediction
 * with the spare cores' helper threads (model/par.h) against them without.
 * Usage: bench_predict3d [MODEL.gtm] [--gemm-json]
 * (default models/maze3d_walk.gtm, else models/maze3d_rotate.gtm); with
 * --gemm-json it prints only the GEMM times as JSON, for bench_server.py,
 * which measures the same through gtmsmd at 1 and 8 clients. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/api.h"
#include "model/gtmsm.h"
#include "model/gtmsm_internal.h"
#include "model/modelfile.h"
#include "model/par.h"
#include "nn/blas_core.h"
#include "nn/rng.h"
#include "sim/maze3d.h"

enum { T = 150, P = 150 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  int B, Z, hw2, c1, c2, C, HW, HW2;
  float *z, *a, *col, *b, *w; /* plain buffers, large enough for every product */
} dec_gemm;

/* The decoder's three products for B frames (see vae_conv.c), as the layers
 * run them: the linear layer as one GEMM over the B rows, (B, Z) x (Z,
 * c2 HW/4); the transposed conv and the conv one image per GEMM (conv.c does
 * so on a 32x32 model's grids of 256 and 1024 pixels): (c1 16, HW/4) = W^T
 * (c1 16, c2) x (c2, HW/4) and (C, HW) = W (C, c1 9) x (c1 9, HW). */
static void dec_gemm_run(const dec_gemm *g) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->B, g->hw2, g->Z, 1.0f, g->z, g->Z, g->w, g->Z, 0.0f,
              g->a, g->hw2);
  for (int i = 0; i < g->B; i++) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->c1 * 16, g->HW2, g->c2, 1.0f, g->w, g->c1 * 16,
                g->a + (size_t)i * g->hw2, g->HW2, 0.0f, g->col, g->HW2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->C, g->HW, g->c1 * 9, 1.0f, g->w, g->c1 * 9,
                g->col, g->HW, 0.0f, g->b + (size_t)i * g->C * g->HW, g->HW);
  }
}

/* Seconds per call of fn(ctx): one round of at least 0.2 s. */
static double round_time(void (*fn)(void *), void *ctx) {
  long n = 0;
  double t0 = now(), dt;
  do {
    fn(ctx);
    n++;
  } while ((dt = now() - t0) < 0.2);
  return dt / n;
}

/* The best of 7 rounds of a and of b, interleaved (a, b, a, b, ...) so that
 * a machine whose load changes meanwhile slows both alike. */
static void best_pair(void (*a)(void *), void *ca, void (*b)(void *), void *cb, double *ta, double *tb) {
  a(ca); /* warm-up */
  b(cb);
  *ta = *tb = 1e30;
  for (int r = 0; r < 7; r++) {
    double x = round_time(a, ca), y = round_time(b, cb);
    if (x < *ta) *ta = x;
    if (y < *tb) *tb = y;
  }
}

static void gemm_fn(void *p) { dec_gemm_run(p); }

/* Buffers for the decoder's GEMMs on B frames of model config c; 0 or -1. */
static int dec_gemm_init(dec_gemm *g, const gtmsm_config *c, int B) {
  *g = (dec_gemm){.B = B, .Z = c->Z, .c1 = c->channels, .c2 = 2 * c->channels, .C = c->C, .HW = c->H * c->W,
                  .HW2 = (c->H / 2) * (c->W / 2)};
  g->hw2 = g->c2 * g->HW2;
  size_t big = (size_t)g->c1 * 16 * g->HW2 > (size_t)g->c1 * 9 * g->HW ? (size_t)g->c1 * 16 * g->HW2
                                                                        : (size_t)g->c1 * 9 * g->HW;
  g->z = calloc((size_t)B * g->Z, sizeof(float));
  g->a = calloc((size_t)B * g->hw2, sizeof(float));
  g->col = calloc(big, sizeof(float));
  g->b = calloc((size_t)B * g->C * g->HW, sizeof(float));
  g->w = calloc((size_t)g->hw2 * g->Z + (size_t)g->c1 * 16 * g->c2 + 1, sizeof(float));
  if (!g->z || !g->a || !g->col || !g->b || !g->w) return -1;
  rng_t r;
  rng_init(&r, 5, 5);
  rng_normal_fill(&r, g->z, (size_t)B * g->Z);
  rng_normal_fill(&r, g->w, (size_t)g->hw2 * g->Z);
  return 0;
}

static void dec_gemm_free(dec_gemm *g) {
  free(g->z);
  free(g->a);
  free(g->col);
  free(g->b);
  free(g->w);
}

typedef struct {
  const gtmsm_model *m;
  const gtmsm_memory *mem;
  const int *actions;
  int n;
  float *out;
} pred_ctx;

static void pred_fn(void *p) {
  pred_ctx *c = p;
  gtmsm_predict(c->m, c->mem, c->actions, c->n, GTMSM_PREDICT_MEAN, 0, c->out, NULL, NULL, 0);
}

typedef struct {
  const gtmsm_model *m;
  gtmsm_memory *mem;
  const int *action;
  const float *frame;
} obs_ctx;

/* One more observed frame (the memory grows by one entry per call). */
static void obs_fn(void *p) {
  obs_ctx *c = p;
  gtmsm_observe(c->m, c->mem, c->action, c->frame, 1, NULL, 0);
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int gemm_json = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--gemm-json") == 0)
      gemm_json = 1;
    else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: bench_predict3d [MODEL.gtm] [--gemm-json]\n");
      return 2;
    } else
      path = argv[i];
  }
  if (!path) {
    FILE *f = fopen("models/maze3d_walk.gtm", "rb");
    path = f ? "models/maze3d_walk.gtm" : "models/maze3d_rotate.gtm";
    if (f) fclose(f);
  }
  openblas_set_num_threads(1);
  const int spare = par_helpers();
  par_set_helpers(0); /* one thread, but for the helpers' own row */
  char err[512], core[128];
  gtmsm_model m;
  if (gtmsm_model_load(&m, path, err, sizeof err)) {
    fprintf(stderr, "bench_predict3d: %s\n", err);
    return 1;
  }
  if (m.cfg.vae != GTMSM_VAE_CONV) {
    fprintf(stderr, "bench_predict3d: %s is not a convolutional (maze3d) model\n", path);
    gtmsm_model_free(&m);
    return 1;
  }
  dec_gemm gb[2];
  if (dec_gemm_init(&gb[0], &m.cfg, P) || dec_gemm_init(&gb[1], &m.cfg, 1)) {
    fprintf(stderr, "bench_predict3d: out of memory\n");
    return 1;
  }
  if (gemm_json) {
    double g150 = 1e30, g1 = 1e30;
    for (int r = 0; r < 7; r++) {
      double x = round_time(gemm_fn, &gb[0]), y = round_time(gemm_fn, &gb[1]);
      g150 = x < g150 ? x : g150;
      g1 = y < g1 ? y : g1;
    }
    printf("{\"blas_core\": \"%s\", \"decoder_gemm_ms\": {\"%d\": %.4f, \"1\": %.4f}}\n",
           blas_core_describe(core, sizeof core), P, 1e3 * g150, 1e3 * g1);
    dec_gemm_free(&gb[0]);
    dec_gemm_free(&gb[1]);
    gtmsm_model_free(&m);
    return 0;
  }
  printf("BLAS core: %s\nmodel: %s (%dx%d frames, latent %d, channels %d, K %d)\n\n",
         blas_core_describe(core, sizeof core), path, m.cfg.W, m.cfg.H, m.cfg.Z, m.cfg.channels, m.cfg.K);
  maze3d_config mc = maze3d_config_default();
  mc.W = m.cfg.W;
  mc.H = m.cfg.H;
  mc.seed = 11;
  int rc = 1;
  float *frames = malloc(sizeof(float) * (size_t)(T + P) * gtmsm_config_D(&m.cfg));
  float *out = malloc(sizeof(float) * (size_t)P * gtmsm_config_D(&m.cfg));
  int actions[T + P];
  gtmsm_memory *mem = gtmsm_memory_new(&m);
  if (!frames || !out || !mem ||
      maze3d_episode(&mc, MAZE3D_SCENARIO_WALK, 11, T + P, 0, frames, actions, NULL, err, sizeof err) ||
      gtmsm_observe(&m, mem, actions, frames, T, err, sizeof err)) {
    fprintf(stderr, "bench_predict3d: %s\n", err);
    goto done;
  }
  pred_ctx pc = {&m, mem, actions + T, P, out}, pc1 = {&m, mem, actions + T, 1, out};
  double t150, g150, t1, g1;
  best_pair(pred_fn, &pc, gemm_fn, &gb[0], &t150, &g150);
  best_pair(pred_fn, &pc1, gemm_fn, &gb[1], &t1, &g1);
  printf("| benchmark | time | frames/s | decoder GEMMs alone | ratio |\n|---|---:|---:|---:|---:|\n");
  printf("| predict %d steps after %d observed | %.2f ms | %.0f | %.2f ms | %.2f |\n", P, T, 1e3 * t150, P / t150,
         1e3 * g150, t150 / g150);
  printf("| predict 1 step (one frame) | %.3f ms | %.0f | %.3f ms | %.2f |\n", 1e3 * t1, 1 / t1, 1e3 * g1, t1 / g1);
  for (int steps = P; spare > 0 && steps > 0; steps = steps == P ? 48 : 0) { /* 48: one block */
    pred_ctx ph = {&m, mem, actions + T, steps, out};
    double th = 1e30, t0 = 1e30;
    for (int r = 0; r < 7; r++) { /* round-robin, the fastest round of each */
      par_set_helpers(spare);
      double x = round_time(pred_fn, &ph);
      par_set_helpers(0);
      double y = round_time(pred_fn, &ph);
      th = x < th ? x : th;
      t0 = y < t0 ? y : t0;
    }
    printf("| predict %d steps, %d helper thread%s | %.2f ms | %.0f | | %.2fx faster than without (%.2f ms) |\n",
           steps, spare, spare > 1 ? "s" : "", 1e3 * th, steps / th, t0 / th, 1e3 * t0);
  }
  /* last: it grows the memory the predictions above read */
  obs_ctx oc = {&m, mem, actions + T, frames + (size_t)T * gtmsm_config_D(&m.cfg)};
  double to = 1e30;
  obs_fn(&oc);
  for (int r = 0; r < 7; r++) {
    double x = round_time(obs_fn, &oc);
    if (x < to) to = x;
  }
  printf("| observe 1 frame (the interactive case) | %.3f ms | %.0f | | |\n", 1e3 * to, 1 / to);
  printf("\n1 thread (but the helpers' row); ratio = prediction time / the decoder's GEMMs (linear, transposed conv, conv as plain "
         "sgemm of the same shapes, the convolutions per image as conv.c runs them) for as many frames, in this run.\n");
  rc = 0;
done:
  dec_gemm_free(&gb[0]);
  dec_gemm_free(&gb[1]);
  gtmsm_memory_free(mem);
  free(frames);
  free(out);
  gtmsm_model_free(&m);
  return rc;
}
