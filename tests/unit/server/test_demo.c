/* The demo endpoint's pure part (server/demo.c, server/demo_maze3d.c):
 * requests (episode and step) with their defaults and each kind of mistake
 * mapped to its status and slug; the model check (imagenav, maze3d with its
 * scenario and episode length from the metadata, models that fit neither);
 * and the maze3d play against independent references: the core's
 * maze3d_episode for the episode, maze3d_render_at at the true pose for the
 * continuation's frames, a turn and its opposite for "the simulator goes on
 * from the episode's own last state", prefixes for determinism; then the
 * JSON replies' shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "demo.h"
#include "img/base64.h"
#include "img/png.h"
#include "testlib.h"

static const char *MAZE_META =
    "{\"environment\": \"maze3d\", \"scenario\": \"rotate\", \"training\": {\"episode\": 80}}";

static int parse(const char *body, demo_request *rq, codec_error *e) {
  return demo_parse_request(body, strlen(body), rq, e);
}

static int parse_step(const char *body, long long max, demo_step_request *rq, codec_error *e) {
  return demo_parse_step_request(body, strlen(body), max, rq, e);
}

static void test_requests(void) {
  demo_request rq;
  codec_error e;
  CHECK(parse("{\"model\": \"m\"}", &rq, &e) == 0 && rq.steps == 0 && rq.seed == 1 && !rq.world_given &&
            rq.world == DEMO_WORLD_PROCEDURAL,
        "defaults: steps 0 (the simulator's), seed 1, no world given");
  CHECK(parse("{\"model\": \"m\", \"world\": \"procedural\", \"steps\": 9}", &rq, &e) == 0 && rq.world_given &&
            rq.steps == 9,
        "a world given is recorded");
  CHECK(parse("{\"model\": \"m\", \"photo\": null}", &rq, &e) == 0 && !rq.world_given, "photo null is no world");
  CHECK(parse("{\"model\": \"m\", \"steps\": 4097}", &rq, &e) == 422 && strcmp(e.slug, "too-many-frames") == 0 &&
            e.limit == DEMO_MAX_STEPS,
        "4097 steps: 422 with the limit");
  CHECK(parse("[1]", &rq, &e) == 400 && strcmp(e.slug, "invalid-request") == 0, "an array: 400");

  demo_step_request s;
  CHECK(parse_step("{\"model\": \"m\", \"seed\": 4, \"actions\": [\"turn_left\", \"forward\", \"none\"]}", 16, &s,
                   &e) == 0 &&
            s.n == 3 && s.first == 0 && s.actions[0] == MAZE3D_ACTION_TURN_LEFT &&
            s.actions[1] == MAZE3D_ACTION_FORWARD && s.actions[2] == MAZE3D_ACTION_NONE && s.ep.seed == 4 &&
            s.ep.steps == 0,
        "a step request: names to maze3d actions, first 0, steps by default");
  demo_step_request_free(&s);
  CHECK(s.actions == NULL && s.n == 0, "freed");
  CHECK(parse_step("{\"model\": \"m\", \"actions\": [\"turn_right\", \"turn_right\"], \"first\": 1}", 16, &s, &e) ==
                0 &&
            s.first == 1,
        "first 1 of 2");
  demo_step_request_free(&s);
  struct {
    const char *body;
    int status;
    const char *slug;
  } bad[] = {
      {"{", 400, "malformed-json"},
      {"{\"actions\": [\"forward\"]}", 400, "invalid-request"},
      {"{\"model\": \"m\"}", 400, "invalid-request"},
      {"{\"model\": \"m\", \"actions\": \"forward\"}", 400, "invalid-request"},
      {"{\"model\": \"m\", \"actions\": []}", 422, "too-many-actions"},
      {"{\"model\": \"m\", \"actions\": [1]}", 400, "invalid-request"},
      {"{\"model\": \"m\", \"actions\": [\"forward\", null]}", 400, "invalid-request"},
      {"{\"model\": \"m\", \"actions\": [\"forward\", \"jump\"]}", 422, "unknown-action"},
      {"{\"model\": \"m\", \"actions\": [\"Forward\"]}", 422, "unknown-action"},
      {"{\"model\": \"m\", \"actions\": [\"forward\"], \"first\": 1}", 400, "invalid-request"},
      {"{\"model\": \"m\", \"actions\": [\"forward\"], \"first\": -1}", 400, "invalid-request"},
      {"{\"model\": \"m\", \"actions\": [\"forward\"], \"first\": \"0\"}", 400, "invalid-request"},
      {"{\"model\": \"m\", \"actions\": [\"forward\"], \"steps\": 0}", 400, "invalid-request"},
      {"{\"model\": \"m\", \"actions\": [\"forward\"], \"steps\": 5000}", 422, "too-many-frames"},
      {"{\"model\": \"m\", \"actions\": [\"forward\"], \"seed\": -2}", 400, "invalid-request"},
      {"{\"model\": \"a b\", \"actions\": [\"forward\"]}", 400, "invalid-request"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = parse_step(bad[i].body, 16, &s, &e);
    CHECK(rc == bad[i].status && strcmp(e.slug, bad[i].slug) == 0 && s.actions == NULL && s.n == 0,
          "%s: %d %s (got %d %s: %s)", bad[i].body, bad[i].status, bad[i].slug, rc, rc ? e.slug : "-",
          rc ? e.detail : "");
  }
  char many[4096] = "{\"model\": \"m\", \"actions\": [";
  for (int i = 0; i < 17; i++) strcat(many, i ? ", \"forward\"" : "\"forward\"");
  strcat(many, "]}");
  CHECK(parse_step(many, 16, &s, &e) == 422 && strcmp(e.slug, "too-many-actions") == 0 && e.limit == 16,
        "17 actions over a limit of 16: 422 with the limit");
  printf("requests: episode defaults, step requests, %zu bad step requests\n", sizeof bad / sizeof *bad);
}

/* A model of the given frame size and action names, with metadata meta. */
static int make_model(gtmsm_model *m, int W, const char *const *names, int A, const char *meta) {
  char err[256];
  gtmsm_config c = gtmsm_default_config();
  c.H = c.W = W;
  c.A = A;
  for (int i = 0; i < A; i++) snprintf(c.action_names[i], sizeof c.action_names[i], "%s", names[i]);
  c.hidden = 8;
  c.Z = 2;
  c.gate_hidden = 4;
  c.prior_hidden = 4;
  if (gtmsm_model_init(m, &c, 1, err, sizeof err)) {
    fprintf(stderr, "model: %s\n", err);
    return -1;
  }
  snprintf(m->meta_json, sizeof m->meta_json, "%s", meta);
  return 0;
}

