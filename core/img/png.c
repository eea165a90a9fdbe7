/* PNG encode/decode on libpng 1.6 with memory I/O callbacks.
 *
 * libpng reports errors by longjmp to a setjmp we place. C11 7.13.2.1 leaves
 * indeterminate every non-volatile automatic object that changed between
 * setjmp and longjmp (a local struct whose address libpng holds included).
 * So each libpng session runs in a small function (pngio_*_run) whose only
 * local is the pointer to a malloc'd context that is never reassigned: every
 * value that changes (libpng handles, buffers, stream position, message)
 * lives in that heap object, which longjmp cannot clobber, and the caller
 * frees it all in one place whether the run returned or jumped. So no local
 * needs to be volatile.
 *
 * pngio_encode_fast writes the file itself: one deflate of every row
 * unfiltered by libdeflate (about 3x zlib's speed at level 1, and smaller),
 * in IDAT chunks between the signature, IHDR and IEND. */
#include "img/png.h"

#include <errno.h>
#include <libdeflate.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/err.h"

/* libpng's own caps on ancillary chunk memory, set explicitly so a future
 * default change cannot loosen the bound on untrusted input. */
#define PNGIO_CHUNK_MALLOC_MAX 8000000u
#define PNGIO_CHUNK_CACHE_MAX 1000u
/* Bytes an image's zlib stream may inflate to beyond what its rows need
 * (encoders are exact; a little slack forgives a sloppy one). */
#define PNGIO_INFLATE_SLACK 4096u

/* One libpng session, heap-allocated (see the top of the file). */
typedef struct {
  png_structp png;
  png_infop info;
  /* decode */
  const uint8_t *in;  /* (in_len) borrowed input */
  size_t in_len, in_pos;
  size_t limit;       /* max width * height */
  int want_C;
  uint8_t *pix;       /* (h, w, c) decoded, owned until handed out */
  png_bytep *rows;    /* (h) row pointers into pix, owned */
  png_uint_32 w, h;
  int c;
  /* encode */
  const uint8_t *src; /* (H, W, C) borrowed pixels */
  int H, W, C;
  uint8_t *out;       /* (out_cap) growing output, owned until handed out */
  size_t out_len, out_cap;
  /* the outcome */
  int code;           /* GTMSM_E* to report; 0 with a message means EFORMAT */
  char msg[200];
} pngio_ctx;

static void pngio_ctx_free(pngio_ctx *ctx, int reading) {
  if (!ctx) return;
  if (reading)
    png_destroy_read_struct(&ctx->png, &ctx->info, NULL);
  else
    png_destroy_write_struct(&ctx->png, &ctx->info);
  free(ctx->rows);
  free(ctx->pix);
  free(ctx->out);
  free(ctx);
}

static void pngio_on_error(png_structp png, png_const_charp msg) {
  pngio_ctx *ctx = png_get_error_ptr(png);
  /* Keep the first message: a callback that sets a precise one before
   * calling png_error must not be overwritten by libpng's generic text. */
  if (ctx && !ctx->msg[0]) snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
  png_longjmp(png, 1);
}

/* Warnings (unknown chunks, bad ancillary CRCs, ...) do not change the pixels
 * we return, and a library must not print, so they are dropped. */
static void pngio_on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static void pngio_on_read(png_structp png, png_bytep dst, size_t n) {
  pngio_ctx *ctx = png_get_io_ptr(png);
  size_t left = ctx->in_len - ctx->in_pos;
  if (n > left) {
    snprintf(ctx->msg, sizeof ctx->msg,
             "truncated PNG: needed %zu bytes at offset %zu but only %zu of %zu remain", n,
             ctx->in_pos, left, ctx->in_len);
    png_error(png, "truncated");
  }
  memcpy(dst, ctx->in + ctx->in_pos, n);
  ctx->in_pos += n;
}

