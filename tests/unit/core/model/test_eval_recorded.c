/* The evaluators on recorded episodes (core/model/eval_recorded.c) against a
 * reference written here from the API alone (observe, predict, decode,
 * PSNR): the model's and no_memory's per-step PSNR, the oracle of the true
 * cell and the visited flags (imagenav), the nearest true pose's view
 * (maze3d rotate: views that repeat are copied exactly, 60 dB); the same
 * result for 1 and 3 threads; NAN for what needs a truth that is missing; the
 * refusals (a recording too short, an action the model lacks). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "model/api.h"
#include "model/eval_recorded.h"
#include "sim/imagenav.h"
#include "sim/maze3d.h"
#include "sim/world.h"
#include "testlib.h"

enum { E = 3, T = 40, P = 24, N = T + P };

typedef struct {
  uint8_t frames[E][N * IMAGENAV_FRAME];
  uint8_t actions[E][N];
  float truth[E][N * REC_TRUTH_N];
  eval_recording recs[E];
} nav_data;

static double capped(const float *a, const float *b, int D) {
  double p = image_psnr_f32(a, b, (size_t)D);
  return p > EVAL_PSNR_CAP ? EVAL_PSNR_CAP : p;
}

static void nav_record(nav_data *d) {
  static float world[WORLD_SIZE * WORLD_SIZE * 3], frames[N * IMAGENAV_FRAME];
  int actions[N];
  imagenav_truth truth[N];
  imagenav_options o = imagenav_default_options();
  for (int e = 0; e < E; e++) {
    world_generate(world, (uint64_t)(50 + e));
    imagenav_episode(world, &o, (uint64_t)(70 + e), N, frames, actions, truth);
    image_u8_from_float(d->frames[e], frames, sizeof d->frames[e], NULL, 0);
    for (int t = 0; t < N; t++) {
      d->actions[e][t] = (uint8_t)actions[t];
      memset(&d->truth[e][t * REC_TRUTH_N], 0, sizeof(float) * REC_TRUTH_N);
      d->truth[e][t * REC_TRUTH_N + REC_TRUTH_X] = (float)truth[t].col;
      d->truth[e][t * REC_TRUTH_N + REC_TRUTH_Y] = (float)truth[t].row;
    }
    d->recs[e] = (eval_recording){N, d->frames[e], d->actions[e], d->truth[e]};
  }
}

/* The reference for episode e: model and no_memory PSNR per step, oracle PSNR and visited flags. */
static void nav_reference(const gtmsm_model *m, const nav_data *d, int e, double *model, double *nomem,
                          double *oracle, int *visited) {
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z;
  float *f = malloc(sizeof(float) * N * D), *pred = malloc(sizeof(float) * P * D);
  float *mu = malloc(sizeof(float) * T * Z), *lv = malloc(sizeof(float) * T * Z);
  float *recon = malloc(sizeof(float) * T * D), *zero = calloc((size_t)P * Z, sizeof(float));
  float *nm = malloc(sizeof(float) * P * D), mean[IMAGENAV_FRAME] = {0}, o[IMAGENAV_FRAME];
  int a[N];
  image_float_from_u8(f, d->frames[e], (size_t)N * D);
  for (int t = 0; t < N; t++) a[t] = d->actions[e][t];
  gtmsm_memory *mem = gtmsm_memory_new(m);
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, T, 0);
  CHECK(gtmsm_observe(m, mem, a, f, T, NULL, 0) == 0, "observe");
  CHECK(gtmsm_predict(m, mem, a + T, P, GTMSM_PREDICT_MEAN, 0, pred, NULL, NULL, 0) == 0, "predict");
  gtmsm_decode_mean(m, ws, zero, P, nm);
  gtmsm_encode(m, ws, f, T, mu, lv);
  gtmsm_decode_mean(m, ws, mu, T, recon);
  for (int t = 0; t < T; t++)
    for (int k = 0; k < D; k++) mean[k] += f[t * D + k] / (float)T;
  for (int p = 0; p < P; p++) {
    for (int k = 0; k < D; k++) nm[p * D + k] = nm[p * D + k] < 0 ? 0 : nm[p * D + k] > 1 ? 1 : nm[p * D + k];
    model[p] = capped(pred + p * D, f + (T + p) * D, D);
    nomem[p] = capped(nm + p * D, f + (T + p) * D, D);
    int last = -1; /* the last memorized step in the same true cell */
    for (int t = 0; t < T; t++)
      if (d->truth[e][t * REC_TRUTH_N] == d->truth[e][(T + p) * REC_TRUTH_N] &&
          d->truth[e][t * REC_TRUTH_N + 1] == d->truth[e][(T + p) * REC_TRUTH_N + 1])
        last = t;
    visited[p] = last >= 0;
    for (int k = 0; k < D; k++) {
      float v = last >= 0 ? recon[last * D + k] : mean[k];
      o[k] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    oracle[p] = capped(o, f + (T + p) * D, D);
  }
  gtmsm_memory_free(mem);
  gtmsm_ws_free(ws);
  free(f), free(pred), free(mu), free(lv), free(recon), free(zero), free(nm);
}

