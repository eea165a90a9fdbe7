/* Image utilities: crop; area resize against hand-computed means (integer and
 * non-integer factors) and against an independent real-valued reference;
 * mean preservation; PSNR (infinite for identical images, hand cases);
 * float <-> byte conversion; drawing primitives and the font, including
 * coordinates far outside the canvas; line plots over many canvas sizes and
 * hostile values (ASan catches any write outside the canvas). Writes
 * test_image_plot.png and test_image_sheet.png into the build directory for
 * a person to look at. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/draw.h"
#include "img/image.h"
#include "img/plot.h"
#include "img/png.h"
#include "nn/rng.h"
#include "testlib.h"

static uint8_t *random_pixels(size_t n, uint64_t seed) {
  rng_t r;
  rng_init(&r, seed, 5);
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng_below(&r, 256);
  return p;
}

static double mean_u8(const uint8_t *p, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += p[i];
  return s / (double)n;
}

static void test_crop(void) {
  char err[256] = "";
  const int H = 5, W = 6, C = 2;
  uint8_t in[5 * 6 * 2], out[2 * 3 * 2];
  for (int i = 0; i < H * W * C; i++) in[i] = (uint8_t)i;
  CHECK(image_crop(out, in, H, W, C, 1, 2, 2, 3, err, sizeof err) == 0, "crop: %s", err);
  int ok = 1;
  for (int y = 0; y < 2; y++)
    for (int x = 0; x < 3; x++)
      for (int c = 0; c < C; c++) ok &= out[(y * 3 + x) * C + c] == in[((1 + y) * W + 2 + x) * C + c];
  CHECK(ok, "crop copies the window");
  CHECK(image_crop(out, in, H, W, C, 4, 0, 2, 3, err, sizeof err) == GTMSM_EINVAL,
        "window past the bottom must fail");
  CHECK(image_crop(out, in, H, W, C, 0, -1, 2, 3, err, sizeof err) == GTMSM_EINVAL,
        "negative x must fail");
}

/* Independent reference: real-valued interval overlaps, in double. */
static double ref_area(const uint8_t *in, int H, int W, int C, int oh, int ow, int oy, int ox,
                       int c) {
  double sy = (double)H / oh, sx = (double)W / ow;
  double y0 = oy * sy, y1 = (oy + 1) * sy, x0 = ox * sx, x1 = (ox + 1) * sx, acc = 0;
  for (int iy = 0; iy < H; iy++) {
    double wy = fmin(iy + 1.0, y1) - fmax((double)iy, y0);
    if (wy <= 0) continue;
    for (int ix = 0; ix < W; ix++) {
      double wx = fmin(ix + 1.0, x1) - fmax((double)ix, x0);
      if (wx <= 0) continue;
      acc += wy * wx * in[(iy * W + ix) * C + c];
    }
  }
  return acc / (sy * sx);
}

static void check_against_reference(int H, int W, int C, int oh, int ow, uint64_t seed) {
  char err[256] = "";
  uint8_t *in = random_pixels((size_t)H * W * C, seed);
  uint8_t *out = malloc((size_t)oh * ow * C);
  CHECK(image_resize_area(out, oh, ow, in, H, W, C, err, sizeof err) == 0, "resize: %s", err);
  double worst = 0;
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++)
      for (int c = 0; c < C; c++) {
        double d = fabs(out[(y * ow + x) * C + c] - ref_area(in, H, W, C, oh, ow, y, x, c));
        if (d > worst) worst = d;
      }
  /* Output is the exact mean rounded: within 0.5 of the reference. */
  CHECK(worst <= 0.5 + 1e-9, "%dx%d -> %dx%d: off the reference by %g", H, W, oh, ow, worst);
  double mi = mean_u8(in, (size_t)H * W * C), mo = mean_u8(out, (size_t)oh * ow * C);
  CHECK(fabs(mi - mo) <= 0.5, "%dx%d -> %dx%d: mean %g became %g", H, W, oh, ow, mi, mo);
  printf("resize %dx%dx%d -> %dx%d: max |out - reference| %.3f, mean %.4f -> %.4f\n", H, W, C,
         oh, ow, worst, mi, mo);
  free(in);
  free(out);
}

