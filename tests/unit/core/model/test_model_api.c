/* Model files, the inference API and the evaluator:
 * - .gtm round trip is exact and corrupt files are refused with a message;
 * - observe/predict: predict has no side effect on memory, is deterministic
 *   for a seed, the same with any number of helper threads, mean mode decodes the mixture mean; the memory serialises and
 *   deserialises to identical predictions; bad actions are refused;
 * - a short training run lowers the loss;
 * - the evaluator is deterministic and independent of the thread count;
 * - a landmark model (appendix D): its file keeps its config, a model
 *   without landmarks writes none of the new keys; observing with obstacles
 *   gives the same bytes whatever the batching and the BLAS thread count; its
 *   memory (version 3, with the reverse index) round-trips, an older memory
 *   loads with the index rebuilt, and the per-entry path gives the same. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "img/image.h"
#include "model/api.h"
#include "model/eval.h"
#include "model/gtmsm_internal.h"
#include "model/modelfile.h"
#include "model/par.h"
#include "nn/conv.h"
#include "nn/rng.h"
#include "sim/imagenav.h"
#include "testlib.h"

static gtmsm_config small_config(void) {
  gtmsm_config c = gtmsm_default_config();
  c.hidden = 32;
  c.Z = 4;
  c.gate_hidden = 8;
  return c;
}

static void test_file_round_trip(const char *dir) {
  char err[512], path[512];
  gtmsm_model m, l;
  gtmsm_config c = small_config();
  CHECK(gtmsm_model_init(&m, &c, 3, err, sizeof err) == 0, "%s", err);
  snprintf(path, sizeof path, "%s/m.gtm", dir);
  json_t *extra = json_pack("{s:s}", "environment", "imagenav");
  CHECK(gtmsm_model_save(&m, path, extra, err, sizeof err) == 0, "save: %s", err);
  json_decref(extra);
  CHECK(gtmsm_model_load(&l, path, err, sizeof err) == 0, "load: %s", err);
  CHECK(l.p.total == m.p.total && memcmp(l.p.data, m.p.data, m.p.total * sizeof(float)) == 0,
        "parameters differ after the round trip");
  CHECK(strstr(l.meta_json, "\"environment\": \"imagenav\"") != NULL, "metadata kept: %s", l.meta_json);
  CHECK(l.cfg.Z == 4 && l.cfg.hidden == 32 && l.cfg.A == 5 && strcmp(l.cfg.action_names[2], "up") == 0,
        "config restored");
  gtmsm_model_free(&l);
  /* an edited config (K 5 -> 4, same length) changes what the model predicts:
   * the content hash covers it, so the file is refused */
  {
    FILE *rf = fopen(path, "rb");
    fseek(rf, 0, SEEK_END);
    long sz = ftell(rf);
    rewind(rf);
    char *bytes = malloc((size_t)sz);
    CHECK(fread(bytes, 1, (size_t)sz, rf) == (size_t)sz, "read back");
    fclose(rf);
    char *k = NULL;
    for (long i = 0; i + 6 < sz && !k; i++)
      if (memcmp(bytes + i, "\"k\": 5", 6) == 0) k = bytes + i;
    CHECK(k != NULL, "metadata has \"k\": 5");
    if (k) {
      k[5] = '4';
      char edited[560];
      snprintf(edited, sizeof edited, "%s.edited", path);
      FILE *wf = fopen(edited, "wb");
      fwrite(bytes, 1, (size_t)sz, wf);
      fclose(wf);
      int erc = gtmsm_model_load(&l, edited, err, sizeof err);
      CHECK(erc == GTMSM_EFORMAT && strstr(err, "content hash"), "edited config accepted (rc %d: %s)", erc, err);
    }
    free(bytes);
  }
  /* corrupt one float of the data: the content hash must catch it */
  FILE *f = fopen(path, "r+b");
  fseek(f, -4, SEEK_END); /* the last float: gate.b3 */
  float x = 12345.0f;
  fwrite(&x, 4, 1, f);
  fclose(f);
  int rc = gtmsm_model_load(&l, path, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "content hash"), "corrupt data refused (rc %d: %s)", rc, err);
  /* truncated file */
  CHECK(gtmsm_model_save(&m, path, NULL, err, sizeof err) == 0, "%s", err);
  CHECK(truncate(path, 200) == 0, "truncate");
  rc = gtmsm_model_load(&l, path, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT, "truncated file refused (rc %d: %s)", rc, err);
  printf("truncated file: %s\n", err);
  /* not a model */
  f = fopen(path, "wb");
  fputs("hello world, not a model", f);
  fclose(f);
  rc = gtmsm_model_load(&l, path, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "magic"), "garbage refused (%s)", err);
  gtmsm_model_free(&m);
}

