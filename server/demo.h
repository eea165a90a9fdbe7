/* The demo endpoint's pure part (no HTTP): POST /v1/demo/episodes asks a
 * built-in simulator for an episode that a model can memorize, so the web
 * viewer needs nothing but the daemon. Which simulator is the model's: the
 * 2-D image navigation (core/sim/imagenav.h) or the 3-D maze (maze3d.h).
 * Parsing and validation of the request, the check that a model fits its
 * simulator, the choice of world (imagenav: procedural from a seed, or one of
 * the photo worlds), and the reply: every step as an observation in the shape
 * the observations endpoint accepts, plus the truth (imagenav: the world as a
 * PNG and the grid position; maze3d: the top-down map as a PNG and the pose).
 *
 * The episode is exactly `gtmsm gen --env imagenav --seed S --steps T`
 * (with `--images DIR` for photo worlds), or `gtmsm gen --env maze3d
 * --scenario SC --seed S --steps T`: the same seed gives the same world,
 * moves and frames, byte for byte.
 *
 * POST /v1/demo/episodes/step continues a maze3d episode: the same episode is
 * played again (physics only, nothing rendered) and then the client's
 * actions, whose true frames and poses come back. Stateless: the request
 * names the episode, so any replica answers it, and the same request gives
 * the same reply. (imagenav needs no such endpoint: its true view anywhere is
 * a crop of the world PNG.) demo.c parses and checks; demo_maze3d.c plays
 * mazes and writes their replies. */
#ifndef GTMSMD_DEMO_H
#define GTMSMD_DEMO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "model/api.h"
#include "sim/maze3d.h"
#include "sim/worldset.h"

#define DEMO_MAX_STEPS 4096
#define DEMO_DEFAULT_STEPS 256          /* imagenav */
#define DEMO_MAZE3D_DEFAULT_STEPS 80    /* maze3d when the model records no episode length */
#define DEMO_DEFAULT_SEED 1
#define DEMO_MAP_CELL_PX 16             /* maze3d map: pixels per grid cell, as gen --preview */

typedef enum { DEMO_ENV_IMAGENAV, DEMO_ENV_MAZE3D } demo_env;

/* The simulator that drives a model, from demo_check_model. */
typedef struct {
  demo_env env;
  int scenario;      /* maze3d: enum maze3d_scenario, the model's (metadata "scenario") */
  int W, H;          /* maze3d: frame size, the model's */
  int default_steps; /* DEMO_DEFAULT_STEPS; maze3d: the model's training episode length, else 80 */
} demo_sim;

typedef enum { DEMO_WORLD_PROCEDURAL, DEMO_WORLD_PHOTO } demo_world_kind;

typedef struct {
  char model[CODEC_ID_MAX + 1];
  demo_world_kind world;
  uint64_t seed;       /* world (procedural, or the photo when none is named) and moves */
  int steps;           /* 1..DEMO_MAX_STEPS; 0 until demo_apply_sim when not given */
  int world_given;     /* "world" or "photo" was in the request (imagenav only) */
  long long photo;     /* photo world index, or -1: by name, or by seed when the name is empty */
  char photo_name[256]; /* a photo world by file name, with or without ".png" */
  int obstacles;       /* imagenav: random blocked cells (0..DEMO_MAX_OBSTACLES), as gtmsm gen --obstacles */
} demo_request;

#define DEMO_MAX_OBSTACLES 80
/* {"model", "world": "procedural"|"photo", "seed", "steps", "photo": index or
 * name, "obstacles": N} (body: len bytes, borrowed) into out. Defaults: procedural, seed 1,
 * steps 0 (the simulator's default, see demo_apply_sim); unknown keys are
 * ignored. 400 malformed-json / invalid-request; 422 too-many-frames (with
 * the limit) for more than DEMO_MAX_STEPS steps. */
int demo_parse_request(const char *body, size_t len, demo_request *out, codec_error *e);

/* Checks that m (borrowed) can be driven in a built-in simulator and fills
 * sim. imagenav (recorded environment "imagenav" or none): 8x8x3 frames and
 * the actions right, left, up, down, stay. maze3d (environment "maze3d"): RGB
 * frames of 1..256 pixels a side, a scenario rotate, walk or multiroom
 * (metadata "scenario" or training.scenario; rotate when neither is
 * recorded), and the 8 maze3d actions plus "none" among its action names.
 * 422 unsupported-environment otherwise. */
int demo_check_model(const gtmsm_model *m, demo_sim *sim, codec_error *e);

/* Completes rq (borrowed, updated) for sim (borrowed): the default number of
 * steps when none was given; 400 invalid-request for "world" or "photo" with
 * a maze3d model (the seed makes the maze). */
int demo_apply_sim(demo_request *rq, const demo_sim *sim, codec_error *e);

/* The world of rq: procedural from rq->seed, or a photo of ws (borrowed) by
 * index, by name (with or without ".png"), or by seed as `gtmsm gen` picks
 * it. Fills world (32, 32, 3) in [0, 1] (caller's) and *photo (the index, or
 * -1 for procedural). 404 world-not-found for an unknown photo or when no
 * photo worlds are loaded. */
