/* maze3d lifecycle and bookkeeping: configuration defaults and validation,
 * new/free, reset/step with their ground truth, the action and scenario name
 * tables, and read-only accessors. Layout generation, physics, rendering and
 * the explorer live in maze3d_layout.c, maze3d_physics.c, maze3d_render.c
 * and maze3d_explorer.c. */
#include "sim/maze3d.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "sim/maze3d_internal.h"
#include "sim/maze3d_textures.h"

static const char *const action_names[] = {
    "forward",     "backward",   "strafe_left",       "strafe_right",       "turn_left",
    "turn_right",  "forward_turn_left", "forward_turn_right", "none",
};
static const char *const scenario_names[] = {"rotate", "walk", "multiroom"};

maze3d_physics maze3d_physics_default(void) {
  /* Quake 3 pmove constants (pm_accelerate 10, pm_friction 6, stopspeed 100,
   * g_speed 320) with DM Lab's 100 Quake units per maze cell. dt: DM Lab's
   * 60 Hz engine with the usual action repeat of 4. turn_rate: the paper's
   * rotating agent does two full turns in 80 steps. */
  maze3d_physics p = {
      .dt = 4.0 / 60.0,
      .substeps = 4,
      .max_speed = 3.2,
      .accel = 10.0,
      .friction = 6.0,
      .stopspeed = 1.0,
      .turn_rate = MAZE3D__TWO_PI / 40.0,
      .radius = 0.2,
  };
  return p;
}

maze3d_config maze3d_config_default(void) {
  maze3d_config c = {
      .layout = MAZE3D_LAYOUT_SINGLE_ROOM,
      .W = 32,
      .H = 32,
      .seed = 1,
      .fov_deg = 60.0,
      .supersample = 2,
      .cam_height = 0.5,
      .wall_height = 1.0,
      .fog = 0.02,
      .room_min = 5,
      .room_max = 9,
      .rooms_min = 2,
      .rooms_max = 4,
      .objects_min = 1,
      .objects_max = 3,
      .physics = maze3d_physics_default(),
  };
  return c;
}

void maze3d_config_for_scenario(maze3d_config *cfg, int scenario) {
  cfg->layout = scenario == MAZE3D_SCENARIO_MULTIROOM ? MAZE3D_LAYOUT_MULTIROOM
                                                     : MAZE3D_LAYOUT_SINGLE_ROOM;
}

static int config_check(const maze3d_config *c, char *err, size_t errlen) {
  const maze3d_physics *p = &c->physics;
  if (c->layout != MAZE3D_LAYOUT_SINGLE_ROOM && c->layout != MAZE3D_LAYOUT_MULTIROOM)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: unknown layout %d", c->layout);
  if (c->W < 1 || c->W > 256 || c->H < 1 || c->H > 256)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: frame %dx%d outside 1..256", c->W,
                      c->H);
  if (c->supersample < 1 || c->supersample > 4)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: supersample %d outside 1..4",
                      c->supersample);
  if (!(c->fov_deg >= 20.0 && c->fov_deg <= 120.0))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: fov %g outside 20..120 degrees",
                      c->fov_deg);
  if (!(c->wall_height > 0.0 && c->cam_height > 0.0 && c->cam_height < c->wall_height))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "maze3d: need 0 < cam_height (%g) < wall_height (%g)", c->cam_height,
                      c->wall_height);
  if (!(c->fog >= 0.0 && c->fog <= 10.0))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: fog %g outside 0..10", c->fog);
  /* 3 is the least that leaves a cell away from the walls for a pillar. */
  if (c->room_min < 3 || c->room_max < c->room_min || c->room_max > 32)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: room size %d..%d outside 3..32",
                      c->room_min, c->room_max);
  if (c->layout == MAZE3D_LAYOUT_MULTIROOM &&
      (c->rooms_min < 2 || c->rooms_max < c->rooms_min || c->rooms_max > MAZE3D__MAX_ROOMS))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: rooms %d..%d outside 2..%d",
                      c->rooms_min, c->rooms_max, MAZE3D__MAX_ROOMS);
  if (c->objects_min < 0 || c->objects_max < c->objects_min || c->objects_max > 8)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: objects %d..%d outside 0..8",
                      c->objects_min, c->objects_max);
  if (!(p->dt > 0.0 && p->dt <= 1.0) || p->substeps < 1 || p->substeps > 64)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: dt %g / substeps %d out of range",
                      p->dt, p->substeps);
  /* The collision code pushes out of cells it finds overlapping after each
   * tick; a tick must not carry the agent past a cell's near half. */
  if (!(p->radius >= 0.05 && p->radius <= 0.45))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: radius %g outside 0.05..0.45",
                      p->radius);
  if (!(p->max_speed > 0.0 && p->max_speed * p->dt / p->substeps <= 0.5 * p->radius))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "maze3d: max_speed %g moves more than radius/2 per tick", p->max_speed);
  if (!(p->accel >= 0.0 && p->friction >= 0.0 && p->stopspeed >= 0.0))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: negative accel/friction/stopspeed");
  if (!(fabs(p->turn_rate) <= 3.14159))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: turn_rate %g above pi",
                      p->turn_rate);
  if (c->textures &&
      (c->textures->n < 1 || c->textures->n > MAZE3D_TEXTURES_MAX || !c->textures->tex))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d: texture set of %d images (need 1..%d)",
                      c->textures->n, MAZE3D_TEXTURES_MAX);
  return 0;
}

