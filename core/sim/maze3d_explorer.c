/* maze3d explorers: the scripted agents standing in for the paper's data.
 * Rotate (4.2.1) always turns one way. Walk and multiroom (4.2.2, appendix C)
 * stand in for the pretrained agent "that does not hit walls": pick a goal
 * cell, run a BFS from it over the free grid (walls and pillar cells
 * blocked), follow the descending distances from the agent's cell, aim at the
 * farthest path cell in clear line of sight, and coast before sharp turns.
 * A shield makes "never collides" exact rather than hoped for: a candidate
 * action is taken only if replaying the physics for that action and then for
 * no input until the agent stops keeps a clearance margin. Stopping from a
 * safe state is always safe, so a turn-in-place (no translation input) is
 * always an acceptable fallback. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "sim/maze3d_internal.h"

#define STREAM_EXPLORER 0x6578706cu /* "expl" */
#define SHIELD_MARGIN 0.05  /* clearance the shield keeps beyond the radius */
#define LOS_MARGIN 0.2      /* clearance of a line-of-sight segment beyond the radius */
#define LOS_LOOKAHEAD 12    /* path cells considered for line of sight */
#define GOAL_REACHED 0.4    /* distance to the goal centre that counts as arrived */
#define GOAL_PATIENCE 250   /* steps before giving up on a goal */

static double wrap_angle(double a) { /* to (-pi, pi] */
  a = fmod(a, MAZE3D__TWO_PI);
  if (a > MAZE3D__PI) a -= MAZE3D__TWO_PI;
  if (a <= -MAZE3D__PI) a += MAZE3D__TWO_PI;
  return a;
}

int maze3d_explorer_init(maze3d_explorer *ex, maze3d *m, int scenario, uint64_t seed,
                         char *err, size_t errlen) {
  memset(ex, 0, sizeof *ex);
  if (scenario < MAZE3D_SCENARIO_ROTATE || scenario > MAZE3D_SCENARIO_MULTIROOM)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d explorer: unknown scenario %d",
                      scenario);
  int rc = 0;
  size_t n = (size_t)m->gw * (size_t)m->gh;
  ex->m = m;
  ex->scenario = scenario;
  ex->goal = -1;
  rng_init(&ex->rng, seed, STREAM_EXPLORER);
  ex->dist = malloc(n * sizeof(int));
  ex->queue = malloc(n * sizeof(int));
  ex->path = malloc(n * sizeof(int));
  if (!ex->dist || !ex->queue || !ex->path) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "maze3d explorer: out of memory");
    goto done;
  }
  maze3d_pose pose;
  /* The walker starts clear of the shield margin so its invariant holds at
   * t = 0; the rotating agent stands half a cell from walls so that no view
   * of its turn is a wall filling the frame. */
  double clear = scenario == MAZE3D_SCENARIO_ROTATE ? 0.3 : 0.15;
  if (maze3d_sample_pose(m, &ex->rng, clear, &pose) != 0) {
    rc = gtmsm_fail(err, errlen, GTMSM_ERANGE, "maze3d explorer: no free start pose");
    goto done;
  }
  ex->turn_action =
      rng_below(&ex->rng, 2) ? MAZE3D_ACTION_TURN_LEFT : MAZE3D_ACTION_TURN_RIGHT;
  rc = maze3d_reset(m, &pose, NULL, err, errlen);
done:
  if (rc) maze3d_explorer_free(ex);
  return rc;
}

void maze3d_explorer_free(maze3d_explorer *ex) {
  free(ex->dist);
  free(ex->queue);
  free(ex->path);
  ex->dist = ex->queue = ex->path = NULL;
}

static int cell_of(const maze3d *m, double x, double y) {
  int ix = (int)floor(x), iy = (int)floor(y);
  if (ix < 0) ix = 0;
  if (iy < 0) iy = 0;
  if (ix >= m->gw) ix = m->gw - 1;
  if (iy >= m->gh) iy = m->gh - 1;
  return iy * m->gw + ix;
}