static void pngio_on_write(png_structp png, png_bytep src, size_t n) {
  pngio_ctx *ctx = png_get_io_ptr(png);
  if (n > ctx->out_cap - ctx->out_len) {
    if (n > SIZE_MAX / 4 - ctx->out_len) {
      ctx->code = GTMSM_ENOMEM;
      png_error(png, "PNG output too large");
    }
    size_t cap = ctx->out_cap ? 2 * ctx->out_cap : 4096;
    while (cap < ctx->out_len + n) cap *= 2;
    uint8_t *p = realloc(ctx->out, cap);
    if (!p) {
      ctx->code = GTMSM_ENOMEM;
      png_error(png, "out of memory for PNG output");
    }
    ctx->out = p;
    ctx->out_cap = cap;
  }
  memcpy(ctx->out + ctx->out_len, src, n);
  ctx->out_len += n;
}

static void pngio_on_flush(png_structp png) { (void)png; }

static int pngio_color_type(int C) {
  switch (C) {
    case 1: return PNG_COLOR_TYPE_GRAY;
    case 3: return PNG_COLOR_TYPE_RGB;
    case 4: return PNG_COLOR_TYPE_RGB_ALPHA;
    default: return -1;
  }
}

/* The libpng part of pngio_encode. Returns 0, or non-zero with ctx->code and
 * ctx->msg set. */
static int pngio_encode_run(pngio_ctx *ctx) {
  if (setjmp(png_jmpbuf(ctx->png))) return -1;
  png_set_write_fn(ctx->png, ctx, pngio_on_write, pngio_on_flush);
  /* Fixed settings so the bytes depend only on the pixels (and zlib). */
  png_set_compression_level(ctx->png, 9);
  png_set_filter(ctx->png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
  png_set_IHDR(ctx->png, ctx->info, (png_uint_32)ctx->W, (png_uint_32)ctx->H, 8,
               pngio_color_type(ctx->C), PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(ctx->png, ctx->info);
  size_t row = (size_t)ctx->W * (size_t)ctx->C;
  for (int y = 0; y < ctx->H; y++) png_write_row(ctx->png, ctx->src + (size_t)y * row);
  png_write_end(ctx->png, ctx->info);
  return 0;
}

int pngio_encode(uint8_t **out, size_t *out_len, const uint8_t *pix, int H, int W, int C,
                 char *err, size_t errlen) {
  *out = NULL;
  *out_len = 0;
  if (pngio_color_type(C) < 0)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "PNG encode: channels %d not 1, 3 or 4", C);
  if (H <= 0 || W <= 0 || (size_t)W > SIZE_MAX / 4 / (size_t)H || !pix)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "PNG encode: bad image %dx%dx%d", H, W, C);

  int rc = GTMSM_OK;
  pngio_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "PNG encode: out of memory");
  ctx->src = pix;
  ctx->H = H;
  ctx->W = W;
  ctx->C = C;
  ctx->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, pngio_on_error,
                                     pngio_on_warning);
  if (ctx->png) ctx->info = png_create_info_struct(ctx->png);
  if (!ctx->png || !ctx->info) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "PNG encode: out of memory for libpng");
    goto done;
  }
  if (pngio_encode_run(ctx) != 0) {
    rc = gtmsm_fail(err, errlen, ctx->code ? ctx->code : GTMSM_EFORMAT, "PNG encode: %s",
                    ctx->msg[0] ? ctx->msg : "libpng error");
    goto done;
  }
  *out = ctx->out;
  *out_len = ctx->out_len;
  ctx->out = NULL;
done:
  pngio_ctx_free(ctx, 0);
  return rc;
}

/* Appends a PNG chunk (type, n data bytes) at p; returns the end. */
static uint8_t *put_chunk(uint8_t *p, const char type[4], const uint8_t *data, size_t n) {
  const uint32_t len = (uint32_t)n;
  const uint8_t head[8] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len,
                           (uint8_t)type[0], (uint8_t)type[1], (uint8_t)type[2], (uint8_t)type[3]};
  memcpy(p, head, 8);
  if (n && data != p + 8) memmove(p + 8, data, n);
  uLong crc = crc32(crc32(0L, head + 4, 4), p + 8, (uInt)n);
  p[8 + n] = (uint8_t)(crc >> 24), p[9 + n] = (uint8_t)(crc >> 16), p[10 + n] = (uint8_t)(crc >> 8),
  p[11 + n] = (uint8_t)crc;
  return p + 12 + n;
}

