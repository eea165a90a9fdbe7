/* The demo endpoint's request, model check, world choice and reply (see demo.h). */
#include "demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "nn/rng.h"
#include "sim/imagenav.h"
#include "sim/world.h"

#define DEMO_SHAPE "{\"model\": \"<name>\", \"world\": \"procedural\"|\"photo\", \"seed\": N, " \
                   "\"steps\": N, \"photo\": index or name, \"obstacles\": N}"

/* The fields every demo request shares, from the object j (borrowed): model,
 * world, seed, steps, photo. Defaults as demo_parse_request says. */
static int parse_common(const json_t *j, const char *shape, demo_request *out, codec_error *e) {
  memset(out, 0, sizeof *out);
  out->world = DEMO_WORLD_PROCEDURAL;
  out->seed = DEMO_DEFAULT_SEED;
  out->photo = -1;
  if (!json_is_object(j)) return codec_fail(e, 400, "invalid-request", "expected an object %s", shape);
  const json_t *jm = json_object_get(j, "model"), *jw = json_object_get(j, "world");
  const json_t *js = json_object_get(j, "seed"), *jt = json_object_get(j, "steps");
  const json_t *jp = json_object_get(j, "photo"), *jo = json_object_get(j, "obstacles");
  if (!json_is_string(jm))
    return codec_fail(e, 400, "invalid-request", "\"model\" (a model name) is required: %s", shape);
  if (!codec_valid_id(json_string_value(jm)))
    return codec_fail(e, 400, "invalid-request", "model name '%.64s' is not 1..64 of A-Z a-z 0-9 _ -",
                      json_string_value(jm));
  snprintf(out->model, sizeof out->model, "%s", json_string_value(jm));
  out->world_given = jw != NULL || (jp != NULL && !json_is_null(jp));
  if (jw) {
    const char *w = json_is_string(jw) ? json_string_value(jw) : "";
    if (strcmp(w, "procedural") == 0) out->world = DEMO_WORLD_PROCEDURAL;
    else if (strcmp(w, "photo") == 0) out->world = DEMO_WORLD_PHOTO;
    else return codec_fail(e, 400, "invalid-request", "\"world\" must be \"procedural\" or \"photo\"");
  }
  if (js) {
    if (!json_is_integer(js) || json_integer_value(js) < 0)
      return codec_fail(e, 400, "invalid-request", "\"seed\" must be an integer >= 0");
    out->seed = (uint64_t)json_integer_value(js);
  }
  if (jt) {
    if (!json_is_integer(jt) || json_integer_value(jt) < 1)
      return codec_fail(e, 400, "invalid-request", "\"steps\" must be an integer in 1..%d",
                        DEMO_MAX_STEPS);
    if (json_integer_value(jt) > DEMO_MAX_STEPS) {
      int rc = codec_fail(e, 422, "too-many-frames", "%lld steps; a demo episode has 1..%d",
                          (long long)json_integer_value(jt), DEMO_MAX_STEPS);
      e->limit = DEMO_MAX_STEPS;
      return rc;
    }
    out->steps = (int)json_integer_value(jt);
  }
  if (jo) {
    if (!json_is_integer(jo) || json_integer_value(jo) < 0 || json_integer_value(jo) > DEMO_MAX_OBSTACLES)
      return codec_fail(e, 400, "invalid-request", "\"obstacles\" must be an integer in 0..%d (blocked cells "
                        "of the 9x9 grid)", DEMO_MAX_OBSTACLES);
    out->obstacles = (int)json_integer_value(jo);
  }
  if (jp && !json_is_null(jp)) {
    if (out->world != DEMO_WORLD_PHOTO)
      return codec_fail(e, 400, "invalid-request", "\"photo\" goes with \"world\": \"photo\"");
    if (json_is_integer(jp) && json_integer_value(jp) >= 0) {
      out->photo = (long long)json_integer_value(jp);
    } else if (json_is_string(jp) && json_string_length(jp) > 0 &&
               json_string_length(jp) < sizeof out->photo_name) {
      snprintf(out->photo_name, sizeof out->photo_name, "%s", json_string_value(jp));
    } else {
      return codec_fail(e, 400, "invalid-request", "\"photo\" must be an index >= 0 or a name "
                        "(GET /v1/demo/worlds lists them)");
    }
  }
  return 0;
}

int demo_parse_request(const char *body, size_t len, demo_request *out, codec_error *e) {
  json_t *j = NULL;
  int rc = codec_parse_json(body, len, &j, e);
  if (rc) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  rc = parse_common(j, DEMO_SHAPE, out, e);
  json_decref(j);
  return rc;
}

