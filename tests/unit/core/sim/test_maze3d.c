/* Tests for core/sim/maze3d: determinism by seed, the speed cap, walls and
 * pillars never penetrated, heading periodicity of frames, golden frame
 * hashes, the explorers (never colliding; the rotating agent's period), and
 * that the displacement truths integrate to the pose change.
 *
 * `test_maze3d --dump DIR` also writes PPM pictures (frame strips and maps) to
 * DIR for looking at the renderer by eye. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "nn/rng.h"
#include "sim/maze3d.h"
#include "testlib.h"

#define TWO_PI 6.283185307179586

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

static maze3d *make(int layout, uint64_t seed, int W, int H) {
  maze3d_config c = maze3d_config_default();
  c.layout = layout;
  c.seed = seed;
  c.W = W;
  c.H = H;
  maze3d *m = NULL;
  char err[256] = "";
  int rc = maze3d_new(&m, &c, err, sizeof err);
  CHECK(rc == 0 && m, "maze3d_new(seed %llu) failed: %s", (unsigned long long)seed, err);
  return m;
}

static uint64_t frame_hash(maze3d *m, const maze3d_pose *p) {
  const maze3d_config *c = maze3d_get_config(m);
  size_t n = (size_t)c->W * c->H * 3;
  float *f = malloc(n * sizeof(float));
  uint8_t *u = malloc(n);
  if (p) maze3d_render_at(m, p, f);
  else maze3d_render(m, f);
  maze3d_frame_to_u8(u, f, n);
  uint64_t h = fnv1a64(u, n);
  free(f);
  free(u);
  return h;
}

/* Independent check that the agent's circle overlaps no wall cell or pillar. */
static double penetration(const maze3d *m, double x, double y) {
  double r = maze3d_get_config(m)->physics.radius, worst = 0.0;
  for (int iy = (int)floor(y) - 1; iy <= (int)floor(y) + 1; iy++)
    for (int ix = (int)floor(x) - 1; ix <= (int)floor(x) + 1; ix++) {
      if (!maze3d_is_wall(m, ix, iy)) continue;
      double qx = fmin(fmax(x, ix), ix + 1), qy = fmin(fmax(y, iy), iy + 1);
      double pen = r - hypot(x - qx, y - qy);
      if (pen > worst) worst = pen;
    }
  for (int i = 0; i < maze3d_pillar_count(m); i++) {
    double px, py, pr;
    maze3d_pillar_get(m, i, &px, &py, &pr);
    double pen = r + pr - hypot(x - px, y - py);
    if (pen > worst) worst = pen;
  }
  return worst;
}

static void test_names(void) {
  static const char *want[] = {"forward",    "backward",          "strafe_left",
                               "strafe_right", "turn_left",       "turn_right",
                               "forward_turn_left", "forward_turn_right"};
  CHECK(maze3d_action_count() == 8, "action count %d", maze3d_action_count());
  for (int i = 0; i < 8; i++) {
    CHECK(strcmp(maze3d_action_name(i), want[i]) == 0, "action %d is %s", i, maze3d_action_name(i));
    CHECK(maze3d_action_from_name(want[i]) == i, "from_name(%s)", want[i]);
  }
  CHECK(maze3d_action_from_name("none") == MAZE3D_ACTION_NONE, "none");
  CHECK(maze3d_action_from_name("jump") == GTMSM_EINVAL, "unknown action name");
  CHECK(maze3d_action_name(9) == NULL, "name out of range");
  CHECK(maze3d_scenario_from_name("multiroom") == MAZE3D_SCENARIO_MULTIROOM, "scenario name");
}