static const char *const MAZE_ACTIONS[] = {"forward",          "backward",  "strafe_left",
                                           "strafe_right",     "turn_left", "turn_right",
                                           "forward_turn_left", "forward_turn_right", "none"};
static const char *const NAV_ACTIONS[] = {"right", "left", "up", "down", "stay"};

static void test_check_model(void) {
  gtmsm_model m;
  demo_sim sim;
  codec_error e;
  demo_request rq;
  if (make_model(&m, 32, MAZE_ACTIONS, 9, MAZE_META)) {
    CHECK(0, "a maze3d model");
    return;
  }
  CHECK(demo_check_model(&m, &sim, &e) == 0 && sim.env == DEMO_ENV_MAZE3D && sim.scenario == MAZE3D_SCENARIO_ROTATE &&
            sim.W == 32 && sim.H == 32 && sim.default_steps == 80,
        "maze3d rotate, 32x32, 80 steps (%s)", e.detail);
  parse("{\"model\": \"m\"}", &rq, &e);
  CHECK(demo_apply_sim(&rq, &sim, &e) == 0 && rq.steps == 80, "the default steps come from the model");
  parse("{\"model\": \"m\", \"steps\": 12}", &rq, &e);
  CHECK(demo_apply_sim(&rq, &sim, &e) == 0 && rq.steps == 12, "given steps stay");
  parse("{\"model\": \"m\", \"world\": \"procedural\"}", &rq, &e);
  CHECK(demo_apply_sim(&rq, &sim, &e) == 400 && strcmp(e.slug, "invalid-request") == 0,
        "a world with a maze3d model: 400 (%s)", e.detail);
  struct {
    const char *meta;
    int rc, scenario, steps;
  } metas[] = {
      {"{\"environment\": \"maze3d\"}", 0, MAZE3D_SCENARIO_ROTATE, DEMO_MAZE3D_DEFAULT_STEPS},
      {"{\"environment\": \"maze3d\", \"training\": {\"scenario\": \"walk\", \"episode\": 300}}", 0,
       MAZE3D_SCENARIO_WALK, 300},
      {"{\"environment\": \"maze3d\", \"scenario\": \"multiroom\", \"training\": {\"episode\": 99999}}", 0,
       MAZE3D_SCENARIO_MULTIROOM, DEMO_MAZE3D_DEFAULT_STEPS},
      {"{\"environment\": \"maze3d\", \"scenario\": \"spin\"}", 422, 0, 0},
      {"{\"environment\": \"maze3d\", \"scenario\": 3}", 422, 0, 0},
  };
  for (size_t i = 0; i < sizeof metas / sizeof *metas; i++) {
    snprintf(m.meta_json, sizeof m.meta_json, "%s", metas[i].meta);
    int rc = demo_check_model(&m, &sim, &e);
    CHECK(rc == metas[i].rc && (rc || (sim.scenario == metas[i].scenario && sim.default_steps == metas[i].steps)) &&
              (!rc || strcmp(e.slug, "unsupported-environment") == 0),
          "%s: %d (got %d, scenario %d, steps %d)", metas[i].meta, metas[i].rc, rc, sim.scenario,
          sim.default_steps);
  }
  gtmsm_model_free(&m);

  /* maze3d metadata but imagenav's actions: refused, naming the first missing one */
  make_model(&m, 8, NAV_ACTIONS, 5, MAZE_META);
  CHECK(demo_check_model(&m, &sim, &e) == 422 && strstr(e.detail, "'forward'"),
        "maze3d without its actions: 422 (%s)", e.detail);
  snprintf(m.meta_json, sizeof m.meta_json, "{\"environment\": \"imagenav\"}");
  CHECK(demo_check_model(&m, &sim, &e) == 0 && sim.env == DEMO_ENV_IMAGENAV && sim.default_steps == DEMO_DEFAULT_STEPS,
        "imagenav: 256 steps by default");
  parse("{\"model\": \"m\", \"world\": \"photo\"}", &rq, &e);
  CHECK(demo_apply_sim(&rq, &sim, &e) == 0 && rq.steps == DEMO_DEFAULT_STEPS, "imagenav takes a world");
  snprintf(m.meta_json, sizeof m.meta_json, "{}");
  CHECK(demo_check_model(&m, &sim, &e) == 0 && sim.env == DEMO_ENV_IMAGENAV, "no environment recorded: imagenav");
  snprintf(m.meta_json, sizeof m.meta_json, "{\"environment\": \"atari\"}");
  CHECK(demo_check_model(&m, &sim, &e) == 422 && strstr(e.detail, "'atari'"), "another environment: 422");
  gtmsm_model_free(&m);
  printf("model check: maze3d scenarios and episode lengths, imagenav, %zu metadata cases\n",
         sizeof metas / sizeof *metas);
}

