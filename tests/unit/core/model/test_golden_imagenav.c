/* Golden test of the shipped 2-D model: load models/imagenav.gtm, observe a
 * fixed episode, predict (mean and sample mode), and compute the loss and
 * gradient of a fixed training sequence; compare hashes of the PNG bytes, the
 * predicted floats, the serialised memory and the gradient with the values
 * recorded in tests/golden/imagenav.json before the model code was split into
 * parts (re-recorded once since, when nn/vecmath replaced libm's exp, expm1,
 * tanh and the sigmoid: the same figures to 1e-8 relative, the same PNG
 * bytes; and again when observations moved to the row-independent inference
 * encoder, linear_infer: predicted frames to 1e-8, the same PNG bytes). BLAS
 * kernels round differently, so exact records are kept per OpenBLAS core; on
 * a core without a record the test compares the recorded figures (loss,
 * frame statistics) within a tolerance instead and says so. The memory does
 * not go through BLAS: it must equal every core's record.
 *   test_golden_imagenav [--record]   (--record writes this core's entry) */
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/png.h"
#include "model/api.h"
#include "model/gtmsm.h"
#include "model/modelfile.h"
#include "nn/blas_core.h"
#include "nn/rng.h"
#include "sim/imagenav.h"
#include "sim/world.h"
#include "testlib.h"

#define N_OBS 256
#define N_PRED 64
#define SEQ_N 288
#define SEQ_T 256

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}
#define FNV0 0xcbf29ce484222325ull

typedef struct {
  char png[17], frames[17], states[17], memory[17], sample[17], grad[17];
  double loss, frame_mean, frame_sq, grad_norm;
} golden;

static void hex(char *out, uint64_t h) { snprintf(out, 17, "%016llx", (unsigned long long)h); }

static int compute(golden *g) {
  char err[512];
  gtmsm_model m;
  int rc = gtmsm_model_load(&m, GTMSM_SOURCE_DIR "/models/imagenav.gtm", err, sizeof err);
  CHECK(rc == 0, "load: %s", err);
  if (rc) return rc;
  const int D = gtmsm_config_D(&m.cfg), Z = m.cfg.Z, S = m.cfg.S;
  float *world = malloc(sizeof(float) * 32 * 32 * 3);
  float *frames = malloc(sizeof(float) * (size_t)(SEQ_N + N_PRED) * D);
  int *actions = malloc(sizeof(int) * (SEQ_N + N_PRED));
  float *pred = malloc(sizeof(float) * (size_t)N_PRED * D), *states = malloc(sizeof(float) * N_PRED * S);
  uint8_t *u8 = malloc((size_t)D);
  world_generate(world, 11);
  imagenav_options o = imagenav_default_options();
  imagenav_episode(world, &o, 42, SEQ_N + N_PRED, frames, actions, NULL);

  /* serving: observe, predict in mean and sample mode, serialise */
  gtmsm_memory *mem = gtmsm_memory_new(&m);
  CHECK(gtmsm_observe(&m, mem, actions, frames, N_OBS, err, sizeof err) == 0, "observe: %s", err);
  CHECK(gtmsm_predict(&m, mem, actions + N_OBS, N_PRED, GTMSM_PREDICT_MEAN, 0, pred, states, err,
                      sizeof err) == 0, "predict: %s", err);
  uint64_t hp = FNV0;
  double sum = 0, sq = 0;
  for (int t = 0; t < N_PRED; t++) {
    for (int d = 0; d < D; d++) {
      float v = pred[(size_t)t * D + d];
      u8[d] = (uint8_t)lrintf(255.0f * v);
      sum += v;
      sq += (double)v * v;
    }
    uint8_t *png = NULL;
    size_t len = 0;
    CHECK(pngio_encode(&png, &len, u8, m.cfg.H, m.cfg.W, m.cfg.C, err, sizeof err) == 0, "png: %s", err);
    hp = fnv(hp, png, len);
    free(png);
  }
  hex(g->png, hp);
  hex(g->frames, fnv(FNV0, pred, sizeof(float) * (size_t)N_PRED * D));
  hex(g->states, fnv(FNV0, states, sizeof(float) * (size_t)N_PRED * S));
  g->frame_mean = sum / ((double)N_PRED * D);
  g->frame_sq = sq / ((double)N_PRED * D);
  CHECK(gtmsm_predict(&m, mem, actions + N_OBS, N_PRED, GTMSM_PREDICT_SAMPLE, 9, pred, NULL, err,
                      sizeof err) == 0, "predict sample: %s", err);
  hex(g->sample, fnv(FNV0, pred, sizeof(float) * (size_t)N_PRED * D));
  uint8_t *buf = NULL;
  size_t blen = 0;
  CHECK(gtmsm_memory_serialize(mem, S, &buf, &blen) == 0, "serialize");
  hex(g->memory, fnv(FNV0, buf, blen));
  free(buf);
  gtmsm_memory_free(mem);

  /* training: the loss and gradient of one sequence with the shipped recipe's terms */
  gtmsm_seq_spec spec = {.N = SEQ_N, .T = SEQ_T, .aux = 0.5f, .kl_weight = 1.0f, .K = 5,
                         .delta = 1e-4f, .still = 1.0f};
  float *eps_z = malloc(sizeof(float) * (size_t)SEQ_N * Z), *eps_s = malloc(sizeof(float) * SEQ_N * S);
  float *grad = calloc(m.p.total, sizeof(float));
  rng_t r;
  rng_init(&r, 5, 1);
  for (size_t i = 0; i < (size_t)SEQ_N * Z; i++) eps_z[i] = rng_normal(&r);
  for (size_t i = 0; i < (size_t)SEQ_N * S; i++) eps_s[i] = rng_normal(&r);
  gtmsm_ws *ws = gtmsm_ws_new(&m.cfg, SEQ_N, 1);
  gtmsm_seq_stats st;
  CHECK(gtmsm_seq_loss(&m, ws, &spec, frames, actions, eps_z, eps_s, grad, &st) == 0, "seq loss");
  g->loss = st.loss;
  hex(g->grad, fnv(FNV0, grad, sizeof(float) * m.p.total));
  double gn = 0;
  for (size_t i = 0; i < m.p.total; i++) gn += (double)grad[i] * grad[i];
  g->grad_norm = sqrt(gn);
  gtmsm_ws_free(ws);
  free(eps_z);
  free(eps_s);
  free(grad);
  free(world);
  free(frames);
  free(actions);
  free(pred);
  free(states);
  free(u8);
  gtmsm_model_free(&m);
  return 0;
}