static void test_imagenav(void) {
  static nav_data d;
  nav_record(&d);
  gtmsm_config c = gtmsm_default_config();
  c.Z = 4, c.hidden = 16, c.gate_hidden = 8;
  gtmsm_model m;
  char err[256];
  CHECK(gtmsm_model_init(&m, &c, 3, err, sizeof err) == 0, "init: %s", err);
  eval_recorded_config cfg = {.recs = d.recs, .episodes = E, .memorize = T, .predict = P, .keep = 2, .threads = 1};
  eval_result r1, r3;
  CHECK(gtmsm_eval_recorded_imagenav(&m, &cfg, &r1, err, sizeof err) == 0, "eval: %s", err);
  cfg.threads = 3;
  CHECK(gtmsm_eval_recorded_imagenav(&m, &cfg, &r3, err, sizeof err) == 0, "eval: %s", err);
  CHECK(memcmp(r1.psnr, r3.psnr, sizeof(double) * EVAL_METHODS * P) == 0 && r1.pos_mean == r3.pos_mean,
        "1 and 3 threads differ");
  double want[EVAL_METHODS][P] = {{0}}, vis[P] = {0}, worst = 0;
  for (int e = 0; e < E; e++) {
    double mo[P], nm[P], or[P];
    int v[P];
    nav_reference(&m, &d, e, mo, nm, or, v);
    for (int p = 0; p < P; p++) {
      want[EVAL_MODEL][p] += mo[p] / E;
      want[EVAL_NO_MEMORY][p] += nm[p] / E;
      want[EVAL_ORACLE][p] += or[p] / E;
      vis[p] += (double)v[p] / E;
      if (e < 2) CHECK(r1.visited_flags[e * P + p] == v[p], "episode %d step %d visited", e, p);
    }
  }
  for (int k = 0; k < EVAL_METHODS; k++)
    for (int p = 0; p < P; p++) worst = fmax(worst, fabs(r1.psnr[k * P + p] - want[k][p]));
  for (int p = 0; p < P; p++) CHECK_NEAR(r1.visited[p], vis[p], 1e-12, 0, "visited share");
  printf("imagenav: model %.3f oracle %.3f no_memory %.3f dB, max |PSNR - reference| %.3g, position error %.3f\n",
         r1.summary[EVAL_MODEL].all, r1.summary[EVAL_ORACLE].all, r1.summary[EVAL_NO_MEMORY].all, worst,
         r1.pos_mean);
  CHECK(worst < 1e-9, "per-step PSNR off the reference by %g", worst);
  CHECK(isfinite(r1.pos_mean) && isfinite(r1.summary[EVAL_MODEL].visited), "truth metrics present");
  eval_result_free(&r1);
  eval_result_free(&r3);

  /* one recording without truth: truth metrics are NAN, the rest unchanged */
  d.recs[1].truth = NULL;
  cfg.threads = 2;
  CHECK(gtmsm_eval_recorded_imagenav(&m, &cfg, &r1, err, sizeof err) == 0, "eval: %s", err);
  CHECK(isnan(r1.summary[EVAL_ORACLE].all) && isnan(r1.pos_mean) && isnan(r1.summary[EVAL_MODEL].visited) &&
            isnan(r1.visited[0]),
        "without truth: oracle, position and visited are NAN");
  CHECK_NEAR(r1.psnr[EVAL_MODEL * P + 3], want[EVAL_MODEL][3], 1e-9, 0, "model PSNR without truth");
  eval_result_free(&r1);

  /* refusals */
  d.recs[2].n = N - 1;
  CHECK(gtmsm_eval_recorded_imagenav(&m, &cfg, &r1, err, sizeof err) == GTMSM_EINVAL && strstr(err, "holds"),
        "a short recording: %s", err);
  d.recs[2].n = N;
  d.actions[2][7] = (uint8_t)c.A;
  CHECK(gtmsm_eval_recorded_imagenav(&m, &cfg, &r1, err, sizeof err) == GTMSM_EINVAL && strstr(err, "action"),
        "an action the model lacks: %s", err);
  gtmsm_model_free(&m);
}

