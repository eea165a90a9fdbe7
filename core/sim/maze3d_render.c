/* maze3d rendering: the first-person raycaster and the top-down map.
 *
 * Raycaster (Wolfenstein style, after Lode Vandevenne's tutorial): per screen
 * column a DDA walk over the grid finds the wall and its perpendicular
 * distance (the column's z-buffer entry); pillars are vertical cylinders hit
 * exactly by a ray-circle test and kept, nearest first, when in front of the
 * wall; then every pixel of the column is the nearest of pillar, wall, floor
 * or ceiling, found from the height at which the pixel's ray meets each depth.
 * Floor and ceiling are textured per map cell with the look of the cell's
 * region. Light falls with distance and a fixed world light direction shades
 * each wall orientation and the round side of pillars differently, which
 * helps tell headings apart. The image is rendered at supersample times the
 * frame size and box-filtered down, so 32x32 frames are not aliased noise.
 *
 * The heading enters only through cos and sin of the heading quantised to
 * MAZE3D_HEADING_LEVELS per turn, after normalising to [0, 2 pi): rounding
 * differences of h + 2 pi vanish there, so such headings give identical
 * frames. Per-pixel work uses only + - * / and sqrt (no libm transcendental
 * functions) so golden frame hashes do not depend on the libm version. */
#include <math.h>
#include <string.h>

#include "base/err.h"
#include "sim/maze3d_internal.h"

#define MAX_HITS (MAZE3D__MAX_ROOMS * 8 + 8)
/* World light direction (unit), for Lambert-like shading of walls and pillars. */
#define LIGHT_X 0.6f
#define LIGHT_Y 0.8f

typedef struct {
  float t;   /* perpendicular depth */
  float u;   /* angle around the pillar, [0, 1) */
  float lit; /* orientation shading */
  int idx;
} pillar_hit;

void maze3d__render_init_tables(maze3d *m) {
  double focal = 0.5 * m->RW / tan(0.5 * m->cfg.fov_deg * (MAZE3D__PI / 180.0));
  for (int y = 0; y < m->RH; y++) m->row_slope[y] = (float)((y + 0.5 - 0.5 * m->RH) / focal);
}

static long heading_level(double h) {
  if (!isfinite(h)) return 0; /* a caller bug; keep the cast below defined */
  double hn = maze3d_heading_normalize(h);
  long level = (long)floor(hn * (MAZE3D_HEADING_LEVELS / MAZE3D__TWO_PI) + 0.5);
  return level % MAZE3D_HEADING_LEVELS;
}

/* A monotone stand-in for atan2(y, x) / (2 pi) in [0, 1) built from one
 * division (the "diamond angle"); texture lookup needs monotone, not exact. */
static float diamond_angle(float y, float x) {
  float ax = fabsf(x), ay = fabsf(y), s = ax + ay;
  if (s == 0.0f) return 0.0f;
  float p = x / s; /* 1 at angle 0, -1 at pi */
  float a = y >= 0.0f ? 1.0f - p : 3.0f + p; /* [0, 4) */
  a *= 0.25f;
  return a >= 1.0f ? 0.0f : a;
}

static void pillar_color(const maze3d__pillar *p, float u, float z, float out[3]) {
  int alt = 0;
  switch (p->pattern) {
    case 1: alt = ((int)(z * 8.0f)) & 1; break;
    case 2: alt = ((int)(u * 8.0f)) & 1; break;
    case 3: alt = (((int)(z * 6.0f)) + ((int)(u * 6.0f))) & 1; break;
    default: alt = 0; break;
  }
  const float *c = alt ? p->c2 : p->c1;
  out[0] = c[0];
  out[1] = c[1];
  out[2] = c[2];
}

static inline int texel(float f) {
  int i = (int)(f * MAZE3D__TEX);
  return i < 0 ? 0 : (i >= MAZE3D__TEX ? MAZE3D__TEX - 1 : i);
}

static inline const float *look_texel(const float *tex, float u, float v) {
  return tex + (texel(v) * MAZE3D__TEX + texel(u)) * 3;
}

