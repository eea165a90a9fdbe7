/* maze3d layout generation: the grid map (one room, or rooms placed in the
 * slots of a small slot grid and joined by corridors through the gaps between
 * slots), the pillars, and each region's textures: procedural, or dealt from
 * a texture set. Grid, pillars and procedural textures are drawn from one
 * PCG32 stream seeded by cfg.seed, in a fixed order, so a seed names one
 * world; the choice from a texture set uses a second stream of the same seed,
 * so a textured maze has the procedural maze's grid and pillars. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "sim/maze3d_internal.h"
#include "sim/maze3d_textures.h"

#define STREAM_LAYOUT 0x6d617a65u   /* "maze" */
#define STREAM_TEXTURES 0x74657874u /* "text" */
#define SLOT_GAP 3                /* cells between slots: wall, corridor, wall */

enum { PAT_STRIPES_H, PAT_STRIPES_V, PAT_CHECKS, PAT_BRICKS, PAT_NOISE, PAT_COUNT };

static int range(rng_t *r, int lo, int hi) { return lo + (int)rng_below(r, (uint32_t)(hi - lo + 1)); }
static float frange(rng_t *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform(r); }

static void hsv_to_rgb(float h, float s, float v, float rgb[3]) {
  h = (h - floorf(h)) * 6.0f;
  int i = (int)h;
  float f = h - (float)i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  float r, g, b;
  switch (i % 6) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    default: r = v; g = p; b = q; break;
  }
  rgb[0] = r;
  rgb[1] = g;
  rgb[2] = b;
}

/* Fills tex (TEX, TEX, 3) with one tile (one map unit) of a pattern mixing c1
 * and c2; freq is the number of pattern periods per unit, so tiles join
 * seamlessly. grain is a per-texel brightness jitter. */
static void tex_fill(float *tex, int pattern, const float c1[3], const float c2[3], int freq,
                     float grain, rng_t *r) {
  const int T = MAZE3D__TEX;
  float lattice[8][8];      /* periodic value noise */
  float brick_shade[16][4]; /* per-brick brightness */
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 8; j++) lattice[i][j] = rng_uniform(r);
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 4; j++) brick_shade[i][j] = frange(r, 0.8f, 1.1f);
  int L = freq < 2 ? 2 : (freq > 8 ? 8 : freq);
  for (int i = 0; i < T; i++) {
    for (int j = 0; j < T; j++) {
      float u = ((float)j + 0.5f) / (float)T, v = ((float)i + 0.5f) / (float)T;
      float mix = 0.0f, bright = 1.0f;
      switch (pattern) {
        case PAT_STRIPES_H: mix = (float)(((int)(v * (float)freq * 2.0f)) & 1); break;
        case PAT_STRIPES_V: mix = (float)(((int)(u * (float)freq * 2.0f)) & 1); break;
        case PAT_CHECKS: mix = (float)(((int)(u * (float)freq) + (int)(v * (float)freq)) & 1); break;
        case PAT_BRICKS: {
          float rv = v * (float)freq;
          int row = (int)rv;
          float bu = u * 2.0f + ((row & 1) ? 0.5f : 0.0f);
          int col = ((int)bu) & 1;
          float fv = rv - (float)row, fu = bu - floorf(bu);
          mix = (fv < 0.12f || fu < 0.06f) ? 1.0f : 0.0f;
          bright = brick_shade[row & 15][col];
          break;
        }
        default: { /* PAT_NOISE: bilinear value noise on an L x L periodic lattice */
          float gu = u * (float)L, gv = v * (float)L;
          int a = (int)gu, b = (int)gv;
          float fu = gu - (float)a, fv = gv - (float)b;
          fu = fu * fu * (3 - 2 * fu);
          fv = fv * fv * (3 - 2 * fv);
          float n00 = lattice[b % L][a % L], n01 = lattice[b % L][(a + 1) % L];
          float n10 = lattice[(b + 1) % L][a % L], n11 = lattice[(b + 1) % L][(a + 1) % L];
          mix = (n00 * (1 - fu) + n01 * fu) * (1 - fv) + (n10 * (1 - fu) + n11 * fu) * fv;
          break;
        }
      }
      float g = 1.0f + grain * (rng_uniform(r) - 0.5f);
      for (int c = 0; c < 3; c++) {
        float x = (c1[c] * (1 - mix) + c2[c] * mix) * bright * g;
        tex[(i * T + j) * 3 + c] = x < 0 ? 0 : (x > 1 ? 1 : x);
      }
    }
  }
}

