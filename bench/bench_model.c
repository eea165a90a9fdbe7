/* Benchmarks of the image-navigation pipeline, single thread:
 * - environment: imagenav frames/s (episode generation incl. the world);
 * - training: sequences/s of the full loss forward+backward (256 + 32 steps),
 *   against the encoder+decoder GEMM work alone timed in the same run (as a
 *   rate ratio, and as time / GEMM time);
 * - prediction: frames/s of gtmsm_predict (state rollout, kNN, batched
 *   decoder) for 256 actions after 256 observations, against the decoder's
 *   GEMMs alone on the same blocks (5 of 48 rows and the tail's: Z -> H -> H -> D), and
 *   observations/s; then the same prediction with the spare cores' helper
 *   threads (par.h) against it without them, in wall-clock time;
 * - the replies' image work: a film strip of 256 frames as PNG with the files'
 *   settings (pngio_encode) against the replies' (pngio_encode_fast), and the
 *   float -> byte conversion (image_u8_from_float) against the floor()
 *   formula it replaced (kept below as the reference).
 * The comparisons are timed as bench_nn does (except the helpers' row): the CPU time of this one
 * thread (OpenBLAS runs one), samples of >= 0.1 s taken round-robin with the
 * reference, the fastest of each kept, so another job on the machine costs
 * neither side its descheduled time. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <math.h>

#include "img/image.h"
#include "img/png.h"
#include "model/api.h"
#include "model/gtmsm.h"
#include "model/par.h"
#include "nn/blas_core.h"
#include "nn/linear.h"
#include "nn/rng.h"
#include "sim/imagenav.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The clock of sample and time_pair: this thread's CPU time, or (for work on
 * other threads too) wall-clock time. */
static double (*bench_clock)(void) = cpu_now;

typedef void (*bench_fn)(void *ctx);

/* Seconds per call of fn over calls repeated for at least 0.1 s of CPU time. */
static double sample(bench_fn fn, void *ctx) {
  int reps = 0;
  double t0 = bench_clock(), t;
  do {
    fn(ctx);
    reps++;
    t = bench_clock() - t0;
  } while (t < 0.1);
  return t / reps;
}

/* t[0], t[1]: fastest sample of a and of b, round-robin, >= 7 rounds and 2 s. */
static void time_pair(double *t, bench_fn a, void *ca, bench_fn b, void *cb) {
  a(ca), b(cb);
  t[0] = t[1] = 1e30;
  double t0 = bench_clock();
  for (int round = 0; round < 7 || bench_clock() - t0 < 2.0; round++) {
    double x = sample(a, ca), y = sample(b, cb);
    if (x < t[0]) t[0] = x;
    if (y < t[1]) t[1] = y;
  }
}

typedef struct {
  gtmsm_model *m;
  gtmsm_ws *ws;
  const gtmsm_seq_spec *spec;
  const float *frames, *ez, *es;
  const int *actions;
  float *grad;
  gtmsm_memory *mem;
  float *out;
  int pred, helpers; /* helpers: predict_helpers' par_set_helpers */
  /* GEMM references */
  float *a, *b; /* activations, zeros (N or 64 rows, up to 1024 wide) */
  int rows, blocks, nshapes, train;
  int last_rows; /* rows of one more block after `blocks` (0: none) */
  int shapes[6][2];
} model_bench;

static void train_loss(void *p) {
  model_bench *c = p;
  gtmsm_seq_stats st;
  gtmsm_seq_loss(c->m, c->ws, c->spec, c->frames, c->actions, c->ez, c->es, c->grad, &st);
}

static void predict_call(void *p) {
  model_bench *c = p;
  gtmsm_predict(c->m, c->mem, c->actions, c->pred, GTMSM_PREDICT_MEAN, 0, c->out, NULL, NULL, 0);
}

static void predict_helpers(void *p) {
  par_set_helpers(((model_bench *)p)->helpers);
  predict_call(p);
}

/* the layers' GEMMs alone: forward (and, training, both backward products) */
static void gemms(void *p) {
  model_bench *c = p;
  for (int k = 0; k < c->blocks + (c->last_rows > 0); k++)
    for (int s = 0; s < c->nshapes; s++) {
      int in = c->shapes[s][0], out = c->shapes[s][1], rows = k < c->blocks ? c->rows : c->last_rows;
      linear_forward(c->b, c->a, c->m->p.data, NULL, rows, in, out);
      if (c->train) linear_backward(c->a, c->m->p.grad, NULL, c->b, c->a, c->m->p.data, rows, in, out);
    }
}

/* image_u8_from_float as it was before issue 9 (the reference). */
static void old_u8_from_float(uint8_t *out, const float *in, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    double v = !isfinite(x) || x <= 0.0f ? 0.0 : x >= 1.0f ? 255.0 : floor((double)x * 255.0 + 0.5);
    out[i] = (uint8_t)v;
  }
}

typedef struct {
  const uint8_t *strip;
  const float *x;
  uint8_t *u8;
  int H, W, fast;
  size_t n, bytes;
} reply_bench;

static void png_call(void *p) {
  reply_bench *r = p;
  uint8_t *png = NULL;
  if ((r->fast ? pngio_encode_fast : pngio_encode)(&png, &r->bytes, r->strip, r->H, r->W, 3, NULL, 0)) r->bytes = 0;
  free(png);
}

static void u8_new(void *p) {
  reply_bench *r = p;
  image_u8_from_float(r->u8, r->x, r->n, NULL, 0);
}

static void u8_old(void *p) {
  reply_bench *r = p;
  old_u8_from_float(r->u8, r->x, r->n);
}