void maze3d_render_at(maze3d *m, const maze3d_pose *pose, float *frame) {
  const int RW = m->RW, RH = m->RH, gw = m->gw, gh = m->gh;
  const float camh = (float)m->cfg.cam_height, wallh = (float)m->cfg.wall_height;
  const float fog = (float)m->cfg.fog;
  double th = (double)heading_level(pose->heading) * (MAZE3D__TWO_PI / MAZE3D_HEADING_LEVELS);
  double dirx = cos(th), diry = sin(th);
  double tn = tan(0.5 * m->cfg.fov_deg * (MAZE3D__PI / 180.0));
  double rightx = diry * tn, righty = -dirx * tn; /* heading - 90 degrees */
  double px = pose->x, py = pose->y;
  int pcx = (int)floor(px), pcy = (int)floor(py);
  if (pcx < 0) pcx = 0;
  if (pcy < 0) pcy = 0;
  if (pcx >= gw) pcx = gw - 1;
  if (pcy >= gh) pcy = gh - 1;
  int start_region = m->region[pcy * gw + pcx];
  if (start_region < 0) start_region = m->n_rooms;
  pillar_hit hits[MAX_HITS];

  for (int col = 0; col < RW; col++) {
    double camx = 2.0 * (col + 0.5) / RW - 1.0;
    double rdx = dirx + rightx * camx, rdy = diry + righty * camx;
    /* DDA: t advances in units of the forward-projected depth because the
     * ray direction has forward component 1. */
    int mx = pcx, my = pcy, stepx, stepy, side = 0;
    double ddx = rdx == 0.0 ? 1e30 : fabs(1.0 / rdx), ddy = rdy == 0.0 ? 1e30 : fabs(1.0 / rdy);
    double sidex, sidey;
    if (rdx < 0) stepx = -1, sidex = (px - mx) * ddx;
    else stepx = 1, sidex = (mx + 1.0 - px) * ddx;
    if (rdy < 0) stepy = -1, sidey = (py - my) * ddy;
    else stepy = 1, sidey = (my + 1.0 - py) * ddy;
    int region = start_region;
    for (int it = 0; it < gw + gh + 4; it++) {
      if (sidex < sidey) sidex += ddx, mx += stepx, side = 0;
      else sidey += ddy, my += stepy, side = 1;
      if (mx < 0 || my < 0 || mx >= gw || my >= gh) break;
      int c = my * gw + mx;
      if (m->cell[c] == MAZE3D__WALL) break;
      region = m->region[c];
    }
    double perp = side == 0 ? sidex - ddx : sidey - ddy;
    if (perp < 1e-6) perp = 1e-6;
    double wu;
    float nlit;
    if (side == 0) {
      double wy = py + perp * rdy;
      wu = wy - floor(wy);
      if (rdx > 0) wu = 1.0 - wu;
      nlit = -(float)stepx * LIGHT_X;
    } else {
      double wx = px + perp * rdx;
      wu = wx - floor(wx);
      if (rdy < 0) wu = 1.0 - wu;
      nlit = -(float)stepy * LIGHT_Y;
    }
    m->zbuf[col] = (float)perp;
    const maze3d__look *wlook = &m->looks[region];
    float wall_lit = (0.78f + 0.22f * nlit) / (1.0f + fog * (float)(perp * perp));

    /* Pillars in front of the wall, nearest first (insertion sort: few). */
    int nh = 0;
    double aa = rdx * rdx + rdy * rdy;
    for (int i = 0; i < m->n_pillars; i++) {
      const maze3d__pillar *p = &m->pillars[i];
      double ox = px - p->x, oy = py - p->y;
      double b = ox * rdx + oy * rdy, c = ox * ox + oy * oy - p->r * p->r;
      double disc = b * b - aa * c;
      if (disc < 0.0 || b > 0.0) continue; /* missed, or behind the eye */
      double t = (-b - sqrt(disc)) / aa;
      if (t <= 1e-6 || t >= m->zbuf[col]) continue;
      float hx = (float)((ox + t * rdx) / p->r), hy = (float)((oy + t * rdy) / p->r);
      pillar_hit h = {(float)t, diamond_angle(hy, hx),
                      (0.78f + 0.22f * (hx * LIGHT_X + hy * LIGHT_Y)) /
                          (1.0f + fog * (float)(t * t)),
                      i};
      int j = nh++;
      while (j > 0 && hits[j - 1].t > h.t) hits[j] = hits[j - 1], j--;
      hits[j] = h;
    }

    const float fperp = (float)perp, fu = (float)wu;
    const float frdx = (float)rdx, frdy = (float)rdy, fpx = (float)px, fpy = (float)py;
    for (int y = 0; y < RH; y++) {
      float s = m->row_slope[y], rgb[3], lit;
      float *o = m->img + ((size_t)y * (size_t)RW + (size_t)col) * 3;
      int done = 0;
      for (int k = 0; k < nh && !done; k++) {
        const maze3d__pillar *p = &m->pillars[hits[k].idx];
        float z = camh - s * hits[k].t;
        if (z >= 0.0f && z < (float)p->height) {
          pillar_color(p, hits[k].u, z, rgb);
          lit = hits[k].lit;
          done = 1;
        }
      }
      if (!done) {
        float z = camh - s * fperp;
        if (z >= 0.0f && z < wallh) {
          const float *t = look_texel(wlook->wall, fu, (wallh - z) / wallh);
          rgb[0] = t[0], rgb[1] = t[1], rgb[2] = t[2];
          lit = wall_lit;
        } else {
          /* Floor below the horizon, ceiling above: the depth at which the
           * pixel's ray meets the plane, then the world point there. */
          int floor_px = s > 0.0f;
          float d = floor_px ? camh / s : (wallh - camh) / -s;
          float fx = fpx + frdx * d, fy = fpy + frdy * d;
          float cx = floorf(fx), cy = floorf(fy);
          int ix = (int)cx, iy = (int)cy;
          if (ix < 0) ix = 0;
          if (iy < 0) iy = 0;
          if (ix >= gw) ix = gw - 1;
          if (iy >= gh) iy = gh - 1;
          int reg = m->region[iy * gw + ix];
          const maze3d__look *lk = &m->looks[reg < 0 ? region : reg];
          const float *t = look_texel(floor_px ? lk->floor : lk->ceil, fx - cx, fy - cy);
          rgb[0] = t[0], rgb[1] = t[1], rgb[2] = t[2];
          lit = 1.0f / (1.0f + fog * d * d);
        }
      }
      o[0] = rgb[0] * lit;
      o[1] = rgb[1] * lit;
      o[2] = rgb[2] * lit;
    }
  }

  /* Box filter down to (H, W, 3). */
  const int ss = m->cfg.supersample, W = m->cfg.W, H = m->cfg.H;
  const float inv = 1.0f / (float)(ss * ss);
  for (int y = 0; y < H; y++) {
    for (int x = 0; x < W; x++) {
      float acc[3] = {0, 0, 0};
      for (int dy = 0; dy < ss; dy++) {
        const float *row = m->img + ((size_t)(y * ss + dy) * (size_t)RW + (size_t)(x * ss)) * 3;
        for (int dx = 0; dx < ss; dx++)
          for (int c = 0; c < 3; c++) acc[c] += row[dx * 3 + c];
      }
      float *o = frame + ((size_t)y * (size_t)W + (size_t)x) * 3;
      for (int c = 0; c < 3; c++) o[c] = acc[c] * inv;
    }
  }
}