static void test_config_errors(void) {
  maze3d_config c = maze3d_config_default();
  maze3d *m = NULL;
  char err[256] = "";
  c.W = 0;
  CHECK(maze3d_new(&m, &c, err, sizeof err) == GTMSM_EINVAL && !m && err[0], "W = 0 accepted");
  c = maze3d_config_default();
  c.layout = MAZE3D_LAYOUT_MULTIROOM;
  c.rooms_max = 12;
  CHECK(maze3d_new(&m, &c, err, sizeof err) == GTMSM_EINVAL && !m, "12 rooms accepted");
  c = maze3d_config_default();
  c.physics.max_speed = 100.0;
  CHECK(maze3d_new(&m, &c, err, sizeof err) == GTMSM_EINVAL && !m, "tunnelling speed accepted");
  m = make(MAZE3D_LAYOUT_SINGLE_ROOM, 3, 32, 32);
  if (!m) return;
  maze3d_pose in_wall = {0.5, 0.5, 0.0};
  CHECK(maze3d_reset(m, &in_wall, NULL, err, sizeof err) == GTMSM_EINVAL, "reset into a wall");
  maze3d_pose far = {1e300, 1.5, 0.0}, nan_pose = {NAN, 1.5, 0.0};
  CHECK(maze3d_reset(m, &far, NULL, err, sizeof err) == GTMSM_EINVAL, "reset far outside");
  CHECK(maze3d_reset(m, &nan_pose, NULL, err, sizeof err) == GTMSM_EINVAL, "reset to NaN");
  CHECK(maze3d_step(m, 9, NULL) == GTMSM_EINVAL, "action 9 accepted");
  CHECK(maze3d_step(m, -1, NULL) == GTMSM_EINVAL, "action -1 accepted");
  maze3d_free(m);
}

/* Layout facts: a border of walls, room sizes in range, every free cell
 * reachable, pillars clear of walls. */
static void test_layout(void) {
  for (int layout = 0; layout < 2; layout++) {
    for (uint64_t seed = 1; seed <= 30; seed++) {
      maze3d *m = make(layout, seed, 8, 8);
      if (!m) return;
      int gw = maze3d_grid_width(m), gh = maze3d_grid_height(m), border_ok = 1, n_free = 0;
      for (int x = 0; x < gw; x++) border_ok &= maze3d_is_wall(m, x, 0) && maze3d_is_wall(m, x, gh - 1);
      for (int y = 0; y < gh; y++) border_ok &= maze3d_is_wall(m, 0, y) && maze3d_is_wall(m, gw - 1, y);
      CHECK(border_ok, "layout %d seed %llu: open border", layout, (unsigned long long)seed);
      int nr = maze3d_room_count(m);
      CHECK(layout == 0 ? nr == 1 : (nr >= 2 && nr <= 4), "rooms %d", nr);
      if (layout == 0) CHECK(gw - 2 >= 5 && gw - 2 <= 9 && gh - 2 >= 5 && gh - 2 <= 9,
                             "room %dx%d", gw - 2, gh - 2);
      /* flood fill over free cells */
      char *seen = calloc((size_t)gw * gh, 1);
      int *q = malloc(sizeof(int) * (size_t)gw * gh), head = 0, tail = 0, rooms_seen = 0;
      for (int i = 0; i < gw * gh; i++) n_free += !maze3d_is_wall(m, i % gw, i / gw);
      for (int i = 0; i < gw * gh && !tail; i++)
        if (!maze3d_is_wall(m, i % gw, i / gw)) q[tail++] = i, seen[i] = 1;
      while (head < tail) {
        int c = q[head++], cx = c % gw, cy = c / gw;
        int room = maze3d_room_at(m, cx + 0.5, cy + 0.5);
        if (room >= 0) rooms_seen |= 1 << room;
        int nb[4] = {c + 1, c - 1, c + gw, c - gw};
        for (int k = 0; k < 4; k++)
          if (!seen[nb[k]] && !maze3d_is_wall(m, nb[k] % gw, nb[k] / gw))
            seen[nb[k]] = 1, q[tail++] = nb[k];
      }
      CHECK(tail == n_free, "layout %d seed %llu: %d of %d free cells connected", layout,
            (unsigned long long)seed, tail, n_free);
      CHECK(rooms_seen == (1 << nr) - 1, "not all rooms reachable");
      CHECK(maze3d_pillar_count(m) >= nr, "seed %llu: %d pillars for %d rooms",
            (unsigned long long)seed, maze3d_pillar_count(m), nr);
      for (int i = 0; i < maze3d_pillar_count(m); i++) {
        double px, py, pr;
        maze3d_pillar_get(m, i, &px, &py, &pr);
        int walls = 0;
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) walls += maze3d_is_wall(m, (int)px + dx, (int)py + dy);
        CHECK(walls == 0, "pillar %d at (%g, %g) touches a wall cell", i, px, py);
        CHECK(pr >= 0.15 && pr <= 0.3, "pillar radius %g", pr);
      }
      free(seen);
      free(q);
      maze3d_free(m);
    }
  }
}