static void test_resize(void) {
  char err[256] = "";
  /* A constant image stays constant, for shrinking and growing. */
  const int shapes[][4] = {{37, 23, 11, 7}, {5, 3, 13, 9}, {32, 32, 32, 32}, {7, 7, 1, 1}};
  for (int s = 0; s < 4; s++) {
    int H = shapes[s][0], W = shapes[s][1], oh = shapes[s][2], ow = shapes[s][3];
    uint8_t *in = malloc((size_t)H * W * 3), *out = malloc((size_t)oh * ow * 3);
    for (int i = 0; i < H * W; i++) {
      in[3 * i] = 7;
      in[3 * i + 1] = 128;
      in[3 * i + 2] = 255;
    }
    CHECK(image_resize_area(out, oh, ow, in, H, W, 3, err, sizeof err) == 0, "resize: %s", err);
    int ok = 1;
    for (int i = 0; i < oh * ow; i++)
      ok &= out[3 * i] == 7 && out[3 * i + 1] == 128 && out[3 * i + 2] == 255;
    CHECK(ok, "constant %dx%d -> %dx%d not constant", H, W, oh, ow);
    free(in);
    free(out);
  }

  /* 2x downscale: block means, x.5 rounded up. */
  const uint8_t g4[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  uint8_t g2[4];
  CHECK(image_resize_area(g2, 2, 2, g4, 4, 4, 1, err, sizeof err) == 0, "2x: %s", err);
  /* (1+2+5+6)/4 = 3.5, (3+4+7+8)/4 = 5.5, (9+10+13+14)/4 = 11.5, 13.5 */
  CHECK(g2[0] == 4 && g2[1] == 6 && g2[2] == 12 && g2[3] == 14, "2x: got %d %d %d %d", g2[0],
        g2[1], g2[2], g2[3]);

  /* 3x3 -> 2x2, factor 1.5: output (0,0) covers input [0,1.5)^2, weights
   * 1, .5, .5, .25 of 2.25: (0*1 + 100*.5 + 100*.5 + 200*.25) / 2.25 = 66.7;
   * output (0,1): (100*.5 + 200*1 + 200*.25 + 0*.5) / 2.25 = 133.3; the
   * image is symmetric, so [[67, 133], [133, 67]]. */
  const uint8_t g3[9] = {0, 100, 200, 100, 200, 0, 200, 0, 100};
  CHECK(image_resize_area(g2, 2, 2, g3, 3, 3, 1, err, sizeof err) == 0, "1.5x: %s", err);
  CHECK(g2[0] == 67 && g2[1] == 133 && g2[2] == 133 && g2[3] == 67, "1.5x: got %d %d %d %d",
        g2[0], g2[1], g2[2], g2[3]);

  /* Non-integer factors both ways, against the reference, mean preserved. */
  check_against_reference(50, 37, 3, 16, 16, 1);
  check_against_reference(23, 29, 1, 40, 55, 2);
  check_against_reference(100, 100, 3, 32, 32, 3);
  check_against_reference(9, 64, 4, 4, 7, 4);

  /* Centre square: 6x10 with value 20x + y; columns 2..7 kept; each output
   * averages a 2x2 block: 20 (2 + 2q + .5) + (2r + .5) = 50.5 + 40q + 2r,
   * rounded up to 51 + 40q + 2r. */
  uint8_t rect[6 * 10], sq[9];
  for (int y = 0; y < 6; y++)
    for (int x = 0; x < 10; x++) rect[y * 10 + x] = (uint8_t)(20 * x + y);
  CHECK(image_square_resize(sq, 3, rect, 6, 10, 1, err, sizeof err) == 0, "square: %s", err);
  int ok = 1;
  for (int r = 0; r < 3; r++)
    for (int q = 0; q < 3; q++) ok &= sq[r * 3 + q] == 51 + 40 * q + 2 * r;
  CHECK(ok, "square resize of a 6x10 ramp: got %d %d %d / %d %d %d", sq[0], sq[1], sq[2], sq[3],
        sq[4], sq[5]);

  CHECK(image_resize_area(g2, 0, 2, g4, 4, 4, 1, err, sizeof err) == GTMSM_EINVAL,
        "zero output size must fail");
  CHECK(image_resize_area(g2, 2, 2, g4, 4, 4, 5, err, sizeof err) == GTMSM_EINVAL,
        "5 channels must fail");
}

static void test_psnr(void) {
  uint8_t a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 255};
  double p = image_psnr_u8(a, a, 4);
  CHECK(isinf(p) && p > 0, "identical bytes: PSNR %g, expected +inf", p);
  /* MSE = 255^2 / 4, so PSNR = 10 log10(4) = 6.0206 dB. */
  CHECK_NEAR(image_psnr_u8(a, b, 4), 10.0 * log10(4.0), 1e-12, 0, "psnr_u8 one pixel off by 255");
  CHECK_NEAR(image_psnr_u8(a, b, 4), 6.020599913, 1e-8, 0, "psnr_u8 literal");
  /* Every byte off by 1: MSE 1, PSNR 20 log10(255) = 48.1308 dB. */
  uint8_t c[4] = {1, 1, 1, 1};
  CHECK_NEAR(image_psnr_u8(a, c, 4), 48.130803609, 1e-8, 0, "psnr_u8 off by one");
  float fa[2] = {0.0f, 0.5f}, fb[2] = {0.1f, 0.5f};
  CHECK(isinf(image_psnr_f32(fa, fa, 2)), "identical floats: +inf");
  /* MSE = 0.1^2 / 2 = 0.005: 10 log10(200) = 23.0103 dB (0.1f is not 0.1). */
  CHECK_NEAR(image_psnr_f32(fa, fb, 2), 23.010299957, 1e-5, 0, "psnr_f32");
  float fn[2] = {NAN, 0.5f};
  CHECK(isnan(image_psnr_f32(fn, fb, 2)), "NaN input gives NaN");
  printf("psnr: identical +inf, 1 of 4 pixels off by 255 -> %.4f dB, floats -> %.4f dB\n",
         image_psnr_u8(a, b, 4), image_psnr_f32(fa, fb, 2));
}