void maze3d_render(maze3d *m, float *frame) {
  maze3d_pose p = maze3d_get_pose(m);
  maze3d_render_at(m, &p, frame);
}

void maze3d_frame_to_u8(uint8_t *out, const float *in, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = in[i];
    v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); /* NaN fails both tests: below */
    if (!(v == v)) v = 0.0f;
    out[i] = (uint8_t)(v * 255.0f + 0.5f);
  }
}

/* ---- top-down map ---- */

void maze3d_map_size(const maze3d *m, int cell_px, int *map_w, int *map_h) {
  *map_w = m->gw * cell_px;
  *map_h = m->gh * cell_px;
}

static void put_px(uint8_t *img, int w, int h, int x, int y, const uint8_t c[3]) {
  if (x < 0 || y < 0 || x >= w || y >= h) return;
  memcpy(img + ((size_t)y * (size_t)w + (size_t)x) * 3, c, 3);
}

static uint8_t to_u8(float v) {
  v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
  return (uint8_t)(v * 255.0f + 0.5f);
}

/* World point to map pixel: rows are flipped so +y points up the picture. */
static void world_to_px(const maze3d *m, int cp, double x, double y, double *u, double *v) {
  *u = x * cp;
  *v = (m->gh - y) * cp;
}

static void draw_line(uint8_t *img, int w, int h, double u0, double v0, double u1, double v1,
                      const uint8_t c[3]) {
  double du = u1 - u0, dv = v1 - v0, len = fabs(du) > fabs(dv) ? fabs(du) : fabs(dv);
  int n = (int)ceil(len) + 1;
  for (int i = 0; i <= n; i++) {
    double t = (double)i / n;
    put_px(img, w, h, (int)floor(u0 + du * t), (int)floor(v0 + dv * t), c);
  }
}

