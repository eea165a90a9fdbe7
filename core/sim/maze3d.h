/* maze3d: our stand-in for DeepMind Lab (Labyrinth), the 3-D environment of
 * the paper's section 4.2 and appendix C. A procedurally generated grid map
 * (one room, or several rooms joined by corridors, each with its own wall and
 * floor textures and a few coloured pillars), first-person RGB frames from a
 * Wolfenstein-style raycaster, Quake-pmove-like physics (friction,
 * acceleration, a speed cap, sliding collisions), the 8 Labyrinth actions, and
 * scripted explorers for the paper's three scenarios (rotate, walk,
 * multiroom). Everything is deterministic given the seeds. Looks are
 * procedural unless the config names a texture set (sim/maze3d_textures.h):
 * then every region's textures are images drawn from the set by the seed.
 *
 * Coordinates: 1 map unit = 1 grid cell; cell (i, j) covers [i, i+1) x
 * [j, j+1). x grows to the right and y grows *up* as in a math plot (the map
 * picture puts row 0 at the bottom); heading is the angle from +x,
 * counter-clockwise, so turn_left increases it and "left" of heading h is
 * the direction (-sin h, cos h). This makes the rotation of the paper's eq. 5,
 * R(h) = [[cos h, -sin h], [sin h, cos h]], map the agent-frame displacement
 * (forward, left) of maze3d_truth to the world displacement.
 *
 * Threading: a maze3d owns a render workspace, so one maze is used by one
 * thread at a time; separate mazes are independent. */
#ifndef GTMSM_SIM_MAZE3D_H
#define GTMSM_SIM_MAZE3D_H

#include <stddef.h>
#include <stdint.h>

#include "nn/rng.h"

/* The 8 Labyrinth actions in the paper's order, then the no-op used only to
 * label the first frame of an episode (it applies friction and nothing else). */
enum maze3d_action {
  MAZE3D_ACTION_FORWARD = 0,
  MAZE3D_ACTION_BACKWARD,
  MAZE3D_ACTION_STRAFE_LEFT,
  MAZE3D_ACTION_STRAFE_RIGHT,
  MAZE3D_ACTION_TURN_LEFT,
  MAZE3D_ACTION_TURN_RIGHT,
  MAZE3D_ACTION_FORWARD_TURN_LEFT,
  MAZE3D_ACTION_FORWARD_TURN_RIGHT,
  MAZE3D_ACTION_NONE, /* == maze3d_action_count() */
};

enum maze3d_layout {
  MAZE3D_LAYOUT_SINGLE_ROOM = 0, /* one room, room_min..room_max cells a side */
  MAZE3D_LAYOUT_MULTIROOM,       /* rooms_min..rooms_max rooms joined by corridors */
};

enum maze3d_scenario {
  MAZE3D_SCENARIO_ROTATE = 0, /* stand still, two turns in 80 steps (paper 4.2.1) */
  MAZE3D_SCENARIO_WALK,       /* roam a single room without hitting walls (4.2.2) */
  MAZE3D_SCENARIO_MULTIROOM,  /* the same walker across several rooms (appendix C) */
};

/* Room id reported for corridor cells (rooms are 0..maze3d_room_count()-1). */
#define MAZE3D_ROOM_CORRIDOR (-1)
/* Heading is quantised to this many levels per turn before rendering, so h and
 * h + 2 pi give bit-identical frames; 2^15 levels per 9-degree step. */
#define MAZE3D_HEADING_LEVELS (40 * 32768)
/* Texels per side of a wall, floor or ceiling texture; one texture covers one
 * map cell (textures repeat every cell). */
#define MAZE3D_TEXTURE_SIZE 32

/* A set of texture images (sim/maze3d_textures.h). */
typedef struct maze3d_texture_set maze3d_texture_set;

/* Physics in the spirit of Quake's pmove. Speeds in units per second. Each
 * agent step runs `substeps` ticks of dt / substeps seconds: turn by
 * turn_rate / substeps, friction, acceleration toward the wished velocity,
 * the speed cap, then the move with collision. */
typedef struct {
  double dt;         /* seconds per agent step (DM Lab: 60 Hz, action repeat 4) */
  int substeps;      /* physics ticks per step */
  double max_speed;  /* wishspeed and hard cap on |v| */
  double accel;      /* pmove accelerate: per-tick gain accel * dt * wishspeed */
  double friction;   /* pmove friction: drop = max(speed, stopspeed) * friction * dt */
  double stopspeed;
  double turn_rate;  /* radians per step for every turning action */
  double radius;     /* the agent is a circle of this radius */
} maze3d_physics;