/* Two runs: explorer for 150 steps then random actions for 150; frames hashed. */
static void run_episode(int layout, uint64_t seed, maze3d_truth *truths, uint64_t *hashes) {
  maze3d *m = make(layout, seed, 32, 32);
  if (!m) return;
  maze3d_explorer ex;
  char err[256];
  int rc = maze3d_explorer_init(&ex, m, layout ? MAZE3D_SCENARIO_MULTIROOM : MAZE3D_SCENARIO_WALK,
                                seed * 7 + 1, err, sizeof err);
  CHECK(rc == 0, "explorer_init: %s", err);
  rng_t r;
  rng_init(&r, seed, 5);
  for (int t = 0; t < 300; t++) {
    int a = t < 150 ? maze3d_explorer_next(&ex) : (int)rng_below(&r, 8);
    maze3d_step(m, a, &truths[t]);
    hashes[t] = frame_hash(m, NULL);
  }
  maze3d_explorer_free(&ex);
  maze3d_free(m);
}

static void test_determinism(void) {
  static maze3d_truth ta[300], tb[300];
  static uint64_t ha[300], hb[300];
  for (int layout = 0; layout < 2; layout++) {
    memset(ta, 0, sizeof ta);
    memset(tb, 0, sizeof tb);
    run_episode(layout, 11, ta, ha);
    run_episode(layout, 11, tb, hb);
    CHECK(memcmp(ta, tb, sizeof ta) == 0, "layout %d: truths differ between identical runs", layout);
    CHECK(memcmp(ha, hb, sizeof ha) == 0, "layout %d: frames differ between identical runs", layout);
    run_episode(layout, 12, tb, hb);
    CHECK(memcmp(ha, hb, sizeof ha) != 0, "layout %d: seeds 11 and 12 give the same frames", layout);
  }
  /* Identical layouts from one seed, different from another seed. */
  maze3d *a = make(MAZE3D_LAYOUT_MULTIROOM, 5, 32, 32), *b = make(MAZE3D_LAYOUT_MULTIROOM, 5, 32, 32);
  maze3d *c = make(MAZE3D_LAYOUT_MULTIROOM, 6, 32, 32);
  if (!a || !b || !c) return;
  int same = maze3d_grid_width(a) == maze3d_grid_width(b) && maze3d_grid_height(a) == maze3d_grid_height(b);
  for (int y = 0; same && y < maze3d_grid_height(a); y++)
    for (int x = 0; x < maze3d_grid_width(a); x++)
      same &= maze3d_is_wall(a, x, y) == maze3d_is_wall(b, x, y);
  CHECK(same, "same seed, different grids");
  int differ = maze3d_grid_width(a) != maze3d_grid_width(c) || maze3d_grid_height(a) != maze3d_grid_height(c);
  for (int y = 0; !differ && y < maze3d_grid_height(a); y++)
    for (int x = 0; x < maze3d_grid_width(a); x++)
      differ |= maze3d_is_wall(a, x, y) != maze3d_is_wall(c, x, y);
  CHECK(differ, "seeds 5 and 6 give the same grid");
  maze3d_free(a);
  maze3d_free(b);
  maze3d_free(c);
}

/* Random actions held for Poisson-distributed runs (as in the paper's image
 * navigation data), long enough to ram walls, corners and pillars. */
