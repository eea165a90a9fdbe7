/* The maze3d half of the demo endpoint (see demo.h): playing an episode of
 * the scenario's explorer, optionally continued by a client's actions, and
 * the replies of POST /v1/demo/episodes (a maze3d model) and POST
 * /v1/demo/episodes/step. The loop is gtmsm gen's (tools/gtmsm/gen.c): step,
 * render, round to 8 bits with maze3d_frame_to_u8, so the frames are its
 * frames byte for byte. A continuation replays the episode's physics without
 * rendering and goes on from its last state, velocity included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "demo.h"

maze3d_config demo_maze_config(const demo_sim *sim, uint64_t seed) {
  maze3d_config cfg = maze3d_config_default();
  maze3d_config_for_scenario(&cfg, sim->scenario);
  cfg.W = sim->W;
  cfg.H = sim->H;
  cfg.seed = seed;
  cfg.textures = NULL;
  return cfg;
}

void demo_map_free(demo_map *map) {
  if (!map) return;
  free(map->rgb);
  memset(map, 0, sizeof *map);
}

int demo_maze_play(const demo_sim *sim, uint64_t seed, int T, const int *extra, int n, int first,
                   uint8_t *frames, int *actions, maze3d_truth *truth, demo_map *map, char *err,
                   size_t errlen) {
  if (map) memset(map, 0, sizeof *map);
  if (T < 1 || n < 0 || (n > 0 && !extra) || first < 0 || first > T + n)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d demo: %d steps, %d more from %d", T, n,
                      first);
  for (int i = 0; i < n; i++)
    if (extra[i] < 0 || extra[i] > MAZE3D_ACTION_NONE)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d demo: action %d at %d", extra[i], i);
  const maze3d_config cfg = demo_maze_config(sim, seed);
  const size_t D = (size_t)cfg.W * cfg.H * 3;
  maze3d *m = NULL;
  maze3d_explorer ex = {0};
  float *frame = frames ? malloc(sizeof(float) * D) : NULL;          /* (H, W, 3) */
  float *traj = map ? malloc(sizeof(float) * 2 * (size_t)T) : NULL; /* (T, 2) */
  int rc = (frames && !frame) || (map && !traj) ? gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory")
                                                : 0;
  if (!rc) rc = maze3d_new(&m, &cfg, err, errlen);
  if (!rc) rc = maze3d_explorer_init(&ex, m, sim->scenario, seed, err, errlen);
  for (int t = 0; t < T + n && !rc; t++) {
    maze3d_truth tr;
    int a = t >= T ? extra[t - T] : t > 0 ? maze3d_explorer_next(&ex) : MAZE3D_ACTION_NONE;
    maze3d_step(m, a, &tr);
    if (actions) actions[t] = a;
    if (truth) truth[t] = tr;
    if (traj && t < T) {
      traj[2 * t] = (float)tr.x;
      traj[2 * t + 1] = (float)tr.y;
    }
    if (frames && t >= first) {
      maze3d_render(m, frame);
      maze3d_frame_to_u8(frames + (size_t)(t - first) * D, frame, D);
    }
    if (map && t == T - 1) {
      map->cell_px = DEMO_MAP_CELL_PX;
      map->grid_w = maze3d_grid_width(m);
      map->grid_h = maze3d_grid_height(m);
      maze3d_map_size(m, map->cell_px, &map->w, &map->h);
      map->rgb = malloc((size_t)map->w * map->h * 3);
      if (!map->rgb) rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
      else rc = maze3d_render_map(m, map->rgb, map->cell_px, traj, T);
    }
  }
  if (rc) demo_map_free(map);
  maze3d_explorer_free(&ex);
  maze3d_free(m);
  free(frame);
  free(traj);
  return rc;
}

/* One step's truth as gtmsm gen writes it (new reference). */
static json_t *truth_json(const maze3d_truth *tr) {
  return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b, s:i}", "x", tr->x, "y", tr->y,
                   "heading", tr->heading, "vx", tr->vx, "vy", tr->vy, "d_forward", tr->d_forward,
                   "d_left", tr->d_left, "d_heading", tr->d_heading, "collided", tr->collided,
                   "room", tr->room);
}

/* Appends to obs (borrowed) the observations of steps t0..t0+k-1: frames
 * (k, H, W, 3), actions and truth from step t0 on (all borrowed). t in the
 * observation is t_base + its index. Returns 0 or GTMSM_ENOMEM. */