#define IDAT_MAX ((size_t)1 << 30) /* bytes per IDAT chunk (a chunk's length must stay below 2^31) */

int pngio_encode_fast(uint8_t **out, size_t *out_len, const uint8_t *pix, int H, int W, int C,
                      char *err, size_t errlen) {
  *out = NULL;
  *out_len = 0;
  if (pngio_color_type(C) < 0)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "PNG encode: channels %d not 1, 3 or 4", C);
  if (H <= 0 || W <= 0 || (size_t)W > SIZE_MAX / 4 / (size_t)H / 2 || !pix)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "PNG encode: bad image %dx%dx%d", H, W, C);
  const size_t row = (size_t)W * (size_t)C, raw_len = (row + 1) * (size_t)H;
  int rc = GTMSM_OK;
  uint8_t *raw = malloc(raw_len), *png = NULL;
  struct libdeflate_compressor *z = libdeflate_alloc_compressor(1);
  if (!raw || !z) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "PNG encode: out of memory");
    goto done;
  }
  for (int y = 0; y < H; y++) { /* filter type 0 (None) on every row */
    raw[(size_t)y * (row + 1)] = 0;
    memcpy(raw + (size_t)y * (row + 1) + 1, pix + (size_t)y * row, row);
  }
  const size_t bound = libdeflate_zlib_compress_bound(z, raw_len);
  const size_t chunks = bound / IDAT_MAX + 1;
  if (!(png = malloc(8 + 25 + 12 * chunks + bound + 12))) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "PNG encode: out of memory");
    goto done;
  }
  /* the stream goes where the IDAT chunks will hold it, after room for their headers */
  uint8_t *zs = png + 8 + 25 + 12 * chunks;
  size_t zlen = libdeflate_zlib_compress(z, raw, raw_len, zs, bound);
  if (!zlen) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "PNG encode: deflate failed");
    goto done;
  }
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const uint8_t ihdr[13] = {(uint8_t)(W >> 24), (uint8_t)(W >> 16), (uint8_t)(W >> 8), (uint8_t)W,
                            (uint8_t)(H >> 24), (uint8_t)(H >> 16), (uint8_t)(H >> 8), (uint8_t)H,
                            8, (uint8_t)pngio_color_type(C), 0, 0, 0};
  memcpy(png, sig, 8);
  uint8_t *p = put_chunk(png + 8, "IHDR", ihdr, 13);
  for (size_t off = 0; off < zlen; off += IDAT_MAX) /* each chunk's data moves down over the gap (memmove) */
    p = put_chunk(p, "IDAT", zs + off, zlen - off < IDAT_MAX ? zlen - off : IDAT_MAX);
  p = put_chunk(p, "IEND", NULL, 0);
  *out = png;
  *out_len = (size_t)(p - png);
  png = NULL;
done:
  libdeflate_free_compressor(z);
  free(raw);
  free(png);
  return rc;
}

int pngio_write_file(const char *path, const uint8_t *pix, int H, int W, int C, char *err,
                     size_t errlen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  FILE *f = NULL;
  int rc = pngio_encode(&buf, &len, pix, H, W, C, err, errlen);
  if (rc) goto done;
  f = fopen(path, "wb");
  if (!f) {
    rc = gtmsm_fail(err, errlen, GTMSM_EIO, "cannot create %s: %s", path, strerror(errno));
    goto done;
  }
  size_t wrote = fwrite(buf, 1, len, f);
  int close_rc = fclose(f);
  f = NULL;
  if (wrote != len || close_rc != 0) {
    rc = gtmsm_fail(err, errlen, GTMSM_EIO, "cannot write %s: %s", path, strerror(errno));
    remove(path); /* a partial PNG would fail later with a less useful message */
    goto done;
  }
done:
  if (f) fclose(f);
  free(buf);
  return rc;
}

