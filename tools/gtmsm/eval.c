/* gtmsm eval: the paper's test protocol on held-out episodes, image navigation
 * or maze3d, simulated or recorded (--episodes FILE..., --from-db). Writes OUT/psnr.csv (per prediction step, mean over episodes),
 * OUT/psnr.png (the plot), OUT/strip_<e>.png (true / model / baseline frames
 * of the first episodes; maze3d also OUT/heading.png and OUT/map_<e>.png) and, with --json, the
 * summary on stdout. */
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "figures.h"
#include "model/eval.h"
#include "model/eval_maze3d.h"
#include "model/eval_recorded.h"
#include "model/modelfile.h"
#include "opts.h"
#include "opts_maze3d.h"
#include "recordings.h"
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

/* Prints j (stolen) as the JSON summary on stdout. */
static void print_summary(json_t *j) {
  char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
  printf("%s\n", s);
  free(s);
  json_decref(j);
}

static json_t *m3e_summary_json(const m3e_result *res, int k) {
  json_t *steps = json_array();
  for (int p = 0; p < res->predict; p++)
    json_array_append_new(steps, json_real(res->psnr[(size_t)k * res->predict + p]));
  const m3e_summary *s = &res->summary[k];
  return json_pack("{s:o, s:o, s:o, s:o}", "all", num_or_null(s->all), "seen", num_or_null(s->seen), "unseen",
                   num_or_null(s->unseen), "steps", steps);
}

/* maze3d: the scenario's protocol; cfg is filled but for the model. */
static int eval_maze3d(const gtmsm_model *m, const opts_maze3d *mo, const recordings *recs, int episodes,
                       int memorize, int predict, uint64_t seed, int threads, const char *out, int strips, int json) {
  char err[512];
  int rc = 1;
  maze3d_texture_set ts = {0};
  m3e_result res = {0};
  m3e_config cfg = {.episodes = episodes, .memorize = memorize, .predict = predict, .seed = seed,
                    .keep = out ? strips : 0, .threads = threads};
  if (opts_maze3d_load_textures(mo, &ts, err, sizeof err) ||
      opts_maze3d_config(&cfg.maze, &cfg.scenario, mo, seed, &ts, err, sizeof err)) {
    fprintf(stderr, "gtmsm eval: %s\n", err);
    goto done;
  }
  /* "seen": the same pose within the rotate protocol's step (a 9-degree
   * turn is 2 x 4.5), or within walking distance for the walkers */
  int rotate = cfg.scenario == MAZE3D_SCENARIO_ROTATE;
  cfg.seen_cells = rotate ? 0.25 : 0.5;
  cfg.seen_deg = rotate ? 4.5 : 15.0;
  double t0 = opts_now();
  if (recs) {
    eval_recorded_config rc_cfg = {.recs = recs->v, .episodes = recs->n, .memorize = memorize, .predict = predict,
                                   .keep = cfg.keep, .threads = threads, .seen_cells = cfg.seen_cells,
                                   .seen_deg = cfg.seen_deg};
    if (gtmsm_eval_recorded_maze3d(m, &rc_cfg, &res, err, sizeof err)) {
      fprintf(stderr, "gtmsm eval: %s\n", err);
      goto done;
    }
  } else if (gtmsm_eval_maze3d(m, &cfg, &res, err, sizeof err)) {
    fprintf(stderr, "gtmsm eval: %s\n", err);
    goto done;
  }
  double dt = opts_now() - t0;
  if (recs)
    fprintf(stderr, "evaluated %d maze3d recordings (%d memorized + %d predicted, %s) in %.1fs, %.0f frames/s\n",
            episodes, memorize, predict, recs->all_truth ? "with truth" : "no truth: no pose metrics", dt,
            episodes * (double)(memorize + predict) / dt);
  else
    fprintf(stderr, "evaluated %d maze3d %s episodes (%d memorized + %d predicted%s%s) in %.1fs, %.0f frames/s\n",
            episodes, mo->scenario, memorize, predict, ts.n ? ", textures " : "", ts.n ? mo->textures : "", dt,
            episodes * (double)(memorize + predict) / dt);
  for (int k = 0; k < M3E_METHODS; k++)
    fprintf(stderr, "  %-15s PSNR all %6.2f  seen %6.2f  unseen %6.2f\n", M3E_METHOD_NAMES[k],
            res.summary[k].all, res.summary[k].seen, res.summary[k].unseen);
  fprintf(stderr,
          "  heading error: mean %.2f deg, final %.2f deg (fitted scale %.3f rad per unit of s3); "
          "position error: mean %.3f, final %.3f cells\n",
          res.heading_mean, res.heading_final, res.heading_scale, res.pos_mean, res.pos_final);
  if (out) {
    if (opts_mkdir_p(out, err, sizeof err) ||
        figures_eval_maze3d(out, &res, memorize, m->cfg.H, m->cfg.W, m->cfg.C, err, sizeof err)) {
      fprintf(stderr, "gtmsm eval: %s\n", err);
      goto done;
    }
  }
  if (json) {
    json_t *psnr = json_object();
    for (int k = 0; k < M3E_METHODS; k++) json_object_set_new(psnr, M3E_METHOD_NAMES[k], m3e_summary_json(&res, k));
    json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:i, s:o, s:{s:o, s:o, s:o}, s:{s:o, s:o, s:o}}", "env", "maze3d",
                          "scenario", mo->scenario, "episodes", episodes, "memorize", memorize, "predict", predict,
                          "psnr", psnr, "heading_error_deg", "mean", num_or_null(res.heading_mean), "final",
                          num_or_null(res.heading_final), "scale", num_or_null(res.heading_scale), "position_error",
                          "mean", num_or_null(res.pos_mean), "at_150", num_or_null(res.pos_at_150), "final",
                          num_or_null(res.pos_final));
    if (ts.n) json_object_set_new(j, "textures", json_string(mo->textures));
    if (recs) recordings_json_note(j, recs);
    print_summary(j);
  }
  rc = 0;