/* The convolutional variant saves, loads and predicts like the FC one. */
static void test_conv_variant(const char *dir) {
  char err[512], path[512];
  gtmsm_model m, l;
  gtmsm_config c = small_config();
  c.vae = GTMSM_VAE_CONV;
  c.channels = 4;
  CHECK(gtmsm_model_init(&m, &c, 3, err, sizeof err) == 0, "%s", err);
  snprintf(path, sizeof path, "%s/conv.gtm", dir);
  CHECK(gtmsm_model_save(&m, path, NULL, err, sizeof err) == 0, "%s", err);
  CHECK(gtmsm_model_load(&l, path, err, sizeof err) == 0, "%s", err);
  CHECK(l.cfg.vae == GTMSM_VAE_CONV && l.cfg.channels == 4 && params_get(&l.p, "enc.c1w") && !params_get(&l.p, "enc.w1"), "conv config restored");
  enum { T = 20, P = 5 };
  static float world[WORLD_SIZE * WORLD_SIZE * 3], frames[T * IMAGENAV_FRAME], a[P * IMAGENAV_FRAME],
      b[P * IMAGENAV_FRAME];
  int actions[T], pa[P] = {0, 1, 2, 3, 4};
  world_generate(world, 3);
  imagenav_options o = imagenav_default_options();
  imagenav_episode(world, &o, 3, T, frames, actions, NULL);
  gtmsm_memory *m1 = gtmsm_memory_new(&m), *m2 = gtmsm_memory_new(&l);
  gtmsm_observe(&m, m1, actions, frames, T, NULL, 0);
  gtmsm_observe(&l, m2, actions, frames, T, NULL, 0);
  gtmsm_predict(&m, m1, pa, P, GTMSM_PREDICT_MEAN, 0, a, NULL, NULL, 0);
  gtmsm_predict(&l, m2, pa, P, GTMSM_PREDICT_MEAN, 0, b, NULL, NULL, 0);
  CHECK(memcmp(a, b, sizeof a) == 0, "conv predictions differ after the round trip");
  gtmsm_memory_free(m1);
  gtmsm_memory_free(m2);
  gtmsm_model_free(&l);
  /* frame sizes whose product overflows an int are refused, not wrapped */
  gtmsm_config huge = small_config();
  huge.H = huge.W = 65536;
  huge.C = 1;
  gtmsm_model hm;
  CHECK(gtmsm_model_init(&hm, &huge, 1, err, sizeof err) == GTMSM_EINVAL, "65536x65536 frames accepted");
  /* a config an FC loader would misread: odd frame size for conv is refused */
  c.H = 7;
  gtmsm_model bad;
  CHECK(gtmsm_model_init(&bad, &c, 1, err, sizeof err) == GTMSM_EINVAL, "odd conv frame accepted");
  gtmsm_model_free(&m);
}

/* The measured inference block (gtmsm_infer_rows) gives the bits of the full
 * 48-row block: memories and predictions equal those computed with the full
 * block forced, for the FC and the conv VAE, one observation per call or all
 * at once, a prediction of 1 and of 100 steps. */