#define STEP_SHAPE "{\"model\": \"<name>\", \"seed\": N, \"steps\": N, \"actions\": " \
                   "[\"turn_left\", ...], \"first\": N}"

int demo_parse_step_request(const char *body, size_t len, long long max_actions,
                            demo_step_request *out, codec_error *e) {
  memset(out, 0, sizeof *out);
  json_t *j = NULL;
  int rc = codec_parse_json(body, len, &j, e);
  if (rc) return rc;
  if ((rc = parse_common(j, STEP_SHAPE, &out->ep, e))) goto done;
  const json_t *ja = json_object_get(j, "actions"), *jf = json_object_get(j, "first");
  if (!json_is_array(ja)) {
    rc = codec_fail(e, 400, "invalid-request", "\"actions\" (an array of maze3d action names) is "
                    "required: " STEP_SHAPE);
    goto done;
  }
  const size_t n = json_array_size(ja);
  if (n == 0 || n > (size_t)max_actions) {
    rc = codec_fail(e, 422, "too-many-actions", "%zu actions; a step request takes 1..%lld", n,
                    max_actions);
    e->limit = max_actions;
    goto done;
  }
  if (jf && !(json_is_integer(jf) && json_integer_value(jf) >= 0 &&
              json_integer_value(jf) < (json_int_t)n)) {
    rc = codec_fail(e, 400, "invalid-request", "\"first\" must be an integer in 0..%zu (the "
                    "first action whose frame comes back)", n - 1);
    goto done;
  }
  out->first = jf ? (int)json_integer_value(jf) : 0;
  out->actions = malloc(n * sizeof(int));
  if (!out->actions) {
    rc = codec_fail(e, 503, "overloaded", "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_array_get(ja, i);
    if (!json_is_string(v)) {
      rc = codec_fail(e, 400, "invalid-request", "actions[%zu]: expected a maze3d action name", i);
      goto done;
    }
    int a = maze3d_action_from_name(json_string_value(v));
    if (a < 0) {
      rc = codec_fail(e, 422, "unknown-action", "actions[%zu]: unknown action '%.32s'; maze3d has "
                      "forward, backward, strafe_left, strafe_right, turn_left, turn_right, "
                      "forward_turn_left, forward_turn_right, none", i, json_string_value(v));
      goto done;
    }
    out->actions[i] = a;
  }
  out->n = (int)n;
done:
  if (rc) demo_step_request_free(out);
  json_decref(j);
  return rc;
}

void demo_step_request_free(demo_step_request *rq) {
  free(rq->actions);
  rq->actions = NULL;
  rq->n = 0;
}

/* The maze3d half of demo_check_model: meta (borrowed) is the parsed metadata. */
static int check_maze3d(const gtmsm_model *m, const json_t *meta, demo_sim *sim, codec_error *e) {
  const gtmsm_config *c = &m->cfg;
  const json_t *training = json_object_get(meta, "training");
  const json_t *sc = json_object_get(meta, "scenario");
  if (!sc) sc = json_object_get(training, "scenario");
  sim->env = DEMO_ENV_MAZE3D;
  sim->scenario = MAZE3D_SCENARIO_ROTATE;
  if (sc) {
    int k = json_is_string(sc) ? maze3d_scenario_from_name(json_string_value(sc)) : -1;
    if (k < 0)
      return codec_fail(e, 422, "unsupported-environment", "the model's maze3d scenario is not "
                        "rotate, walk or multiroom");
    sim->scenario = k;
  }
  if (c->C != 3 || c->W < 1 || c->W > 256 || c->H < 1 || c->H > 256)
    return codec_fail(e, 422, "unsupported-environment", "the model's frames are %dx%dx%d; the "
                      "maze3d simulator renders RGB frames of 1..256 pixels a side", c->W, c->H,
                      c->C);
  for (int a = 0; a <= MAZE3D_ACTION_NONE; a++)
    if (gtmsm_action_index(m, maze3d_action_name(a)) < 0)
      return codec_fail(e, 422, "unsupported-environment", "the model has no action '%s'; the "
                        "maze3d simulator needs its 8 actions and \"none\"", maze3d_action_name(a));
  sim->W = c->W;
  sim->H = c->H;
  const json_t *ep = json_object_get(training, "episode");
  sim->default_steps = json_is_integer(ep) && json_integer_value(ep) >= 1 &&
                               json_integer_value(ep) <= DEMO_MAX_STEPS
                           ? (int)json_integer_value(ep)
                           : DEMO_MAZE3D_DEFAULT_STEPS;
  return 0;
}

int demo_check_model(const gtmsm_model *m, demo_sim *sim, codec_error *e) {
  const gtmsm_config *c = &m->cfg;
  memset(sim, 0, sizeof *sim);
  json_t *meta = json_loads(m->meta_json, 0, NULL);
  const json_t *env = meta ? json_object_get(meta, "environment") : NULL;
  char envname[64] = "";
  if (json_is_string(env)) snprintf(envname, sizeof envname, "%s", json_string_value(env));
  if (strcmp(envname, "maze3d") == 0) {
    int rc = check_maze3d(m, meta, sim, e);
    json_decref(meta);
    return rc;
  }
  json_decref(meta);
  if (envname[0] && strcmp(envname, "imagenav") != 0)
    return codec_fail(e, 422, "unsupported-environment", "the model was trained on '%s'; the demo "
                      "simulators are imagenav (2-D image navigation) and maze3d", envname);
  if (c->H != IMAGENAV_VIEW || c->W != IMAGENAV_VIEW || c->C != 3)
    return codec_fail(e, 422, "unsupported-environment", "the model's frames are %dx%dx%d; the "
                      "demo simulator makes %dx%dx3 views", c->W, c->H, c->C, IMAGENAV_VIEW,
                      IMAGENAV_VIEW);
  for (int a = 0; a < IMAGENAV_ACTIONS; a++)
    if (gtmsm_action_index(m, imagenav_action_name(a)) < 0)
      return codec_fail(e, 422, "unsupported-environment", "the model has no action '%s'; the demo "
                        "simulator needs right, left, up, down and stay", imagenav_action_name(a));
  sim->env = DEMO_ENV_IMAGENAV;
  sim->default_steps = DEMO_DEFAULT_STEPS;
  return 0;
}

int demo_apply_sim(demo_request *rq, const demo_sim *sim, codec_error *e) {
  if (sim->env == DEMO_ENV_MAZE3D && rq->world_given)
    return codec_fail(e, 400, "invalid-request", "a maze3d model's demo takes no \"world\" or "
                      "\"photo\": the seed makes the maze");
  if (sim->env == DEMO_ENV_MAZE3D && rq->obstacles)
    return codec_fail(e, 400, "invalid-request", "\"obstacles\" are cells of the 2-D world; a maze3d model's "
                      "demo takes none");
  if (rq->steps == 0) rq->steps = sim->default_steps;
  return 0;
}

/* Does file name (e.g. "grass_k2_r0_c1.png") match want, with or without ".png"? */
static int photo_name_is(const char *name, const char *want) {
  size_t n = strlen(want);
  return strcmp(name, want) == 0 || (strncmp(name, want, n) == 0 && strcmp(name + n, ".png") == 0);
}

int demo_pick_world(const worldset *ws, const demo_request *rq, float *world, int *photo,
                    codec_error *e) {
  const size_t size = (size_t)WORLD_SIZE * WORLD_SIZE * 3;
  *photo = -1;
  if (rq->world == DEMO_WORLD_PROCEDURAL) {
    world_generate(world, rq->seed);
    return 0;
  }
  if (ws->n == 0)
    return codec_fail(e, 404, "world-not-found", "no photo worlds are loaded (see the daemon's "
                      "--demo-worlds); use \"world\": \"procedural\"");
  int i = -1;
  if (rq->photo >= 0) {
    if (rq->photo >= ws->n)
      return codec_fail(e, 404, "world-not-found", "no photo world %lld; there are %d (0..%d)",
                        rq->photo, ws->n, ws->n - 1);
    i = (int)rq->photo;
  } else if (rq->photo_name[0]) {
    for (int k = 0; k < ws->n && i < 0; k++)
      if (photo_name_is(ws->names[k], rq->photo_name)) i = k;
    if (i < 0)
      return codec_fail(e, 404, "world-not-found", "no photo world '%.64s' (GET /v1/demo/worlds "
                        "lists them)", rq->photo_name);
  } else {
    i = (int)(rng_mix(rq->seed) % (uint64_t)ws->n); /* as `gtmsm gen --images` picks it */
  }
  memcpy(world, worldset_get(ws, i), size * sizeof(float));
  *photo = i;
  return 0;
}

/* A file name without its ".png" (new reference). */
static json_t *stem_json(const char *name) {
  size_t n = strlen(name);
  if (n > 4 && strcmp(name + n - 4, ".png") == 0) n -= 4;
  return json_stringn(name, n);
}

int demo_episode_json(const char *model_name, const demo_request *rq, const float *world,
                      int photo, const char *photo_name, json_t **out, char *err, size_t errlen) {
  const int T = rq->steps;
  const size_t F = IMAGENAV_FRAME, WS = (size_t)WORLD_SIZE * WORLD_SIZE * 3;
  int rc = GTMSM_OK;
  *out = NULL;
  float *frames = malloc(sizeof(float) * (size_t)T * F);   /* (T, 8, 8, 3) */
  int *actions = malloc(sizeof(int) * (size_t)T);          /* (T) */
  imagenav_truth *truth = malloc(sizeof *truth * (size_t)T); /* (T) */
  uint8_t *pix = malloc((size_t)T * F);                    /* (T, 8, 8, 3) */
  uint8_t *wpix = malloc(WS);                              /* (32, 32, 3) */
  char *b64 = NULL;
  json_t *obs = json_array(), *reply = NULL, *blocked = NULL; /* the obstacle cells [{col, row}] */
  if (!frames || !actions || !truth || !pix || !wpix || !obs) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  imagenav_options o = imagenav_default_options();
  o.obstacles = rq->obstacles;
  imagenav_episode(world, &o, rq->seed, T, frames, actions, truth);
  imagenav env;
  imagenav_episode_env(world, &o, rq->seed, &env);
  blocked = json_array();
  for (int r = 0; blocked && r < IMAGENAV_GRID; r++)
    for (int c = 0; c < IMAGENAV_GRID; c++)
      if (env.blocked[r][c]) json_array_append_new(blocked, json_pack("{s:i, s:i}", "col", c, "row", r));
  image_u8_from_float(pix, frames, (size_t)T * F, NULL, 0);
  image_u8_from_float(wpix, world, WS, NULL, 0);
  for (int t = 0; t < T; t++) {
    if (codec_png_base64(pix + (size_t)t * F, IMAGENAV_VIEW, IMAGENAV_VIEW, 3, &b64)) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "encoding frame %d", t);
      goto done;
    }
    json_t *o1 = json_pack("{s:i, s:s, s:s, s:{s:i, s:i, s:b}}", "t", t, "action",
                           imagenav_action_name(actions[t]), "frame", b64, "truth", "col",
                           truth[t].col, "row", truth[t].row, "seen_before", truth[t].seen_before);
    free(b64);
    b64 = NULL;
    if (!o1 || json_array_append_new(obs, o1)) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
      goto done;
    }
  }
  if (codec_png_base64(wpix, WORLD_SIZE, WORLD_SIZE, 3, &b64)) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "encoding the world");
    goto done;
  }
  json_t *jworld = json_pack("{s:s, s:I, s:o, s:o, s:i, s:i, s:s}", "kind",
                             rq->world == DEMO_WORLD_PHOTO ? "photo" : "procedural", "seed",
                             (json_int_t)rq->seed, "photo",
                             photo >= 0 ? json_integer(photo) : json_null(), "name",
                             photo_name ? stem_json(photo_name) : json_null(), "width", WORLD_SIZE,
                             "height", WORLD_SIZE, "png", b64);
  reply = json_pack("{s:s, s:s, s:o, s:{s:i, s:i, s:i, s:{s:i, s:i}, s:O}, s:i, s:O}", "model",
                    model_name, "environment", "imagenav", "world", jworld, "grid", "cells",
                    IMAGENAV_GRID, "stride", IMAGENAV_STRIDE, "view", IMAGENAV_VIEW, "start", "col",
                    truth[0].col, "row", truth[0].row, "obstacles", blocked, "steps", T, "observations", obs);
  if (!reply) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  *out = reply;
done:
  json_decref(obs);
  json_decref(blocked);
  free(b64);
  free(frames);
  free(actions);
  free(truth);
  free(pix);
  free(wpix);
  return rc;
}

json_t *demo_worlds_json(const worldset *ws) {
  json_t *photos = json_array();
  for (int i = 0; photos && i < ws->n; i++)
    json_array_append_new(photos, json_pack("{s:i, s:o}", "index", i, "name", stem_json(ws->names[i])));
  json_t *kinds = ws->n > 0 ? json_pack("[s, s]", "procedural", "photo") : json_pack("[s]", "procedural");
  return json_pack("{s:o, s:i, s:{s:i, s:i, s:i}, s:o}", "worlds", kinds, "world_size", WORLD_SIZE,
                   "grid", "cells", IMAGENAV_GRID, "stride", IMAGENAV_STRIDE, "view", IMAGENAV_VIEW,
                   "photos", photos);
}