int maze3d_new(maze3d **out, const maze3d_config *cfg, char *err, size_t errlen) {
  maze3d *m = NULL;
  int rc = config_check(cfg, err, errlen);
  if (rc) goto done;
  m = calloc(1, sizeof *m);
  if (!m) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "maze3d: out of memory");
    goto done;
  }
  m->cfg = *cfg;
  rc = maze3d__layout_build(m, err, errlen);
  if (rc) goto done;
  m->RW = cfg->W * cfg->supersample;
  m->RH = cfg->H * cfg->supersample;
  m->img = malloc((size_t)m->RW * (size_t)m->RH * 3 * sizeof(float));
  m->zbuf = malloc((size_t)m->RW * sizeof(float));
  m->row_slope = malloc((size_t)m->RH * sizeof(float));
  if (!m->img || !m->zbuf || !m->row_slope) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "maze3d: out of memory");
    goto done;
  }
  maze3d__render_init_tables(m);
  /* Start at the centre of the first room, at rest, facing +x. */
  const maze3d__room *r0 = &m->rooms[0];
  m->body.x = r0->x0 + 0.5;
  m->body.y = r0->y0 + 0.5;
  *out = m;
  m = NULL;
done:
  maze3d_free(m);
  return rc;
}

void maze3d_free(maze3d *m) {
  if (!m) return;
  free(m->cell);
  free(m->region);
  free(m->blocked);
  free(m->pillars);
  free(m->tex);
  free(m->img);
  free(m->zbuf);
  free(m->row_slope);
  free(m);
}

double maze3d_heading_normalize(double h) {
  double r = fmod(h, MAZE3D__TWO_PI); /* exact, sign of h */
  if (r < 0.0) r += MAZE3D__TWO_PI;   /* may round up to exactly 2 pi */
  if (r >= MAZE3D__TWO_PI) r = 0.0;
  return r;
}

static void truth_fill(const maze3d *m, maze3d_truth *t, int action) {
  t->action = action;
  t->x = m->body.x;
  t->y = m->body.y;
  t->heading = m->body.h;
  t->vx = m->body.vx;
  t->vy = m->body.vy;
  t->d_forward = t->d_left = t->d_heading = 0.0;
  t->collided = 0;
  t->room = maze3d_room_at(m, m->body.x, m->body.y);
}

int maze3d_reset(maze3d *m, const maze3d_pose *pose, maze3d_truth *truth_out, char *err,
                 size_t errlen) {
  if (!(isfinite(pose->x) && isfinite(pose->y) && isfinite(pose->heading)))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d_reset: pose is not finite");
  if (pose->x < 0.0 || pose->y < 0.0 || pose->x > m->gw || pose->y > m->gh)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d_reset: (%.3f, %.3f) outside the %dx%d map",
                      pose->x, pose->y, m->gw, m->gh);
  if (maze3d__overlaps(m, pose->x, pose->y))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "maze3d_reset: (%.3f, %.3f) overlaps a wall or pillar", pose->x, pose->y);
  m->body.x = pose->x;
  m->body.y = pose->y;
  m->body.h = maze3d_heading_normalize(pose->heading);
  m->body.vx = m->body.vy = 0.0;
  if (truth_out) truth_fill(m, truth_out, MAZE3D_ACTION_NONE);
  return 0;
}

int maze3d_sample_pose(const maze3d *m, rng_t *r, double clearance, maze3d_pose *out) {
  double need = m->cfg.physics.radius + clearance;
  for (int tries = 0; tries < 1000; tries++) {
    int cx = (int)rng_below(r, (uint32_t)m->gw), cy = (int)rng_below(r, (uint32_t)m->gh);
    double x = cx + rng_uniform_d(r), y = cy + rng_uniform_d(r);
    uint32_t level = rng_below(r, MAZE3D_HEADING_LEVELS);
    if (m->blocked[cy * m->gw + cx]) continue;
    if (maze3d_clearance(m, x, y, need + 1.0) < need) continue;
    out->x = x;
    out->y = y;
    out->heading = level * (MAZE3D__TWO_PI / MAZE3D_HEADING_LEVELS);
    return 0;
  }
  return GTMSM_ERANGE;
}

