/* 2-D image navigation environment and its exploration policy. */
#include "sim/imagenav.h"

#include <string.h>

static const char *const ACTION_NAMES[IMAGENAV_ACTIONS] = {"right", "left", "up", "down", "stay"};
static const int DCOL[IMAGENAV_ACTIONS] = {1, -1, 0, 0, 0};
static const int DROW[IMAGENAV_ACTIONS] = {0, 0, -1, 1, 0};

const char *imagenav_action_name(int action) {
  return action >= 0 && action < IMAGENAV_ACTIONS ? ACTION_NAMES[action] : "?";
}

int imagenav_action_from_name(const char *name) {
  for (int i = 0; i < IMAGENAV_ACTIONS; i++)
    if (strcmp(ACTION_NAMES[i], name) == 0) return i;
  return -1;
}

void imagenav_init(imagenav *env, const float *world, int col, int row) {
  memcpy(env->world, world, sizeof env->world);
  memset(env->blocked, 0, sizeof env->blocked);
  memset(env->seen, 0, sizeof env->seen);
  env->col = col;
  env->row = row;
  env->seen[row][col] = 1;
}

void imagenav_add_obstacles(imagenav *env, rng_t *r, int n) {
  int free_cells = IMAGENAV_GRID * IMAGENAV_GRID - 1;
  for (int row = 0; row < IMAGENAV_GRID; row++)
    for (int col = 0; col < IMAGENAV_GRID; col++) free_cells -= env->blocked[row][col];
  if (n > free_cells) n = free_cells;
  while (n > 0) {
    int col = (int)rng_below(r, IMAGENAV_GRID), row = (int)rng_below(r, IMAGENAV_GRID);
    if (env->blocked[row][col] || (col == env->col && row == env->row)) continue;
    env->blocked[row][col] = 1;
    n--;
  }
}

int imagenav_blocked(const imagenav *env, int action) {
  if (action < 0 || action >= IMAGENAV_ACTIONS) return 1;
  if (action == IMAGENAV_STAY) return 0;
  int nc = env->col + DCOL[action], nr = env->row + DROW[action];
  return nc < 0 || nc >= IMAGENAV_GRID || nr < 0 || nr >= IMAGENAV_GRID || env->blocked[nr][nc];
}

int imagenav_blocked_by_obstacle(const imagenav *env, int action) {
  if (action < 0 || action >= IMAGENAV_STAY) return 0;
  int nc = env->col + DCOL[action], nr = env->row + DROW[action];
  return nc >= 0 && nc < IMAGENAV_GRID && nr >= 0 && nr < IMAGENAV_GRID && env->blocked[nr][nc];
}

void imagenav_step(imagenav *env, int action, imagenav_truth *truth) {
  int col = env->col, row = env->row;
  if (action >= 0 && action < IMAGENAV_ACTIONS) {
    int nc = col + DCOL[action], nr = row + DROW[action];
    if (nc >= 0 && nc < IMAGENAV_GRID && nr >= 0 && nr < IMAGENAV_GRID && !env->blocked[nr][nc]) {
      col = nc;
      row = nr;
    }
  }
  int moved = col != env->col || row != env->row;
  env->col = col;
  env->row = row;
  if (truth) {
    truth->col = col;
    truth->row = row;
    truth->seen_before = env->seen[row][col];
    truth->moved = moved;
  }
  env->seen[row][col] = 1;
}

void imagenav_view_at(const imagenav *env, int col, int row, float *frame) {
  int x0 = col * IMAGENAV_STRIDE, y0 = row * IMAGENAV_STRIDE;
  for (int y = 0; y < IMAGENAV_VIEW; y++)
    memcpy(frame + (size_t)y * IMAGENAV_VIEW * 3, env->world + ((size_t)(y0 + y) * WORLD_SIZE + x0) * 3,
           IMAGENAV_VIEW * 3 * sizeof(float));
}

void imagenav_view(const imagenav *env, float *frame) { imagenav_view_at(env, env->col, env->row, frame); }

void imagenav_explorer_init(imagenav_explorer *ex, uint64_t seed, uint64_t stream, double rate) {
  rng_init(&ex->rng, seed, stream);
  ex->rate = rate;
  ex->dir = IMAGENAV_STAY;
  ex->remaining = 0;
}

int imagenav_explorer_next(imagenav_explorer *ex) {
  if (ex->remaining == 0) {
    ex->dir = (int)rng_below(&ex->rng, 4);
    ex->remaining = (int)rng_poisson(&ex->rng, ex->rate);
    if (ex->remaining == 0) return IMAGENAV_STAY;
  }
  ex->remaining--;
  return ex->dir;
}

imagenav_options imagenav_default_options(void) {
  imagenav_options o = {.rate = 2.0, .obstacles = 0, .random_start = 0, .avoid_walls = 0};
  return o;
}

void imagenav_episode_env(const float *world, const imagenav_options *opt, uint64_t seed, imagenav *env) {
  rng_t r;
  rng_init(&r, seed, 2001);
  int col = IMAGENAV_GRID / 2, row = IMAGENAV_GRID / 2;
  if (opt->random_start) {
    col = (int)rng_below(&r, IMAGENAV_GRID);
    row = (int)rng_below(&r, IMAGENAV_GRID);
  }
  imagenav_init(env, world, col, row);
  if (opt->obstacles > 0) imagenav_add_obstacles(env, &r, opt->obstacles);
}

void imagenav_episode(const float *world, const imagenav_options *opt, uint64_t seed, int T,
                      float *frames, int *actions, imagenav_truth *truth) {
  imagenav env;
  imagenav_episode_env(world, opt, seed, &env);
  imagenav_explorer ex;
  imagenav_explorer_init(&ex, seed, 2002, opt->rate);
  for (int t = 0; t < T; t++) {
    int a = IMAGENAV_STAY;
    imagenav_truth tr = {env.col, env.row, 0, 0};
    if (t > 0) {
      a = imagenav_explorer_next(&ex);
      for (int tries = 0; opt->avoid_walls && a != IMAGENAV_STAY && imagenav_blocked(&env, a); tries++) {
        ex.remaining = 0; /* cut the run, draw another */
        a = tries < 64 ? imagenav_explorer_next(&ex) : IMAGENAV_STAY;
      }
      for (int tries = 0; opt->steer_from > 0 && t >= opt->steer_from && imagenav_blocked_by_obstacle(&env, a);
           tries++) {
        ex.remaining = 0;
        a = tries < 64 ? imagenav_explorer_next(&ex) : IMAGENAV_STAY;
      }
      imagenav_step(&env, a, &tr);
    }
    actions[t] = a;
    if (truth) truth[t] = tr;
    imagenav_view(&env, frames + (size_t)t * IMAGENAV_FRAME);
  }
}
