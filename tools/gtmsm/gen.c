/* gtmsm gen: writes an episode as NDJSON, one observation a line, in the shape
 * the service accepts: {"t", "action", "frame" (base64 PNG), "truth"}. The
 * first line carries the no-op action ("stay" in imagenav, "none" in maze3d).
 * --preview writes a contact sheet: the frames and the world (imagenav) or the
 * top-down map (maze3d) with the trajectory. maze3d's --textures puts images
 * from a folder on the walls, floors and ceilings instead of procedural
 * textures (the same maze otherwise). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img/base64.h"
#include "img/draw.h"
#include "img/image.h"
#include "img/png.h"
#include "nn/rng.h"
#include "opts.h"
#include "opts_maze3d.h"
#include "sim/imagenav.h"
#include "sim/maze3d.h"
#include "sim/world.h"
#include "sim/worldset.h"
#include "tools.h"

#define SHEET_COLS 16
#define SHEET_MAX 128

typedef struct {
  int H, W, T;
  uint8_t *frames;  /* (T, H, W, 3) */
  uint8_t *map;     /* (map_h, map_w, 3) */
  int map_h, map_w;
} preview;

static int emit(int t, const char *action, const uint8_t *pix, int H, int W, json_t *truth) {
  char err[256];
  uint8_t *png = NULL;
  size_t len = 0;
  char *b64 = NULL;
  int rc = pngio_encode(&png, &len, pix, H, W, 3, err, sizeof err);
  if (!rc) rc = base64_encode(&b64, NULL, png, len, err, sizeof err);
  if (rc) {
    fprintf(stderr, "gtmsm gen: %s\n", err);
    json_decref(truth);
    free(png);
    return rc;
  }
  json_t *j = json_pack("{s:i, s:s, s:s, s:o}", "t", t, "action", action, "frame", b64, "truth", truth);
  char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  fputs(line, stdout);
  fputc('\n', stdout);
  free(line);
  json_decref(j);
  free(b64);
  free(png);
  return 0;
}

static int write_sheet(const char *path, const preview *p) {
  char err[256];
  int n = p->T < SHEET_MAX ? p->T : SHEET_MAX;
  int scale = p->H <= 8 ? 4 : p->H <= 32 ? 2 : 1;
  int fw = p->W * scale + 2, fh = p->H * scale + 2;
  int cols = n < SHEET_COLS ? n : SHEET_COLS, rows = (n + cols - 1) / cols;
  int sheet_w = cols * fw + 8, W = sheet_w + (p->map ? p->map_w + 8 : 0);
  int Hh = rows * fh + 20;
  if (p->map && p->map_h + 20 > Hh) Hh = p->map_h + 20;
  image_t im = {0};
  int rc = image_init(&im, Hh, W, 3, err, sizeof err);
  if (rc) goto done;
  draw_fill(&im, draw_color(255, 255, 255));
  char title[96];
  snprintf(title, sizeof title, "frames 1-%d of %d", n, p->T);
  draw_text(&im, 4, 4, title, draw_color(0, 0, 0), 1);
  for (int i = 0; i < n; i++)
    if ((rc = draw_blit(&im, 4 + (i % cols) * fw, 16 + (i / cols) * fh,
                        p->frames + (size_t)i * p->H * p->W * 3, p->H, p->W, 3, scale, err, sizeof err)))
      goto done;
  if (p->map) {
    draw_text(&im, sheet_w + 4, 4, "map and trajectory", draw_color(0, 0, 0), 1);
    rc = draw_blit(&im, sheet_w + 4, 16, p->map, p->map_h, p->map_w, 3, 1, err, sizeof err);
    if (rc) goto done;
  }
  rc = pngio_write_file(path, im.pix, im.H, im.W, 3, err, sizeof err);
done:
  if (rc) fprintf(stderr, "gtmsm gen: preview: %s\n", err);
  image_free(&im);
  return rc;
}