static void draw_disc(uint8_t *img, int w, int h, double u, double v, double rad,
                      const uint8_t c[3]) {
  for (int y = (int)floor(v - rad); y <= (int)ceil(v + rad); y++)
    for (int x = (int)floor(u - rad); x <= (int)ceil(u + rad); x++) {
      double dx = x + 0.5 - u, dy = y + 0.5 - v;
      if (dx * dx + dy * dy <= rad * rad) put_px(img, w, h, x, y, c);
    }
}

int maze3d_render_map(const maze3d *m, uint8_t *rgb_out, int cell_px, const float *traj_xy,
                      int n_traj) {
  if (cell_px < 1) return GTMSM_EINVAL;
  const int cp = cell_px, w = m->gw * cp, h = m->gh * cp;
  for (int cy = 0; cy < m->gh; cy++) {
    for (int cx = 0; cx < m->gw; cx++) {
      uint8_t c[3] = {24, 24, 28};
      int reg = m->region[cy * m->gw + cx];
      if (reg >= 0) {
        for (int k = 0; k < 3; k++) c[k] = to_u8(0.35f + 0.65f * m->looks[reg].floor_mean[k]);
      } else {
        /* A wall cell facing a floor cell takes that region's wall colour. */
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            int nx = cx + dx, ny = cy + dy;
            if (nx < 0 || ny < 0 || nx >= m->gw || ny >= m->gh) continue;
            int nr = m->region[ny * m->gw + nx];
            if (nr >= 0)
              for (int k = 0; k < 3; k++) c[k] = to_u8(0.8f * m->looks[nr].wall_mean[k]);
          }
      }
      int row0 = (m->gh - 1 - cy) * cp;
      for (int y = 0; y < cp; y++)
        for (int x = 0; x < cp; x++) {
          uint8_t cc[3] = {c[0], c[1], c[2]};
          if (reg >= 0 && cp >= 6 && (x == 0 || y == 0)) /* faint grid on floors */
            for (int k = 0; k < 3; k++) cc[k] = (uint8_t)(cc[k] * 7 / 8);
          put_px(rgb_out, w, h, cx * cp + x, row0 + y, cc);
        }
    }
  }
  static const uint8_t black[3] = {0, 0, 0};
  for (int i = 0; i < m->n_pillars; i++) {
    const maze3d__pillar *p = &m->pillars[i];
    double u, v;
    world_to_px(m, cp, p->x, p->y, &u, &v);
    uint8_t c[3] = {to_u8(p->c1[0]), to_u8(p->c1[1]), to_u8(p->c1[2])};
    draw_disc(rgb_out, w, h, u, v, p->r * cp + 1.0, black);
    draw_disc(rgb_out, w, h, u, v, p->r * cp, c);
  }
  static const uint8_t white[3] = {255, 255, 255}, green[3] = {40, 220, 60},
                       red[3] = {230, 40, 40};
  if (traj_xy && n_traj > 0) {
    for (int i = 1; i < n_traj; i++) {
      double u0, v0, u1, v1;
      world_to_px(m, cp, traj_xy[2 * (i - 1)], traj_xy[2 * (i - 1) + 1], &u0, &v0);
      world_to_px(m, cp, traj_xy[2 * i], traj_xy[2 * i + 1], &u1, &v1);
      draw_line(rgb_out, w, h, u0, v0, u1, v1, white);
    }
    double u, v;
    world_to_px(m, cp, traj_xy[0], traj_xy[1], &u, &v);
    draw_disc(rgb_out, w, h, u, v, cp * 0.15 + 1.0, green);
    world_to_px(m, cp, traj_xy[2 * (n_traj - 1)], traj_xy[2 * (n_traj - 1) + 1], &u, &v);
    draw_disc(rgb_out, w, h, u, v, cp * 0.15 + 1.0, red);
  }
  /* The agent: its circle and a heading tick. */
  double u, v;
  world_to_px(m, cp, m->body.x, m->body.y, &u, &v);
  static const uint8_t yellow[3] = {255, 220, 0};
  draw_disc(rgb_out, w, h, u, v, m->cfg.physics.radius * cp, yellow);
  draw_line(rgb_out, w, h, u, v, u + cos(m->body.h) * 0.5 * cp, v - sin(m->body.h) * 0.5 * cp,
            yellow);
  return 0;
}
