/* 2-D image navigation (paper 4.1, appendix D.1): the world is a 32x32 RGB
 * image, the agent sees the 8x8 crop at its position on a 9x9 grid (crop corner
 * at 3*col, 3*row), and moves right/left/up/down or stays. Moves that would
 * leave the grid or enter an obstacle cell do not move the agent, but the
 * action is still recorded. */
#ifndef GTMSM_SIM_IMAGENAV_H
#define GTMSM_SIM_IMAGENAV_H

#include <stdint.h>

#include "nn/rng.h"
#include "sim/world.h"

#define IMAGENAV_VIEW 8
#define IMAGENAV_GRID 9
#define IMAGENAV_STRIDE 3
#define IMAGENAV_FRAME (IMAGENAV_VIEW * IMAGENAV_VIEW * 3)

typedef enum {
  IMAGENAV_RIGHT,
  IMAGENAV_LEFT,
  IMAGENAV_UP,
  IMAGENAV_DOWN,
  IMAGENAV_STAY,
  IMAGENAV_ACTIONS
} imagenav_action;

typedef struct {
  float world[WORLD_SIZE * WORLD_SIZE * 3]; /* (32, 32, 3) in [0, 1] */
  uint8_t blocked[IMAGENAV_GRID][IMAGENAV_GRID]; /* [row][col] obstacle cells */
  uint8_t seen[IMAGENAV_GRID][IMAGENAV_GRID];    /* visited so far in this episode */
  int col, row;
} imagenav;

typedef struct {
  int col, row;     /* grid position after the step */
  int seen_before;  /* this position was visited earlier in the episode */
  int moved;        /* the action changed the position */
} imagenav_truth;

/* Copies world (32, 32, 3) and places the agent at (col, row), no obstacles. */
void imagenav_init(imagenav *env, const float *world, int col, int row);
/* Blocks n random cells other than the agent's. */
void imagenav_add_obstacles(imagenav *env, rng_t *r, int n);
/* 1 if a move action would be stopped by a wall or an obstacle (0 for stay). */
int imagenav_blocked(const imagenav *env, int action);
/* 1 if a move action would be stopped by an obstacle cell (not by a wall). */
int imagenav_blocked_by_obstacle(const imagenav *env, int action);
/* Applies action; fills truth (may be NULL). */
void imagenav_step(imagenav *env, int action, imagenav_truth *truth);
/* frame (8, 8, 3) = the crop at the agent's position. */
void imagenav_view(const imagenav *env, float *frame);
/* The crop at any grid position. */
void imagenav_view_at(const imagenav *env, int col, int row, float *frame);

const char *imagenav_action_name(int action);
int imagenav_action_from_name(const char *name); /* -1 if unknown */

/* The exploration policy: a random direction repeated a Poisson(rate) number of
 * times; a draw of 0 gives a single "stay". */
typedef struct {
  rng_t rng;
  double rate;
  int dir, remaining;
} imagenav_explorer;

void imagenav_explorer_init(imagenav_explorer *ex, uint64_t seed, uint64_t stream, double rate);
int imagenav_explorer_next(imagenav_explorer *ex);

/* Where a world comes from, and how an episode is laid out. */
typedef struct {
  double rate;        /* Poisson rate of the explorer (default 2) */
  int obstacles;      /* blocked cells (default 0) */
  int random_start;   /* 0: start at the centre cell (default), 1: anywhere */
  int avoid_walls;    /* 1: the explorer never pushes into a wall or obstacle: a run
                         that would is cut short and a new direction drawn (a
                         data curriculum for training; the default walks into walls) */
  int steer_from;     /* > 0: from this step on the explorer never walks into an
                         obstacle (walls as before): the evaluation's prediction
                         phase, whose agent steers around what it can see (0: off) */
} imagenav_options;

imagenav_options imagenav_default_options(void);

/* The environment of the episode of seed, before its first step: the start
 * cell and the obstacles (what imagenav_episode walks in; figures draw it). */
void imagenav_episode_env(const float *world, const imagenav_options *opt, uint64_t seed, imagenav *env);
/* Generates an episode of T steps in world (32, 32, 3), deterministic in seed:
 * frames (T, 8, 8, 3), actions (T) (actions[0] = IMAGENAV_STAY, the no-op
 * before the first frame), truth (T) may be NULL. */
void imagenav_episode(const float *world, const imagenav_options *opt, uint64_t seed, int T,
                      float *frames, int *actions, imagenav_truth *truth);

#endif
