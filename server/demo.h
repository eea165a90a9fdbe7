/* The demo endpoint's pure part (no HTTP): POST /v1/demo/episodes asks the
 * built-in 2-D simulator (core/sim/imagenav.h) for an episode that a model
 * can memorize, so the web viewer needs nothing but the daemon. Parsing and
 * validation of the request, the check that a model fits the simulator, the
 * choice of world (procedural from a seed, or one of the photo worlds), and
 * the reply: the world as a PNG, and every step as an observation in the
 * shape the observations endpoint accepts, plus the true grid position.
 *
 * The episode is exactly `gtmsm gen --env imagenav --seed S --steps T`
 * (with `--images DIR` for photo worlds): the same seed gives the same world
 * choice, moves and frames, byte for byte. */
#ifndef GTMSMD_DEMO_H
#define GTMSMD_DEMO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "model/api.h"
#include "sim/worldset.h"

#define DEMO_MAX_STEPS 4096
#define DEMO_DEFAULT_STEPS 256
#define DEMO_DEFAULT_SEED 1

typedef enum { DEMO_WORLD_PROCEDURAL, DEMO_WORLD_PHOTO } demo_world_kind;

typedef struct {
  char model[CODEC_ID_MAX + 1];
  demo_world_kind world;
  uint64_t seed;       /* world (procedural, or the photo when none is named) and moves */
  int steps;           /* 1..DEMO_MAX_STEPS */
  long long photo;     /* photo world index, or -1: by name, or by seed when the name is empty */
  char photo_name[256]; /* a photo world by file name, with or without ".png" */
} demo_request;

/* {"model", "world": "procedural"|"photo", "seed", "steps", "photo": index or
 * name} (body: len bytes, borrowed) into out. Defaults: procedural, seed 1,
 * 256 steps. 400 malformed-json / invalid-request; 422 too-many-frames (with
 * the limit) for more than DEMO_MAX_STEPS steps. */
int demo_parse_request(const char *body, size_t len, demo_request *out, codec_error *e);

/* Checks that m (borrowed) can be driven in the built-in simulator: its
 * recorded environment is "imagenav" (or none), its frames are 8x8x3, and
 * every simulator action (right, left, up, down, stay) is one of its action
 * names. 422 unsupported-environment otherwise. */
int demo_check_model(const gtmsm_model *m, codec_error *e);

/* The world of rq: procedural from rq->seed, or a photo of ws (borrowed) by
 * index, by name (with or without ".png"), or by seed as `gtmsm gen` picks
 * it. Fills world (32, 32, 3) in [0, 1] (caller's) and *photo (the index, or
 * -1 for procedural). 404 world-not-found for an unknown photo or when no
 * photo worlds are loaded. */
int demo_pick_world(const worldset *ws, const demo_request *rq, float *world, int *photo,
                    codec_error *e);

/* The reply of POST /v1/demo/episodes as a new reference in *out:
 * {"model", "environment", "world": {"kind", "seed", "photo", "name", "width",
 * "height", "png"}, "grid": {"cells", "stride", "view", "start"}, "steps",
 * "observations": [{"t", "action", "frame", "truth": {"col", "row",
 * "seen_before"}}]}. photo_name (borrowed) may be NULL. Returns 0 or a
 * negative GTMSM_E* code with a message in err. */
int demo_episode_json(const char *model_name, const demo_request *rq, const float *world,
                      int photo, const char *photo_name, json_t **out, char *err, size_t errlen);

/* {"world_size", "grid": {...}, "photos": [{"index", "name"}]} for GET
 * /v1/demo/worlds (new reference; NULL when out of memory). */
json_t *demo_worlds_json(const worldset *ws);

#endif