static void test_speed_and_walls(void) {
  long steps = 0, collisions = 0;
  double max_speed_seen = 0.0, worst_pen = 0.0;
  for (int layout = 0; layout < 2; layout++) {
    for (uint64_t seed = 1; seed <= 8; seed++) {
      maze3d *m = make(layout, seed, 8, 8);
      if (!m) return;
      double vmax = maze3d_get_config(m)->physics.max_speed;
      rng_t r;
      rng_init(&r, seed, 77);
      maze3d_pose p;
      CHECK(maze3d_sample_pose(m, &r, 0.0, &p) == 0, "sample_pose");
      maze3d_reset(m, &p, NULL, NULL, 0);
      int a = 0, left = 0;
      for (int t = 0; t < 4000; t++) {
        if (left-- <= 0) {
          a = (int)rng_below(&r, 8);
          left = (int)rng_poisson(&r, 6.0);
        }
        maze3d_truth tr;
        maze3d_step(m, a, &tr);
        steps++;
        collisions += tr.collided;
        double v = hypot(tr.vx, tr.vy);
        if (v > max_speed_seen) max_speed_seen = v;
        double pen = penetration(m, tr.x, tr.y);
        if (pen > worst_pen) worst_pen = pen;
        CHECK(v <= vmax * (1 + 1e-12), "speed %.17g above %.17g", v, vmax);
        CHECK(pen <= 0.0, "layout %d seed %llu step %d: penetration %g at (%g, %g)", layout,
              (unsigned long long)seed, t, pen, tr.x, tr.y);
        if (pen > 0.0) break;
      }
      maze3d_free(m);
    }
  }
  printf("random actions: %ld steps, %ld with collisions, max speed %.6f, worst penetration %g\n",
         steps, collisions, max_speed_seen, worst_pen);
  CHECK(collisions > 100, "random walk hardly ever touched a wall (%ld)", collisions);
  CHECK(max_speed_seen > 0.99 * maze3d_physics_default().max_speed, "never reached top speed");
}

/* Scripted pushes: straight into a wall, into a corner, along a wall, into a pillar. */
static void test_pushes(void) {
  maze3d *m = make(MAZE3D_LAYOUT_SINGLE_ROOM, 21, 8, 8);
  if (!m) return;
  double r = maze3d_get_config(m)->physics.radius;
  maze3d_truth tr;
  /* facing the left wall (-x) from the first interior column, lower row */
  maze3d_pose p = {1.5, 1.5, TWO_PI / 2};
  CHECK(maze3d_reset(m, &p, NULL, NULL, 0) == 0, "reset");
  int hit = 0;
  for (int t = 0; t < 60; t++) {
    maze3d_step(m, MAZE3D_ACTION_FORWARD, &tr);
    hit |= tr.collided;
    CHECK(penetration(m, tr.x, tr.y) <= 0.0, "pushing -x: inside the wall at (%g, %g)", tr.x, tr.y);
  }
  CHECK(hit, "pushing into the wall never reported a collision");
  CHECK_NEAR(tr.x, 1.0 + r, 1e-6, 0, "x against the left wall");
  CHECK(fabs(tr.vx) < 1e-9, "velocity into the wall remains: %g", tr.vx);
  /* strafe right (heading pi: right is +y) then strafe left into the corner (-y) */
  for (int t = 0; t < 60; t++) {
    maze3d_step(m, MAZE3D_ACTION_STRAFE_LEFT, &tr);
    CHECK(penetration(m, tr.x, tr.y) <= 0.0, "corner: inside the wall at (%g, %g)", tr.x, tr.y);
  }
  CHECK_NEAR(tr.y, 1.0 + r, 1e-6, 0, "y against the bottom wall");
  /* sliding: heading slightly into the top-right diagonal along the bottom wall */
  p = (maze3d_pose){1.5, 1.0 + r + 0.01, -0.3};
  CHECK(maze3d_reset(m, &p, NULL, NULL, 0) == 0, "reset for slide");
  double x0 = p.x;
  for (int t = 0; t < 10; t++) maze3d_step(m, MAZE3D_ACTION_FORWARD, &tr);
  CHECK(tr.x > x0 + 0.5, "did not slide along the wall (x %g -> %g)", x0, tr.x);
  CHECK(penetration(m, tr.x, tr.y) <= 0.0, "slide: inside the wall");
  /* into each pillar from the west, and from all around */
  for (int i = 0; i < maze3d_pillar_count(m); i++) {
    double px, py, pr;
    maze3d_pillar_get(m, i, &px, &py, &pr);
    for (int k = 0; k < 8; k++) {
      double ang = k * TWO_PI / 8;
      p = (maze3d_pose){px + 0.9 * cos(ang), py + 0.9 * sin(ang), ang + TWO_PI / 2};
      if (maze3d_reset(m, &p, NULL, NULL, 0) != 0) continue;
      hit = 0;
      for (int t = 0; t < 30; t++) {
        maze3d_step(m, MAZE3D_ACTION_FORWARD, &tr);
        hit |= tr.collided;
        CHECK(penetration(m, tr.x, tr.y) <= 0.0, "pillar %d: inside at (%g, %g)", i, tr.x, tr.y);
      }
      CHECK(hit, "pillar %d direction %d: no collision", i, k);
    }
  }
  maze3d_free(m);
}