int main(void) {
  char core[128];
  printf("BLAS core: %s\n\n", blas_core_describe(core, sizeof core));
  openblas_set_num_threads(1);
  const int spare = par_helpers();
  par_set_helpers(0); /* one thread, but for the helpers' own row */
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
  int D = gtmsm_config_D(&c), H = c.hidden, Z = c.Z;
  float *a = calloc((size_t)N * 1024, sizeof(float)), *b = calloc((size_t)N * 1024, sizeof(float));
  /* baseline: the same GEMMs (encoder over N rows, decoder over N rows,
   * forward + two backward products each) with nothing else */
  model_bench mb = {.m = &m, .ws = ws, .spec = &spec, .frames = frames, .ez = ez, .es = es,
                    .actions = actions, .grad = grad, .a = a, .b = b, .rows = N, .blocks = 1,
                    .nshapes = 6, .train = 1,
                    .shapes = {{D, H}, {H, H}, {H, 2 * Z}, {Z, H}, {H, H}, {H, D}}};
  double tt[2];
  time_pair(tt, train_loss, &mb, gemms, &mb);
  printf("| training loss fwd+bwd | %.1f sequences/s | %d+%d steps, hidden %d; GEMMs alone %.1f/s, ratio %.2f; "
         "time %.2f ms = %.2fx the GEMMs' %.2f ms |\n",
         1 / tt[0], T, P, c.hidden, 1 / tt[1], tt[1] / tt[0], 1e3 * tt[0], tt[0] / tt[1], 1e3 * tt[1]);

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
  /* an interactive client's calls: one frame each */
  gtmsm_memory_free(mem);
  mem = gtmsm_memory_new(&m);
  t0 = now();
  obs = 0;
  while (now() - t0 < 1.0) {
    if (obs % T == 0) {
      gtmsm_memory_free(mem);
      mem = gtmsm_memory_new(&m);
    }
    gtmsm_observe(&m, mem, actions + obs % T, frames + (size_t)(obs % T) * D, 1, NULL, 0);
    obs++;
  }
  printf("| observe one frame per call | %.0f observations/s | %.1f us per call |\n", obs / (now() - t0),
         1e6 * (now() - t0) / obs);
  float *out = malloc(sizeof(float) * PRED * D);
  /* the decoder's GEMMs on the blocks predict decodes (api.c): full blocks
   * of 48 rows, the tail in the smallest verified block that holds it */
  int tail = PRED % 48, q = gtmsm_infer_rows(&m), tail_rows = 0;
  for (int d = q; tail && !tail_rows; d++)
    if (48 % d == 0 && d % q == 0 && d >= tail) tail_rows = d;
  model_bench pb = {.m = &m, .mem = mem, .actions = actions + T, .pred = PRED, .out = out, .a = a, .b = b,
                    .rows = 48, .blocks = PRED / 48, .last_rows = tail_rows, .nshapes = 3, .train = 0,
                    .shapes = {{Z, H}, {H, H}, {H, D}}};
  double tp[2];
  time_pair(tp, predict_call, &pb, gemms, &pb);
  printf("| predict %d steps (mean mode) | %.0f frames/s | %.2f ms per request; decoder GEMMs alone %.3f ms, "
         "time %.2fx the GEMMs |\n",
         PRED, PRED / tp[0], 1e3 * tp[0], 1e3 * tp[1], tp[0] / tp[1]);
  if (spare > 0) {
    model_bench alone = pb, helped = pb;
    helped.helpers = spare;
    bench_clock = now;
    time_pair(tp, predict_helpers, &alone, predict_helpers, &helped);
    bench_clock = cpu_now;
    par_set_helpers(0);
    printf("| predict %d steps, %d helper thread%s (wall clock) | %.0f frames/s | %.2f ms per request; %.2f ms "
           "without helpers: %.2fx faster |\n", PRED, spare, spare > 1 ? "s" : "", PRED / tp[1], 1e3 * tp[1],
           1e3 * tp[0], tp[0] / tp[1]);
  }
  /* the replies' image work on 256 observed frames side by side (a film strip) */
  const int F = IMAGENAV_VIEW, NF = 256;
  uint8_t *strip = malloc((size_t)NF * D), *u8 = malloc((size_t)NF * D);
  for (int y = 0; y < F; y++)
    for (int i = 0; i < NF; i++)
      for (int k = 0; k < F * 3; k++) {
        float v = frames[((size_t)i * F + y) * F * 3 + k];
        strip[((size_t)y * NF * F + (size_t)i * F) * 3 + k] = (uint8_t)(v * 255.0f + 0.5f);
      }
  reply_bench best = {.strip = strip, .H = F, .W = NF * F}, fast = best;
  fast.fast = 1;
  time_pair(tp, png_call, &best, png_call, &fast);
  printf("| film strip PNG (%d frames) | pngio_encode %.3f ms, %zu bytes | pngio_encode_fast %.3f ms, %zu bytes: "
         "%.1fx faster |\n", NF, 1e3 * tp[0], best.bytes, 1e3 * tp[1], fast.bytes, tp[0] / tp[1]);
  reply_bench conv = {.x = frames, .u8 = u8, .n = (size_t)NF * D};
  time_pair(tp, u8_old, &conv, u8_new, &conv);
  printf("| float -> byte (%d frames) | the floor() formula %.1f us | image_u8_from_float %.1f us: %.1fx faster |\n", NF,
         1e6 * tp[0], 1e6 * tp[1], tp[0] / tp[1]);
  free(strip);
  free(u8);
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