done:
  m3e_result_free(&res);
  maze3d_texture_set_free(&ts);
  return rc;
}

int cmd_eval(int argc, char **argv) {
  const char *model_path = NULL, *env = "imagenav", *images = NULL, *out = NULL;
  int episodes = 100, memorize = 256, predict = 256, json = 0, strips = 4, threads = 2, obstacles = 0,
      avoid_walls = 0, random_start = 0, obstacles_predict = 0;
  uint64_t seed = 1000;
  double rate = 2.0;
  opts_maze3d mo = opts_maze3d_default();
  mo.scenario = "rotate";
  opt_list episodes_arg = {0}, sessions = {0};
  const char *from_db = NULL, *db_model = NULL;
  opt_def defs[] = {
      {"model", OPT_STRING, &model_path, 1, 0, "model file (.gtm)"},
      {"env", OPT_STRING, &env, 1, 0, "environment: imagenav | maze3d"},
      OPTS_MAZE3D_DEFS(&mo),
      {"images", OPT_STRING, &images, 1, 0, "folder of PNG worlds (default: procedural worlds)"},
      {"episodes", OPT_LIST, &episodes_arg, 1, 0,
       "a number of simulated episodes (default 100), or recorded episodes: NDJSON files as gen prints them"},
      {"from-db", OPT_STRING, &from_db, 1, 0, "evaluate on the sessions a gtmsmd stored in this SQLite file"},
      {"session", OPT_LIST, &sessions, 1, 0, "with --from-db: only these session ids (default all)"},
      {"db-model", OPT_STRING, &db_model, 1, 0, "with --from-db: only sessions created with this model name"},
      {"seed", OPT_U64, &seed, 1, 0, "seed of the episodes"},
      {"memorize", OPT_INT, &memorize, 2, 1e6, "memorized steps"},
      {"predict", OPT_INT, &predict, 1, 1e6, "predicted steps"},
      {"rate", OPT_DOUBLE, &rate, 0, 100, "explorer Poisson repeat rate"},
      {"obstacles", OPT_INT, &obstacles, 0, 80,
       "blocked cells per episode (the prediction phase's explorer steers around them)"},
      {"obstacles-in-prediction", OPT_FLAG, &obstacles_predict, 1, 0,
       "with --obstacles: the prediction phase's explorer walks into obstacles too"},
      {"random-start", OPT_FLAG, &random_start, 1, 0, "start each episode at a random cell (default the centre)"},
      {"avoid-walls", OPT_FLAG, &avoid_walls, 1, 0, "explorer never pushes into walls (diagnostic)"},
      {"out", OPT_STRING, &out, 1, 0, "output folder (csv, plot, strips)"},
      {"strips", OPT_INT, &strips, 0, 1000, "episodes drawn as strips"},
      {"threads", OPT_INT, &threads, 1, 256, "worker threads"},
      {"json", OPT_FLAG, &json, 1, 0, "print the summary as JSON on stdout"},
      {NULL, 0, NULL, 0, 0, NULL},
  };
  int prc = opts_parse("eval",
                       "Evaluate a model on held-out episodes (imagenav or maze3d): simulated, or recorded\n"
                       "(--episodes FILE..., --from-db gtmsm.db [--session ID...]): memorize the first\n"
                       "--memorize steps of each, predict the next --predict.",
                       defs, argc, argv);
  int rc = 2;
  char err[512];
  gtmsm_model m = {0};
  int loaded = 0;
  worldset worlds = {0};
  eval_result res = {0};
  recordings recs = {0};
  recordings_session *listed = NULL;
  if (prc) {
    rc = prc == 1 ? 0 : 2;
    goto done;
  }
  /* --episodes N: that many simulated episodes; any other value(s): recording files */
  int recorded = from_db != NULL, files = 0;
  if (episodes_arg.n == 1 && strspn(episodes_arg.v[0], "0123456789") == strlen(episodes_arg.v[0])) {
    long n = strtol(episodes_arg.v[0], NULL, 10);
    if (n < 1 || n > 1000000) {
      fprintf(stderr, "gtmsm eval: --episodes %s is outside 1..1000000\n", episodes_arg.v[0]);
      goto done;
    }
    episodes = (int)n;
  } else if (episodes_arg.n > 0) {
    recorded = 1;
    files = episodes_arg.n; /* a file named like a number: ./123 */
  }
  if (!model_path) {
    fprintf(stderr, "gtmsm eval: --model is required\n");
    goto done;
  }
  if (strcmp(env, "imagenav") != 0 && strcmp(env, "maze3d") != 0) {
    fprintf(stderr, "gtmsm eval: --env must be imagenav or maze3d\n");
    goto done;
  }
  if ((sessions.n || db_model) && !from_db) {
    fprintf(stderr, "gtmsm eval: --session and --db-model need --from-db\n");
    goto done;
  }
  if (strcmp(env, "maze3d") == 0 && maze3d_scenario_from_name(mo.scenario) < 0) {
    fprintf(stderr, "gtmsm eval: unknown --scenario '%s' (rotate, walk or multiroom)\n", mo.scenario);
    goto done;
  }
  rc = 1;
  if (gtmsm_model_load(&m, model_path, err, sizeof err)) {
    fprintf(stderr, "gtmsm eval: %s\n", err);
    goto done;
  }
  loaded = 1;
  if (recorded) {
    /* the recordings' actions are the model's own */
    recordings_env renv = {.A = m.cfg.A, .maze3d = strcmp(env, "maze3d") == 0};
    memcpy(renv.names, m.cfg.action_names, sizeof renv.names);
    listed = calloc((size_t)sessions.n + 1, sizeof *listed);
    for (int i = 0; listed && i < sessions.n; i++) listed[i] = (recordings_session){sessions.v[i], -1};
    int lrc = listed ? 0 : GTMSM_ENOMEM;
    for (int i = 0; !lrc && i < files; i++)
      lrc = recordings_load_ndjson(&recs, &renv, episodes_arg.v[i], -1, err, sizeof err);
    if (!lrc && from_db) lrc = recordings_load_db(&recs, &renv, from_db, listed, sessions.n, db_model, err, sizeof err);
    if (lrc) {
      fprintf(stderr, "gtmsm eval: %s\n", err);
      rc = lrc == RECORDINGS_ENOENT ? 2 : 1;
      goto done;
    }
    if (recs.H != m.cfg.H || recs.W != m.cfg.W || recs.C != m.cfg.C) {
      fprintf(stderr, "gtmsm eval: the recordings' frames are %dx%dx%d, the model's %dx%dx%d\n", recs.W, recs.H,
              recs.C, m.cfg.W, m.cfg.H, m.cfg.C);
      goto done;
    }
    for (int i = 0; i < recs.n; i++)
      if (recs.v[i].n < memorize + predict) {
        fprintf(stderr, "gtmsm eval: %s holds %d steps; --memorize %d + --predict %d need %d\n", recs.names[i],
                recs.v[i].n, memorize, predict, memorize + predict);
        rc = 2;
        goto done;
      }
    episodes = recs.n;
  }
  if (strcmp(env, "maze3d") == 0) {
    openblas_set_num_threads(1);
    rc = eval_maze3d(&m, &mo, recorded ? &recs : NULL, episodes, memorize, predict, seed, threads, out, strips,
                     json);
    goto done;
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
  cfg.env.random_start = random_start;
  cfg.env.steer_from = obstacles_predict ? 0 : memorize;
  double t0 = opts_now();
  if (recorded) {
    eval_recorded_config rc_cfg = {.recs = recs.v, .episodes = recs.n, .memorize = memorize, .predict = predict,
                                   .keep = cfg.keep, .threads = threads};
    if (gtmsm_eval_recorded_imagenav(&m, &rc_cfg, &res, err, sizeof err)) {
      fprintf(stderr, "gtmsm eval: %s\n", err);
      goto done;
    }
  } else if (gtmsm_eval_imagenav(&m, &cfg, &res, err, sizeof err)) {
    fprintf(stderr, "gtmsm eval: %s\n", err);
    goto done;
  }
  double dt = opts_now() - t0;
  fprintf(stderr, "evaluated %d %s (%d memorized + %d predicted%s) in %.1fs, %.0f frames/s\n", episodes,
          recorded ? "recordings" : "episodes", memorize, predict,
          recorded ? (recs.all_truth ? ", with truth" : ", no truth: no oracle, no position metrics") : "", dt,
          episodes * (double)(memorize + predict) / dt);
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
    if (opts_mkdir_p(out, err, sizeof err) || figures_eval(out, &res, m.cfg.H, m.cfg.W, m.cfg.C, err, sizeof err)) {
      fprintf(stderr, "gtmsm eval: %s\n", err);
      goto done;
    }
  }
  if (json) {
    json_t *psnr = json_object();
    for (int k = 0; k < EVAL_METHODS; k++)
      json_object_set_new(psnr, EVAL_METHOD_NAMES[k], summary_json(&res.summary[k]));
    json_t *j = json_pack("{s:i, s:i, s:i, s:o, s:{s:o, s:o}}", "episodes", episodes, "memorize",
                          memorize, "predict", predict, "psnr", psnr, "position_error", "mean",
                          num_or_null(res.pos_mean), "final", num_or_null(res.pos_final));
    if (recorded)
      recordings_json_note(j, &recs);
    else {
      json_t *env_j = json_pack("{s:i, s:b, s:b}", "obstacles", obstacles, "obstacles_in_prediction",
                                obstacles && obstacles_predict, "random_start", random_start);
      json_object_update(j, env_j);
      json_decref(env_j);
    }
    print_summary(j);
  }
  rc = 0;
done:
  eval_result_free(&res);
  worldset_free(&worlds);
  if (loaded) gtmsm_model_free(&m);
  recordings_free(&recs);
  free(listed);
  opt_list_free(&episodes_arg);
  opt_list_free(&sessions);
  return rc;
}