static void test_heading_period(void) {
  double hs[] = {0.0, 0.3, 1.0, 1.5707963267948966, 2.2, 3.141592653589793, 4.0, 5.9, 6.28, -0.7, 100.25};
  for (int layout = 0; layout < 2; layout++) {
    maze3d *m = make(layout, 4, 32, 32);
    if (!m) return;
    maze3d_pose base = maze3d_get_pose(m);
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
      maze3d_pose p = base, q = base, s = base;
      p.heading = hs[i];
      q.heading = hs[i] + TWO_PI;
      s.heading = hs[i] - 2 * TWO_PI;
      uint64_t a = frame_hash(m, &p), b = frame_hash(m, &q), c = frame_hash(m, &s);
      CHECK(a == b && a == c, "layout %d heading %g: frames at h, h + 2pi, h - 4pi differ", layout, hs[i]);
      double n = maze3d_heading_normalize(hs[i]);
      CHECK(n >= 0.0 && n < TWO_PI, "normalize(%g) = %g", hs[i], n);
    }
    maze3d_pose p = base, q = base;
    q.heading = 0.5;
    CHECK(frame_hash(m, &p) != frame_hash(m, &q), "heading has no effect on the frame");
    maze3d_free(m);
  }
  CHECK(maze3d_heading_normalize(-1e-300) < TWO_PI, "normalize of a tiny negative");
  CHECK(maze3d_heading_normalize(TWO_PI) == 0.0, "normalize(2pi)");
}

/* Golden hashes of rendered frames (FNV-1a 64 of the uint8 frame). They pin
 * the renderer's exact output: any deliberate change to the renderer,
 * textures or layout generation changes them, and they must then be
 * regenerated deliberately (run this test, copy the "got" values after
 * looking at the new frames with --dump). */
static void test_golden(void) {
  struct {
    int layout, W;
    uint64_t seed;
    double heading; /* position: maze3d_sample_pose from rng (seed, 1) */
    uint64_t hash;
  } g[] = {
      {0, 32, 1, 0.0, 0x56802f29caed34b3ULL},
      {0, 32, 2, 2.0, 0x4ca18a7cfedc1754ULL},
      {0, 64, 3, 4.0, 0x0d8817ec35daaaffULL},
      {1, 32, 4, 1.0, 0x18d7b74ea87ae2bfULL},
      {1, 64, 5, 5.5, 0x12ef7e139212fbdeULL},
  };
  for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
    maze3d *m = make(g[i].layout, g[i].seed, g[i].W, g[i].W);
    if (!m) return;
    rng_t r;
    rng_init(&r, g[i].seed, 1);
    maze3d_pose p;
    CHECK(maze3d_sample_pose(m, &r, 0.2, &p) == 0, "sample_pose");
    p.heading = g[i].heading;
    uint64_t h = frame_hash(m, &p);
    CHECK(h == g[i].hash, "golden frame %zu: got 0x%016llxULL expected 0x%016llxULL", i,
          (unsigned long long)h, (unsigned long long)g[i].hash);
    maze3d_free(m);
  }
}

