/* Drawing on an image_t canvas, for contact sheets, prediction strips and
 * plots: filled rectangles, 1-px lines, nearest-neighbour blits scaled by an
 * integer factor, and text in a built-in 5x7 bitmap font.
 *
 * Every primitive clips to the canvas, so callers may pass coordinates
 * anywhere in the int range; nothing is ever written outside im->pix.
 * Colours are RGB; on a 1- or 2-channel (gray, gray+alpha) canvas they
 * become their Rec. 601 luma, round((299 r + 587 g + 114 b) / 1000); any
 * alpha channel is set opaque. x is the column, y the row, (0, 0) the top-left pixel. */
#ifndef GTMSM_IMG_DRAW_H
#define GTMSM_IMG_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "img/image.h"

typedef struct {
  uint8_t r, g, b;
} draw_rgb;

/* Glyph cell: 5 x 7 pixels, advanced by 6 (one blank column) per character,
 * and 9 rows per line of text, all times the text scale. */
#define DRAW_FONT_W 5
#define DRAW_FONT_H 7
#define DRAW_FONT_ADVANCE 6
#define DRAW_LINE_HEIGHT 9

static inline draw_rgb draw_color(uint8_t r, uint8_t g, uint8_t b) {
  draw_rgb c = {r, g, b};
  return c;
}

/* Sets pixel (x, y) if it is on the canvas. */
void draw_pixel(image_t *im, int x, int y, draw_rgb c);
void draw_fill(image_t *im, draw_rgb c);
/* Fills the w x h rectangle with top-left corner (x, y), clipped. */
void draw_rect_fill(image_t *im, int x, int y, int w, int h, draw_rgb c);
/* 1-px outline of the same rectangle. */
void draw_rect(image_t *im, int x, int y, int w, int h, draw_rgb c);
/* Bresenham line from (x0, y0) to (x1, y1), both ends included. A line that
 * leaves the canvas is clipped first (Liang-Barsky), so its cost is bounded
 * by the canvas size, not by the coordinates. */
void draw_line(image_t *im, int x0, int y0, int x1, int y1, draw_rgb c);
/* Lines through the n points xy (n, 2) as (x, y) pairs; borrowed. */
void draw_polyline(image_t *im, const int *xy, size_t n, draw_rgb c);

/* Copies src (H, W, C), borrowed, C in 1..4, with its top-left corner at
 * (x, y), each source pixel becoming a scale x scale block (nearest
 * neighbour); clipped. Channels convert as for colours: gray is replicated,
 * RGB onto a gray canvas becomes luma, source alpha is ignored (copied
 * opaque, not blended). Returns 0 or
 * GTMSM_EINVAL (bad shape or scale < 1). */
int draw_blit(image_t *im, int x, int y, const uint8_t *src, int H, int W, int C, int scale,
              char *err, size_t errlen);

/* Draws s (borrowed, NUL-terminated) with the top-left of its first glyph at
 * (x, y), each font pixel a scale x scale block (scale < 1 counts as 1),
 * clipped. Glyphs exist for digits, letters (lower case drawn as upper case)
 * and space ! # % ' ( ) * + , - . / : < = > ? [ ] _; any other byte draws a
 * hollow box so a missing glyph is visible. '\n' starts a new line at x.
 * Returns the width in pixels of the widest line. */
int draw_text(image_t *im, int x, int y, const char *s, draw_rgb c, int scale);
/* The width draw_text would return, without drawing. */
int draw_text_width(const char *s, int scale);

#endif