/* BFS distance field from the goal over unblocked 4-neighbours. */
static void plan_from_goal(maze3d_explorer *ex) {
  const maze3d *m = ex->m;
  int n = m->gw * m->gh, head = 0, tail = 0;
  for (int i = 0; i < n; i++) ex->dist[i] = -1;
  ex->dist[ex->goal] = 0;
  ex->queue[tail++] = ex->goal;
  while (head < tail) {
    int c = ex->queue[head++], cx = c % m->gw, cy = c / m->gw;
    static const int d[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
    for (int k = 0; k < 4; k++) {
      int nx = cx + d[k][0], ny = cy + d[k][1];
      if (nx < 0 || ny < 0 || nx >= m->gw || ny >= m->gh) continue;
      int j = ny * m->gw + nx;
      if (ex->dist[j] >= 0 || m->blocked[j]) continue;
      ex->dist[j] = ex->dist[c] + 1;
      ex->queue[tail++] = j;
    }
  }
}

static int random_free_cell_in(maze3d_explorer *ex, const maze3d__room *rm) {
  const maze3d *m = ex->m;
  for (int tries = 0; tries < 100; tries++) {
    int cx = rm->x0 + (int)rng_below(&ex->rng, (uint32_t)rm->w);
    int cy = rm->y0 + (int)rng_below(&ex->rng, (uint32_t)rm->h);
    if (!m->blocked[cy * m->gw + cx]) return cy * m->gw + cx;
  }
  return -1;
}

/* Walk: a random free cell of a room, a few cells away. Multiroom: mostly a
 * cell in another room, so the agent travels between rooms. */
static void goal_pick(maze3d_explorer *ex) {
  const maze3d *m = ex->m;
  int here = cell_of(m, m->body.x, m->body.y), hx = here % m->gw, hy = here / m->gw;
  int cur_room = m->region[here];
  for (int tries = 0; tries < 50; tries++) {
    int k = (int)rng_below(&ex->rng, (uint32_t)m->n_rooms);
    if (ex->scenario == MAZE3D_SCENARIO_MULTIROOM && m->n_rooms > 1 && k == cur_room &&
        rng_uniform(&ex->rng) < 0.8f)
      continue;
    int g = random_free_cell_in(ex, &m->rooms[k]);
    if (g < 0) continue;
    if (abs(g % m->gw - hx) + abs(g / m->gw - hy) < 2 && tries < 49) continue;
    /* Goals off the walls: arriving face-first at a wall fills the view
     * with one texture, which the paper's agent seldom does. */
    if (tries < 30 && (m->blocked[g - 1] || m->blocked[g + 1] || m->blocked[g - m->gw] ||
                       m->blocked[g + m->gw]))
      continue;
    ex->goal = g;
    ex->steps_on_goal = 0;
    plan_from_goal(ex);
    if (ex->dist[here] >= 0 || tries == 49) return;
  }
}

/* Path from the agent's cell down the distance field; ties keep the previous
 * direction, else the first neighbour in a fixed order. */
static void path_build(maze3d_explorer *ex, int start) {
  const maze3d *m = ex->m;
  static const int d[4][2] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
  int c = start, len = 0, prev_dir = -1;
  if (ex->dist[c] < 0) { /* standing in a blocked cell's corner: use a free neighbour */
    int best = -1;
    for (int k = 0; k < 4; k++) {
      int nx = c % m->gw + d[k][0], ny = c / m->gw + d[k][1];
      if (nx < 0 || ny < 0 || nx >= m->gw || ny >= m->gh) continue;
      int j = ny * m->gw + nx;
      if (ex->dist[j] >= 0 && (best < 0 || ex->dist[j] < ex->dist[best])) best = j;
    }
    if (best < 0) {
      ex->path_len = 0;
      return;
    }
    c = best;
  }
  ex->path[len++] = c;
  while (ex->dist[c] > 0) {
    int next = -1, next_dir = -1;
    for (int k = 0; k < 4; k++) {
      int nx = c % m->gw + d[k][0], ny = c / m->gw + d[k][1];
      if (nx < 0 || ny < 0 || nx >= m->gw || ny >= m->gh) continue;
      int j = ny * m->gw + nx;
      if (ex->dist[j] != ex->dist[c] - 1) continue;
      if (next < 0 || k == prev_dir) next = j, next_dir = k;
    }
    c = next;
    prev_dir = next_dir;
    ex->path[len++] = c;
  }
  ex->path_len = len;
}

/* Is the segment from (x0, y0) to (x1, y1) clear by LOS_MARGIN beyond the
 * radius (relaxed near the start, where the agent already is)? */
static int line_clear(const maze3d *m, double x0, double y0, double x1, double y1) {
  double r = m->cfg.physics.radius, len = hypot(x1 - x0, y1 - y0);
  int n = (int)ceil(len / 0.1);
  for (int i = 1; i <= n; i++) {
    double t = (double)i / n, along = t * len;
    double need = r + (along < 0.3 ? SHIELD_MARGIN : LOS_MARGIN);
    if (maze3d_clearance(m, x0 + t * (x1 - x0), y0 + t * (y1 - y0), need) < need) return 0;
  }
  return 1;
}

/* Distance to stop from speed v under pmove friction alone (continuous
 * approximation: exponential decay above stopspeed, constant below). */
static double brake_dist(const maze3d_physics *p, double v) {
  double s = p->stopspeed, f = p->friction;
  if (f <= 0.0) return INFINITY;
  if (s <= 0.0) return v / f;
  return v > s ? (v - s) / f + s / (2.0 * f) : v * v / (2.0 * s * f);
}

/* Shield: a (then no input until at rest) keeps SHIELD_MARGIN clearance?
 * Returns the least clearance seen (compare with SHIELD_MARGIN). */
static double action_clearance(const maze3d *m, int a) {
  maze3d__body b = m->body;
  double worst, c;
  maze3d__physics_step(m, &b, a, NULL, &worst);
  for (int k = 0; k < 40 && (b.vx != 0.0 || b.vy != 0.0); k++) {
    maze3d__physics_step(m, &b, MAZE3D_ACTION_NONE, NULL, &c);
    if (c < worst) worst = c;
    if (worst < SHIELD_MARGIN) break;
  }
  return worst;
}

/* Aims at the farthest path cell (among the next LOS_LOOKAHEAD) in clear
 * sight; *n receives the path cell after it, which tells how sharp the
 * coming turn is (returns 0 if there is none). When no path cell is in
 * sight (the agent stands in a corner of a pillar's cell, or was pushed
 * off its path), it first heads for the visible neighbouring cell nearest
 * the goal, since steering straight at an occluded cell can deadlock
 * against the shield. */
static int target_choose(const maze3d_explorer *ex, double *tx, double *ty, double *nx,
                         double *ny) {
  const maze3d *m = ex->m;
  const maze3d__body *b = &m->body;
  const int gw = m->gw;
  *tx = ex->goal % gw + 0.5;
  *ty = ex->goal / gw + 0.5;
  if (ex->path_len < 1) return 0;
  int j = -1, last = ex->path_len - 1 < LOS_LOOKAHEAD ? ex->path_len - 1 : LOS_LOOKAHEAD;
  for (int k = 0; k <= last; k++) {
    if (line_clear(m, b->x, b->y, ex->path[k] % gw + 0.5, ex->path[k] / gw + 0.5)) j = k;
    else if (j >= 0) break;
  }
  if (j < 0) {
    int here = cell_of(m, b->x, b->y), best = -1;
    for (int dy = -1; dy <= 1; dy++)
      for (int dx = -1; dx <= 1; dx++) {
        int cx = here % gw + dx, cy = here / gw + dy, c = cy * gw + cx;
        if (cx < 0 || cy < 0 || cx >= gw || cy >= m->gh || ex->dist[c] < 0) continue;
        if (best >= 0 && ex->dist[c] >= ex->dist[best]) continue;
        if (line_clear(m, b->x, b->y, cx + 0.5, cy + 0.5)) best = c;
      }
    int c = best >= 0 ? best : ex->path[0];
    *tx = c % gw + 0.5;
    *ty = c / gw + 0.5;
    return 0;
  }
  *tx = ex->path[j] % gw + 0.5;
  *ty = ex->path[j] / gw + 0.5;
  if (j + 1 >= ex->path_len) return 0;
  *nx = ex->path[j + 1] % gw + 0.5;
  *ny = ex->path[j + 1] / gw + 0.5;
  return 1;
}

static int turn_toward(double e) {
  return e >= 0.0 ? MAZE3D_ACTION_TURN_LEFT : MAZE3D_ACTION_TURN_RIGHT;
}

int maze3d_explorer_next(maze3d_explorer *ex) {
  maze3d *m = ex->m;
  if (ex->scenario == MAZE3D_SCENARIO_ROTATE) return ex->turn_action;
  const maze3d_physics *ph = &m->cfg.physics;
  const maze3d__body *b = &m->body;

  if (ex->goal >= 0) {
    double gx = ex->goal % m->gw + 0.5, gy = ex->goal / m->gw + 0.5;
    if (hypot(gx - b->x, gy - b->y) < GOAL_REACHED || ++ex->steps_on_goal > GOAL_PATIENCE)
      ex->goal = -1;
  }
  if (ex->goal < 0) goal_pick(ex);
  path_build(ex, cell_of(m, b->x, b->y));

  double tx, ty, nxp = 0, nyp = 0;
  int has_next = target_choose(ex, &tx, &ty, &nxp, &nyp);
  double bearing = atan2(ty - b->y, tx - b->x), e = wrap_angle(bearing - b->h);
  double dist_t = hypot(tx - b->x, ty - b->y), v = hypot(b->vx, b->vy);
  double turn_at_t = has_next ? fabs(wrap_angle(atan2(nyp - ty, nxp - tx) - bearing)) : MAZE3D__PI;
  double v_allow = turn_at_t < 0.35 ? ph->max_speed : (turn_at_t < 1.2 ? 0.5 : 0.25) * ph->max_speed;

  int want;
  double half_turn = 0.5 * fabs(ph->turn_rate);
  if (v > v_allow && brake_dist(ph, v) - brake_dist(ph, v_allow) > dist_t - 0.15) {
    /* Coast into the corner, already turning toward what comes after it. */
    double face = has_next ? atan2(nyp - b->y, nxp - b->x) : bearing;
    want = turn_toward(wrap_angle(face - b->h));
  } else if (fabs(e) > 50.0 * MAZE3D__PI / 180.0) {
    want = turn_toward(e);
  } else if (fabs(e) > half_turn) {
    want = e > 0 ? MAZE3D_ACTION_FORWARD_TURN_LEFT : MAZE3D_ACTION_FORWARD_TURN_RIGHT;
  } else {
    want = MAZE3D_ACTION_FORWARD;
  }

  int cands[4], nc = 0;
  int steer = e > 0 ? MAZE3D_ACTION_FORWARD_TURN_LEFT : MAZE3D_ACTION_FORWARD_TURN_RIGHT;
  cands[nc++] = want;
  if (want == MAZE3D_ACTION_FORWARD) cands[nc++] = steer;
  if (want == steer) cands[nc++] = MAZE3D_ACTION_FORWARD;
  cands[nc++] = turn_toward(e);
  cands[nc++] = turn_toward(-e);
  int best = cands[nc - 1];
  double best_c = -INFINITY;
  for (int i = 0; i < nc; i++) {
    if (i > 0 && cands[i] == cands[0]) continue;
    double c = action_clearance(m, cands[i]);
    if (c >= SHIELD_MARGIN) return cands[i];
    if (c > best_c) best_c = c, best = cands[i];
  }
  return best;
}