static void test_explorer_no_collision(void) {
  for (int sc = MAZE3D_SCENARIO_WALK; sc <= MAZE3D_SCENARIO_MULTIROOM; sc++) {
    long collisions = 0, steps = 0;
    double path_len = 0.0;
    int multi_visit = 0;
    for (uint64_t ep = 0; ep < 20; ep++) {
      maze3d_config c = maze3d_config_default();
      maze3d_config_for_scenario(&c, sc);
      c.seed = 1000 + ep;
      c.W = c.H = 8;
      maze3d *m = NULL;
      maze3d_explorer ex;
      char err[256];
      if (maze3d_new(&m, &c, err, sizeof err) != 0) {
        CHECK(0, "maze3d_new: %s", err);
        return;
      }
      CHECK(maze3d_explorer_init(&ex, m, sc, ep, err, sizeof err) == 0, "explorer: %s", err);
      int rooms = 0;
      double vmax = 0;
      for (int t = 0; t < 300; t++) {
        maze3d_truth tr;
        int a = maze3d_explorer_next(&ex);
        CHECK(a >= 0 && a < 8, "explorer action %d", a);
        maze3d_step(m, a, &tr);
        collisions += tr.collided;
        steps++;
        path_len += hypot(tr.d_forward, tr.d_left);
        if (tr.room >= 0) rooms |= 1 << tr.room;
        if (hypot(tr.vx, tr.vy) > vmax) vmax = hypot(tr.vx, tr.vy);
        CHECK(!tr.collided, "%s episode %llu step %d: collision at (%.3f, %.3f) action %s",
              maze3d_scenario_name(sc), (unsigned long long)ep, t, tr.x, tr.y,
              maze3d_action_name(a));
      }
      int nvis = 0;
      for (int k = 0; k < 9; k++) nvis += (rooms >> k) & 1;
      multi_visit += nvis >= 2;
      maze3d_explorer_free(&ex);
      maze3d_free(m);
    }
    printf("explorer %s: %ld steps, %ld collisions, mean path %.1f units per episode, "
           "%d/20 episodes visit >= 2 rooms\n",
           maze3d_scenario_name(sc), steps, collisions, path_len / 20, multi_visit);
    CHECK(collisions == 0, "%s explorer collided %ld times", maze3d_scenario_name(sc), collisions);
    CHECK(path_len / 20 > 20.0, "%s explorer barely moves (%.1f units per 300 steps)",
          maze3d_scenario_name(sc), path_len / 20);
    if (sc == MAZE3D_SCENARIO_MULTIROOM)
      CHECK(multi_visit >= 15, "multiroom explorer stays in one room (%d/20)", multi_visit);
  }
}

static void test_rotate(void) {
  for (uint64_t ep = 0; ep < 5; ep++) {
    maze3d *m = make(ep & 1, 40 + ep, 32, 32);
    if (!m) return;
    maze3d_explorer ex;
    char err[256];
    CHECK(maze3d_explorer_init(&ex, m, MAZE3D_SCENARIO_ROTATE, ep, err, sizeof err) == 0, "%s", err);
    maze3d_pose p0 = maze3d_get_pose(m);
    double heading[81];
    uint64_t hash[81];
    heading[0] = p0.heading;
    hash[0] = frame_hash(m, NULL);
    int a0 = maze3d_explorer_next(&ex);
    CHECK(a0 == MAZE3D_ACTION_TURN_LEFT || a0 == MAZE3D_ACTION_TURN_RIGHT, "rotate action %d", a0);
    for (int t = 1; t <= 80; t++) {
      int a = maze3d_explorer_next(&ex);
      CHECK(a == a0, "rotate changed action at %d", t);
      maze3d_truth tr;
      maze3d_step(m, a, &tr);
      CHECK(tr.x == p0.x && tr.y == p0.y, "rotating agent moved");
      CHECK(!tr.collided, "rotating agent collided");
      heading[t] = tr.heading;
      hash[t] = frame_hash(m, NULL);
    }
    for (int t = 0; t + 40 <= 80; t++) {
      double d = fabs(heading[t + 40] - heading[t]);
      d = fmin(d, TWO_PI - d);
      CHECK(d < 1e-4, "heading at %d and %d differ by %g", t, t + 40, d);
      CHECK(hash[t] == hash[t + 40], "ep %llu: frames at %d and %d differ",
            (unsigned long long)ep, t, t + 40);
    }
    CHECK(hash[0] != hash[10], "a quarter turn did not change the frame");
    maze3d_explorer_free(&ex);
    maze3d_free(m);
  }
}