int maze3d_step(maze3d *m, int action, maze3d_truth *truth_out) {
  if (action < 0 || action > MAZE3D_ACTION_NONE) return GTMSM_EINVAL;
  maze3d__body b0 = m->body;
  int collided = 0;
  maze3d__physics_step(m, &m->body, action, &collided, NULL);
  if (truth_out) {
    truth_fill(m, truth_out, action);
    double dx = m->body.x - b0.x, dy = m->body.y - b0.y;
    double c = cos(b0.h), s = sin(b0.h);
    truth_out->d_forward = c * dx + s * dy;
    truth_out->d_left = -s * dx + c * dy;
    int turn = 0;
    if (action == MAZE3D_ACTION_TURN_LEFT || action == MAZE3D_ACTION_FORWARD_TURN_LEFT) turn = 1;
    if (action == MAZE3D_ACTION_TURN_RIGHT || action == MAZE3D_ACTION_FORWARD_TURN_RIGHT)
      turn = -1;
    truth_out->d_heading = turn * m->cfg.physics.turn_rate;
    truth_out->collided = collided;
  }
  return 0;
}

int maze3d_action_count(void) { return MAZE3D_ACTION_NONE; }

const char *maze3d_action_name(int action) {
  if (action < 0 || action > MAZE3D_ACTION_NONE) return NULL;
  return action_names[action];
}

int maze3d_action_from_name(const char *name) {
  for (int i = 0; i <= MAZE3D_ACTION_NONE; i++)
    if (strcmp(name, action_names[i]) == 0) return i;
  return GTMSM_EINVAL;
}

const char *maze3d_scenario_name(int scenario) {
  if (scenario < 0 || scenario > MAZE3D_SCENARIO_MULTIROOM) return NULL;
  return scenario_names[scenario];
}

int maze3d_scenario_from_name(const char *name) {
  for (int i = 0; i <= MAZE3D_SCENARIO_MULTIROOM; i++)
    if (strcmp(name, scenario_names[i]) == 0) return i;
  return GTMSM_EINVAL;
}

const maze3d_config *maze3d_get_config(const maze3d *m) { return &m->cfg; }

maze3d_pose maze3d_get_pose(const maze3d *m) {
  maze3d_pose p = {m->body.x, m->body.y, m->body.h};
  return p;
}

void maze3d_get_velocity(const maze3d *m, double *vx, double *vy) {
  *vx = m->body.vx;
  *vy = m->body.vy;
}

int maze3d_grid_width(const maze3d *m) { return m->gw; }
int maze3d_grid_height(const maze3d *m) { return m->gh; }

int maze3d_is_wall(const maze3d *m, int ix, int iy) {
  if (ix < 0 || iy < 0 || ix >= m->gw || iy >= m->gh) return 1;
  return m->cell[iy * m->gw + ix] == MAZE3D__WALL;
}

int maze3d_room_count(const maze3d *m) { return m->n_rooms; }

int maze3d_room_at(const maze3d *m, double x, double y) {
  int ix = (int)floor(x), iy = (int)floor(y);
  if (maze3d_is_wall(m, ix, iy)) return -2;
  int reg = m->region[iy * m->gw + ix];
  return reg == m->n_rooms ? MAZE3D_ROOM_CORRIDOR : reg;
}

int maze3d_pillar_count(const maze3d *m) { return m->n_pillars; }

void maze3d_pillar_get(const maze3d *m, int i, double *x, double *y, double *radius) {
  *x = m->pillars[i].x;
  *y = m->pillars[i].y;
  *radius = m->pillars[i].r;
}

double maze3d_clearance(const maze3d *m, double x, double y, double horizon) {
  double best = horizon;
  int x0 = (int)floor(x - horizon), x1 = (int)floor(x + horizon);
  int y0 = (int)floor(y - horizon), y1 = (int)floor(y + horizon);
  for (int iy = y0; iy <= y1; iy++) {
    for (int ix = x0; ix <= x1; ix++) {
      if (!maze3d_is_wall(m, ix, iy)) continue;
      double qx = x < ix ? ix : (x > ix + 1 ? ix + 1 : x);
      double qy = y < iy ? iy : (y > iy + 1 ? iy + 1 : y);
      double d = hypot(x - qx, y - qy);
      if (d < best) best = d;
    }
  }
  for (int i = 0; i < m->n_pillars; i++) {
    double d = hypot(x - m->pillars[i].x, y - m->pillars[i].y) - m->pillars[i].r;
    if (d < best) best = d < 0.0 ? 0.0 : d;
  }
  return best;
}