/* maze3d rotate: a full turn is 40 steps, so predicted steps 40.. repeat memorized
 * views exactly; the nearest true pose's view is then the same frame (60 dB). */
static void test_maze3d(void) {
  enum { MT = 41, MP = 30, MN = MT + MP, S = 32, MD = S * S * 3 };
  static float frames[MN * MD];
  static uint8_t u8[MN * MD], acts[MN];
  static float truth[MN * REC_TRUTH_N];
  int a[MN];
  maze3d_truth tr[MN];
  maze3d_config mc = maze3d_config_default();
  maze3d_config_for_scenario(&mc, MAZE3D_SCENARIO_ROTATE);
  mc.W = mc.H = S;
  mc.seed = 5;
  char err[256];
  CHECK(maze3d_episode(&mc, MAZE3D_SCENARIO_ROTATE, 5, MN, 0, frames, a, tr, err, sizeof err) == 0, "%s", err);
  image_u8_from_float(u8, frames, sizeof u8, NULL, 0);
  for (int t = 0; t < MN; t++) {
    acts[t] = (uint8_t)a[t];
    float *x = truth + t * REC_TRUTH_N;
    x[REC_TRUTH_X] = (float)tr[t].x, x[REC_TRUTH_Y] = (float)tr[t].y, x[REC_TRUTH_HEADING] = (float)tr[t].heading;
    x[REC_TRUTH_D_FORWARD] = (float)tr[t].d_forward, x[REC_TRUTH_D_LEFT] = (float)tr[t].d_left;
    x[REC_TRUTH_D_HEADING] = (float)tr[t].d_heading;
  }
  gtmsm_config c = gtmsm_default_config();
  c.H = c.W = S, c.C = 3, c.S = 3, c.Z = 4, c.vae = GTMSM_VAE_CONV, c.channels = 4, c.trans = GTMSM_TRANS_ROT3D,
  c.keymap = GTMSM_KEYMAP_PERIODIC, c.K = 4;
  c.A = maze3d_action_count() + 1;
  for (int i = 0; i < c.A; i++) snprintf(c.action_names[i], sizeof c.action_names[i], "%s", maze3d_action_name(i));
  gtmsm_model m;
  CHECK(gtmsm_model_init(&m, &c, 4, err, sizeof err) == 0, "init: %s", err);
  eval_recording rec = {MN, u8, acts, truth};
  eval_recorded_config cfg = {.recs = &rec, .episodes = 1, .memorize = MT, .predict = MP, .keep = 1, .threads = 1,
                              .seen_cells = 0.25, .seen_deg = 4.5};
  m3e_result r;
  CHECK(gtmsm_eval_recorded_maze3d(&m, &cfg, &r, err, sizeof err) == 0, "eval: %s", err);
  printf("maze3d rotate: nearest_view seen %.2f unseen %.2f, last_frame %.2f, model %.2f dB, heading scale %.3f\n",
         r.summary[M3E_NEAREST_VIEW].seen, r.summary[M3E_NEAREST_VIEW].unseen, r.summary[M3E_LAST_FRAME].all,
         r.summary[M3E_MODEL].all, r.heading_scale);
  CHECK(r.summary[M3E_NEAREST_VIEW].seen == EVAL_PSNR_CAP, "seen views are copied exactly");
  CHECK(r.seen[0] == 1.0, "the first predicted step repeats a memorized pose");
  CHECK(isfinite(r.heading_mean) && isfinite(r.pos_mean), "pose metrics with truth");
  float *f = malloc(sizeof(float) * MN * MD);
  image_float_from_u8(f, u8, sizeof u8);
  CHECK_NEAR(r.psnr[M3E_LAST_FRAME * MP + 5], capped(f + (MT - 1) * MD, f + (MT + 5) * MD, MD), 1e-12, 0,
             "last_frame PSNR");
  free(f);
  m3e_result_free(&r);
  rec.truth = NULL;
  CHECK(gtmsm_eval_recorded_maze3d(&m, &cfg, &r, err, sizeof err) == 0, "eval: %s", err);
  CHECK(isnan(r.summary[M3E_NEAREST_VIEW].all) && isnan(r.summary[M3E_MODEL].seen) && isnan(r.heading_mean) &&
            isnan(r.pos_final) && isfinite(r.summary[M3E_RECONSTRUCTION].all) && isnan(r.heading_true[0]),
        "without truth: nearest_view, seen and pose metrics NAN; reconstruction kept");
  m3e_result_free(&r);
  gtmsm_model_free(&m);
}

int main(void) {
  test_imagenav();
  test_maze3d();
  return test_finish("eval_recorded");
}