static int append_observations(json_t *obs, const demo_sim *sim, int k, int t_base,
                               const uint8_t *frames, const int *actions, const maze3d_truth *truth) {
  const size_t D = (size_t)sim->W * sim->H * 3;
  for (int i = 0; i < k; i++) {
    char *b64 = NULL;
    if (codec_png_base64(frames + (size_t)i * D, sim->H, sim->W, 3, &b64)) return GTMSM_ENOMEM;
    json_t *o = json_pack("{s:i, s:s, s:s, s:o}", "t", t_base + i, "action",
                          maze3d_action_name(actions[i]), "frame", b64, "truth", truth_json(&truth[i]));
    free(b64);
    if (!o || json_array_append_new(obs, o)) return GTMSM_ENOMEM;
  }
  return 0;
}

int demo_maze_episode_json(const char *model_name, const demo_sim *sim, const demo_request *rq,
                           json_t **out, char *err, size_t errlen) {
  const int T = rq->steps;
  const size_t D = (size_t)sim->W * sim->H * 3;
  *out = NULL;
  uint8_t *frames = malloc((size_t)T * D);                 /* (T, H, W, 3) */
  int *actions = malloc(sizeof(int) * (size_t)T);          /* (T) */
  maze3d_truth *truth = malloc(sizeof *truth * (size_t)T); /* (T) */
  demo_map map = {0};
  char *png = NULL;
  json_t *obs = json_array(), *reply = NULL;
  int rc = frames && actions && truth && obs ? 0 : gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  if (!rc) rc = demo_maze_play(sim, rq->seed, T, NULL, 0, 0, frames, actions, truth, &map, err, errlen);
  if (!rc && append_observations(obs, sim, T, 0, frames, actions, truth))
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "encoding the frames");
  if (!rc && codec_png_base64(map.rgb, map.h, map.w, 3, &png))
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "encoding the map");
  if (rc) goto done;
  reply = json_pack("{s:s, s:s, s:s, s:I, s:i, s:{s:i, s:i}, s:{s:i, s:i, s:i, s:i, s:i, s:s}, "
                    "s:{s:f, s:f, s:f}, s:O}",
                    "model", model_name, "environment", "maze3d", "scenario",
                    maze3d_scenario_name(sim->scenario), "seed", (json_int_t)rq->seed, "steps", T,
                    "frame", "width", sim->W, "height", sim->H, "map", "width", map.w, "height",
                    map.h, "cell_px", map.cell_px, "grid_width", map.grid_w, "grid_height",
                    map.grid_h, "png", png, "start", "x", truth[0].x, "y", truth[0].y, "heading",
                    truth[0].heading, "observations", obs);
  if (!reply) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  *out = reply;
done:
  json_decref(obs);
  free(png);
  demo_map_free(&map);
  free(frames);
  free(actions);
  free(truth);
  return rc;
}

int demo_maze_step_json(const char *model_name, const demo_sim *sim, const demo_step_request *rq,
                        json_t **out, char *err, size_t errlen) {
  const int T = rq->ep.steps, n = rq->n, k = n - rq->first;
  const size_t D = (size_t)sim->W * sim->H * 3;
  *out = NULL;
  uint8_t *frames = malloc((size_t)k * D);                       /* (k, H, W, 3) */
  int *actions = malloc(sizeof(int) * (size_t)(T + n));          /* (T + n) */
  maze3d_truth *truth = malloc(sizeof *truth * (size_t)(T + n)); /* (T + n) */
  json_t *obs = json_array(), *reply = NULL;
  int rc = frames && actions && truth && obs ? 0 : gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  if (!rc)
    rc = demo_maze_play(sim, rq->ep.seed, T, rq->actions, n, T + rq->first, frames, actions, truth,
                        NULL, err, errlen);
  const int t0 = T + rq->first;
  if (!rc && append_observations(obs, sim, k, t0, frames, actions + t0, truth + t0))
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "encoding the frames");
  if (rc) goto done;
  reply = json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:O}", "model", model_name, "environment",
                    "maze3d", "scenario", maze3d_scenario_name(sim->scenario), "seed",
                    (json_int_t)rq->ep.seed, "steps", T, "actions", n, "first", rq->first,
                    "observations", obs);
  if (!reply) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  *out = reply;
done:
  json_decref(obs);
  free(frames);
  free(actions);
  free(truth);
  return rc;
}