typedef struct {
  int layout;           /* enum maze3d_layout */
  int W, H;             /* frame width and height, 1..256 */
  uint64_t seed;        /* layout, textures and objects */
  double fov_deg;       /* horizontal field of view; pixels are square */
  int supersample;      /* render at W*s x H*s and box-filter down, 1..4 */
  double cam_height;    /* eye height; walls are wall_height tall */
  double wall_height;
  double fog;           /* light falls as 1 / (1 + fog * d^2) with distance d */
  int room_min, room_max;     /* interior cells per room side */
  int rooms_min, rooms_max;   /* rooms in a multiroom layout, 2..9 */
  int objects_min, objects_max; /* pillars per room */
  maze3d_physics physics;
  /* NULL (the default): procedural textures. Otherwise borrowed and read
   * during maze3d_new only (the maze copies the images it draws; the pointer
   * stays in its config copy as given): each region's wall, floor and ceiling
   * are images of the set dealt by the seed from a separate random stream, so
   * grid, pillars and explorer paths are those of the procedural maze with
   * the same seed; only the looks change. */
  const maze3d_texture_set *textures;
} maze3d_config;

typedef struct {
  double x, y, heading;
} maze3d_pose;

/* Ground truth for one step. The displacement is what the agent "feels" (the
 * regression target of paper 4.2.2): the world displacement of this step
 * expressed in the agent's frame at the start of the step. */
typedef struct {
  int action;              /* the action applied */
  double x, y, heading;    /* pose after the step, heading in [0, 2 pi) */
  double vx, vy;           /* world velocity after the step, units/s */
  double d_forward, d_left;/* displacement along the start heading and to its left */
  double d_heading;        /* heading change (signed, not wrapped) */
  int collided;            /* 1 if a wall or pillar stopped or deflected the agent */
  int room;                /* room under the agent after the step, or MAZE3D_ROOM_CORRIDOR */
} maze3d_truth;

typedef struct maze3d maze3d;

maze3d_physics maze3d_physics_default(void);
/* Defaults: single room, 32x32, fov 60, supersample 2, eye at 0.5 of a 1-unit
 * wall, rooms 5..9 cells a side, 2..4 rooms, 1..3 pillars per room. */
maze3d_config maze3d_config_default(void);
/* Sets cfg->layout to what the scenario needs (multiroom for MULTIROOM). */
void maze3d_config_for_scenario(maze3d_config *cfg, int scenario);

/* Builds the layout, textures and objects from cfg (borrowed) and allocates the
 * render workspace; the agent starts at rest at a free cell centre facing +x.
 * *out receives a new maze (free with maze3d_free). Returns 0, GTMSM_EINVAL
 * (bad config, message in err) or GTMSM_ENOMEM. */
int maze3d_new(maze3d **out, const maze3d_config *cfg, char *err, size_t errlen);
void maze3d_free(maze3d *m); /* NULL is fine */

/* Places the agent at pose with zero velocity. GTMSM_EINVAL if the agent's
 * circle would overlap a wall or pillar. truth_out (may be NULL) receives the
 * state with zero displacement and action MAZE3D_ACTION_NONE. */
int maze3d_reset(maze3d *m, const maze3d_pose *pose, maze3d_truth *truth_out, char *err,
                 size_t errlen);
/* Draws a random collision-free pose (heading a multiple of 2 pi /
 * MAZE3D_HEADING_LEVELS) at least `clearance` beyond the agent radius from walls
 * and pillars, from r (advanced). Returns 0 or GTMSM_ERANGE if none was found. */
int maze3d_sample_pose(const maze3d *m, rng_t *r, double clearance, maze3d_pose *out);
/* Advances the physics by one agent step. truth_out may be NULL.
 * Returns 0 or GTMSM_EINVAL for an action outside 0..MAZE3D_ACTION_NONE. */
int maze3d_step(maze3d *m, int action, maze3d_truth *truth_out);

/* Renders the current view into frame (H, W, 3), row-major HWC, RGB in [0, 1],
 * row 0 at the top. Uses the maze's workspace: no allocation. */
void maze3d_render(maze3d *m, float *frame);
/* Same from an arbitrary pose (the agent is not moved); a position outside
 * the map sees the nearest border cell's surroundings, a non-finite heading
 * renders as heading 0. */
void maze3d_render_at(maze3d *m, const maze3d_pose *pose, float *frame);
/* out (n) = round(255 * clamp(in, 0, 1)). */
void maze3d_frame_to_u8(uint8_t *out, const float *in, size_t n);

