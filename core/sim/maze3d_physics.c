/* maze3d physics, after Quake's pmove (which DeepMind Lab runs): per tick,
 * turn, friction, acceleration toward the wished velocity, a hard speed cap,
 * then the move, pushing the agent's circle out of any wall cell or pillar it
 * ends up overlapping and removing the velocity component into the contact
 * normal, so the agent slides along walls. Doubles throughout: the explorer
 * replays this code to foresee collisions and must get the same answer. */
#include <math.h>

#include "sim/maze3d_internal.h"

/* Push-out leaves this gap so the next overlap test does not see a contact
 * that rounding manufactured. */
#define CONTACT_EPS 1e-7

/* Agent-frame wish (forward, left) and turn direction of each action. */
static const signed char action_fwd[] = {1, -1, 0, 0, 0, 0, 1, 1, 0};
static const signed char action_left[] = {0, 0, 1, -1, 0, 0, 0, 0, 0};
static const signed char action_turn[] = {0, 0, 0, 0, 1, -1, 1, -1, 0};

int maze3d__overlaps(const maze3d *m, double x, double y) {
  double r = m->cfg.physics.radius;
  int x0 = (int)floor(x - r), x1 = (int)floor(x + r);
  int y0 = (int)floor(y - r), y1 = (int)floor(y + r);
  for (int iy = y0; iy <= y1; iy++) {
    for (int ix = x0; ix <= x1; ix++) {
      if (!maze3d_is_wall(m, ix, iy)) continue;
      double qx = x < ix ? ix : (x > ix + 1 ? ix + 1 : x);
      double qy = y < iy ? iy : (y > iy + 1 ? iy + 1 : y);
      double dx = x - qx, dy = y - qy;
      if (dx * dx + dy * dy < r * r) return 1;
    }
  }
  for (int i = 0; i < m->n_pillars; i++) {
    const maze3d__pillar *p = &m->pillars[i];
    double dx = x - p->x, dy = y - p->y, rr = r + p->r;
    if (dx * dx + dy * dy < rr * rr) return 1;
  }
  return 0;
}

/* Moves (x, y) out of contact along the normal n, to distance `want` from the
 * contact point q, and clips the velocity's inward normal component. */
static void push_out(maze3d__body *b, double qx, double qy, double nx, double ny, double want) {
  b->x = qx + nx * want;
  b->y = qy + ny * want;
  double vn = b->vx * nx + b->vy * ny;
  if (vn < 0.0) {
    b->vx -= vn * nx;
    b->vy -= vn * ny;
  }
}

/* One pass over nearby walls and pillars; returns 1 if anything was pushed. */
static int resolve_pass(const maze3d *m, maze3d__body *b) {
  double r = m->cfg.physics.radius;
  int pushed = 0;
  int cx = (int)floor(b->x), cy = (int)floor(b->y);
  for (int iy = cy - 1; iy <= cy + 1; iy++) {
    for (int ix = cx - 1; ix <= cx + 1; ix++) {
      if (!maze3d_is_wall(m, ix, iy)) continue;
      double qx = b->x < ix ? ix : (b->x > ix + 1 ? ix + 1 : b->x);
      double qy = b->y < iy ? iy : (b->y > iy + 1 ? iy + 1 : b->y);
      double dx = b->x - qx, dy = b->y - qy, d2 = dx * dx + dy * dy;
      if (d2 >= r * r) continue;
      double d = sqrt(d2);
      double nx, ny;
      if (d > 1e-12) {
        nx = dx / d;
        ny = dy / d;
      } else {
        /* Centre inside the cell (only if a tick jumped too far): leave by
         * the nearest face. */
        double fl = b->x - ix, fr = ix + 1 - b->x, fb = b->y - iy, ft = iy + 1 - b->y;
        nx = ny = 0.0;
        if (fl <= fr && fl <= fb && fl <= ft) { nx = -1; qx = ix; qy = b->y; }
        else if (fr <= fb && fr <= ft) { nx = 1; qx = ix + 1; qy = b->y; }
        else if (fb <= ft) { ny = -1; qx = b->x; qy = iy; }
        else { ny = 1; qx = b->x; qy = iy + 1; }
      }
      push_out(b, qx, qy, nx, ny, r + CONTACT_EPS);
      pushed = 1;
    }
  }
  for (int i = 0; i < m->n_pillars; i++) {
    const maze3d__pillar *p = &m->pillars[i];
    double dx = b->x - p->x, dy = b->y - p->y, rr = r + p->r;
    double d2 = dx * dx + dy * dy;
    if (d2 >= rr * rr) continue;
    double d = sqrt(d2);
    double nx = d > 1e-12 ? dx / d : 1.0, ny = d > 1e-12 ? dy / d : 0.0;
    push_out(b, p->x, p->y, nx, ny, rr + CONTACT_EPS);
    pushed = 1;
  }
  return pushed;
}

void maze3d__physics_step(const maze3d *m, maze3d__body *b, int action, int *collided,
                          double *min_clear) {
  const maze3d_physics *ph = &m->cfg.physics;
  double dt = ph->dt / ph->substeps;
  double dturn = action_turn[action] * ph->turn_rate / ph->substeps;
  int fwd = action_fwd[action], left = action_left[action];
  if (min_clear) *min_clear = INFINITY;
  for (int k = 0; k < ph->substeps; k++) {
    b->h += dturn;
    /* Friction (PM_Friction): below stopspeed the drop is constant, so a
     * slow agent stops in finite time instead of creeping. */
    double speed = sqrt(b->vx * b->vx + b->vy * b->vy);
    if (speed > 0.0) {
      double control = speed < ph->stopspeed ? ph->stopspeed : speed;
      double newspeed = speed - control * ph->friction * dt;
      if (newspeed < 0.0) newspeed = 0.0;
      b->vx *= newspeed / speed;
      b->vy *= newspeed / speed;
    }
    /* Acceleration (PM_Accelerate): add along wishdir, but never push the
     * speed projected on wishdir beyond wishspeed. */
    if (fwd || left) {
      double c = cos(b->h), s = sin(b->h);
      double wx = fwd * c - left * s, wy = fwd * s + left * c; /* unit: one axis only */
      double wishspeed = ph->max_speed;
      double add = wishspeed - (b->vx * wx + b->vy * wy);
      if (add > 0.0) {
        double acc = ph->accel * dt * wishspeed;
        if (acc > add) acc = add;
        b->vx += acc * wx;
        b->vy += acc * wy;
      }
    }
    speed = sqrt(b->vx * b->vx + b->vy * b->vy);
    if (speed > ph->max_speed) {
      b->vx *= ph->max_speed / speed;
      b->vy *= ph->max_speed / speed;
    }
    /* Move, then push out of whatever overlaps. A few passes settle
     * corners; if they do not (squeezed between a pillar and a wall), undo
     * the tick's move and stop, which keeps "never inside a wall" exact. */
    double ox = b->x, oy = b->y;
    b->x += b->vx * dt;
    b->y += b->vy * dt;
    int hit = 0, pass;
    for (pass = 0; pass < 4; pass++) {
      if (!resolve_pass(m, b)) break;
      hit = 1;
    }
    if (hit && maze3d__overlaps(m, b->x, b->y)) {
      b->x = ox;
      b->y = oy;
      b->vx = b->vy = 0.0;
    }
    if (hit && collided) *collided = 1;
    if (min_clear) {
      double c = maze3d_clearance(m, b->x, b->y, ph->radius + 1.0) - ph->radius;
      if (c < *min_clear) *min_clear = c;
    }
  }
  b->h = maze3d_heading_normalize(b->h);
}