/* Sum over steps of R(h_{t-1}) (d_forward, d_left) equals the position change;
 * the heading changes add up modulo 2 pi. */
static void test_displacement(void) {
  for (int layout = 0; layout < 2; layout++) {
    maze3d *m = make(layout, 31, 8, 8);
    if (!m) return;
    maze3d_explorer ex;
    char err[256];
    CHECK(maze3d_explorer_init(&ex, m, layout ? MAZE3D_SCENARIO_MULTIROOM : MAZE3D_SCENARIO_WALK,
                               3, err, sizeof err) == 0, "%s", err);
    rng_t r;
    rng_init(&r, 31, 9);
    maze3d_pose p0 = maze3d_get_pose(m);
    double x = p0.x, y = p0.y, h = p0.heading, hsum = p0.heading, worst = 0;
    for (int t = 0; t < 600; t++) {
      int a = t % 200 < 120 ? maze3d_explorer_next(&ex) : (int)rng_below(&r, 9);
      maze3d_truth tr;
      maze3d_step(m, a, &tr);
      x += cos(h) * tr.d_forward - sin(h) * tr.d_left;
      y += sin(h) * tr.d_forward + cos(h) * tr.d_left;
      hsum += tr.d_heading;
      h = tr.heading;
      double e = hypot(x - tr.x, y - tr.y);
      if (e > worst) worst = e;
      double dh = fabs(maze3d_heading_normalize(hsum) - tr.heading);
      dh = fmin(dh, TWO_PI - dh);
      CHECK(dh < 1e-9, "step %d: heading sum off by %g", t, dh);
    }
    printf("displacement integration (layout %d): worst position error %.3g\n", layout, worst);
    CHECK(worst < 1e-9, "displacements do not integrate to the position (%g)", worst);
    maze3d_explorer_free(&ex);
    maze3d_free(m);
  }
}

static void test_frame_range(void) {
  maze3d *m = make(MAZE3D_LAYOUT_MULTIROOM, 8, 64, 48);
  if (!m) return;
  float *f = malloc(64 * 48 * 3 * sizeof(float));
  maze3d_render(m, f);
  float lo = 1, hi = 0;
  for (int i = 0; i < 64 * 48 * 3; i++) {
    if (f[i] < lo) lo = f[i];
    if (f[i] > hi) hi = f[i];
  }
  CHECK(lo >= 0.0f && hi <= 1.0f && hi - lo > 0.2f, "frame range [%g, %g]", lo, hi);
  free(f);
  maze3d_free(m);
}

/* ---- --dump: pictures for the eye ---- */

static void write_ppm(const char *path, const uint8_t *rgb, int w, int h) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "cannot write %s\n", path);
    return;
  }
  fprintf(f, "P6\n%d %d\n255\n", w, h);
  fwrite(rgb, 1, (size_t)w * h * 3, f);
  fclose(f);
}

/* A strip of n frames (H, W, 3) scaled up by `zoom`, 2 px apart. */
static void strip_put(uint8_t *strip, int sw, int slot, const uint8_t *frame, int W, int H, int zoom) {
  for (int y = 0; y < H * zoom; y++)
    for (int x = 0; x < W * zoom; x++)
      memcpy(strip + ((size_t)y * sw + slot * (W * zoom + 2) + x) * 3,
             frame + ((size_t)(y / zoom) * W + x / zoom) * 3, 3);
}