int demo_pick_world(const worldset *ws, const demo_request *rq, float *world, int *photo,
                    codec_error *e);

/* The reply of POST /v1/demo/episodes for an imagenav model as a new
 * reference in *out: {"model", "environment", "world": {"kind", "seed", "photo", "name", "width",
 * "height", "png"}, "grid": {"cells", "stride", "view", "start"}, "steps",
 * "observations": [{"t", "action", "frame", "truth": {"col", "row",
 * "seen_before"}}]}. photo_name (borrowed) may be NULL. Returns 0 or a
 * negative GTMSM_E* code with a message in err. */
int demo_episode_json(const char *model_name, const demo_request *rq, const float *world,
                      int photo, const char *photo_name, json_t **out, char *err, size_t errlen);

/* {"world_size", "grid": {...}, "photos": [{"index", "name"}]} for GET
 * /v1/demo/worlds (new reference; NULL when out of memory). */
json_t *demo_worlds_json(const worldset *ws);

/* ---- maze3d (parsing in demo.c, the rest in demo_maze3d.c) ---------------- */

/* POST /v1/demo/episodes/step: the episode continued (model, seed, steps as
 * in demo_request) and the actions to play after its last step. */
typedef struct {
  demo_request ep;
  int n;        /* 1..max_actions */
  int *actions; /* (n) enum maze3d_action, owned: demo_step_request_free */
  int first;    /* 0..n-1: frames come back for actions first..n-1 */
} demo_step_request;

/* {"model", "seed", "steps", "actions": [maze3d action names], "first": N}
 * (body: len bytes, borrowed) into out. "first" defaults to 0 (every frame);
 * n - 1 asks for the last frame only. Errors as demo_parse_request, plus 400
 * invalid-request for a missing or mistyped "actions" (names only: the
 * simulator's actions, not a model's indices) or "first" outside 0..n-1, 422
 * unknown-action, 422 too-many-actions (with the limit) beyond max_actions.
 * On success free out with demo_step_request_free. */
int demo_parse_step_request(const char *body, size_t len, long long max_actions,
                            demo_step_request *out, codec_error *e);
void demo_step_request_free(demo_step_request *rq);

/* The maze of a maze3d demo: maze3d_config_default with the layout of
 * sim->scenario, frames W x H of the model, procedural textures, seed. This
 * is the config `gtmsm gen --env maze3d --scenario SC --size W --seed S`
 * builds. */
maze3d_config demo_maze_config(const demo_sim *sim, uint64_t seed);

/* A maze3d map as a PNG's pixels: (h, w, 3), owned; free with demo_map_free. */
typedef struct {
  uint8_t *rgb;
  int w, h, cell_px, grid_w, grid_h;
} demo_map;
void demo_map_free(demo_map *map);

/* Plays T episode steps (the scenario's explorer from seed, action 0 the
 * no-op, exactly as gtmsm gen) and then the n actions extra (n, borrowed; n
 * may be 0), in a new maze of demo_maze_config(sim, seed). Every output may
 * be NULL: frames (T + n - first, H, W, 3) the 8-bit frames of steps first..
 * T+n-1 (0 <= first <= T + n; the earlier ones are not rendered); actions
 * (T + n) and truth (T + n) every step's; map the top-down map after the
 * episode's T steps with their trajectory (as gen --preview draws it). Returns
 * 0, GTMSM_EINVAL (bad arguments or action) or GTMSM_ENOMEM, with a message
 * in err; nothing is left allocated on failure. */
int demo_maze_play(const demo_sim *sim, uint64_t seed, int T, const int *extra, int n, int first,
                   uint8_t *frames, int *actions, maze3d_truth *truth, demo_map *map, char *err,
                   size_t errlen);

/* The reply of POST /v1/demo/episodes for a maze3d model as a new reference
 * in *out: {"model", "environment": "maze3d", "scenario", "seed", "steps",
 * "frame": {"width", "height"}, "map": {"width", "height", "cell_px",
 * "grid_width", "grid_height", "png"}, "start": {"x", "y", "heading"},
 * "observations": [{"t", "action", "frame", "truth": {"x", "y", "heading",
 * "vx", "vy", "d_forward", "d_left", "d_heading", "collided", "room"}}]}.
 * rq->steps must be set (demo_apply_sim). Returns 0 or a negative GTMSM_E*
 * code with a message in err. */
int demo_maze_episode_json(const char *model_name, const demo_sim *sim, const demo_request *rq,
                           json_t **out, char *err, size_t errlen);

/* The reply of POST /v1/demo/episodes/step as a new reference in *out:
 * {"model", "environment", "scenario", "seed", "steps", "actions", "first",
 * "observations": [...]} with one observation (as in the episode, t = steps +
 * i) for each action i = first..n-1. Returns 0 or a negative GTMSM_E* code. */
int demo_maze_step_json(const char *model_name, const demo_sim *sim, const demo_step_request *rq,
                        json_t **out, char *err, size_t errlen);

#endif
