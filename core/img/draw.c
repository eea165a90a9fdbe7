/* Clipped drawing primitives and a 5x7 bitmap font drawn by hand for this
 * project (each row a 5-bit mask, bit 4 the leftmost column). */
#include "img/draw.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

static const uint8_t FONT[128][DRAW_FONT_H] = {
    ['0'] = {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},
    ['1'] = {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    ['2'] = {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},
    ['3'] = {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    ['4'] = {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},
    ['5'] = {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    ['6'] = {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},
    ['7'] = {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    ['8'] = {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},
    ['9'] = {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
    ['A'] = {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
    ['B'] = {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
    ['C'] = {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},
    ['D'] = {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
    ['E'] = {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},
    ['F'] = {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
    ['G'] = {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},
    ['H'] = {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
    ['I'] = {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
    ['J'] = {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
    ['K'] = {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},
    ['L'] = {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
    ['M'] = {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11},
    ['N'] = {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
    ['O'] = {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
    ['P'] = {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
    ['Q'] = {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D},
    ['R'] = {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
    ['S'] = {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E},
    ['T'] = {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
    ['U'] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
    ['V'] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
    ['W'] = {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A},
    ['X'] = {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
    ['Y'] = {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04},
    ['Z'] = {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
    ['!'] = {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04},
    ['#'] = {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A},
    ['%'] = {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
    ['\''] = {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00},
    ['('] = {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
    [')'] = {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
    ['*'] = {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00},
    ['+'] = {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00},
    [','] = {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},
    ['-'] = {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},
    ['.'] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C},
    ['/'] = {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},
    [':'] = {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00},
    ['<'] = {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},
    ['='] = {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00},
    ['>'] = {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},
    ['?'] = {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04},
    ['['] = {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E},
    [']'] = {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E},
    ['_'] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F},
};

/* Drawn for bytes without a glyph, so a missing one shows instead of
 * silently vanishing. */
static const uint8_t FONT_MISSING[DRAW_FONT_H] = {0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F};

static const uint8_t *font_glyph(unsigned char ch) {
  if (ch >= 'a' && ch <= 'z') ch = (unsigned char)(ch - 'a' + 'A');
  if (ch == ' ') return FONT[' ']; /* blank by design */
  if (ch < 128) {
    const uint8_t *g = FONT[ch];
    for (int r = 0; r < DRAW_FONT_H; r++)
      if (g[r]) return g;
  }
  return FONT_MISSING;
}

static int clamp_int(int64_t v) { return v < INT_MIN ? INT_MIN : v > INT_MAX ? INT_MAX : (int)v; }

/* The bytes of colour c on a canvas with C channels. */
static void color_bytes(uint8_t out[IMAGE_MAX_C], int C, draw_rgb c) {
  if (C < 3) {
    out[0] = (uint8_t)((299u * c.r + 587u * c.g + 114u * c.b + 500u) / 1000u);
    out[1] = 255;
  } else {
    out[0] = c.r;
    out[1] = c.g;
    out[2] = c.b;
    out[3] = 255;
  }
}

static inline void put(image_t *im, int x, int y, const uint8_t *px) {
  if (x < 0 || y < 0 || x >= im->W || y >= im->H) return;
  memcpy(im->pix + ((size_t)y * (size_t)im->W + (size_t)x) * (size_t)im->C, px, (size_t)im->C);
}

void draw_pixel(image_t *im, int x, int y, draw_rgb c) {
  uint8_t px[IMAGE_MAX_C];
  color_bytes(px, im->C, c);
  put(im, x, y, px);
}

void draw_rect_fill(image_t *im, int x, int y, int w, int h, draw_rgb c) {
  if (w <= 0 || h <= 0) return;
  /* Clip in 64 bits: x + w may overflow int. */
  int64_t x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
  int64_t x1 = (int64_t)x + w, y1 = (int64_t)y + h;
  if (x1 > im->W) x1 = im->W;
  if (y1 > im->H) y1 = im->H;
  if (x0 >= x1 || y0 >= y1) return;
  uint8_t px[IMAGE_MAX_C];
  color_bytes(px, im->C, c);
  for (int64_t yy = y0; yy < y1; yy++)
    for (int64_t xx = x0; xx < x1; xx++) put(im, (int)xx, (int)yy, px);
}

void draw_fill(image_t *im, draw_rgb c) { draw_rect_fill(im, 0, 0, im->W, im->H, c); }

void draw_rect(image_t *im, int x, int y, int w, int h, draw_rgb c) {
  if (w <= 0 || h <= 0) return;
  draw_rect_fill(im, x, y, w, 1, c);
  draw_rect_fill(im, x, clamp_int((int64_t)y + h - 1), w, 1, c);
  draw_rect_fill(im, x, y, 1, h, c);
  draw_rect_fill(im, clamp_int((int64_t)x + w - 1), y, 1, h, c);
}

/* Liang-Barsky: clips the segment p0 + t (p1 - p0), t in [0, 1], to the
 * pixel-centre box [0, W-1] x [0, H-1]. Returns 0 if nothing is left. */
static int clip_segment(double *x0, double *y0, double *x1, double *y1, double W, double H) {
  double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0.0, t1 = 1.0;
  double p[4] = {-dx, dx, -dy, dy};
  double q[4] = {*x0, W - 1 - *x0, *y0, H - 1 - *y0};
  for (int i = 0; i < 4; i++) {
    if (p[i] == 0) {
      if (q[i] < 0) return 0;
      continue;
    }
    double t = q[i] / p[i];
    if (p[i] < 0) {
      if (t > t1) return 0;
      if (t > t0) t0 = t;
    } else {
      if (t < t0) return 0;
      if (t < t1) t1 = t;
    }
  }
  double nx0 = *x0 + t0 * dx, ny0 = *y0 + t0 * dy;
  *x1 = *x0 + t1 * dx;
  *y1 = *y0 + t1 * dy;
  *x0 = nx0;
  *y0 = ny0;
  return 1;
}

void draw_line(image_t *im, int x0, int y0, int x1, int y1, draw_rgb c) {
  if (im->W <= 0 || im->H <= 0) return;
  int inside = x0 >= 0 && x0 < im->W && y0 >= 0 && y0 < im->H && x1 >= 0 && x1 < im->W &&
               y1 >= 0 && y1 < im->H;
  if (!inside) {
    /* Clipping moves the ends onto the canvas edge, which can shift the
     * rasterised pixels by one against the unclipped line; acceptable for
     * figures, and it keeps the loop below bounded by the canvas size. */
    double fx0 = x0, fy0 = y0, fx1 = x1, fy1 = y1;
    if (!clip_segment(&fx0, &fy0, &fx1, &fy1, im->W, im->H)) return;
    x0 = (int)lround(fx0);
    y0 = (int)lround(fy0);
    x1 = (int)lround(fx1);
    y1 = (int)lround(fy1);
  }
  uint8_t px[IMAGE_MAX_C];
  color_bytes(px, im->C, c);
  int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int e = dx + dy;
  for (;;) {
    put(im, x0, y0, px);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * e;
    if (e2 >= dy) {
      e += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      e += dx;
      y0 += sy;
    }
  }
}

void draw_polyline(image_t *im, const int *xy, size_t n, draw_rgb c) {
  if (n == 1) draw_pixel(im, xy[0], xy[1], c);
  for (size_t i = 1; i < n; i++)
    draw_line(im, xy[2 * i - 2], xy[2 * i - 1], xy[2 * i], xy[2 * i + 1], c);
}

int draw_blit(image_t *im, int x, int y, const uint8_t *src, int H, int W, int C, int scale,
              char *err, size_t errlen) {
  if (H <= 0 || W <= 0 || C <= 0 || C > IMAGE_MAX_C || scale < 1 || !src)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "draw blit: bad source %dx%dx%d scale %d", H,
                      W, C, scale);
  for (int sy = 0; sy < H; sy++) {
    int64_t ty = (int64_t)y + (int64_t)sy * scale;
    if (ty >= im->H) break;
    if (ty + scale <= 0) continue;
    for (int sx = 0; sx < W; sx++) {
      int64_t tx = (int64_t)x + (int64_t)sx * scale;
      if (tx >= im->W) break;
      if (tx + scale <= 0) continue;
      const uint8_t *p = src + ((size_t)sy * (size_t)W + (size_t)sx) * (size_t)C;
      draw_rgb col = C < 3 ? draw_color(p[0], p[0], p[0]) : draw_color(p[0], p[1], p[2]);
      draw_rect_fill(im, (int)tx, (int)ty, scale, scale, col);
    }
  }
  return GTMSM_OK;
}

/* Walks s line by line; draws when im is non-NULL. Returns the widest line. */
static int text_walk(image_t *im, int x, int y, const char *s, draw_rgb c, int scale) {
  if (scale < 1) scale = 1;
  int64_t cx = x, cy = y, widest = 0, line = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '\n') {
      cx = x;
      cy += (int64_t)DRAW_LINE_HEIGHT * scale;
      line = 0;
      continue;
    }
    if (im && cx < im->W && cy < im->H && *p != ' ') {
      const uint8_t *g = font_glyph(*p);
      for (int r = 0; r < DRAW_FONT_H; r++)
        for (int k = 0; k < DRAW_FONT_W; k++)
          if (g[r] & (0x10 >> k)) {
            int64_t px = cx + (int64_t)k * scale, py = cy + (int64_t)r * scale;
            if (px < INT_MIN || py < INT_MIN || px > INT_MAX || py > INT_MAX) continue;
            draw_rect_fill(im, (int)px, (int)py, scale, scale, c);
          }
    }
    cx += (int64_t)DRAW_FONT_ADVANCE * scale;
    /* The trailing blank column of the last glyph is not part of the width. */
    line += (int64_t)DRAW_FONT_ADVANCE * scale;
    if (line - scale > widest) widest = line - scale;
  }
  return clamp_int(widest);
}

int draw_text(image_t *im, int x, int y, const char *s, draw_rgb c, int scale) {
  return text_walk(im, x, y, s, c, scale);
}

int draw_text_width(const char *s, int scale) {
  draw_rgb none = {0, 0, 0};
  return text_walk(NULL, 0, 0, s, none, scale);
}