static void dump(const char *dir) {
  char path[512];
  for (int sc = 0; sc <= 2; sc++) {
    for (int res = 32; res <= 64; res *= 2) {
      maze3d_config c = maze3d_config_default();
      maze3d_config_for_scenario(&c, sc);
      c.seed = 7;
      c.W = c.H = res;
      maze3d *m = NULL;
      maze3d_explorer ex;
      if (maze3d_new(&m, &c, NULL, 0) || maze3d_explorer_init(&ex, m, sc, 2, NULL, 0)) return;
      int T = sc == 0 ? 80 : 300, n = 10, zoom = 256 / res;
      int sw = n * (res * zoom + 2), sh = res * zoom;
      uint8_t *strip = calloc((size_t)sw * sh * 3, 1), *u = malloc((size_t)res * res * 3);
      float *f = malloc(sizeof(float) * res * res * 3), *traj = malloc(sizeof(float) * 2 * (T + 1));
      maze3d_pose p = maze3d_get_pose(m);
      traj[0] = (float)p.x, traj[1] = (float)p.y;
      for (int t = 0; t <= T; t++) {
        if (t > 0) {
          maze3d_truth tr;
          maze3d_step(m, maze3d_explorer_next(&ex), &tr);
          traj[2 * t] = (float)tr.x, traj[2 * t + 1] = (float)tr.y;
        }
        if (t % (T / n) == 0 && t / (T / n) < n) {
          maze3d_render(m, f);
          maze3d_frame_to_u8(u, f, (size_t)res * res * 3);
          strip_put(strip, sw, t / (T / n), u, res, res, zoom);
        }
      }
      snprintf(path, sizeof path, "%s/maze3d_%s_%d.ppm", dir, maze3d_scenario_name(sc), res);
      write_ppm(path, strip, sw, sh);
      if (res == 64) {
        int mw, mh;
        maze3d_map_size(m, 24, &mw, &mh);
        uint8_t *map = malloc((size_t)mw * mh * 3);
        maze3d_render_map(m, map, 24, traj, T + 1);
        snprintf(path, sizeof path, "%s/maze3d_%s_map.ppm", dir, maze3d_scenario_name(sc));
        write_ppm(path, map, mw, mh);
        free(map);
      }
      free(strip);
      free(u);
      free(f);
      free(traj);
      maze3d_explorer_free(&ex);
      maze3d_free(m);
    }
  }
  /* Close views of pillars at 128x128: each pillar from 4 sides. */
  for (uint64_t seed = 1; seed <= 3; seed++) {
    maze3d_config c = maze3d_config_default();
    c.layout = MAZE3D_LAYOUT_MULTIROOM;
    c.seed = seed;
    c.W = c.H = 128;
    maze3d *m = NULL;
    if (maze3d_new(&m, &c, NULL, 0)) return;
    int n = 4, sw = n * 130, sh = 128;
    uint8_t *strip = calloc((size_t)sw * sh * 3, 1), *u = malloc(128 * 128 * 3);
    float *f = malloc(sizeof(float) * 128 * 128 * 3);
    double px, py, pr;
    maze3d_pillar_get(m, 0, &px, &py, &pr);
    for (int k = 0; k < n; k++) {
      double ang = k * TWO_PI / n + 0.3;
      maze3d_pose p = {px + 1.2 * cos(ang), py + 1.2 * sin(ang), ang + TWO_PI / 2};
      maze3d_render_at(m, &p, f);
      maze3d_frame_to_u8(u, f, 128 * 128 * 3);
      strip_put(strip, sw, k, u, 128, 128, 1);
    }
    snprintf(path, sizeof path, "%s/maze3d_pillar_%d.ppm", dir, (int)seed);
    write_ppm(path, strip, sw, sh);
    free(strip);
    free(u);
    free(f);
    maze3d_free(m);
  }
  printf("wrote PPMs to %s\n", dir);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--dump") == 0) {
    dump(argv[2]);
    return 0;
  }
  test_names();
  test_config_errors();
  test_layout();
  test_frame_range();
  test_heading_period();
  test_golden();
  test_determinism();
  test_speed_and_walls();
  test_pushes();
  test_rotate();
  test_displacement();
  test_explorer_no_collision();
  return test_finish("test_maze3d");
}
