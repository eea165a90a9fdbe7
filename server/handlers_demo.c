/* The demo endpoint of the web viewer: GET /v1/demo/worlds lists the worlds
 * the built-in simulator offers, POST /v1/demo/episodes generates an episode
 * for a model (demo.h). Stateless and deterministic in the request, so any
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

void handle_demo_episode(http_req *r) {
  if (handler_require_json(r)) return;
  app *a = http_app(r);
  size_t len = 0;
  const char *body = http_body(r, &len);
  demo_request rq;
  codec_error e;
  if (demo_parse_request(body, len, &rq, &e)) {
    http_problem_codec(r, &e, NULL);
    return;
  }
  const model_entry *me = models_find(&a->models, rq.model);
  if (!me) {
    http_problem(r, 404, "model-not-found", NULL, "no model '%s' (GET /v1/models lists them)",
                 rq.model);
    return;
  }
  if (demo_check_model(me->m, &e)) {
    http_problem_codec(r, &e, NULL);
    return;
  }
  float world[WORLD_SIZE * WORLD_SIZE * 3]; /* (32, 32, 3) */
  int photo = -1;
  if (demo_pick_world(&a->demo_worlds, &rq, world, &photo, &e)) {
    http_problem_codec(r, &e, NULL);
    return;
  }
  json_t *reply = NULL;
  char err[256] = "";
  if (demo_episode_json(me->name, &rq, world, photo, photo >= 0 ? a->demo_worlds.names[photo] : NULL,
                        &reply, err, sizeof err)) {
    http_problem(r, 503, "overloaded", NULL, "generating the episode: %s", err);
    return;
  }
  http_reply_json(r, 200, reply);
}