/* Field by field: the struct has padding. */
static int same_truth_list(const maze3d_truth *a, const maze3d_truth *b, int n) {
  for (int t = 0; t < n; t++)
    if (a[t].action != b[t].action || a[t].x != b[t].x || a[t].y != b[t].y || a[t].heading != b[t].heading ||
        a[t].vx != b[t].vx || a[t].vy != b[t].vy || a[t].d_forward != b[t].d_forward ||
        a[t].d_left != b[t].d_left || a[t].d_heading != b[t].d_heading || a[t].collided != b[t].collided ||
        a[t].room != b[t].room)
      return 0;
  return 1;
}

static demo_sim rotate_sim(void) {
  demo_sim s = {.env = DEMO_ENV_MAZE3D, .scenario = MAZE3D_SCENARIO_ROTATE, .W = 32, .H = 32,
                .default_steps = 80};
  return s;
}

static void test_play(void) {
  const demo_sim sim = rotate_sim();
  enum { T = 40, D = 32 * 32 * 3 };
  char err[256] = "";
  const uint64_t seed = 7;
  /* the episode against the core's maze3d_episode, rounded as gtmsm gen does */
  float *ref = malloc(sizeof(float) * T * D);
  uint8_t *ref8 = malloc((size_t)T * D), *got = malloc((size_t)T * D);
  int ref_a[T], got_a[T];
  maze3d_truth ref_t[T], got_t[T];
  maze3d_config cfg = demo_maze_config(&sim, seed);
  CHECK(cfg.layout == MAZE3D_LAYOUT_SINGLE_ROOM && cfg.W == 32 && cfg.seed == seed && !cfg.textures,
        "the config of a rotate demo");
  demo_map map;
  int rc = maze3d_episode(&cfg, sim.scenario, seed, T, 0, ref, ref_a, ref_t, err, sizeof err);
  CHECK(rc == 0, "maze3d_episode: %s", err);
  maze3d_frame_to_u8(ref8, ref, (size_t)T * D);
  rc = demo_maze_play(&sim, seed, T, NULL, 0, 0, got, got_a, got_t, &map, err, sizeof err);
  CHECK(rc == 0, "demo_maze_play: %s", err);
  CHECK(memcmp(got, ref8, (size_t)T * D) == 0, "the episode's frames are maze3d_episode's, byte for byte");
  CHECK(memcmp(got_a, ref_a, sizeof ref_a) == 0 && got_a[0] == MAZE3D_ACTION_NONE, "and its actions");
  CHECK(same_truth_list(got_t, ref_t, T), "and its truth (poses, velocities, displacements)");
  CHECK(map.rgb && map.cell_px == DEMO_MAP_CELL_PX && map.w == map.grid_w * map.cell_px &&
            map.h == map.grid_h * map.cell_px && map.grid_w >= 7,
        "a map of %dx%d cells at %d px", map.grid_w, map.grid_h, map.cell_px);
  demo_map_free(&map);
  CHECK(map.rgb == NULL, "the map freed");

  /* a continuation: its frames are the views at its true poses */
  enum { N = 6 };
  const int extra[N] = {MAZE3D_ACTION_TURN_LEFT, MAZE3D_ACTION_TURN_RIGHT, MAZE3D_ACTION_FORWARD,
                        MAZE3D_ACTION_FORWARD, MAZE3D_ACTION_STRAFE_LEFT, MAZE3D_ACTION_NONE};
  uint8_t *cont = malloc((size_t)N * D), *last = malloc(D);
  maze3d_truth ct[T + N];
  int ca[T + N];
  rc = demo_maze_play(&sim, seed, T, extra, N, T, cont, ca, ct, NULL, err, sizeof err);
  CHECK(rc == 0, "a continuation: %s", err);
  CHECK(memcmp(ca + T, extra, sizeof extra) == 0 && memcmp(ca, ref_a, sizeof ref_a) == 0,
        "the episode's actions, then the extra ones");
  maze3d *m = NULL;
  rc = maze3d_new(&m, &cfg, err, sizeof err);
  float *frame = malloc(sizeof(float) * D);
  uint8_t *view = malloc(D);
  int at_pose = 0;
  for (int i = 0; m && i < N; i++) {
    maze3d_pose p = {ct[T + i].x, ct[T + i].y, ct[T + i].heading};
    maze3d_render_at(m, &p, frame);
    maze3d_frame_to_u8(view, frame, D);
    at_pose += memcmp(view, cont + (size_t)i * D, D) == 0;
  }
  CHECK(at_pose == N, "%d of %d continuation frames are maze3d_render_at at their true pose", at_pose, N);
  maze3d_free(m);
  /* the agent of rotate stands still: a turn and its opposite come back to the last view */
  CHECK(ct[T + 1].x == ref_t[T - 1].x && ct[T + 1].y == ref_t[T - 1].y &&
            fabs(ct[T + 1].heading - ref_t[T - 1].heading) < 1e-12,
        "turn left then right: the episode's last pose again");
  CHECK(memcmp(cont + D, ref8 + (size_t)(T - 1) * D, D) == 0, "and its last frame");
  CHECK(ct[T + 3].d_forward > 0 && ct[T + 3].vx * ct[T + 3].vx + ct[T + 3].vy * ct[T + 3].vy > 0,
        "forward moves (velocity carries over between continuation steps)");
  /* only the last frame, and prefixes: the same */
  rc = demo_maze_play(&sim, seed, T, extra, N, T + N - 1, last, NULL, NULL, NULL, err, sizeof err);
  CHECK(rc == 0 && memcmp(last, cont + (size_t)(N - 1) * D, D) == 0, "first = the last step: the same last frame");
  maze3d_truth pt[T + 3];
  rc = demo_maze_play(&sim, seed, T, extra, 3, 0, NULL, NULL, pt, NULL, err, sizeof err);
  CHECK(rc == 0 && same_truth_list(pt, ct, T + 3), "a shorter continuation is a prefix of a longer one");

  /* bad arguments */
  const int bad_action[1] = {MAZE3D_ACTION_NONE + 1};
  CHECK(demo_maze_play(&sim, seed, T, bad_action, 1, 0, NULL, NULL, NULL, NULL, err, sizeof err) == GTMSM_EINVAL,
        "an action out of range: EINVAL (%s)", err);
  CHECK(demo_maze_play(&sim, seed, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, err, sizeof err) == GTMSM_EINVAL,
        "0 steps: EINVAL");
  CHECK(demo_maze_play(&sim, seed, T, extra, N, T + N + 1, NULL, NULL, NULL, NULL, err, sizeof err) == GTMSM_EINVAL,
        "first past the end: EINVAL");
  demo_sim big = sim;
  big.W = 300;
  CHECK(demo_maze_play(&big, seed, T, NULL, 0, 0, NULL, NULL, NULL, &map, err, sizeof err) == GTMSM_EINVAL &&
            map.rgb == NULL,
        "a frame the maze cannot render: EINVAL, nothing left allocated (%s)", err);
  free(ref);
  free(ref8);
  free(got);
  free(cont);
  free(last);
  free(frame);
  free(view);
  printf("play: episode = maze3d_episode, continuation = render_at at the true poses\n");
}

