/* Image buffers, crop, exact area-averaging resize, PSNR, float conversion. */
#include "img/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

int image_init(image_t *im, int H, int W, int C, char *err, size_t errlen) {
  memset(im, 0, sizeof *im);
  if (H <= 0 || W <= 0 || C <= 0 || C > IMAGE_MAX_C ||
      (size_t)W > SIZE_MAX / (size_t)IMAGE_MAX_C / (size_t)H)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "image: bad shape %dx%dx%d", H, W, C);
  im->pix = calloc((size_t)H * (size_t)W * (size_t)C, 1);
  if (!im->pix)
    return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "image: out of memory for %dx%dx%d", H, W, C);
  im->H = H;
  im->W = W;
  im->C = C;
  return GTMSM_OK;
}

void image_free(image_t *im) {
  free(im->pix);
  memset(im, 0, sizeof *im);
}

int image_crop(uint8_t *out, const uint8_t *in, int H, int W, int C, int y, int x, int h,
               int w, char *err, size_t errlen) {
  if (H <= 0 || W <= 0 || C <= 0 || h <= 0 || w <= 0 || y < 0 || x < 0 || y > H - h ||
      x > W - w)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "image crop: window %dx%d at (%d, %d) not inside %dx%d", h, w, y, x, H, W);
  size_t row = (size_t)w * (size_t)C;
  for (int r = 0; r < h; r++)
    memcpy(out + (size_t)r * row, in + ((size_t)(y + r) * (size_t)W + (size_t)x) * (size_t)C,
           row);
  return GTMSM_OK;
}

/* The input cells [lo, hi) that output cell k of n (over N inputs) touches.
 * In units where an input cell is n long and an output cell N long, output
 * k spans [k N, (k+1) N), so its overlap with input i is an integer and the
 * overlaps of one output sum to N. */
static void area_span(int64_t k, int64_t n, int64_t N, int64_t *lo, int64_t *hi) {
  *lo = k * N / n;
  *hi = ((k + 1) * N + n - 1) / n;
}

static int64_t area_overlap(int64_t i, int64_t k, int64_t n, int64_t N) {
  int64_t a = i * n > k * N ? i * n : k * N;
  int64_t b = (i + 1) * n < (k + 1) * N ? (i + 1) * n : (k + 1) * N;
  return b > a ? b - a : 0;
}

/* image_resize_area on a window of a larger image: stride is the number of
 * bytes from one input row to the next. */
static void resize_area_strided(uint8_t *out, int oh, int ow, const uint8_t *in, int H, int W,
                                int C, size_t stride) {
  const uint64_t den = (uint64_t)H * (uint64_t)W; /* sum of all weights of one output */
  for (int oy = 0; oy < oh; oy++) {
    int64_t y0, y1;
    area_span(oy, oh, H, &y0, &y1);
    for (int ox = 0; ox < ow; ox++) {
      int64_t x0, x1;
      area_span(ox, ow, W, &x0, &x1);
      uint64_t acc[IMAGE_MAX_C] = {0};
      for (int64_t iy = y0; iy < y1; iy++) {
        uint64_t wy = (uint64_t)area_overlap(iy, oy, oh, H);
        const uint8_t *src = in + (size_t)iy * stride;
        for (int64_t ix = x0; ix < x1; ix++) {
          uint64_t wgt = wy * (uint64_t)area_overlap(ix, ox, ow, W);
          const uint8_t *p = src + (size_t)ix * (size_t)C;
          for (int c = 0; c < C; c++) acc[c] += wgt * p[c];
        }
      }
      uint8_t *q = out + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)C;
      for (int c = 0; c < C; c++) q[c] = (uint8_t)((acc[c] + den / 2) / den);
    }
  }
}

static int resize_check(int oh, int ow, int H, int W, int C, char *err, size_t errlen) {
  if (oh <= 0 || ow <= 0 || H <= 0 || W <= 0 || C <= 0 || C > IMAGE_MAX_C)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "image resize: bad shapes %dx%dx%d -> %dx%d",
                      H, W, C, oh, ow);
  /* 255 * H * W bounds every accumulator; keep it well inside 64 bits. */
  if ((uint64_t)H * (uint64_t)W > ((uint64_t)1 << 48))
    return gtmsm_fail(err, errlen, GTMSM_ERANGE, "image resize: %dx%d input too large", H, W);
  return GTMSM_OK;
}

int image_resize_area(uint8_t *out, int oh, int ow, const uint8_t *in, int H, int W, int C,
                      char *err, size_t errlen) {
  int rc = resize_check(oh, ow, H, W, C, err, errlen);
  if (rc) return rc;
  resize_area_strided(out, oh, ow, in, H, W, C, (size_t)W * (size_t)C);
  return GTMSM_OK;
}

int image_square_resize(uint8_t *out, int S, const uint8_t *in, int H, int W, int C, char *err,
                        size_t errlen) {
  int side = H < W ? H : W;
  int rc = resize_check(S, S, side, side, C, err, errlen);
  if (rc) return rc;
  int y0 = (H - side) / 2, x0 = (W - side) / 2;
  const uint8_t *start = in + ((size_t)y0 * (size_t)W + (size_t)x0) * (size_t)C;
  resize_area_strided(out, S, S, start, side, side, C, (size_t)W * (size_t)C);
  return GTMSM_OK;
}

double image_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n) {
  /* Integer squared errors summed exactly: 65025 * n fits 64 bits for any
   * buffer that fits in memory. */
  uint64_t sse = 0;
  for (size_t i = 0; i < n; i++) {
    int d = (int)a[i] - (int)b[i];
    sse += (uint64_t)(d * d);
  }
  if (sse == 0) return INFINITY;
  double mse = (double)sse / (double)n;
  return 10.0 * log10(255.0 * 255.0 / mse);
}

double image_psnr_f32(const float *a, const float *b, size_t n) {
  double sse = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    sse += d * d;
  }
  if (isnan(sse)) return NAN;
  if (sse == 0) return INFINITY;
  return 10.0 * log10((double)n / sse);
}

int image_u8_from_float(uint8_t *out, const float *in, size_t n, char *err, size_t errlen) {
  /* floor(x * 255 + 0.5), clamped to [0, 255]: clamped before scaling so the
   * conversion is always in range, and as a truncation (the value is >= 0,
   * so it is the floor) that the compiler turns into vector code; NaN fails
   * x > 0 and gives 0. A second pass, only when something is not finite,
   * zeroes those values (an infinity included) and reports the first. */
  int finite = 1;
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    double v = x > 0.0f ? (x < 1.0f ? (double)x * 255.0 + 0.5 : 255.0) : 0.0;
    out[i] = (uint8_t)(int)v;
    finite &= isfinite(x) != 0;
  }
  size_t bad = SIZE_MAX;
  for (size_t i = 0; !finite && i < n; i++)
    if (!isfinite(in[i])) {
      if (bad == SIZE_MAX) bad = i;
      out[i] = 0;
    }
  if (bad != SIZE_MAX)
    return gtmsm_fail(err, errlen, GTMSM_ENAN, "image: non-finite value %g at index %zu of %zu",
                      (double)in[bad], bad, n);
  return GTMSM_OK;
}

void image_float_from_u8(float *out, const uint8_t *in, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = (float)in[i] / 255.0f;
}
