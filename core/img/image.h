/* 8-bit images (H, W, C), row-major with interleaved channels, as PNGs store
 * them: an owning struct for canvases, and crop, area-averaging resize, PSNR
 * and float <-> byte conversion on plain buffers.
 * Drawing on an image_t lives in img/draw.h, line plots in img/plot.h. */
#ifndef GTMSM_IMG_IMAGE_H
#define GTMSM_IMG_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_MAX_C 4

typedef struct {
  uint8_t *pix; /* (H, W, C), owned */
  int H, W, C;
} image_t;

/* Allocates a zeroed (black) H x W x C image into im; C in 1..IMAGE_MAX_C.
 * Returns 0, GTMSM_EINVAL or GTMSM_ENOMEM (im is then all zero). */
int image_init(image_t *im, int H, int W, int C, char *err, size_t errlen);
/* Frees im->pix and zeroes im; safe on a zeroed or already freed image. */
void image_free(image_t *im);

/* Copies the h x w window at row y, column x of in (H, W, C) into out
 * (h, w, C). Both borrowed. The window must lie inside in: GTMSM_EINVAL. */
int image_crop(uint8_t *out, const uint8_t *in, int H, int W, int C, int y, int x, int h,
               int w, char *err, size_t errlen);

/* Area-averaging (box filter) resize of in (H, W, C) to out (oh, ow, C), both
 * borrowed, C in 1..IMAGE_MAX_C, up or down. Each output pixel covers the
 * rectangle [x W/ow, (x+1) W/ow) x [y H/oh, (y+1) H/oh) of the input and is
 * the mean of the input pixels weighted by their area inside it, computed in
 * exact integer arithmetic and rounded half up. So integer factors give plain
 * block means, and the image mean is preserved up to that rounding for any
 * factor. No allocation. GTMSM_EINVAL for bad shapes, GTMSM_ERANGE when
 * H * W exceeds 2^48 (the exact sums would overflow). */
int image_resize_area(uint8_t *out, int oh, int ow, const uint8_t *in, int H, int W, int C,
                      char *err, size_t errlen);

/* Centre-crops in (H, W, C) to its largest square (the extra row or column of
 * an odd margin is dropped from the bottom / right) and area-resizes it to
 * out (S, S, C): how a photo becomes a world. Errors as image_resize_area. */
int image_square_resize(uint8_t *out, int S, const uint8_t *in, int H, int W, int C, char *err,
                        size_t errlen);

/* Peak signal-to-noise ratio in dB, 10 log10(peak^2 / MSE), accumulated in
 * double: bytes with peak 255, floats with peak 1. Identical inputs (and
 * n = 0) give +INFINITY, which callers that average or plot must treat
 * specially; a NaN input gives NaN. */
double image_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n);
double image_psnr_f32(const float *a, const float *b, size_t n);

/* out[i] = in[i] * 255 rounded half up and clamped to [0, 255]. A NaN or Inf
 * element becomes 0 and makes the call return GTMSM_ENAN naming the first
 * such index, after converting every element. Both borrowed. */
int image_u8_from_float(uint8_t *out, const float *in, size_t n, char *err, size_t errlen);
/* out[i] = in[i] / 255. Both borrowed. */
void image_float_from_u8(float *out, const uint8_t *in, size_t n);

#endif