/* Asks libpng for 8-bit samples with C channels whatever the file stores;
 * the policy is spelled out on pngio_decode in the header. */
static void pngio_set_transforms(png_structp png, png_infop info, int C) {
  int color_type = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  int is_color = (color_type & PNG_COLOR_MASK_COLOR) != 0;
  int has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0;

  if (depth == 16) png_set_scale_16(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (C == 4) {
    if (has_trns) png_set_tRNS_to_alpha(png);
    if (!is_color) png_set_gray_to_rgb(png);
    if (!has_alpha && !has_trns) png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
  } else {
    /* Palette expansion turns a tRNS into alpha by itself, so strip it too. */
    if (has_alpha || (has_trns && color_type == PNG_COLOR_TYPE_PALETTE)) png_set_strip_alpha(png);
    if (C == 3 && !is_color) png_set_gray_to_rgb(png);
    /* Explicit Rec. 709 weights (in 1/100000) so a cHRM chunk in an
     * untrusted file cannot change how we convert. */
    if (C == 1 && is_color) png_set_rgb_to_gray_fixed(png, PNG_ERROR_ACTION_NONE, 21260, 71520);
  }
  png_set_interlace_handling(png);
}

/* The channel count want_C = 0 resolves to for this file. */
static int pngio_natural_channels(png_structp png, png_infop info) {
  int color_type = png_get_color_type(png, info);
  if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) return 4;
  return (color_type & PNG_COLOR_MASK_COLOR) ? 3 : 1;
}

/* The libpng part of pngio_decode. Returns 0 with ctx->pix filled, or
 * non-zero with ctx->code and ctx->msg set. */
static int pngio_decode_run(pngio_ctx *ctx) {
  png_structp png = ctx->png; /* set before setjmp and never changed */
  png_infop info = ctx->info;
  if (setjmp(png_jmpbuf(png))) return -1;
  png_set_read_fn(png, ctx, pngio_on_read);
  /* libpng's default per-dimension cap (10^6) would reject some images our
   * pixel bound allows, and with a less useful message; lift it to PNG's own
   * 2^31 - 1. The real bound, on width * height, is checked below, after the
   * IHDR and before libpng or we allocate anything proportional to it (row
   * buffers come with png_read_update_info). */
  png_set_user_limits(png, 0x7fffffffu, 0x7fffffffu);
  png_set_chunk_malloc_max(png, PNGIO_CHUNK_MALLOC_MAX);
  png_set_chunk_cache_max(png, PNGIO_CHUNK_CACHE_MAX);
  png_read_info(png, info);

  ctx->w = png_get_image_width(png, info);
  ctx->h = png_get_image_height(png, info);
  if (ctx->w == 0 || ctx->h == 0 || (size_t)ctx->w > ctx->limit / (size_t)ctx->h) {
    ctx->code = GTMSM_ERANGE;
    snprintf(ctx->msg, sizeof ctx->msg, "%lux%lu image exceeds the limit of %zu pixels",
             (unsigned long)ctx->w, (unsigned long)ctx->h, ctx->limit);
    return -1;
  }
  ctx->c = ctx->want_C ? ctx->want_C : pngio_natural_channels(png, info);
  pngio_set_transforms(png, info, ctx->c);
  png_read_update_info(png, info);
  size_t row = (size_t)ctx->w * (size_t)ctx->c;
  if (png_get_bit_depth(png, info) != 8 || png_get_channels(png, info) != ctx->c ||
      png_get_rowbytes(png, info) != row) {
    snprintf(ctx->msg, sizeof ctx->msg,
             "unsupported conversion (color type %d, %d channels wanted)",
             png_get_color_type(png, info), ctx->c);
    return -1;
  }
  ctx->pix = malloc(row * ctx->h);
  ctx->rows = malloc(sizeof(png_bytep) * ctx->h);
  if (!ctx->pix || !ctx->rows) {
    ctx->code = GTMSM_ENOMEM;
    snprintf(ctx->msg, sizeof ctx->msg, "out of memory for %lux%lux%d", (unsigned long)ctx->w,
             (unsigned long)ctx->h, ctx->c);
    return -1;
  }
  for (png_uint_32 y = 0; y < ctx->h; y++) ctx->rows[y] = ctx->pix + (size_t)y * row;
  png_read_image(png, ctx->rows);
  /* Reading through IEND is what catches a file cut after its last IDAT. */
  png_read_end(png, NULL);
  return 0;
}