/* Top-down map into rgb_out (map_h, map_w, 3) with map_w = grid width * cell_px
 * and map_h = grid height * cell_px (see maze3d_map_size): walls tinted by the
 * room they face, floors in room colours, pillars, the trajectory traj_xy
 * (n_traj, 2) (may be NULL; start green, end red) and the agent's current pose.
 * Returns 0 or GTMSM_EINVAL for cell_px < 1. */
int maze3d_render_map(const maze3d *m, uint8_t *rgb_out, int cell_px, const float *traj_xy,
                      int n_traj);
void maze3d_map_size(const maze3d *m, int cell_px, int *map_w, int *map_h);

/* Actions: count excludes "none"; names are static strings. */
int maze3d_action_count(void);
const char *maze3d_action_name(int action); /* NULL if out of range */
int maze3d_action_from_name(const char *name); /* action, or GTMSM_EINVAL */
const char *maze3d_scenario_name(int scenario);
int maze3d_scenario_from_name(const char *name);

/* Heading in [0, 2 pi): fmod, then the two edge cases (negative input, and a
 * result that rounds up to 2 pi). */
double maze3d_heading_normalize(double h);

/* Read-only views of the world (all borrow m). */
const maze3d_config *maze3d_get_config(const maze3d *m);
maze3d_pose maze3d_get_pose(const maze3d *m);
void maze3d_get_velocity(const maze3d *m, double *vx, double *vy);
int maze3d_grid_width(const maze3d *m);
int maze3d_grid_height(const maze3d *m);
int maze3d_is_wall(const maze3d *m, int ix, int iy); /* 1 outside the grid */
int maze3d_room_count(const maze3d *m);
int maze3d_room_at(const maze3d *m, double x, double y); /* room, CORRIDOR, or -2 in a wall */
int maze3d_pillar_count(const maze3d *m);
void maze3d_pillar_get(const maze3d *m, int i, double *x, double *y, double *radius);
/* Distance from (x, y) to the nearest wall or pillar surface (0 inside one);
 * looks no farther than `horizon` (returns horizon if nothing is nearer). */
double maze3d_clearance(const maze3d *m, double x, double y, double horizon);

/* A scripted policy. Rotate: stands at a random free spot and always turns one
 * way. Walk / multiroom: picks goal cells (multiroom prefers other rooms),
 * plans a shortest path on the free grid (BFS), pulls it taut with
 * line-of-sight checks and steers along it with forward / forward_turn_* /
 * turn_* actions, coasting before sharp corners; every action is checked
 * against a simulated "act, then stop" future so the walker never touches a
 * wall or pillar. */
typedef struct {
  maze3d *m;      /* borrowed */
  int scenario;
  rng_t rng;
  int turn_action;  /* rotate: the one action used */
  int *dist;      /* (grid cells) BFS distance to the goal, -1 unreachable */
  int *queue;     /* (grid cells) */
  int *path;      /* (grid cells) cells from the agent to the goal */
  int path_len;
  int goal;       /* goal cell, -1 none */
  int steps_on_goal;
} maze3d_explorer;

/* Resets the maze to the scenario's start pose drawn from seed and prepares
 * the policy; ex borrows m (which must outlive it). Allocates the planner's
 * buffers: pair with maze3d_explorer_free. Returns 0, GTMSM_EINVAL or
 * GTMSM_ENOMEM. */
int maze3d_explorer_init(maze3d_explorer *ex, maze3d *m, int scenario, uint64_t seed,
                         char *err, size_t errlen);
void maze3d_explorer_free(maze3d_explorer *ex);
/* The action for the next maze3d_step, from the maze's current state. */
int maze3d_explorer_next(maze3d_explorer *ex);

/* An episode of T steps in the maze of cfg (borrowed) with the scenario's
 * explorer from seed, as `gtmsm gen` writes it: step t applies action t
 * (actions[0] = MAZE3D_ACTION_NONE) and frame t is the view after it.
 * frames (T - first, H, W, 3) receives the frames of steps first..T-1 (the
 * earlier ones are not rendered); actions (T) and truth (T) may be NULL, as
 * may frames. Returns 0, GTMSM_EINVAL or GTMSM_ENOMEM. */
int maze3d_episode(const maze3d_config *cfg, int scenario, uint64_t seed, int T, int first, float *frames,
                   int *actions, maze3d_truth *truth, char *err, size_t errlen);

#endif