static void test_float_conversion(void) {
  char err[256] = "";
  const float in[7] = {0.0f, 0.5f, 1.0f, -0.2f, 1.7f, 0.25f, 0.00196f};
  const uint8_t want[7] = {0, 128, 255, 0, 255, 64, 0}; /* 127.5 -> 128, 63.75 -> 64, .4998 -> 0 */
  uint8_t out[7];
  CHECK(image_u8_from_float(out, in, 7, err, sizeof err) == 0, "convert: %s", err);
  CHECK(memcmp(out, want, 7) == 0, "float -> u8: %d %d %d %d %d %d %d", out[0], out[1], out[2],
        out[3], out[4], out[5], out[6]);
  const float bad[3] = {0.5f, 0.5f, NAN};
  int rc = image_u8_from_float(out, bad, 3, err, sizeof err);
  CHECK(rc == GTMSM_ENAN && strstr(err, "index 2") && out[0] == 128 && out[2] == 0,
        "NaN: rc %d %s", rc, err);
  const float inf[1] = {INFINITY};
  CHECK(image_u8_from_float(out, inf, 1, err, sizeof err) == GTMSM_ENAN, "Inf is an error too");
  uint8_t all[256], back[256];
  float f[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  image_float_from_u8(f, all, 256);
  CHECK(image_u8_from_float(back, f, 256, err, sizeof err) == 0 && memcmp(all, back, 256) == 0,
        "u8 -> float -> u8 must be the identity");
  CHECK(f[255] == 1.0f && f[0] == 0.0f, "255 -> 1, 0 -> 0");
  /* every float of [0, 1] that is a multiple of 2^-24 (and its negative)
   * against the definition, floor(x * 255 + 0.5) in double, clamped; +inf
   * among them is zeroed */
  enum { N = 1 << 16 };
  static float sweep[2 * N + 2];
  static uint8_t got[2 * N + 2];
  long mismatches = 0;
  for (int chunk = 0; chunk < 256; chunk++) {
    for (int i = 0; i < N; i++) {
      float x = (float)((double)(chunk * N + i) / (1 << 24));
      sweep[2 * i] = x, sweep[2 * i + 1] = -x;
    }
    sweep[2 * N] = INFINITY, sweep[2 * N + 1] = 1.0f;
    image_u8_from_float(got, sweep, 2 * N + 2, err, sizeof err);
    for (int i = 0; i < 2 * N + 2; i++) {
      float x = sweep[i];
      double v = !isfinite(x) ? 0.0 : x <= 0.0f ? 0.0 : x >= 1.0f ? 255.0 : floor((double)x * 255.0 + 0.5);
      mismatches += got[i] != (uint8_t)v;
    }
  }
  CHECK(mismatches == 0, "float -> u8: %ld values differ from floor(x * 255 + 0.5)", mismatches);
}

static int count_color(const image_t *im, draw_rgb c) {
  int n = 0;
  for (int i = 0; i < im->H * im->W; i++) {
    const uint8_t *p = im->pix + (size_t)i * im->C;
    n += p[0] == c.r && p[1] == c.g && p[2] == c.b;
  }
  return n;
}

static int is_set(const image_t *im, int x, int y) { return im->pix[(y * im->W + x) * im->C] != 0; }

static void test_draw(void) {
  char err[256] = "";
  image_t im;
  CHECK(image_init(&im, 20, 30, 3, err, sizeof err) == 0, "init: %s", err);
  draw_rgb white = draw_color(255, 255, 255);

  draw_line(&im, 1, 1, 5, 1, white);
  CHECK(count_color(&im, white) == 5, "horizontal line: 5 pixels, got %d", count_color(&im, white));
  draw_fill(&im, draw_color(0, 0, 0));
  draw_line(&im, 3, 3, 0, 0, white);
  CHECK(count_color(&im, white) == 4 && is_set(&im, 0, 0) && is_set(&im, 3, 3) &&
            is_set(&im, 1, 1),
        "diagonal line (reversed ends)");
  draw_fill(&im, draw_color(0, 0, 0));
  /* Far outside the canvas: clipped, bounded time, still drawn where it
   * crosses. The horizontal one covers row 5 exactly. */
  draw_line(&im, -1000000, 5, 1000000, 5, white);
  CHECK(count_color(&im, white) == 30, "clipped horizontal line: got %d", count_color(&im, white));
  draw_line(&im, INT_MIN, INT_MIN, INT_MAX, INT_MAX, white);
  draw_line(&im, INT_MAX, INT_MIN, INT_MIN, INT_MAX, white);
  draw_line(&im, -50, -50, -10, 100, white); /* misses entirely */
  draw_line(&im, INT_MIN, 3, INT_MIN, 7, white);
  int xy[8] = {0, 0, 29, 19, INT_MAX, 0, 0, INT_MIN};
  draw_polyline(&im, xy, 4, white);
  draw_rect_fill(&im, INT_MIN, INT_MIN, INT_MAX, INT_MAX, white);
  draw_rect_fill(&im, 25, 15, INT_MAX, INT_MAX, white);
  draw_rect(&im, -5, -5, INT_MAX, INT_MAX, white);
  draw_pixel(&im, -1, 0, white);
  draw_pixel(&im, 30, 0, white);

  /* Blit: a 2x2 source at scale 3, partly off the left edge. */
  draw_fill(&im, draw_color(0, 0, 0));
  const uint8_t src[4] = {10, 20, 30, 40};
  CHECK(draw_blit(&im, -2, 1, src, 2, 2, 1, 3, err, sizeof err) == 0, "blit: %s", err);
  /* Source (0,0) covers x -2..0, y 1..3; source (0,1) x 1..3; (1,1) y 4..6. */
  CHECK(im.pix[(1 * 30 + 0) * 3] == 10 && im.pix[(1 * 30 + 1) * 3] == 20 &&
            im.pix[(4 * 30 + 3) * 3] == 40 && im.pix[(4 * 30 + 4) * 3] == 0,
        "blit placement");
  CHECK(draw_blit(&im, 0, 0, src, 2, 2, 1, 0, err, sizeof err) == GTMSM_EINVAL, "scale 0 fails");
  CHECK(draw_blit(&im, INT_MAX, INT_MIN, src, 2, 2, 1, 1000, err, sizeof err) == 0, "far blit");
  CHECK(draw_blit(&im, INT_MIN, INT_MIN, src, 2, 2, 1, INT_MAX, err, sizeof err) == 0, "huge scale");

  /* Text: widths and glyph placement. */
  CHECK(draw_text_width("AB", 1) == 11 && draw_text_width("AB", 2) == 22 &&
            draw_text_width("A\nBCD", 1) == 17 && draw_text_width("", 1) == 0,
        "text widths %d %d %d", draw_text_width("AB", 1), draw_text_width("AB", 2),
        draw_text_width("A\nBCD", 1));
  draw_fill(&im, draw_color(0, 0, 0));
  draw_text(&im, 0, 0, "1", white, 1); /* top row of '1' is ..X.. */
  CHECK(!is_set(&im, 1, 0) && is_set(&im, 2, 0) && !is_set(&im, 3, 0), "glyph '1' top row");
  draw_text(&im, -3, -3, "HELLO WORLD 123 %:/.-", white, 3);
  draw_text(&im, INT_MAX - 5, INT_MAX - 5, "overflow?", white, 1000);
  draw_text(&im, INT_MIN, 0, "left", white, 1);
  image_free(&im);

  /* Every documented glyph exists (is not the missing-glyph box), and no
   * two glyphs are the same; lower case draws as upper case. */
  const char *chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ!#%'()*+,-./:<=>?[]_";
  size_t nch = strlen(chars);
  uint64_t masks[64];
  image_t g;
  image_init(&g, DRAW_FONT_H, DRAW_FONT_W, 1, NULL, 0);
  char one[2] = {0, 0};
  one[0] = '~'; /* no glyph */
  draw_text(&g, 0, 0, one, white, 1);
  uint64_t box = 0;
  for (int i = 0; i < DRAW_FONT_H * DRAW_FONT_W; i++) box = box << 1 | (g.pix[i] != 0);
  for (size_t k = 0; k < nch; k++) {
    memset(g.pix, 0, DRAW_FONT_H * DRAW_FONT_W);
    one[0] = chars[k];
    draw_text(&g, 0, 0, one, white, 1);
    uint64_t m = 0;
    for (int i = 0; i < DRAW_FONT_H * DRAW_FONT_W; i++) m = m << 1 | (g.pix[i] != 0);
    masks[k] = m;
    CHECK(m != 0 && m != box, "glyph '%c' missing", chars[k]);
    for (size_t j = 0; j < k; j++)
      CHECK(masks[j] != m, "glyphs '%c' and '%c' are identical", chars[j], chars[k]);
    if (chars[k] >= 'A' && chars[k] <= 'Z') {
      memset(g.pix, 0, DRAW_FONT_H * DRAW_FONT_W);
      one[0] = (char)(chars[k] - 'A' + 'a');
      draw_text(&g, 0, 0, one, white, 1);
      uint64_t lower = 0;
      for (int i = 0; i < DRAW_FONT_H * DRAW_FONT_W; i++) lower = lower << 1 | (g.pix[i] != 0);
      CHECK(lower == m, "'%c' differs from its upper case", one[0]);
    }
  }
  printf("font: %zu glyphs present and distinct\n", nch);
  image_free(&g);
}

/* PSNR-like curves: decreasing with noise, one with a NaN gap and an Inf. */
static void make_curves(double *y, int T, int which) {
  for (int t = 0; t < T; t++) y[t] = 32.0 - which * 3.0 - 9.0 * log1p(t) / log1p(T) + 0.4 * sin(t);
  if (which == 1) {
    y[5] = NAN;
    y[6] = NAN;
    y[12] = INFINITY;
  }
}

static void test_plot(void) {
  char err[256] = "";
  enum { T = 25 };
  double y[3][T];
  for (int s = 0; s < 3; s++) make_curves(y[s], T, s);
  plot_series series[3] = {
      {y[0], T, plot_color(0), "GTMSM"},
      {y[1], T, plot_color(1), "LSTM (gaps)"},
      {y[2], T, plot_color(2), "VAE-RNN"},
  };
  plot_opts o = plot_default();
  o.title = "PSNR vs prediction step";
  o.xlabel = "step";
  o.ylabel = "PSNR (dB)";
  o.markers = 1;
  image_t im;
  CHECK(image_init(&im, 320, 480, 3, err, sizeof err) == 0, "init: %s", err);
  int rc = plot_draw_lines(&im, series, 3, &o, err, sizeof err);
  CHECK(rc == 0, "plot: rc %d %s", rc, err);
  for (int s = 0; s < 3; s++)
    CHECK(count_color(&im, series[s].color) > 100, "series %d barely drawn (%d px)", s,
          count_color(&im, series[s].color));
  char path[1024];
  snprintf(path, sizeof path, "%s/test_image_plot.png", GTMSM_BINARY_DIR);
  CHECK(pngio_write_file(path, im.pix, im.H, im.W, 3, err, sizeof err) == 0, "write: %s", err);
  printf("plot written to %s\n", path);
  image_free(&im);

  /* Many canvas sizes, channel counts and scales: fails cleanly when too
   * small, never writes outside (ASan). */
  const int Ws[] = {1, 7, 40, 90, 101, 150, 333}, Hs[] = {1, 9, 45, 61, 70, 200};
  int drawn = 0, refused = 0;
  for (int a = 0; a < 7; a++)
    for (int b = 0; b < 6; b++)
      for (int C = 1; C <= 4; C++)
        for (int ts = 1; ts <= 3; ts++) {
          image_t c;
          image_init(&c, Hs[b], Ws[a], C, NULL, 0);
          plot_opts oo = o;
          oo.text_scale = ts;
          rc = plot_draw_lines(&c, series, 3, &oo, err, sizeof err);
          CHECK(rc == 0 || rc == GTMSM_EINVAL, "plot %dx%d: rc %d %s", Ws[a], Hs[b], rc, err);
          drawn += rc == 0;
          refused += rc != 0;
          image_free(&c);
        }
  printf("plot over sizes: %d drawn, %d refused as too small\n", drawn, refused);
  CHECK(drawn > 0 && refused > 0, "expected both outcomes");

  /* Hostile values. */
  image_init(&im, 200, 300, 3, NULL, 0);
  double huge[3] = {-1e308, 0, 1e308};
  plot_series hs = {huge, 3, plot_color(0), "huge"};
  rc = plot_draw_lines(&im, &hs, 1, NULL, err, sizeof err);
  CHECK(rc == GTMSM_ERANGE, "a span beyond double: rc %d %s", rc, err);
  double big[3] = {1e300, -1e300, 5};
  hs.y = big;
  CHECK(plot_draw_lines(&im, &hs, 1, NULL, err, sizeof err) == 0, "1e300 range: %s", err);
  double tiny[4] = {1e-300, 2e-300, 1.5e-300, 0};
  hs.y = tiny;
  hs.n = 4;
  CHECK(plot_draw_lines(&im, &hs, 1, NULL, err, sizeof err) == 0, "1e-300 range: %s", err);
  double nan_only[2] = {NAN, INFINITY};
  hs.y = nan_only;
  hs.n = 2;
  CHECK(plot_draw_lines(&im, &hs, 1, NULL, err, sizeof err) == 0, "no finite value: %s", err);
  double one[1] = {3};
  hs.y = one;
  hs.n = 1;
  CHECK(plot_draw_lines(&im, &hs, 1, NULL, err, sizeof err) == 0, "one point: %s", err);
  CHECK(plot_draw_lines(&im, NULL, 0, NULL, err, sizeof err) == 0, "no series: %s", err);
  plot_opts fixed = plot_default();
  fixed.ymin = 10;
  fixed.ymax = 20; /* the curves go outside: clipped */
  CHECK(plot_draw_lines(&im, series, 3, &fixed, err, sizeof err) == 0, "fixed range: %s", err);
  fixed.x0 = -1e308;
  fixed.dx = 1e308;
  CHECK(plot_draw_lines(&im, series, 3, &fixed, err, sizeof err) != 0, "x span beyond double");
  plot_opts bad = plot_default();
  bad.dx = 0;
  CHECK(plot_draw_lines(&im, series, 3, &bad, err, sizeof err) == GTMSM_EINVAL, "dx 0 fails");
  bad = plot_default();
  bad.ymin = -INFINITY;
  bad.ymax = 1;
  CHECK(plot_draw_lines(&im, series, 3, &bad, err, sizeof err) == GTMSM_EINVAL, "inf ymin");
  plot_series nully = {NULL, 3, plot_color(0), "x"};
  CHECK(plot_draw_lines(&im, &nully, 1, NULL, err, sizeof err) == GTMSM_EINVAL, "NULL y");
  image_free(&im);
}

/* A contact sheet of worlds with labels, as tools will draw prediction
 * strips: exercises blit + text + rect together, and is saved for a look. */
static void test_sheet(void) {
  char err[512] = "", path[1024];
  const char *names[4] = {"train/astronaut_k2_r0_c0.png", "train/coffee_k2_r0_c1.png",
                          "test/chelsea_k2_r0_c1.png", "test/hubble_k2_r0_c0.png"};
  image_t sheet;
  image_init(&sheet, 4 + 96 + 14, 4 + 4 * 100, 3, NULL, 0);
  draw_fill(&sheet, draw_color(255, 255, 255));
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/data/worlds/%s", GTMSM_SOURCE_DIR, names[i]);
    uint8_t *pix = NULL;
    int h, w, c;
    int rc = pngio_read_file(&pix, &h, &w, &c, path, 3, 0, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    if (rc) continue;
    CHECK(draw_blit(&sheet, 4 + i * 100, 4, pix, h, w, c, 3, err, sizeof err) == 0, "%s", err);
    draw_rect(&sheet, 3 + i * 100, 3, 98, 98, draw_color(255, 0, 0));
    char label[32];
    snprintf(label, sizeof label, "t=%d 31.5%%", i + 1);
    draw_text(&sheet, 4 + i * 100, 104, label, draw_color(0, 0, 0), 1);
    free(pix);
  }
  snprintf(path, sizeof path, "%s/test_image_sheet.png", GTMSM_BINARY_DIR);
  CHECK(pngio_write_file(path, sheet.pix, sheet.H, sheet.W, 3, err, sizeof err) == 0, "%s", err);
  image_free(&sheet);
  image_free(&sheet); /* freeing twice is allowed */
}

int main(void) {
  test_crop();
  test_resize();
  test_psnr();
  test_float_conversion();
  test_draw();
  test_plot();
  test_sheet();
  return test_finish("test_image");
}