static void test_infer_rows(void) {
  char err[256];
  openblas_set_num_threads(1);
  for (int conv = 0; conv < 2; conv++) {
    gtmsm_config c = small_config();
    if (conv) c.vae = GTMSM_VAE_CONV, c.channels = 4;
    gtmsm_model m;
    CHECK(gtmsm_model_init(&m, &c, 5, err, sizeof err) == 0, "%s", err);
    int q = gtmsm_infer_rows(&m);
    CHECK(q >= 1 && 48 % q == 0, "block of %d rows", q);
    printf("  %s VAE: inference blocks of %d rows on this core\n", conv ? "conv" : "fc", q);
    enum { T = 61, P = 100 };
    static float world[WORLD_SIZE * WORLD_SIZE * 3], frames[T * IMAGENAV_FRAME], f[2][P * IMAGENAV_FRAME],
        one[2][IMAGENAV_FRAME];
    int actions[T], pa[P];
    for (int i = 0; i < P; i++) pa[i] = i % 5;
    world_generate(world, 9);
    imagenav_options o = imagenav_default_options();
    imagenav_episode(world, &o, 9, T, frames, actions, NULL);
    uint8_t *buf[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    for (int full = 0; full < 2; full++) {
      if (full) m.infer_blocks = 1ULL << 48 | (uint64_t)openblas_get_num_threads() << 56; /* the full block, forced */
      CHECK(gtmsm_infer_rows(&m) == (full ? 48 : q), "forced block");
      gtmsm_memory *mem = gtmsm_memory_new(&m);
      for (int t = 0; t < T; t++) /* one at a time with the measured block, all at once with the full one */
        if (!full) gtmsm_observe(&m, mem, actions + t, frames + (size_t)t * IMAGENAV_FRAME, 1, NULL, 0);
      if (full) gtmsm_observe(&m, mem, actions, frames, T, NULL, 0);
      gtmsm_memory_serialize(mem, c.S, &buf[full], &len[full]);
      gtmsm_predict(&m, mem, pa, P, GTMSM_PREDICT_MEAN, 0, f[full], NULL, NULL, 0);
      gtmsm_predict(&m, mem, pa, 1, GTMSM_PREDICT_MEAN, 0, one[full], NULL, NULL, 0);
      gtmsm_memory_free(mem);
    }
    CHECK(len[0] == len[1] && memcmp(buf[0], buf[1], len[0]) == 0, "%s: memory differs from the full block's",
          conv ? "conv" : "fc");
    CHECK(memcmp(f[0], f[1], sizeof f[0]) == 0, "%s: 100-step prediction differs from the full block's",
          conv ? "conv" : "fc");
    CHECK(memcmp(one[0], one[1], sizeof one[0]) == 0 && memcmp(one[0], f[0], sizeof one[0]) == 0,
          "%s: one-step prediction differs", conv ? "conv" : "fc");
    free(buf[0]);
    free(buf[1]);
    gtmsm_model_free(&m);
  }
}

/* One-frame observations of concurrent calls share encoder batches
 * (gtmsm_shared_encode_stats): 6 threads, each with its own memory of one
 * model, observe 150 frames one at a time, thread k starting with k frames at
 * once (so their row positions differ and collide); every memory must be the
 * bytes of the same frames observed in one call, and some batches must have
 * held frames of several threads (else the test shows nothing; a leader
 * waits 200 us for more frames, gtmsm_shared_encode_set_gather_us, so they
 * form even when the threads share one busy core). The conv VAE at 8x8; and
 * the FC VAE, whose inference encoder takes each frame at once (the same
 * memories, nothing through the shared encoder). */
enum { SHARED_THREADS = 6, SHARED_T = 150 };
typedef struct {
  const gtmsm_model *m;
  const float *x;
  const int *actions;
  int first, D, rc;
  gtmsm_memory *mem;
} shared_arg;

static void *shared_observer(void *p) {
  shared_arg *a = p;
  a->rc = gtmsm_observe(a->m, a->mem, a->actions, a->x, a->first, NULL, 0);
  for (int t = a->first; t < SHARED_T && !a->rc; t++)
    a->rc = gtmsm_observe(a->m, a->mem, a->actions + t, a->x + (size_t)t * a->D, 1, NULL, 0);
  return NULL;
}

static void test_shared_encoding(void) {
  char err[256];
  openblas_set_num_threads(1);
  static float world[WORLD_SIZE * WORLD_SIZE * 3], x[SHARED_T * IMAGENAV_FRAME];
  int actions[SHARED_T];
  world_generate(world, 12);
  imagenav_options o = imagenav_default_options();
  imagenav_episode(world, &o, 12, SHARED_T, x, actions, NULL);
  for (int conv = 0; conv < 2; conv++) {
    gtmsm_config c = small_config();
    if (conv) c.vae = GTMSM_VAE_CONV, c.channels = 4;
    gtmsm_model m;
    CHECK(gtmsm_model_init(&m, &c, 13, err, sizeof err) == 0, "%s", err);
    gtmsm_memory *ref = gtmsm_memory_new(&m);
    CHECK(gtmsm_observe(&m, ref, actions, x, SHARED_T, err, sizeof err) == 0, "%s", err);
    uint8_t *want = NULL;
    size_t want_len = 0;
    gtmsm_memory_serialize(ref, c.S, &want, &want_len);
    long long b0, f0, b1, f1;
    gtmsm_shared_encode_stats(&b0, &f0);
    gtmsm_shared_encode_set_gather_us(200); /* batches form however busy the machine is */
    shared_arg a[SHARED_THREADS];
    pthread_t th[SHARED_THREADS];
    for (int k = 0; k < SHARED_THREADS; k++) {
      a[k] = (shared_arg){&m, x, actions, k, gtmsm_config_D(&c), 0, gtmsm_memory_new(&m)};
      pthread_create(&th[k], NULL, shared_observer, &a[k]);
    }
    int same = 0;
    for (int k = 0; k < SHARED_THREADS; k++) {
      pthread_join(th[k], NULL);
      uint8_t *got = NULL;
      size_t len = 0;
      gtmsm_memory_serialize(a[k].mem, c.S, &got, &len);
      same += a[k].rc == 0 && len == want_len && memcmp(got, want, len) == 0;
      free(got);
      gtmsm_memory_free(a[k].mem);
    }
    gtmsm_shared_encode_set_gather_us(0);
    gtmsm_shared_encode_stats(&b1, &f1);
    const char *name = conv ? "conv" : "fc";
    CHECK(same == SHARED_THREADS, "%s: %d of %d memories observed frame by frame in parallel differ from one call's",
          name, SHARED_THREADS - same, SHARED_THREADS);
    if (conv)
      CHECK(f1 - f0 > b1 - b0, "%s: no batch held frames of two threads (%lld frames in %lld batches)", name,
            f1 - f0, b1 - b0);
    else /* the inference encoder: each frame at once, nothing queued */
      CHECK(f1 == f0 && b1 == b0, "%s: %lld frames went through the shared encoder", name, f1 - f0);
    printf("  %s VAE: %lld one-frame observations of %d threads in %lld encoder batches, memories bit-identical\n",
           name, f1 - f0, SHARED_THREADS, b1 - b0);
    free(want);
    gtmsm_memory_free(ref);
    gtmsm_model_free(&m);
  }
}

/* The helper threads (model/par.h) change no bit: observing 200 frames (7,
 * then 193 at once: five encoding runs) and predicting 200 steps (five
 * decoding blocks) with 0, 1 and 3 helpers give the same memory and frames,
 * for the FC VAE and the conv VAE at 8x8 and at 32x32 (where its
 * convolutions skip the padding); gtmsm_predict_u8's bytes are the conversion
 * of gtmsm_predict's frames. */
static void test_helpers(void) {
  char err[256];
  openblas_set_num_threads(1);
  enum { T = 200, P = 200, DMAX = 32 * 32 * 3 };
  static float world[WORLD_SIZE * WORLD_SIZE * 3], small[T * IMAGENAV_FRAME], big[T * DMAX], f[P * DMAX],
      f0[P * DMAX];
  static uint8_t u8[P * DMAX], u0[P * DMAX];
  int actions[T], pa[P];
  for (int i = 0; i < P; i++) pa[i] = (i / 3) % 5;
  world_generate(world, 4);
  imagenav_options o = imagenav_default_options();
  imagenav_episode(world, &o, 4, T, small, actions, NULL);
  for (int i = 0; i < T * DMAX; i++) big[i] = small[i % (T * IMAGENAV_FRAME)];
  const int saved = par_helpers();
  for (int v = 0; v < 3; v++) {
    const char *name = v == 2 ? "conv 32x32" : v ? "conv 8x8" : "fc";
    gtmsm_config c = small_config();
    if (v) c.vae = GTMSM_VAE_CONV, c.channels = 4;
    if (v == 2) c.H = c.W = 32;
    gtmsm_model m;
    CHECK(gtmsm_model_init(&m, &c, 6, err, sizeof err) == 0, "%s", err);
    const int D = gtmsm_config_D(&c);
    const float *x = v == 2 ? big : small;
    uint8_t *buf0 = NULL;
    size_t len0 = 0;
    const int counts[3] = {0, 1, 3};
    for (int h = 0; h < 3; h++) {
      par_set_helpers(counts[h]);
      gtmsm_memory *mem = gtmsm_memory_new(&m);
      uint8_t *buf = NULL;
      size_t len = 0;
      CHECK(gtmsm_observe(&m, mem, actions, x, 7, err, sizeof err) == 0 &&
                gtmsm_observe(&m, mem, actions + 7, x + (size_t)7 * D, T - 7, err, sizeof err) == 0,
            "%s", err);
      gtmsm_memory_serialize(mem, c.S, &buf, &len);
      CHECK(gtmsm_predict(&m, mem, pa, P, GTMSM_PREDICT_SAMPLE, 3, h ? f : f0, NULL, err, sizeof err) == 0 &&
                gtmsm_predict_u8(&m, mem, pa, P, GTMSM_PREDICT_SAMPLE, 3, h ? u8 : u0, NULL, err, sizeof err) == 0,
            "%s", err);
      if (!h) {
        buf0 = buf, len0 = len;
        static uint8_t one[DMAX];
        int bad = 0;
        for (int t = 0; t < P; t++) {
          image_u8_from_float(one, f0 + (size_t)t * D, (size_t)D, NULL, 0);
          bad += memcmp(one, u0 + (size_t)t * D, (size_t)D) != 0;
        }
        CHECK(bad == 0, "%s: %d frames of gtmsm_predict_u8 are not the bytes of gtmsm_predict's", name, bad);
      } else {
        CHECK(len == len0 && memcmp(buf, buf0, len) == 0, "%s, %d helpers: the memory differs", name, counts[h]);
        CHECK(memcmp(f, f0, sizeof(float) * (size_t)P * D) == 0 && memcmp(u8, u0, (size_t)P * D) == 0,
              "%s, %d helpers: the frames differ", name, counts[h]);
        free(buf);
      }
      gtmsm_memory_free(mem);
    }
    free(buf0);
    gtmsm_model_free(&m);
  }
  par_set_helpers(saved);
}

/* gtmsm_decode_mean_first gives the first n rows of a whole block's decode,
 * gtmsm_encode_rows rows r0 .. r0 + n - 1 of its encoding, bit for bit: on
 * 32x32 frames (every image in its own conv GEMMs, so the padding's images
 * are skipped) and on 8x8 ones (they share GEMMs: the block is run whole). */
static void test_partial_rows(void) {
  char err[256];
  CHECK(conv_images_independent(256) && conv_images_independent(1024) && !conv_images_independent(64),
        "conv_images_independent");
  for (int size = 8; size <= 32; size *= 4) {
    gtmsm_config c = small_config();
    c.vae = GTMSM_VAE_CONV, c.channels = 4, c.H = c.W = size;
    gtmsm_model m;
    CHECK(gtmsm_model_init(&m, &c, 7, err, sizeof err) == 0, "%s", err);
    enum { N = 12 };
    const int D = gtmsm_config_D(&c), Z = c.Z;
    gtmsm_ws *ws = gtmsm_ws_new(&c, N, 0);
    float *z = malloc(sizeof(float) * N * Z), *all = malloc(sizeof(float) * N * D),
          *first = malloc(sizeof(float) * N * D), *mu = malloc(sizeof(float) * 4 * N * Z);
    CHECK(ws && z && all && first && mu, "out of memory");
    if (ws && z && all && first && mu) {
      rng_t r;
      rng_init(&r, 11, 0);
      rng_normal_fill(&r, z, (size_t)N * Z);
      gtmsm_decode_mean(&m, ws, z, N, all);
      const int ns[] = {1, 5, N};
      for (int k = 0; k < 3; k++) {
        memset(first, 0xff, sizeof(float) * N * D);
        gtmsm_decode_mean_first(&m, ws, z, N, ns[k], first);
        CHECK(memcmp(first, all, sizeof(float) * (size_t)ns[k] * D) == 0,
              "%dx%d frames: the first %d of %d decoded rows differ from the whole block's", size, size, ns[k], N);
      }
      /* all (N, D) as frames in [0, 1] */
      for (int i = 0; i < N * D; i++) all[i] = 1.0f / (1.0f + expf(-all[i]));
      float *lv = mu + N * Z, *mu_r = lv + N * Z, *lv_r = mu_r + N * Z;
      gtmsm_encode(&m, ws, all, N, mu, lv);
      const int ranges[][2] = {{0, 1}, {5, 3}, {N - 1, 1}, {0, N}};
      for (int k = 0; k < 4; k++) {
        const int r0 = ranges[k][0], n = ranges[k][1];
        gtmsm_encode_rows(&m, ws, all, N, r0, n, mu_r, lv_r);
        CHECK(memcmp(mu_r + r0 * Z, mu + r0 * Z, sizeof(float) * (size_t)n * Z) == 0 &&
                  memcmp(lv_r + r0 * Z, lv + r0 * Z, sizeof(float) * (size_t)n * Z) == 0,
              "%dx%d frames: encoded rows %d..%d of %d differ from the whole block's", size, size, r0, r0 + n - 1, N);
      }
    }
    free(z), free(all), free(first), free(mu);
    gtmsm_ws_free(ws);
    gtmsm_model_free(&m);
  }
}

static void test_api(void) {
  char err[512];
  gtmsm_model m;
  gtmsm_config c = small_config();
  CHECK(gtmsm_model_init(&m, &c, 5, err, sizeof err) == 0, "%s", err);
  enum { T = 60, P = 20 };
  static float world[WORLD_SIZE * WORLD_SIZE * 3], frames[T * IMAGENAV_FRAME];
  int actions[T];
  world_generate(world, 1);
  imagenav_options o = imagenav_default_options();
  imagenav_episode(world, &o, 1, T, frames, actions, NULL);
  gtmsm_memory *mem = gtmsm_memory_new(&m);
  CHECK(gtmsm_observe(&m, mem, actions, frames, 30, err, sizeof err) == 0, "%s", err);
  CHECK(gtmsm_observe(&m, mem, actions + 30, frames + 30 * IMAGENAV_FRAME, T - 30, err, sizeof err) == 0, "%s", err);
  CHECK(mem->steps == T && dnd_size(mem->mem) == T, "steps %ld", mem->steps);
  /* observing in two batches equals one batch */
  gtmsm_memory *mem1 = gtmsm_memory_new(&m);
  gtmsm_observe(&m, mem1, actions, frames, T, NULL, 0);
  CHECK(memcmp(mem1->state, mem->state, sizeof mem->state) == 0, "state differs by batching");
  int bad = 0;
  for (int i = 0; i < T; i++) bad += memcmp(dnd_value(mem->mem, i), dnd_value(mem1->mem, i), 2 * c.Z * 4) != 0;
  CHECK(bad == 0, "%d memory values differ by batching", bad);
  gtmsm_memory_free(mem1);

  int pa[P];
  for (int i = 0; i < P; i++) pa[i] = i % 5;
  static float f1[P * IMAGENAV_FRAME], f2[P * IMAGENAV_FRAME], st[P * 2];
  uint8_t *before = NULL, *after = NULL;
  size_t lb, la;
  gtmsm_memory_serialize(mem, c.S, &before, &lb);
  CHECK(gtmsm_predict(&m, mem, pa, P, GTMSM_PREDICT_MEAN, 0, f1, st, err, sizeof err) == 0, "%s", err);
  CHECK(gtmsm_predict(&m, mem, pa, P, GTMSM_PREDICT_SAMPLE, 7, f2, NULL, err, sizeof err) == 0, "%s", err);
  gtmsm_memory_serialize(mem, c.S, &after, &la);
  CHECK(lb == la && memcmp(before, after, lb) == 0, "predict changed the memory");
  static float g[P * IMAGENAV_FRAME];
  gtmsm_predict(&m, mem, pa, P, GTMSM_PREDICT_SAMPLE, 7, g, NULL, NULL, 0);
  CHECK(memcmp(f2, g, sizeof g) == 0, "sample mode not deterministic for a seed");
  gtmsm_predict(&m, mem, pa, P, GTMSM_PREDICT_SAMPLE, 8, g, NULL, NULL, 0);
  CHECK(memcmp(f2, g, sizeof g) != 0, "sample mode ignores the seed");
  /* a prefix of the actions predicts a prefix of the frames, bit for bit */
  gtmsm_predict(&m, mem, pa, 7, GTMSM_PREDICT_MEAN, 0, g, NULL, NULL, 0);
  CHECK(memcmp(f1, g, sizeof(float) * 7 * IMAGENAV_FRAME) == 0, "prediction depends on the request length");
  for (int i = 0; i < P * IMAGENAV_FRAME; i++) CHECK(f1[i] >= 0 && f1[i] <= 1, "frame value %g", f1[i]);
  /* the first predicted state is one transition from the memory's state */
  float s1[2];
  m.trans->step(&m, mem->state, mem->hidden, pa[0], s1, NULL, NULL, 0);
  CHECK(s1[0] == st[0] && s1[1] == st[1], "first state");
  /* deserialise: identical predictions */
  gtmsm_memory *back = NULL;
  CHECK(gtmsm_memory_deserialize(&m, after, la, &back, err, sizeof err) == 0, "%s", err);
  gtmsm_predict(&m, back, pa, P, GTMSM_PREDICT_MEAN, 0, g, NULL, NULL, 0);
  CHECK(memcmp(f1, g, sizeof g) == 0, "predictions differ after deserialising");
  for (size_t cut = 0; cut < la; cut += la / 37 + 1) {
    gtmsm_memory *x = NULL;
    CHECK(gtmsm_memory_deserialize(&m, after, cut, &x, NULL, 0) != 0 && !x, "prefix %zu accepted", cut);
  }
  /* a failing observation (memory full) leaves the memory exactly as it was */
  {
    gtmsm_memory *full = NULL;
    gtmsm_memory_deserialize(&m, after, la, &full, NULL, 0);
    dnd_set_max_size(full->mem, T + 3);
    uint8_t *b0 = NULL, *b1 = NULL;
    size_t l0, l1;
    gtmsm_memory_serialize(full, c.S, &b0, &l0);
    int rc = gtmsm_observe(&m, full, actions, frames, 10, err, sizeof err);
    gtmsm_memory_serialize(full, c.S, &b1, &l1);
    CHECK(rc == GTMSM_ERANGE && l0 == l1 && memcmp(b0, b1, l0) == 0 && full->steps == T,
          "failed observe changed the memory (rc %d: %s)", rc, err);
    free(b0);
    free(b1);
    gtmsm_memory_free(full);
  }
  int badact[2] = {0, 9};
  CHECK(gtmsm_predict(&m, mem, badact, 2, GTMSM_PREDICT_MEAN, 0, g, NULL, err, sizeof err) == GTMSM_EINVAL,
        "bad action accepted");
  CHECK(gtmsm_observe(&m, back, badact, frames, 2, err, sizeof err) == GTMSM_EINVAL && back->steps == T,
        "bad observation accepted or changed the memory");
  gtmsm_memory_free(back);
  free(before);
  free(after);
  gtmsm_memory_free(mem);
  gtmsm_model_free(&m);
}

typedef struct {
  const gtmsm_model *m;
  const int *actions;
  const float *frames;
  int T, one_by_one;
  uint8_t *buf; /* the serialised memory after observing (new) */
  size_t len;
} observe_job;

static void *observe_run(void *p) {
  observe_job *j = p;
  gtmsm_memory *mem = gtmsm_memory_new(j->m);
  int rc = mem ? 0 : GTMSM_ENOMEM;
  for (int t = 0; !rc && t < j->T; t += j->one_by_one ? 1 : j->T)
    rc = gtmsm_observe(j->m, mem, j->actions + t, j->frames + (size_t)t * IMAGENAV_FRAME, j->one_by_one ? 1 : j->T,
                       NULL, 0);
  if (!rc) gtmsm_memory_serialize(mem, j->m->cfg.S, &j->buf, &j->len);
  gtmsm_memory_free(mem);
  return NULL;
}

static void test_landmark_api(const char *dir) {
  char err[512], path[512];
  gtmsm_config c = small_config();
  json_t *cj = gtmsm_config_to_json(&c);
  CHECK(!json_object_get(cj, "inference") && !json_object_get(cj, "landmark_k"),
        "a model without landmarks writes the landmark keys (its content hash would change)");
  json_decref(cj);
  c.infer = GTMSM_INFER_LANDMARK;
  c.trans_std = 0.3f;
  c.landmark_k = 3;
  c.landmark_hidden = 8;
  gtmsm_model m, l;
  CHECK(gtmsm_model_init(&m, &c, 6, err, sizeof err) == 0, "%s", err);
  snprintf(path, sizeof path, "%s/lm.gtm", dir);
  CHECK(gtmsm_model_save(&m, path, NULL, err, sizeof err) == 0, "save: %s", err);
  CHECK(gtmsm_model_load(&l, path, err, sizeof err) == 0, "load: %s", err);
  CHECK(l.cfg.infer == GTMSM_INFER_LANDMARK && l.cfg.landmark_k == 3 && l.cfg.landmark_hidden == 8 &&
            l.p.total == m.p.total && memcmp(l.p.data, m.p.data, m.p.total * sizeof(float)) == 0 &&
            strcmp(gtmsm_part_name(&l, GTMSM_ROLE_INFER), "landmark") == 0,
        "landmark model file round trip");
  gtmsm_model_free(&l);

  enum { T = 90 };
  static float world[WORLD_SIZE * WORLD_SIZE * 3], frames[T * IMAGENAV_FRAME];
  int actions[T];
  world_generate(world, 4);
  imagenav_options o = imagenav_default_options();
  o.obstacles = 12;
  imagenav_episode(world, &o, 4, T, frames, actions, NULL);
  /* sharpen the gains a little so the landmarks move the states */
  params_get(&m.p, "lm.b2")[0] = 1.0f;
  /* BLAS runs one thread in every program (its rounding depends on how it
   * splits a matrix); the callers' threads may be many: run 0 alone, runs 1
   * and 2 at once on two threads, run 2 one frame per call */
  openblas_set_num_threads(1);
  observe_job jobs[3];
  for (int run = 0; run < 3; run++)
    jobs[run] = (observe_job){&m, actions, frames, T, run == 2, NULL, 0};
  observe_run(&jobs[0]);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, observe_run, &jobs[1 + i]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  uint8_t *buf[3];
  size_t len[3];
  for (int i = 0; i < 3; i++) buf[i] = jobs[i].buf, len[i] = jobs[i].len;
  CHECK(buf[0] && buf[1] && buf[2], "observe failed");
  if (!buf[0] || !buf[1] || !buf[2]) return;
  CHECK(len[0] == len[1] && !memcmp(buf[0], buf[1], len[0]), "observe with landmarks: bytes depend on the threads");
  CHECK(len[1] == len[2] && !memcmp(buf[1], buf[2], len[0]), "observe with landmarks: bytes depend on the batching");
  CHECK(len[0] > 12 && buf[0][8] == 3, "a landmark memory is version 3 (got %d)", len[0] > 12 ? buf[0][8] : -1);
  gtmsm_memory *back = NULL, *old = NULL, *entries = gtmsm_memory_new(&m);
  CHECK(gtmsm_memory_deserialize(&m, buf[0], len[0], &back, err, sizeof err) == 0, "deserialise: %s", err);
  if (back) {
    CHECK(back->rev && dnd_size(back->rev) == T, "reverse index lost");
    /* the per-entry path (a store's) rebuilds the same reverse index */
    for (int t = 0; t < T; t++)
      CHECK(gtmsm_memory_insert_entry(&m, entries, dnd_key(back->mem, t), dnd_value(back->mem, t)) == 0, "entry %d", t);
    memcpy(entries->state, back->state, sizeof back->state);
    entries->steps = back->steps;
    uint8_t *b = NULL, *e = NULL, *v1 = NULL;
    size_t lb = 0, le = 0, l1 = 0;
    gtmsm_memory_serialize(back, c.S, &b, &lb);
    gtmsm_memory_serialize(entries, c.S, &e, &le);
    CHECK(lb == len[0] && !memcmp(b, buf[0], lb), "memory round trip changed its bytes");
    CHECK(le == len[0] && !memcmp(e, buf[0], le), "the per-entry path gives another reverse index");
    /* an older memory (version 1: no reverse index) loads, the index rebuilt */
    dnd *rev = back->rev;
    back->rev = NULL;
    gtmsm_memory_serialize(back, c.S, &v1, &l1);
    back->rev = rev;
    CHECK(l1 > 12 && v1[8] == 1, "version 1 written without a reverse index");
    CHECK(gtmsm_memory_deserialize(&m, v1, l1, &old, err, sizeof err) == 0, "old memory refused: %s", err);
    if (old) {
      free(e);
      gtmsm_memory_serialize(old, c.S, &e, &le);
      CHECK(le == len[0] && !memcmp(e, buf[0], le), "an old memory's rebuilt reverse index differs");
    }
    for (size_t cut = 0; cut < len[0]; cut += len[0] / 29 + 1) {
      gtmsm_memory *x = NULL;
      CHECK(gtmsm_memory_deserialize(&m, buf[0], cut, &x, NULL, 0) != 0 && !x, "prefix %zu accepted", cut);
    }
    /* a model without landmarks refuses a memory with a reverse index */
    gtmsm_model plain;
    gtmsm_config pc = small_config();
    gtmsm_model_init(&plain, &pc, 6, NULL, 0);
    gtmsm_memory *x = NULL;
    CHECK(gtmsm_memory_deserialize(&plain, buf[0], len[0], &x, err, sizeof err) == GTMSM_EFORMAT && !x,
          "a model without landmarks took a version-3 memory");
    gtmsm_model_free(&plain);
    free(b);
    free(e);
    free(v1);
  }
  gtmsm_memory_free(back);
  gtmsm_memory_free(old);
  gtmsm_memory_free(entries);
  for (int i = 0; i < 3; i++) free(buf[i]);
  /* the evaluator with obstacles: the same numbers on one thread or three */
  eval_config ec = {.episodes = 4, .memorize = 64, .predict = 40, .seed = 3, .env = o, .keep = 1, .threads = 1};
  eval_result a, b2;
  CHECK(gtmsm_eval_imagenav(&m, &ec, &a, err, sizeof err) == 0, "%s", err);
  ec.threads = 3;
  CHECK(gtmsm_eval_imagenav(&m, &ec, &b2, err, sizeof err) == 0, "%s", err);
  CHECK(memcmp(a.psnr, b2.psnr, sizeof(double) * EVAL_METHODS * 40) == 0 &&
            memcmp(a.summary, b2.summary, sizeof a.summary) == 0 && a.pos_mean == b2.pos_mean &&
            a.pos_final == b2.pos_final,
        "landmark eval depends on threads");
  eval_result_free(&a);
  eval_result_free(&b2);
  gtmsm_model_free(&m);
}

static void test_training_lowers_loss(void) {
  char err[256];
  gtmsm_model m;
  gtmsm_config c = small_config();
  gtmsm_model_init(&m, &c, 9, err, sizeof err);
  enum { N = 48, T = 40, STEPS = 150 };
  gtmsm_ws *ws = gtmsm_ws_new(&c, N, 1);
  static float world[WORLD_SIZE * WORLD_SIZE * 3], frames[N * IMAGENAV_FRAME], ez[N * 4], es[N * 2];
  int actions[N];
  world_generate(world, 2);
  imagenav_options o = imagenav_default_options();
  imagenav_episode(world, &o, 2, N, frames, actions, NULL);
  rng_t r;
  rng_init(&r, 1, 1);
  gtmsm_seq_spec spec = {.N = N, .T = T, .aux = 0.5f, .kl_weight = 1.0f};
  adam_config ac = adam_default();
  double first = 0, last = 0;
  for (int s = 0; s < STEPS; s++) {
    rng_normal_fill(&r, ez, N * 4);
    rng_normal_fill(&r, es, N * 2);
    params_zero_grad(&m.p);
    gtmsm_seq_stats st;
    int rc = gtmsm_seq_loss(&m, ws, &spec, frames, actions, ez, es, m.p.grad, &st);
    CHECK(rc == 0, "loss rc %d at %d", rc, s);
    adam_update(&m.p, &ac);
    if (s < 10) first += st.loss / 10;
    if (s >= STEPS - 10) last += st.loss / 10;
  }
  printf("training on one episode: loss %.2f -> %.2f\n", first, last);
  CHECK(last < first - 50, "loss did not fall enough: %.2f -> %.2f", first, last);
  gtmsm_ws_free(ws);
  gtmsm_model_free(&m);
}

static void test_eval_determinism(void) {
  char err[256];
  gtmsm_model m;
  gtmsm_config c = small_config();
  gtmsm_model_init(&m, &c, 4, err, sizeof err);
  eval_config ec = {.episodes = 6, .memorize = 64, .predict = 40, .seed = 3,
                    .env = imagenav_default_options(), .keep = 2, .threads = 1};
  eval_result a, b;
  CHECK(gtmsm_eval_imagenav(&m, &ec, &a, err, sizeof err) == 0, "%s", err);
  ec.threads = 3;
  CHECK(gtmsm_eval_imagenav(&m, &ec, &b, err, sizeof err) == 0, "%s", err);
  CHECK(memcmp(a.psnr, b.psnr, sizeof(double) * EVAL_METHODS * 40) == 0, "PSNR depends on threads");
  CHECK(memcmp(a.summary, b.summary, sizeof a.summary) == 0 && a.pos_mean == b.pos_mean, "summary differs");
  CHECK(memcmp(a.truth, b.truth, sizeof(float) * 2 * 40 * 192) == 0, "kept frames differ");
  /* the oracle on visited steps beats an untrained model's memory */
  CHECK(a.summary[EVAL_ORACLE].visited > a.summary[EVAL_NO_MEMORY].visited - 5, "oracle sanity");
  /* the affine fit recovers an exact affine map */
  float st[20];
  double pos[20], coef[6];
  for (int i = 0; i < 10; i++) {
    st[2 * i] = (float)(i % 3);
    st[2 * i + 1] = (float)(i / 3);
    pos[2 * i] = 2 * st[2 * i] - st[2 * i + 1] + 1;
    pos[2 * i + 1] = 0.5 * st[2 * i + 1] + 3;
  }
  eval_affine_fit(st, pos, 10, 2, coef);
  CHECK_NEAR(coef[0], 2, 1e-6, 0, "a11");
  CHECK_NEAR(coef[2], -1, 1e-6, 0, "a12");
  CHECK_NEAR(coef[4], 1, 1e-6, 0, "b1");
  CHECK_NEAR(coef[3], 0.5, 1e-6, 0, "a22");
  CHECK_NEAR(coef[5], 3, 1e-6, 0, "b2");
  eval_result_free(&a);
  eval_result_free(&b);
  gtmsm_model_free(&m);
}

int main(void) {
  char dir[] = "/tmp/gtmsm_test_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  test_file_round_trip(dir);
  test_conv_variant(dir);
  test_partial_rows();
  test_api();
  test_infer_rows();
  test_helpers();
  test_shared_encoding();
  test_landmark_api(dir);
  test_training_lowers_loss();
  test_eval_determinism();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_finish("test_model_api");
}