/* Decodes the base64 PNG s into its size; 0 on success. */
static int png_dims(const char *s, int *W, int *H) {
  uint8_t *bin = NULL, *pix = NULL;
  size_t n = 0;
  int C = 0;
  int rc = base64_decode(&bin, &n, s, strlen(s), NULL, 0);
  if (!rc) rc = pngio_decode(&pix, H, W, &C, bin, n, 0, 0, NULL, 0);
  free(bin);
  free(pix);
  return rc || C != 3;
}

static void test_replies(void) {
  const demo_sim sim = rotate_sim();
  char err[256] = "";
  demo_request rq;
  codec_error e;
  parse("{\"model\": \"m\", \"seed\": 2, \"steps\": 12}", &rq, &e);
  json_t *j = NULL;
  CHECK(demo_maze_episode_json("m", &sim, &rq, &j, err, sizeof err) == 0 && j, "an episode reply: %s", err);
  const json_t *obs = json_object_get(j, "observations"), *map = json_object_get(j, "map");
  CHECK(json_array_size(obs) == 12 && json_integer_value(json_object_get(j, "steps")) == 12 &&
            strcmp(json_string_value(json_object_get(j, "environment")), "maze3d") == 0 &&
            strcmp(json_string_value(json_object_get(j, "scenario")), "rotate") == 0,
        "12 observations of a maze3d rotate episode");
  const json_t *o0 = json_array_get(obs, 0), *o5 = json_array_get(obs, 5);
  int W = 0, H = 0;
  CHECK(strcmp(json_string_value(json_object_get(o0, "action")), "none") == 0 &&
            json_integer_value(json_object_get(o5, "t")) == 5 &&
            json_is_real(json_object_get(json_object_get(o5, "truth"), "heading")),
        "step 0 is the no-op; t and the pose per step");
  CHECK(png_dims(json_string_value(json_object_get(o5, "frame")), &W, &H) == 0 && W == 32 && H == 32,
        "frames are 32x32 RGB PNGs (%dx%d)", W, H);
  CHECK(png_dims(json_string_value(json_object_get(map, "png")), &W, &H) == 0 &&
            W == json_integer_value(json_object_get(map, "width")) &&
            H == json_integer_value(json_object_get(map, "height")),
        "the map is a PNG of its stated size (%dx%d)", W, H);
  const json_t *start = json_object_get(j, "start");
  CHECK(json_real_value(json_object_get(start, "x")) ==
            json_real_value(json_object_get(json_object_get(o0, "truth"), "x")),
        "start is step 0's pose");

  demo_step_request s;
  const char *body = "{\"model\": \"m\", \"seed\": 2, \"steps\": 12, \"actions\": [\"turn_left\", \"turn_left\", "
                     "\"forward\"], \"first\": 1}";
  CHECK(parse_step(body, 16, &s, &e) == 0, "a step request");
  json_t *k = NULL;
  CHECK(demo_maze_step_json("m", &sim, &s, &k, err, sizeof err) == 0 && k, "a step reply: %s", err);
  const json_t *so = json_object_get(k, "observations");
  CHECK(json_array_size(so) == 2 && json_integer_value(json_object_get(json_array_get(so, 0), "t")) == 13 &&
            json_integer_value(json_object_get(json_array_get(so, 1), "t")) == 14 &&
            strcmp(json_string_value(json_object_get(json_array_get(so, 1), "action")), "forward") == 0 &&
            json_integer_value(json_object_get(k, "first")) == 1 &&
            json_integer_value(json_object_get(k, "actions")) == 3,
        "actions 1..2 come back as steps 13 and 14");
  json_t *k2 = NULL;
  demo_maze_step_json("m", &sim, &s, &k2, err, sizeof err);
  CHECK(k2 && json_equal(k, k2), "the same request, the same reply");
  json_decref(k);
  json_decref(k2);
  demo_step_request_free(&s);
  json_decref(j);
  printf("replies: episode and step JSON\n");
}

int main(void) {
  test_requests();
  test_check_model();
  test_play();
  test_replies();
  return test_finish("test_demo");
}
