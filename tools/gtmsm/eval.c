/* gtmsm eval: the paper's test protocol on held-out image-navigation episodes.
 * Writes OUT/psnr.csv (per prediction step, mean over episodes), OUT/psnr.png
 * (the plot), OUT/strip_<e>.png (true / model / oracle frames of the first
 * episodes) and, with --json, the summary on stdout. */
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "figures.h"
#include "model/eval.h"
#include "model/modelfile.h"
#include "opts.h"
#include "sim/worldset.h"
#include "tools.h"

/* A summary value, or null where no step fell in its range (e.g. steps
 * 200-256 of a shorter prediction). */
static json_t *num_or_null(double v) { return isnan(v) ? json_null() : json_real(v); }

static json_t *summary_json(const eval_summary *s) {
  return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "all", num_or_null(s->all), "steps_1_32",
                   num_or_null(s->steps_1_32), "steps_200_256", num_or_null(s->steps_200_256),
                   "visited", num_or_null(s->visited), "unvisited", num_or_null(s->unvisited),
                   "visited_200_256", num_or_null(s->visited_200_256));
}

int cmd_eval(int argc, char **argv) {
  const char *model_path = NULL, *env = "imagenav", *images = NULL, *out = NULL;
  int episodes = 100, memorize = 256, predict = 256, json = 0, strips = 4, threads = 2, obstacles = 0,
      avoid_walls = 0;
  uint64_t seed = 1000;
  double rate = 2.0;
  opt_def defs[] = {
      {"model", OPT_STRING, &model_path, 1, 0, "model file (.gtm)"},
      {"env", OPT_STRING, &env, 1, 0, "environment (imagenav)"},
      {"images", OPT_STRING, &images, 1, 0, "folder of PNG worlds (default: procedural worlds)"},
      {"episodes", OPT_INT, &episodes, 1, 1e6, "episodes"},
      {"seed", OPT_U64, &seed, 1, 0, "seed of the episodes"},
      {"memorize", OPT_INT, &memorize, 2, 1e6, "memorized steps"},
      {"predict", OPT_INT, &predict, 1, 1e6, "predicted steps"},
      {"rate", OPT_DOUBLE, &rate, 0, 100, "explorer Poisson repeat rate"},
      {"obstacles", OPT_INT, &obstacles, 0, 80, "blocked cells per episode"},
      {"avoid-walls", OPT_FLAG, &avoid_walls, 1, 0, "explorer never pushes into walls (diagnostic)"},
      {"out", OPT_STRING, &out, 1, 0, "output folder (csv, plot, strips)"},
      {"strips", OPT_INT, &strips, 0, 1000, "episodes drawn as strips"},
      {"threads", OPT_INT, &threads, 1, 256, "worker threads"},
      {"json", OPT_FLAG, &json, 1, 0, "print the summary as JSON on stdout"},
      {NULL, 0, NULL, 0, 0, NULL},
  };
  int prc = opts_parse("eval", "Evaluate a model on held-out image-navigation episodes.", defs, argc, argv);
  if (prc) return prc == 1 ? 0 : 2;
  if (!model_path) {
    fprintf(stderr, "gtmsm eval: --model is required\n");
    return 2;
  }
  if (strcmp(env, "imagenav") != 0) {
    fprintf(stderr, "gtmsm eval: --env %s: only imagenav models are evaluated here\n", env);
    return 2;
  }
  int rc = 1;
  char err[512];
  gtmsm_model m;
  worldset worlds = {0};
  eval_result res = {0};
  if (gtmsm_model_load(&m, model_path, err, sizeof err)) {
    fprintf(stderr, "gtmsm eval: %s\n", err);
    return 1;
  }
  if (images && worldset_load(&worlds, images, err, sizeof err)) {
    fprintf(stderr, "gtmsm eval: %s\n", err);
    goto done;
  }
  openblas_set_num_threads(1);
  eval_config cfg = {.episodes = episodes, .memorize = memorize, .predict = predict, .seed = seed,
                     .worlds = images ? &worlds : NULL, .env = imagenav_default_options(),
                     .keep = out ? strips : 0, .threads = threads};
  cfg.env.rate = rate;
  cfg.env.obstacles = obstacles;
  cfg.env.avoid_walls = avoid_walls;
  double t0 = opts_now();
  if (gtmsm_eval_imagenav(&m, &cfg, &res, err, sizeof err)) {
    fprintf(stderr, "gtmsm eval: %s\n", err);
    goto done;
  }
  double dt = opts_now() - t0;
  fprintf(stderr, "evaluated %d episodes (%d memorized + %d predicted) in %.1fs, %.0f frames/s\n",
          episodes, memorize, predict, dt, episodes * (double)(memorize + predict) / dt);
  for (int k = 0; k < EVAL_METHODS; k++) {
    const eval_summary *s = &res.summary[k];
    fprintf(stderr,
            "  %-10s PSNR all %6.2f  1-32 %6.2f  200-256 %6.2f  visited %6.2f  unvisited %6.2f  "
            "visited 200-256 %6.2f\n",
            EVAL_METHOD_NAMES[k], s->all, s->steps_1_32, s->steps_200_256, s->visited, s->unvisited,
            s->visited_200_256);
  }
  fprintf(stderr, "  position error: mean %.3f cells, final %.3f cells\n", res.pos_mean, res.pos_final);
  if (out) {
    mkdir(out, 0755);
    if (figures_eval(out, &res, m.cfg.H, m.cfg.W, m.cfg.C, err, sizeof err)) {
      fprintf(stderr, "gtmsm eval: %s\n", err);
      goto done;
    }
  }
  if (json) {
    json_t *psnr = json_object();
    for (int k = 0; k < EVAL_METHODS; k++)
      json_object_set_new(psnr, EVAL_METHOD_NAMES[k], summary_json(&res.summary[k]));
    json_t *j = json_pack("{s:i, s:i, s:i, s:o, s:{s:f, s:f}}", "episodes", episodes, "memorize",
                          memorize, "predict", predict, "psnr", psnr, "position_error", "mean",
                          res.pos_mean, "final", res.pos_final);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    printf("%s\n", s);
    free(s);
    json_decref(j);
  }
  rc = 0;
done:
  eval_result_free(&res);
  worldset_free(&worlds);
  gtmsm_model_free(&m);
  return rc;
}