static int gen_imagenav(uint64_t seed, int T, const char *images, int world_index, double rate,
                        int obstacles, preview *pv) {
  char err[256];
  int rc = 0;
  float world[WORLD_SIZE * WORLD_SIZE * 3];
  worldset ws = {0};
  if (images) {
    if ((rc = worldset_load(&ws, images, err, sizeof err))) {
      fprintf(stderr, "gtmsm gen: %s\n", err);
      return rc;
    }
    int i = world_index >= 0 ? world_index % ws.n : (int)(rng_mix(seed) % (uint64_t)ws.n);
    memcpy(world, worldset_get(&ws, i), sizeof world);
    fprintf(stderr, "world: %s/%s\n", images, ws.names[i]);
  } else {
    world_generate(world, seed);
  }
  imagenav_options o = imagenav_default_options();
  o.rate = rate;
  o.obstacles = obstacles;
  float *frames = malloc(sizeof(float) * (size_t)T * IMAGENAV_FRAME);
  int *actions = malloc(sizeof(int) * (size_t)T);
  imagenav_truth *truth = malloc(sizeof *truth * (size_t)T);
  uint8_t *u8 = malloc((size_t)T * IMAGENAV_FRAME);
  if (!frames || !actions || !truth || !u8) {
    rc = -1;
    goto done;
  }
  imagenav_episode(world, &o, seed, T, frames, actions, truth);
  for (int t = 0; t < T && !rc; t++) {
    uint8_t *pix = u8 + (size_t)t * IMAGENAV_FRAME;
    image_u8_from_float(pix, frames + (size_t)t * IMAGENAV_FRAME, IMAGENAV_FRAME, NULL, 0);
    json_t *tr = json_pack("{s:i, s:i, s:b}", "col", truth[t].col, "row", truth[t].row, "seen_before",
                           truth[t].seen_before);
    rc = emit(t, imagenav_action_name(actions[t]), pix, IMAGENAV_VIEW, IMAGENAV_VIEW, tr);
  }
  if (pv && !rc) {
    /* the world at x8 with the crop centres of the trajectory */
    enum { S = 8 };
    pv->map_w = pv->map_h = WORLD_SIZE * S;
    pv->map = malloc((size_t)pv->map_w * pv->map_h * 3);
    image_t im = {0};
    uint8_t wu8[WORLD_SIZE * WORLD_SIZE * 3];
    image_u8_from_float(wu8, world, sizeof wu8, NULL, 0);
    if (!pv->map || image_init(&im, pv->map_h, pv->map_w, 3, NULL, 0)) {
      image_free(&im);
      rc = -1;
      goto done;
    }
    draw_blit(&im, 0, 0, wu8, WORLD_SIZE, WORLD_SIZE, 3, S, NULL, 0);
    for (int t = 1; t < T; t++) {
      int x0 = (truth[t - 1].col * 3 + 4) * S, y0 = (truth[t - 1].row * 3 + 4) * S;
      int x1 = (truth[t].col * 3 + 4) * S, y1 = (truth[t].row * 3 + 4) * S;
      draw_line(&im, x0, y0, x1, y1, draw_color(255, 255, 0));
    }
    draw_rect(&im, truth[0].col * 3 * S, truth[0].row * 3 * S, 8 * S, 8 * S, draw_color(0, 255, 0));
    draw_rect(&im, truth[T - 1].col * 3 * S, truth[T - 1].row * 3 * S, 8 * S, 8 * S, draw_color(255, 0, 0));
    memcpy(pv->map, im.pix, (size_t)pv->map_w * pv->map_h * 3);
    image_free(&im);
    pv->H = pv->W = IMAGENAV_VIEW;
    pv->T = T;
    pv->frames = u8;
    u8 = NULL;
  }
done:
  free(frames);
  free(actions);
  free(truth);
  free(u8);
  worldset_free(&ws);
  return rc;
}