static void tex_mean(const float *tex, float mean[3]) {
  const int n = MAZE3D__TEX * MAZE3D__TEX;
  double s[3] = {0, 0, 0};
  for (int i = 0; i < n; i++)
    for (int c = 0; c < 3; c++) s[c] += tex[i * 3 + c];
  for (int c = 0; c < 3; c++) mean[c] = (float)(s[c] / n);
}

/* Room looks: hues spread by the golden ratio so neighbouring rooms differ;
 * floors take a roughly complementary hue. The corridor look is grey. */
static void looks_build(maze3d *m, rng_t *r) {
  const size_t tsz = (size_t)MAZE3D__TEX * MAZE3D__TEX * 3;
  float hue0 = rng_uniform(r);
  for (int k = 0; k <= m->n_rooms; k++) {
    maze3d__look *lk = &m->looks[k];
    lk->wall = m->tex + (size_t)k * 3 * tsz;
    lk->floor = lk->wall + tsz;
    lk->ceil = lk->floor + tsz;
    int corridor = k == m->n_rooms;
    float hue = hue0 + 0.618034f * (float)k;
    float w1[3], w2[3], f1[3], f2[3], c1[3], c2[3];
    if (corridor) {
      float v = frange(r, 0.45f, 0.6f);
      hsv_to_rgb(hue, 0.08f, v, w1);
      hsv_to_rgb(hue, 0.08f, v * 0.65f, w2);
      hsv_to_rgb(hue + 0.5f, 0.05f, 0.35f, f1);
      hsv_to_rgb(hue + 0.5f, 0.05f, 0.28f, f2);
    } else {
      float s = frange(r, 0.4f, 0.8f), v = frange(r, 0.6f, 0.9f);
      hsv_to_rgb(hue, s, v, w1);
      hsv_to_rgb(hue + frange(r, -0.06f, 0.06f), s * frange(r, 0.5f, 1.0f),
                 v * frange(r, 0.45f, 0.7f), w2);
      float fh = hue + 0.5f + frange(r, -0.15f, 0.15f);
      float fs = frange(r, 0.25f, 0.6f), fv = frange(r, 0.35f, 0.6f);
      hsv_to_rgb(fh, fs, fv, f1);
      hsv_to_rgb(fh, fs, fv * frange(r, 0.55f, 0.8f), f2);
    }
    hsv_to_rgb(hue, 0.12f, 0.85f, c1);
    hsv_to_rgb(hue, 0.12f, 0.72f, c2);
    int wpat = corridor ? PAT_BRICKS : (int)rng_below(r, PAT_COUNT);
    int fpat = corridor ? PAT_CHECKS : (int)rng_below(r, PAT_COUNT);
    tex_fill(lk->wall, wpat, w1, w2, range(r, 2, 4), 0.06f, r);
    tex_fill(lk->floor, fpat, f1, f2, range(r, 1, 2) * 2, 0.06f, r);
    tex_fill(lk->ceil, PAT_NOISE, c1, c2, 3, 0.03f, r);
    tex_mean(lk->wall, lk->wall_mean);
    tex_mean(lk->floor, lk->floor_mean);
  }
}

/* Looks from a texture set: the regions' surfaces, in the order room 0 wall,
 * floor, ceiling, room 1 wall, ..., corridors last, are dealt the first
 * min(surfaces, n) images of a random permutation of the set, cyclically. So
 * no image repeats before every image has been used, and a region's three
 * surfaces differ whenever the set has at least three images. */