static uint32_t pngio_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Bytes the filtered rows of a w x h image with bpp bits per pixel fill when
 * inflated: one filter byte per row, per Adam7 pass when interlaced. */
static uint64_t pngio_inflated_size(uint64_t w, uint64_t h, uint64_t bpp, int interlaced) {
  static const uint8_t X0[7] = {0, 4, 0, 2, 0, 1, 0}, Y0[7] = {0, 0, 4, 0, 2, 0, 1},
                       DX[7] = {8, 8, 4, 4, 2, 2, 1}, DY[7] = {8, 8, 8, 4, 4, 2, 2};
  if (!interlaced) return h * ((w * bpp + 7) / 8 + 1);
  uint64_t n = 0;
  for (int p = 0; p < 7; p++) {
    uint64_t pw = w > X0[p] ? (w - X0[p] + DX[p] - 1) / DX[p] : 0;
    uint64_t ph = h > Y0[p] ? (h - Y0[p] + DY[p] - 1) / DY[p] : 0;
    if (pw && ph) n += ph * ((pw * bpp + 7) / 8 + 1);
  }
  return n;
}

/* The bomb check, before libpng: a valid image's zlib stream may go on far
 * past its last row (8 GiB of zeros fit in 8 MiB), and libpng would inflate
 * all of it to discard it. The IDAT data is inflated here into scratch with
 * a cap of what the IHDR's image needs (plus PNGIO_INFLATE_SLACK), so the
 * cost is bounded by the image size. Anything this pass cannot judge (a
 * missing or odd IHDR, truncation, corrupt zlib data, an image over the
 * pixel limit) is left to libpng, which reports it. Returns 0, or -1 with
 * ctx->msg set. */
static int pngio_check_inflate(pngio_ctx *ctx) {
  const uint8_t *in = ctx->in;
  const size_t len = ctx->in_len;
  if (len < 8 + 8 + 13 || pngio_be32(in + 8) != 13 || memcmp(in + 12, "IHDR", 4) != 0) return 0;
  const uint8_t *ihdr = in + 16;
  const uint32_t w = pngio_be32(ihdr), h = pngio_be32(ihdr + 4);
  const int depth = ihdr[8], ctype = ihdr[9], interlace = ihdr[12];
  static const int CHANNELS[7] = {1, 0, 3, 1, 2, 0, 4}; /* by color type; 0: invalid */
  if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu || ctype > 6 || !CHANNELS[ctype] ||
      (depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16) || interlace > 1 ||
      (uint64_t)w * h > ctx->limit)
    return 0;
  const uint64_t need = pngio_inflated_size(w, h, (uint64_t)CHANNELS[ctype] * (uint64_t)depth,
                                            interlace);
  const uint64_t cap = need + PNGIO_INFLATE_SLACK;
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit(&zs) != Z_OK) return 0;
  uint8_t scratch[8192];
  int rc = 0, zrc = Z_OK;
  for (size_t pos = 8; pos + 12 <= len && zrc == Z_OK && !rc;) {
    const uint32_t n = pngio_be32(in + pos);
    if (n > 0x7fffffffu || n > len - pos - 12) break; /* truncated: libpng says where */
    if (memcmp(in + pos + 4, "IEND", 4) == 0) break;
    if (memcmp(in + pos + 4, "IDAT", 4) == 0) {
      zs.next_in = (Bytef *)(uintptr_t)(in + pos + 8); /* zlib does not write its input */
      zs.avail_in = n;
      while (zs.avail_in > 0 && zrc == Z_OK) {
        zs.next_out = scratch;
        zs.avail_out = sizeof scratch;
        zrc = inflate(&zs, Z_NO_FLUSH);
        if ((uint64_t)zs.total_out > cap) {
          snprintf(ctx->msg, sizeof ctx->msg,
                   "image data inflates past %llu bytes, more than the %lux%lu image needs "
                   "(%llu): a decompression bomb", (unsigned long long)cap, (unsigned long)w,
                   (unsigned long)h, (unsigned long long)need);
          rc = -1;
          break;
        }
        if (zrc == Z_BUF_ERROR) { /* no progress without the next chunk's bytes */
          zrc = Z_OK;
          break;
        }
      }
    }
    pos += 12 + (size_t)n;
  }
  inflateEnd(&zs);
  return rc;
}