static int gen_maze3d(uint64_t seed, int T, const opts_maze3d *mo, preview *pv) {
  char err[512];
  maze3d_texture_set ts = {0};
  maze3d_config cfg;
  int scenario, size = mo->size;
  if (opts_maze3d_load_textures(mo, &ts, err, sizeof err) ||
      opts_maze3d_config(&cfg, &scenario, mo, seed, &ts, err, sizeof err)) {
    fprintf(stderr, "gtmsm gen: %s\n", err);
    maze3d_texture_set_free(&ts);
    return -1;
  }
  if (ts.n > 0) fprintf(stderr, "textures: %s (%d images)\n", mo->textures, ts.n);
  maze3d *m = NULL;
  maze3d_explorer ex = {0};
  int rc = maze3d_new(&m, &cfg, err, sizeof err);
  if (!rc) rc = maze3d_explorer_init(&ex, m, scenario, seed, err, sizeof err);
  size_t fsz = (size_t)size * size * 3;
  float *frame = malloc(sizeof(float) * fsz);
  uint8_t *u8 = malloc(fsz * (size_t)T);
  float *traj = malloc(sizeof(float) * 2 * (size_t)T);
  if (rc || !frame || !u8 || !traj) {
    if (rc) fprintf(stderr, "gtmsm gen: %s\n", err);
    rc = rc ? rc : -1;
    goto done;
  }
  for (int t = 0; t < T && !rc; t++) {
    maze3d_truth tr;
    int a = MAZE3D_ACTION_NONE;
    if (t > 0) a = maze3d_explorer_next(&ex);
    maze3d_step(m, a, &tr);
    maze3d_render(m, frame);
    uint8_t *pix = u8 + (size_t)t * fsz;
    maze3d_frame_to_u8(pix, frame, fsz);
    traj[2 * t] = (float)tr.x;
    traj[2 * t + 1] = (float)tr.y;
    json_t *j = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b, s:i}", "x", tr.x, "y", tr.y,
                          "heading", tr.heading, "vx", tr.vx, "vy", tr.vy, "d_forward", tr.d_forward,
                          "d_left", tr.d_left, "d_heading", tr.d_heading, "collided", tr.collided, "room",
                          tr.room);
    rc = emit(t, t == 0 ? "none" : maze3d_action_name(a), pix, size, size, j);
  }
  if (pv && !rc) {
    int cell = 16;
    maze3d_map_size(m, cell, &pv->map_w, &pv->map_h);
    pv->map = malloc((size_t)pv->map_w * pv->map_h * 3);
    if (!pv->map || maze3d_render_map(m, pv->map, cell, traj, T)) {
      rc = -1;
      goto done;
    }
    pv->H = pv->W = size;
    pv->T = T;
    pv->frames = u8;
    u8 = NULL;
  }
done:
  free(frame);
  free(u8);
  free(traj);
  maze3d_explorer_free(&ex);
  maze3d_free(m);
  maze3d_texture_set_free(&ts);
  return rc;
}

int cmd_gen(int argc, char **argv) {
  const char *env = "imagenav", *images = NULL, *preview_path = NULL;
  uint64_t seed = 1;
  int steps = 256, world_index = -1, obstacles = 0;
  opts_maze3d mo = opts_maze3d_default();
  double rate = 2.0;
  opt_def defs[] = {
      {"env", OPT_STRING, &env, 1, 0, "imagenav | maze3d"},
      {"images", OPT_STRING, &images, 1, 0, "imagenav: folder of PNG worlds (default procedural)"},
      {"world", OPT_INT, &world_index, -1, 1e9, "imagenav with --images: world index (-1: by seed)"},
      {"seed", OPT_U64, &seed, 1, 0, "seed"},
      {"steps", OPT_INT, &steps, 1, 1e7, "observations"},
      OPTS_MAZE3D_DEFS(&mo),
      {"rate", OPT_DOUBLE, &rate, 0, 100, "imagenav explorer Poisson repeat rate"},
      {"obstacles", OPT_INT, &obstacles, 0, 80, "imagenav blocked cells"},
      {"preview", OPT_STRING, &preview_path, 1, 0, "write a contact sheet PNG here"},
      {NULL, 0, NULL, 0, 0, NULL},
  };
  int prc = opts_parse("gen", "Generate an episode as NDJSON on stdout.", defs, argc, argv);
  if (prc) return prc == 1 ? 0 : 2;
  preview pv = {0};
  int rc;
  if (strcmp(env, "maze3d") == 0 && maze3d_scenario_from_name(mo.scenario) < 0) {
    fprintf(stderr, "gtmsm gen: unknown --scenario '%s' (rotate, walk or multiroom)\n", mo.scenario);
    return 2;
  }
  if (strcmp(env, "imagenav") == 0 && mo.textures) {
    fprintf(stderr, "gtmsm gen: --textures is a maze3d option (imagenav takes --images)\n");
    return 2;
  }
  if (strcmp(env, "imagenav") == 0)
    rc = gen_imagenav(seed, steps, images, world_index, rate, obstacles, preview_path ? &pv : NULL);
  else if (strcmp(env, "maze3d") == 0)
    rc = gen_maze3d(seed, steps, &mo, preview_path ? &pv : NULL);
  else {
    fprintf(stderr, "gtmsm gen: unknown --env '%s' (imagenav or maze3d)\n", env);
    return 2;
  }
  if (!rc && preview_path) rc = write_sheet(preview_path, &pv);
  free(pv.frames);
  free(pv.map);
  if (fflush(stdout) != 0) rc = 1;
  return rc ? 1 : 0;
}