static void looks_from_set(maze3d *m, const maze3d_texture_set *ts) {
  const size_t tsz = (size_t)MAZE3D__TEX * MAZE3D__TEX * 3;
  const int surfaces = 3 * (m->n_rooms + 1), deal = surfaces < ts->n ? surfaces : ts->n;
  int deck[(MAZE3D__MAX_ROOMS + 1) * 3];
  rng_t r;
  rng_init(&r, m->cfg.seed, STREAM_TEXTURES);
  /* The first `deal` cards of a uniform permutation, drawn one by one
   * without replacement (rejection: deal is at most 30). */
  for (int i = 0; i < deal; i++) {
    int pick, fresh;
    do {
      pick = (int)rng_below(&r, (uint32_t)ts->n);
      fresh = 1;
      for (int j = 0; j < i; j++) fresh &= deck[j] != pick;
    } while (!fresh);
    deck[i] = pick;
  }
  for (int k = 0; k <= m->n_rooms; k++) {
    maze3d__look *lk = &m->looks[k];
    lk->wall = m->tex + (size_t)k * 3 * tsz;
    lk->floor = lk->wall + tsz;
    lk->ceil = lk->floor + tsz;
    float *dst[3] = {lk->wall, lk->floor, lk->ceil};
    for (int s = 0; s < 3; s++) {
      int pick = deck[(3 * k + s) % deal];
      m->tex_pick[3 * k + s] = pick;
      memcpy(dst[s], maze3d_texture_set_get(ts, pick), tsz * sizeof(float));
    }
    tex_mean(lk->wall, lk->wall_mean);
    tex_mean(lk->floor, lk->floor_mean);
  }
  m->textured = 1;
}

static void carve(maze3d *m, int x, int y, int reg) {
  int i = y * m->gw + x;
  if (m->cell[i] == MAZE3D__WALL) {
    m->cell[i] = MAZE3D__FLOOR;
    m->region[i] = (int8_t)reg;
  }
}

/* Corridor between rooms a (left or below) and b in adjacent slots; horiz:
 * slots side by side. mid is the corridor's coordinate in the gap between
 * the slots. */
static void corridor_carve(maze3d *m, const maze3d__room *a, const maze3d__room *b, int horiz,
                           int mid, rng_t *r) {
  int reg = m->n_rooms;
  /* the coordinate across the corridor: rows for a horizontal corridor */
  int alo = horiz ? a->y0 : a->x0, ahi = alo + (horiz ? a->h : a->w) - 1;
  int blo = horiz ? b->y0 : b->x0, bhi = blo + (horiz ? b->h : b->w) - 1;
  int olo = alo > blo ? alo : blo, ohi = ahi < bhi ? ahi : bhi;
  int ca, cb;
  if (olo <= ohi && rng_uniform(r) < 0.7f) {
    ca = cb = range(r, olo, ohi); /* straight */
  } else {
    ca = range(r, alo, ahi);
    cb = range(r, blo, bhi);
  }
  int aend = horiz ? a->x0 + a->w : a->y0 + a->h; /* a's far wall */
  int bend = horiz ? b->x0 - 1 : b->y0 - 1;       /* b's near wall */
  for (int t = aend; t <= mid; t++) horiz ? carve(m, t, ca, reg) : carve(m, ca, t, reg);
  for (int t = ca < cb ? ca : cb; t <= (ca < cb ? cb : ca); t++)
    horiz ? carve(m, mid, t, reg) : carve(m, t, mid, reg);
  for (int t = mid; t <= bend; t++) horiz ? carve(m, t, cb, reg) : carve(m, cb, t, reg);
}

static int uf_find(int *p, int i) {
  while (p[i] != i) i = p[i] = p[p[i]];
  return i;
}