int pngio_decode(uint8_t **pix, int *H, int *W, int *C, const uint8_t *data, size_t len,
                 int want_C, size_t max_pixels, char *err, size_t errlen) {
  *pix = NULL;
  *H = *W = *C = 0;
  if (want_C != 0 && pngio_color_type(want_C) < 0)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "PNG decode: want_C %d not 0, 1, 3 or 4",
                      want_C);
  if (len == 0) return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "PNG decode: empty input");
  if (!data) return gtmsm_fail(err, errlen, GTMSM_EINVAL, "PNG decode: NULL data");
  if (len < 8 || png_sig_cmp(data, 0, 8) != 0)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                      "PNG decode: not a PNG (bad 8-byte signature, %zu bytes of input)", len);

  int rc = GTMSM_OK;
  pngio_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "PNG decode: out of memory");
  ctx->in = data;
  ctx->in_len = len;
  ctx->limit = max_pixels ? max_pixels : PNGIO_MAX_PIXELS_DEFAULT;
  /* So that width * height * 4 bytes cannot wrap whatever the caller asks. */
  if (ctx->limit > SIZE_MAX / 4) ctx->limit = SIZE_MAX / 4;
  ctx->want_C = want_C;
  ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, pngio_on_error,
                                    pngio_on_warning);
  if (ctx->png) ctx->info = png_create_info_struct(ctx->png);
  if (!ctx->png || !ctx->info) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "PNG decode: out of memory for libpng");
    goto done;
  }
  if (pngio_check_inflate(ctx) != 0 || pngio_decode_run(ctx) != 0) {
    rc = gtmsm_fail(err, errlen, ctx->code ? ctx->code : GTMSM_EFORMAT, "PNG decode: %s",
                    ctx->msg[0] ? ctx->msg : "libpng error");
    goto done;
  }
  *pix = ctx->pix;
  ctx->pix = NULL;
  *H = (int)ctx->h;
  *W = (int)ctx->w;
  *C = ctx->c;
done:
  pngio_ctx_free(ctx, 1);
  return rc;
}

int pngio_read_file(uint8_t **pix, int *H, int *W, int *C, const char *path, int want_C,
                    size_t max_pixels, char *err, size_t errlen) {
  *pix = NULL;
  *H = *W = *C = 0;
  int rc = GTMSM_OK;
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  char msg[256] = "";
  FILE *f = fopen(path, "rb");
  if (!f) return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot open %s: %s", path, strerror(errno));
  for (;;) {
    if (len == cap) {
      if (cap >= PNGIO_MAX_FILE_BYTES) {
        rc = gtmsm_fail(err, errlen, GTMSM_ERANGE, "%s: larger than %zu bytes", path,
                        (size_t)PNGIO_MAX_FILE_BYTES);
        goto done;
      }
      size_t ncap = cap ? 2 * cap : 65536;
      uint8_t *p = realloc(buf, ncap);
      if (!p) {
        rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "%s: out of memory", path);
        goto done;
      }
      buf = p;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
    rc = gtmsm_fail(err, errlen, GTMSM_EIO, "cannot read %s", path);
    goto done;
  }
  rc = pngio_decode(pix, H, W, C, buf, len, want_C, max_pixels, msg, sizeof msg);
  if (rc) gtmsm_fail(err, errlen, rc, "%s: %s", path, msg);
done:
  fclose(f);
  free(buf);
  return rc;
}
