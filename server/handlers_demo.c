/* The demo endpoint of the web viewer: GET /v1/demo/worlds lists the worlds
 * the built-in 2-D simulator offers, POST /v1/demo/episodes generates an
 * episode for a model in its simulator (imagenav or maze3d), POST
 * /v1/demo/episodes/step continues a maze3d episode with the client's
 * actions (demo.h). Stateless and deterministic in the request, so any
 * replica answers it the same. */
#include <stdlib.h>

#include "demo.h"
#include "handlers.h"
#include "sim/world.h"

void handle_demo_worlds(http_req *r) {
  json_t *j = demo_worlds_json(&http_app(r)->demo_worlds);
  if (!j) {
    http_problem(r, 503, "overloaded", NULL, "out of memory");
    return;
  }
  http_reply_json(r, 200, j);
}

/* The model called name and its simulator into *me and sim; otherwise
 * replies (404, 422) and returns non-zero. */
static int demo_model(http_req *r, const char *name, const model_entry **me, demo_sim *sim) {
  codec_error e;
  *me = models_find(&http_app(r)->models, name);
  if (!*me) {
    http_problem(r, 404, "model-not-found", NULL, "no model '%s' (GET /v1/models lists them)", name);
    return 1;
  }
  http_set_model(r, *me);
  if (demo_check_model((*me)->m, sim, &e)) {
    http_problem_codec(r, &e, NULL);
    return 1;
  }
  return 0;
}

void handle_demo_episode(http_req *r) {
  if (handler_require_json(r)) return;
  app *a = http_app(r);
  size_t len = 0;
  const char *body = http_body(r, &len);
  demo_request rq;
  demo_sim sim;
  const model_entry *me = NULL;
  codec_error e;
  if (demo_parse_request(body, len, &rq, &e)) {
    http_problem_codec(r, &e, NULL);
    return;
  }
  if (demo_model(r, rq.model, &me, &sim)) return;
  if (demo_apply_sim(&rq, &sim, &e)) {
    http_problem_codec(r, &e, NULL);
    return;
  }
  json_t *reply = NULL;
  char err[256] = "";
  if (sim.env == DEMO_ENV_MAZE3D) {
    if (demo_maze_episode_json(me->name, &sim, &rq, &reply, err, sizeof err)) {
      http_problem(r, 503, "overloaded", NULL, "generating the episode: %s", err);
      return;
    }
    http_reply_json(r, 200, reply);
    return;
  }
  float world[WORLD_SIZE * WORLD_SIZE * 3]; /* (32, 32, 3) */
  int photo = -1;
  if (demo_pick_world(&a->demo_worlds, &rq, world, &photo, &e)) {
    http_problem_codec(r, &e, NULL);
    return;
  }
  if (demo_episode_json(me->name, &rq, world, photo, photo >= 0 ? a->demo_worlds.names[photo] : NULL,
                        &reply, err, sizeof err)) {
    http_problem(r, 503, "overloaded", NULL, "generating the episode: %s", err);
    return;
  }
  http_reply_json(r, 200, reply);
}

void handle_demo_step(http_req *r) {
  if (handler_require_json(r)) return;
  size_t len = 0;
  const char *body = http_body(r, &len);
  demo_step_request rq;
  demo_sim sim;
  const model_entry *me = NULL;
  codec_error e;
  json_t *reply = NULL;
  char err[256] = "";
  if (demo_parse_step_request(body, len, http_app(r)->cfg.max_actions, &rq, &e)) {
    http_problem_codec(r, &e, NULL);
    return;
  }
  if (demo_model(r, rq.ep.model, &me, &sim)) goto done;
  if (sim.env != DEMO_ENV_MAZE3D) {
    http_problem(r, 422, "unsupported-environment", NULL, "model '%s' is an imagenav model; the "
                 "step endpoint continues maze3d episodes (an imagenav client crops the true view "
                 "from the episode's world)", me->name);
    goto done;
  }
  if (demo_apply_sim(&rq.ep, &sim, &e)) {
    http_problem_codec(r, &e, NULL);
    goto done;
  }
  if (demo_maze_step_json(me->name, &sim, &rq, &reply, err, sizeof err)) {
    http_problem(r, 503, "overloaded", NULL, "continuing the episode: %s", err);
    goto done;
  }
  http_reply_json(r, 200, reply);
done:
  demo_step_request_free(&rq);
}