/* Counts free cells reachable from start over 4-neighbours that are not blocked. */
static int reachable(const maze3d *m, int start, int *queue, uint8_t *seen) {
  int n = m->gw * m->gh, head = 0, tail = 0;
  memset(seen, 0, (size_t)n);
  queue[tail++] = start;
  seen[start] = 1;
  while (head < tail) {
    int c = queue[head++], cx = c % m->gw, cy = c / m->gw;
    static const int d[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
    for (int k = 0; k < 4; k++) {
      int nx = cx + d[k][0], ny = cy + d[k][1];
      if (nx < 0 || ny < 0 || nx >= m->gw || ny >= m->gh) continue;
      int j = ny * m->gw + nx;
      if (seen[j] || m->blocked[j]) continue;
      seen[j] = 1;
      queue[tail++] = j;
    }
  }
  return tail;
}

/* Pillars go in cells whose 8 neighbours are free floor (clear of walls and
 * doorways) and not next to another pillar, and only where the free grid
 * stays connected. */
static int pillars_place(maze3d *m, rng_t *r, char *err, size_t errlen) {
  int rc = 0, n = m->gw * m->gh;
  int *queue = malloc((size_t)n * sizeof(int));
  uint8_t *seen = malloc((size_t)n);
  m->pillars = calloc((size_t)m->n_rooms * (size_t)(m->cfg.objects_max + 1), sizeof *m->pillars);
  if (!queue || !seen || !m->pillars) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "maze3d: out of memory");
    goto done;
  }
  int n_free = 0;
  for (int i = 0; i < n; i++) n_free += !m->blocked[i];
  for (int k = 0; k < m->n_rooms; k++) {
    const maze3d__room *rm = &m->rooms[k];
    int want = range(r, m->cfg.objects_min, m->cfg.objects_max);
    for (int tries = 0; want > 0 && tries < 60; tries++) {
      int cx = rm->x0 + (int)rng_below(r, (uint32_t)rm->w);
      int cy = rm->y0 + (int)rng_below(r, (uint32_t)rm->h);
      int ok = 1;
      for (int dy = -1; dy <= 1 && ok; dy++)
        for (int dx = -1; dx <= 1 && ok; dx++) {
          int j = (cy + dy) * m->gw + cx + dx;
          if (m->cell[j] != MAZE3D__FLOOR || m->blocked[j]) ok = 0;
        }
      if (!ok) continue;
      int c = cy * m->gw + cx, start = -1;
      m->blocked[c] = 1;
      for (int i = 0; i < n && start < 0; i++)
        if (!m->blocked[i]) start = i;
      if (start < 0 || reachable(m, start, queue, seen) != n_free - 1) {
        m->blocked[c] = 0;
        continue;
      }
      n_free--;
      maze3d__pillar *p = &m->pillars[m->n_pillars++];
      p->x = cx + 0.5;
      p->y = cy + 0.5;
      p->r = frange(r, 0.15f, 0.3f);
      p->height = frange(r, 0.6f, 0.95f); /* above the eye, so no top is ever seen */
      float hue = rng_uniform(r), s = frange(r, 0.6f, 0.95f), v = frange(r, 0.75f, 1.0f);
      hsv_to_rgb(hue, s, v, p->c1);
      hsv_to_rgb(hue + frange(r, 0.3f, 0.7f), s, v * frange(r, 0.4f, 0.9f), p->c2);
      p->pattern = (int)rng_below(r, 4);
      want--;
    }
  }
done:
  free(queue);
  free(seen);
  return rc;
}

/* Slots for a multiroom layout: a random connected set of n cells of a small
 * grid, grown from a random seed slot, then cropped. */
static void slots_choose(rng_t *r, int n, int *sx, int *sy, int *cols, int *rows) {
  int gx = (int)ceil(sqrt((double)n)), gy = gx;
  if (n <= 3 && rng_uniform(r) < 0.5f) {
    gx = n;
    gy = 1;
    if (rng_uniform(r) < 0.5f) gx = 1, gy = n;
  }
  int k = 0;
  sx[k] = (int)rng_below(r, (uint32_t)gx);
  sy[k] = (int)rng_below(r, (uint32_t)gy);
  k++;
  while (k < n) {
    int i = (int)rng_below(r, (uint32_t)k), d = (int)rng_below(r, 4);
    int nx = sx[i] + (d == 0) - (d == 1), ny = sy[i] + (d == 2) - (d == 3);
    if (nx < 0 || ny < 0 || nx >= gx || ny >= gy) continue;
    int taken = 0;
    for (int j = 0; j < k; j++) taken |= sx[j] == nx && sy[j] == ny;
    if (taken) continue;
    sx[k] = nx;
    sy[k] = ny;
    k++;
  }
  int minx = gx, miny = gy, maxx = 0, maxy = 0;
  for (int i = 0; i < n; i++) {
    if (sx[i] < minx) minx = sx[i];
    if (sy[i] < miny) miny = sy[i];
    if (sx[i] > maxx) maxx = sx[i];
    if (sy[i] > maxy) maxy = sy[i];
  }
  for (int i = 0; i < n; i++) sx[i] -= minx, sy[i] -= miny;
  *cols = maxx - minx + 1;
  *rows = maxy - miny + 1;
}