#define GOLDEN GTMSM_SOURCE_DIR "/tests/golden/imagenav.json"

int main(int argc, char **argv) {
  int record = argc > 1 && strcmp(argv[1], "--record") == 0;
  const char *core = blas_core_name();
  /* one OpenBLAS thread, as gtmsmd, train, eval and predict run it (its
   * threaded GEMMs round differently from the single-threaded ones) */
  openblas_set_num_threads(1);
  golden g;
  if (compute(&g)) return test_finish("golden_imagenav");
  printf("core %s: png %s frames %s states %s sample %s memory %s grad %s\n", core, g.png, g.frames,
         g.states, g.sample, g.memory, g.grad);
  printf("loss %.9g, frame mean %.9g, mean square %.9g, grad norm %.9g\n", g.loss, g.frame_mean, g.frame_sq,
         g.grad_norm);
  json_error_t je;
  json_t *root = json_load_file(GOLDEN, 0, &je);
  if (record) {
    if (!root) root = json_object();
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f}", "png", g.png, "frames",
                          g.frames, "states", g.states, "sample", g.sample, "memory", g.memory, "grad",
                          g.grad, "loss", g.loss, "frame_mean", g.frame_mean, "frame_sq", g.frame_sq,
                          "grad_norm", g.grad_norm);
    json_object_set_new(root, core, e);
    CHECK(json_dump_file(root, GOLDEN, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) == 0,
          "write %s", GOLDEN);
    printf("recorded core %s into %s\n", core, GOLDEN);
    json_decref(root);
    return test_finish("golden_imagenav");
  }
  CHECK(root != NULL, "%s: %s", GOLDEN, je.text);
  if (!root) return test_finish("golden_imagenav");
  /* the memory (states and the inference encoder's latents) does not depend on the BLAS kernels: every
   * core's record holds the same, and so must this run, with or without a record of its own */
  int cores = 0;
  const char *key;
  json_t *rec;
  json_object_foreach(root, key, rec) {
    const char *want = json_string_value(json_object_get(rec, "memory"));
    CHECK(want && strcmp(want, g.memory) == 0, "memory: got %s, core %s recorded %s", g.memory, key, want ? want : "-");
    cores++;
  }
  printf("memory the same as recorded on all %d cores\n", cores);
  json_t *e = json_object_get(root, core);
  if (e) {
    const char *keys[] = {"png", "frames", "states", "sample", "memory", "grad"};
    const char *got[] = {g.png, g.frames, g.states, g.sample, g.memory, g.grad};
    for (int i = 0; i < 6; i++) {
      const char *want = json_string_value(json_object_get(e, keys[i]));
      CHECK(want && strcmp(want, got[i]) == 0, "%s: got %s, recorded %s", keys[i], got[i], want ? want : "-");
    }
    CHECK(json_real_value(json_object_get(e, "loss")) == g.loss, "loss %.17g, recorded %.17g", g.loss,
          json_real_value(json_object_get(e, "loss")));
    printf("exact record for core %s compared\n", core);
  } else {
    /* another kernel set: the figures agree to rounding, not to the bit */
    void *it = json_object_iter(root);
    const char *first = it ? json_object_iter_key(it) : "-";
    json_t *any = it ? json_object_iter_value(it) : json_object();
    printf("no exact record for core %s: comparing the figures of core %s within tolerance\n", core, first);
    CHECK_NEAR(g.loss, json_real_value(json_object_get(any, "loss")), 1e-4, 1e-5, "loss");
    CHECK_NEAR(g.frame_mean, json_real_value(json_object_get(any, "frame_mean")), 1e-5, 1e-5, "frame mean");
    CHECK_NEAR(g.frame_sq, json_real_value(json_object_get(any, "frame_sq")), 1e-5, 1e-5, "frame mean square");
    CHECK_NEAR(g.grad_norm, json_real_value(json_object_get(any, "grad_norm")), 1e-4, 1e-3, "grad norm");
  }
  json_decref(root);
  return test_finish("golden_imagenav");
}