int maze3d__layout_build(maze3d *m, char *err, size_t errlen) {
  const maze3d_config *cfg = &m->cfg;
  rng_t rs, *r = &rs;
  rng_init(r, cfg->seed, STREAM_LAYOUT);
  int rc = 0;
  int sx[MAZE3D__MAX_ROOMS], sy[MAZE3D__MAX_ROOMS], cols = 1, rows = 1;
  int S = cfg->room_max + 2; /* slot side: the largest room with its walls */
  if (cfg->layout == MAZE3D_LAYOUT_SINGLE_ROOM) {
    m->n_rooms = 1;
    int w = range(r, cfg->room_min, cfg->room_max), h = range(r, cfg->room_min, cfg->room_max);
    m->gw = w + 2;
    m->gh = h + 2;
    m->rooms[0] = (maze3d__room){1, 1, w, h};
  } else {
    m->n_rooms = range(r, cfg->rooms_min, cfg->rooms_max);
    slots_choose(r, m->n_rooms, sx, sy, &cols, &rows);
    m->gw = cols * S + (cols - 1) * SLOT_GAP;
    m->gh = rows * S + (rows - 1) * SLOT_GAP;
    for (int k = 0; k < m->n_rooms; k++) {
      int w = range(r, cfg->room_min, cfg->room_max), h = range(r, cfg->room_min, cfg->room_max);
      int ox = sx[k] * (S + SLOT_GAP), oy = sy[k] * (S + SLOT_GAP);
      m->rooms[k] = (maze3d__room){ox + 1 + range(r, 0, S - 2 - w), oy + 1 + range(r, 0, S - 2 - h),
                                   w, h};
    }
  }
  size_t n = (size_t)m->gw * (size_t)m->gh;
  m->cell = malloc(n);
  m->region = malloc(n);
  m->blocked = malloc(n);
  m->tex = malloc((size_t)(m->n_rooms + 1) * 3 * MAZE3D__TEX * MAZE3D__TEX * 3 * sizeof(float));
  if (!m->cell || !m->region || !m->blocked || !m->tex)
    return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "maze3d: out of memory");
  memset(m->cell, MAZE3D__WALL, n);
  memset(m->region, -1, n);
  for (int k = 0; k < m->n_rooms; k++) {
    const maze3d__room *rm = &m->rooms[k];
    for (int y = rm->y0; y < rm->y0 + rm->h; y++)
      for (int x = rm->x0; x < rm->x0 + rm->w; x++) {
        m->cell[y * m->gw + x] = MAZE3D__FLOOR;
        m->region[y * m->gw + x] = (int8_t)k;
      }
  }
  if (m->n_rooms > 1) {
    /* Edges between slots that touch, shuffled; Kruskal keeps a spanning
     * tree and a few extra edges make loops. */
    int ea[2 * MAZE3D__MAX_ROOMS * 2], eb[2 * MAZE3D__MAX_ROOMS * 2], ne = 0;
    for (int i = 0; i < m->n_rooms; i++)
      for (int j = 0; j < m->n_rooms; j++)
        if ((sx[j] == sx[i] + 1 && sy[j] == sy[i]) || (sy[j] == sy[i] + 1 && sx[j] == sx[i]))
          ea[ne] = i, eb[ne] = j, ne++;
    for (int i = ne - 1; i > 0; i--) {
      int j = (int)rng_below(r, (uint32_t)(i + 1)), t;
      t = ea[i], ea[i] = ea[j], ea[j] = t;
      t = eb[i], eb[i] = eb[j], eb[j] = t;
    }
    int parent[MAZE3D__MAX_ROOMS];
    for (int i = 0; i < m->n_rooms; i++) parent[i] = i;
    for (int e = 0; e < ne; e++) {
      int a = uf_find(parent, ea[e]), b = uf_find(parent, eb[e]);
      int extra = rng_uniform(r) < 0.25f;
      if (a == b && !extra) continue;
      parent[a] = b;
      int i = ea[e], j = eb[e], horiz = sy[i] == sy[j];
      int mid = horiz ? sx[i] * (S + SLOT_GAP) + S + 1 : sy[i] * (S + SLOT_GAP) + S + 1;
      corridor_carve(m, &m->rooms[i], &m->rooms[j], horiz, mid, r);
    }
  }
  memcpy(m->blocked, m->cell, n); /* MAZE3D__WALL == 1 */
  rc = pillars_place(m, r, err, errlen);
  if (rc) return rc;
  if (cfg->textures) looks_from_set(m, cfg->textures);
  else looks_build(m, r);
  return 0;
}
