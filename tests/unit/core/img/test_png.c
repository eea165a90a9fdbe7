/* PNG encode/decode: round trips (RGB, gray, RGBA, odd sizes), byte-exact
 * determinism, conversions of PNG kinds our encoder never writes (palette,
 * tRNS, 16-bit, 1-bit, gray+alpha, interlaced; written here with libpng
 * directly), rejection of empty/garbage/truncated/oversized/corrupt input
 * without crashes or leaks (run under ASan), decompression bombs refused
 * after inflating no more than the image needs, mutation fuzzing, file I/O, and
 * every bundled world decoding to 32x32x3. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/err.h"
#include "img/png.h"
#include "nn/rng.h"
#include "testlib.h"

static uint8_t *random_pixels(size_t n, uint64_t seed) {
  rng_t r;
  rng_init(&r, seed, 7);
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng_below(&r, 256);
  return p;
}

typedef int (*encoder)(uint8_t **out, size_t *out_len, const uint8_t *pix, int H, int W, int C, char *err,
                       size_t errlen);

static void round_trip(encoder enc, const char *name, int H, int W, int C) {
  char err[256] = "";
  size_t n = (size_t)H * W * C;
  uint8_t *pix = random_pixels(n, (uint64_t)(H * 1000 + W * 10 + C));
  uint8_t *png = NULL, *png2 = NULL, *back = NULL;
  size_t len = 0, len2 = 0;
  int rc = enc(&png, &len, pix, H, W, C, err, sizeof err);
  CHECK(rc == 0 && png && len > 8, "%s %dx%dx%d: rc %d %s", name, H, W, C, rc, err);
  int h = 0, w = 0, c = 0;
  rc = pngio_decode(&back, &h, &w, &c, png, len, 0, 0, err, sizeof err);
  CHECK(rc == 0, "decode %dx%dx%d: rc %d %s", H, W, C, rc, err);
  CHECK(h == H && w == W && c == C, "shape %dx%dx%d back as %dx%dx%d", H, W, C, h, w, c);
  CHECK(back && memcmp(back, pix, n) == 0, "pixels of %dx%dx%d differ after round trip", H, W,
        C);
  /* Same pixels from a different buffer give the same bytes. */
  uint8_t *copy = malloc(n);
  memcpy(copy, pix, n);
  rc = enc(&png2, &len2, copy, H, W, C, err, sizeof err);
  CHECK(rc == 0 && len2 == len && memcmp(png, png2, len) == 0,
        "encoding %dx%dx%d twice gave %zu and %zu bytes (or different bytes)", H, W, C, len,
        len2);
  printf("%s round trip %dx%dx%d: %zu PNG bytes, identical re-encode\n", name, H, W, C, len);
  free(copy);
  free(pix);
  free(png);
  free(png2);
  free(back);
}

/* Both encoders: the files' (libpng) and the replies' (written here, libdeflate). */
static void test_round_trip(int H, int W, int C) {
  round_trip(pngio_encode, "pngio_encode", H, W, C);
  round_trip(pngio_encode_fast, "pngio_encode_fast", H, W, C);
}

/* Conversions between channel counts of an image we wrote ourselves. */
static void test_want_channels(void) {
  char err[256] = "";
  const int H = 3, W = 5;
  uint8_t rgb[3 * 5 * 3];
  for (int i = 0; i < H * W; i++) {
    rgb[3 * i] = (uint8_t)(17 * i);
    rgb[3 * i + 1] = (uint8_t)(255 - 11 * i);
    rgb[3 * i + 2] = (uint8_t)(5 * i * i % 256);
  }
  uint8_t *png = NULL, *out = NULL;
  size_t len = 0;
  int h, w, c;
  CHECK(pngio_encode(&png, &len, rgb, H, W, 3, err, sizeof err) == 0, "encode: %s", err);

  CHECK(pngio_decode(&out, &h, &w, &c, png, len, 1, 0, err, sizeof err) == 0 && c == 1,
        "RGB as gray: %s", err);
  int worst = 0;
  for (int i = 0; out && i < H * W; i++) {
    double y = 0.2126 * rgb[3 * i] + 0.7152 * rgb[3 * i + 1] + 0.0722 * rgb[3 * i + 2];
    int d = abs((int)out[i] - (int)(y + 0.5));
    if (d > worst) worst = d;
  }
  CHECK(worst <= 1, "RGB -> gray off by %d from Rec. 709 luma", worst);
  printf("RGB -> gray: max deviation from Rec. 709 luma %d\n", worst);
  free(out);
  out = NULL;

  CHECK(pngio_decode(&out, &h, &w, &c, png, len, 4, 0, err, sizeof err) == 0 && c == 4,
        "RGB as RGBA: %s", err);
  int ok = 1;
  for (int i = 0; out && i < H * W; i++)
    ok &= out[4 * i] == rgb[3 * i] && out[4 * i + 1] == rgb[3 * i + 1] &&
          out[4 * i + 2] == rgb[3 * i + 2] && out[4 * i + 3] == 255;
  CHECK(ok, "RGB -> RGBA should copy RGB and add opaque alpha");
  free(out);
  out = NULL;
  free(png);
  png = NULL;

  uint8_t gray[3 * 5];
  for (int i = 0; i < H * W; i++) gray[i] = (uint8_t)(i * 18);
  CHECK(pngio_encode(&png, &len, gray, H, W, 1, err, sizeof err) == 0, "encode gray: %s", err);
  CHECK(pngio_decode(&out, &h, &w, &c, png, len, 3, 0, err, sizeof err) == 0 && c == 3,
        "gray as RGB: %s", err);
  ok = 1;
  for (int i = 0; out && i < H * W; i++)
    ok &= out[3 * i] == gray[i] && out[3 * i + 1] == gray[i] && out[3 * i + 2] == gray[i];
  CHECK(ok, "gray -> RGB should replicate");
  free(out);
  out = NULL;
  CHECK(pngio_decode(&out, &h, &w, &c, png, len, 2, 0, err, sizeof err) == GTMSM_EINVAL && !out,
        "want_C 2 must be rejected");
  free(png);
}

/* ---- PNGs of kinds pngio_encode never writes, made with libpng itself. */

typedef struct {
  uint8_t *buf;
  size_t len, cap;
} membuf;

static void mem_write(png_structp png, png_bytep data, size_t n) {
  membuf *m = png_get_io_ptr(png);
  if (m->len + n > m->cap) {
    m->cap = (m->len + n) * 2;
    m->buf = realloc(m->buf, m->cap);
  }
  memcpy(m->buf + m->len, data, n);
  m->len += n;
}
static void mem_flush(png_structp png) { (void)png; }

typedef struct {
  int color_type, depth, interlace;
  const png_color *palette;
  int npal;
  const uint8_t *trns; /* palette alpha */
  int ntrns;
  const png_color_16 *trns_color; /* gray/RGB transparent colour */
} kind;

/* Writes rows (H rows of already-packed bytes) as a PNG of the given kind.
 * The context lives on the heap so nothing is indeterminate after longjmp. */
static membuf write_kind(const kind *k, int H, int W, uint8_t **rows) {
  membuf *m = calloc(1, sizeof *m);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    fprintf(stderr, "test helper: libpng write failed\n");
    abort();
  }
  png_set_write_fn(png, m, mem_write, mem_flush);
  png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, k->depth, k->color_type, k->interlace,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (k->palette) png_set_PLTE(png, info, k->palette, k->npal);
  if (k->trns || k->trns_color)
    png_set_tRNS(png, info, k->trns, k->ntrns, (png_color_16p)k->trns_color);
  png_write_info(png, info);
  if (k->depth == 16) png_set_swap(png); /* rows below are little-endian uint16 */
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  membuf out = *m;
  free(m);
  return out;
}

static void decode_expect(const char *what, membuf m, int want_C, int eH, int eW, int eC,
                          const uint8_t *expect) {
  char err[256] = "";
  uint8_t *out = NULL;
  int h, w, c;
  int rc = pngio_decode(&out, &h, &w, &c, m.buf, m.len, want_C, 0, err, sizeof err);
  CHECK(rc == 0, "%s: rc %d %s", what, rc, err);
  CHECK(h == eH && w == eW && c == eC, "%s: got %dx%dx%d expected %dx%dx%d", what, h, w, c, eH,
        eW, eC);
  if (rc == 0 && c == eC && h == eH && w == eW) {
    size_t n = (size_t)eH * eW * eC, bad = n;
    for (size_t i = 0; i < n; i++)
      if (out[i] != expect[i]) {
        bad = i;
        break;
      }
    CHECK(bad == n, "%s: byte %zu is %d expected %d", what, bad, bad < n ? out[bad] : 0,
          bad < n ? expect[bad] : 0);
  }
  printf("decode %s -> %dx%dx%d\n", what, h, w, c);
  free(out);
}

static void test_other_kinds(void) {
  /* Palette of 3 colours, 2x2, 8-bit indices; the second entry 50% transparent. */
  png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  uint8_t alpha[2] = {255, 128};
  uint8_t prow0[2] = {0, 1}, prow1[2] = {2, 1};
  uint8_t *prows[2] = {prow0, prow1};
  kind kp = {PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE, pal, 3, NULL, 0, NULL};
  membuf m = write_kind(&kp, 2, 2, prows);
  const uint8_t exp_pal[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 0};
  decode_expect("palette", m, 0, 2, 2, 3, exp_pal);
  free(m.buf);

  kind kpt = kp;
  kpt.trns = alpha;
  kpt.ntrns = 2;
  m = write_kind(&kpt, 2, 2, prows);
  const uint8_t exp_pal_a[] = {255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 255, 0, 255, 0, 128};
  decode_expect("palette+tRNS", m, 0, 2, 2, 4, exp_pal_a);
  decode_expect("palette+tRNS as RGB (alpha dropped)", m, 3, 2, 2, 3, exp_pal);
  free(m.buf);

  /* 16-bit RGB, 1x2: scaled to 8 bits with rounding (v * 255 / 65535). */
  uint16_t r16[6] = {65535, 0, 32768, 257, 258, 384};
  uint8_t *rows16[1] = {(uint8_t *)r16};
  kind k16 = {PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL};
  m = write_kind(&k16, 1, 2, rows16);
  const uint8_t exp16[] = {255, 0, 128, 1, 1, 1};
  decode_expect("16-bit RGB", m, 0, 1, 2, 3, exp16);
  free(m.buf);

  /* 1-bit gray, 1x10: bits 1011001110 scaled to 0/255. */
  uint8_t bits[2] = {0xB3, 0x80};
  uint8_t *rows1[1] = {bits};
  kind k1 = {PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL};
  m = write_kind(&k1, 1, 10, rows1);
  const uint8_t exp1[] = {255, 0, 255, 255, 0, 0, 255, 255, 255, 0};
  decode_expect("1-bit gray", m, 0, 1, 10, 1, exp1);
  free(m.buf);

  /* Gray + alpha, 1x2: natural form is RGBA; as gray the alpha is dropped. */
  uint8_t ga[4] = {10, 20, 200, 255};
  uint8_t *rowsga[1] = {ga};
  kind kga = {PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL};
  m = write_kind(&kga, 1, 2, rowsga);
  const uint8_t exp_ga4[] = {10, 10, 10, 20, 200, 200, 200, 255};
  const uint8_t exp_ga1[] = {10, 200};
  decode_expect("gray+alpha", m, 0, 1, 2, 4, exp_ga4);
  decode_expect("gray+alpha as gray", m, 1, 1, 2, 1, exp_ga1);
  free(m.buf);

  /* Gray with a tRNS colour: pixels equal to it become transparent. */
  png_color_16 tc = {0, 0, 0, 0, 77};
  uint8_t gt[3] = {77, 78, 0};
  uint8_t *rowsgt[1] = {gt};
  kind kgt = {PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, &tc};
  m = write_kind(&kgt, 1, 3, rowsgt);
  const uint8_t exp_gt[] = {77, 77, 77, 0, 78, 78, 78, 255, 0, 0, 0, 255};
  const uint8_t exp_gt1[] = {77, 78, 0};
  decode_expect("gray+tRNS", m, 0, 1, 3, 4, exp_gt);
  decode_expect("gray+tRNS as gray", m, 1, 1, 3, 1, exp_gt1);
  free(m.buf);

  /* Adam7-interlaced RGB, 9x7 random: must equal the pixels written. */
  const int H = 9, W = 7;
  uint8_t *pix = random_pixels((size_t)H * W * 3, 99);
  uint8_t *rowsi[9];
  for (int y = 0; y < H; y++) rowsi[y] = pix + (size_t)y * W * 3;
  kind ki = {PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, NULL, 0, NULL, 0, NULL};
  m = write_kind(&ki, H, W, rowsi);
  decode_expect("interlaced RGB", m, 0, H, W, 3, pix);
  free(m.buf);
  free(pix);
}

/* ---- Rejection of bad input. */

static void expect_fail(const char *what, const uint8_t *data, size_t len, size_t max_pixels,
                        int want_rc) {
  char err[256] = "";
  uint8_t *out = (uint8_t *)1;
  int h = -1, w = -1, c = -1;
  int rc = pngio_decode(&out, &h, &w, &c, data, len, 0, max_pixels, err, sizeof err);
  CHECK(rc != 0 && (want_rc == 0 || rc == want_rc), "%s: rc %d (wanted %d)", what, rc, want_rc);
  CHECK(out == NULL && h == 0 && w == 0 && c == 0, "%s: outputs not cleared on failure", what);
  CHECK(err[0] != '\0', "%s: no error message", what);
  printf("reject %s: %s\n", what, err);
  if (rc == 0) free(out);
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* The PNG chunk CRC (CRC-32, reflected, polynomial 0xEDB88320), bit by bit:
 * independent of the zlib that libpng (and the bomb builder) use. */
static uint32_t crc32_png(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

static void put_chunk(uint8_t *buf, size_t *pos, const char *type, const uint8_t *data,
                      uint32_t n) {
  put_be32(buf + *pos, n);
  memcpy(buf + *pos + 4, type, 4);
  if (n) memcpy(buf + *pos + 8, data, n);
  put_be32(buf + *pos + 8 + n, crc32_png(buf + *pos + 4, 4 + (size_t)n));
  *pos += 12 + n;
}

/* Signature + IHDR declaring W x H RGB (+ a 2-byte IDAT when with_idat, so
 * libpng's png_read_info returns and our size check runs) + IEND, all with
 * correct CRCs. */
static size_t make_header_only(uint8_t *buf, uint32_t W, uint32_t H, int with_idat) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  memcpy(buf, sig, 8);
  uint8_t ihdr[13] = {0};
  put_be32(ihdr, W);
  put_be32(ihdr + 4, H);
  ihdr[8] = 8;
  ihdr[9] = 2;
  size_t pos = 8;
  put_chunk(buf, &pos, "IHDR", ihdr, 13);
  if (with_idat) put_chunk(buf, &pos, "IDAT", (const uint8_t *)"\x78\x9c", 2);
  put_chunk(buf, &pos, "IEND", NULL, 0);
  return pos;
}

/* Recomputes every chunk CRC so that mutations reach the parsers behind the
 * CRC check; stops at the first length that runs past the end. */
static void fix_crcs(uint8_t *p, size_t len) {
  size_t pos = 8;
  while (pos + 12 <= len) {
    uint32_t n = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 | (uint32_t)p[pos + 2] << 8 |
                 p[pos + 3];
    if (n > len - pos - 12) break;
    put_be32(p + pos + 8 + n, crc32_png(p + pos + 4, 4 + (size_t)n));
    pos += 12 + n;
  }
}

static void test_rejects(void) {
  char err[256] = "";
  expect_fail("zero-length", (const uint8_t *)"", 0, 0, GTMSM_EFORMAT);
  expect_fail("NULL zero-length", NULL, 0, 0, GTMSM_EFORMAT);
  expect_fail("short", (const uint8_t *)"\x89PN", 3, 0, GTMSM_EFORMAT);
  uint8_t *garbage = random_pixels(4096, 5);
  expect_fail("garbage", garbage, 4096, 0, GTMSM_EFORMAT);
  /* Garbage behind a valid signature reaches libpng's chunk parser. */
  memcpy(garbage, "\x89PNG\r\n\x1a\n", 8);
  expect_fail("signature + garbage", garbage, 4096, 0, GTMSM_EFORMAT);
  free(garbage);

  uint8_t hdr[128];
  size_t n = make_header_only(hdr, 100000, 100000, 1);
  expect_fail("100000x100000 header", hdr, n, 0, GTMSM_ERANGE);
  n = make_header_only(hdr, 5000, 5000, 1); /* 25M pixels: over the 2^24 default */
  expect_fail("5000x5000 header", hdr, n, 0, GTMSM_ERANGE);
  n = make_header_only(hdr, 0x7fffffffu, 1, 1); /* the largest width PNG allows */
  expect_fail("2^31-1 wide header", hdr, n, 0, GTMSM_ERANGE);
  n = make_header_only(hdr, 0x80000000u, 1, 1); /* not a valid PNG dimension */
  expect_fail("2^31 wide header", hdr, n, 0, GTMSM_EFORMAT);
  n = make_header_only(hdr, 0xffffffffu, 0xffffffffu, 1);
  expect_fail("2^32-1 square header", hdr, n, 0, GTMSM_EFORMAT);
  n = make_header_only(hdr, 0, 5, 1);
  expect_fail("zero-width header", hdr, n, 0, GTMSM_EFORMAT);
  n = make_header_only(hdr, 4, 4, 0); /* valid header, but no IDAT at all */
  expect_fail("no IDAT", hdr, n, 0, GTMSM_EFORMAT);
  n = make_header_only(hdr, 4, 4, 1); /* IDAT far too short for 4x4 */
  expect_fail("short IDAT", hdr, n, 0, GTMSM_EFORMAT);

  /* A valid 7x5 RGB PNG: every proper prefix must fail, cleanly. */
  uint8_t *pix = random_pixels(7 * 5 * 3, 11), *png = NULL;
  size_t len = 0;
  CHECK(pngio_encode(&png, &len, pix, 5, 7, 3, err, sizeof err) == 0, "encode: %s", err);
  int all_fail = 1;
  for (size_t k = 0; k < len; k++) {
    uint8_t *cut = malloc(k ? k : 1); /* exact size so ASan sees any over-read */
    memcpy(cut, png, k);
    uint8_t *out = NULL;
    int h, w, c;
    char msg[256] = "";
    int rc = pngio_decode(&out, &h, &w, &c, cut, k, 0, 0, msg, sizeof msg);
    if (rc == 0 || out || !msg[0]) {
      all_fail = 0;
      fprintf(stderr, "prefix of %zu/%zu bytes: rc %d\n", k, len, rc);
    }
    if (k == len - 5) printf("prefix %zu/%zu: %s\n", k, len, msg);
    free(out);
    free(cut);
  }
  CHECK(all_fail, "every truncation of a %zu-byte PNG must fail with a message", len);
  /* Trailing bytes after IEND are harmless. */
  uint8_t *longer = malloc(len + 3);
  memcpy(longer, png, len);
  memcpy(longer + len, "xyz", 3);
  uint8_t *out = NULL;
  int h, w, c;
  CHECK(pngio_decode(&out, &h, &w, &c, longer, len + 3, 0, 0, err, sizeof err) == 0,
        "trailing bytes after IEND: %s", err);
  free(out);
  free(longer);

  /* The pixel limit: 35 pixels pass a limit of 35 and fail one of 34. */
  out = NULL;
  CHECK(pngio_decode(&out, &h, &w, &c, png, len, 0, 35, err, sizeof err) == 0, "limit 35: %s",
        err);
  free(out);
  expect_fail("7x5 over a 34-pixel limit", png, len, 34, GTMSM_ERANGE);
  out = NULL;
  CHECK(pngio_decode(&out, &h, &w, &c, png, len, 4, SIZE_MAX, err, sizeof err) == 0,
        "limit SIZE_MAX: %s", err);
  free(out);

  /* A flipped bit in IHDR breaks its CRC: a critical chunk, so an error. */
  uint8_t *bad = malloc(len);
  memcpy(bad, png, len);
  bad[20] ^= 0x01;
  expect_fail("IHDR CRC mismatch", bad, len, 0, GTMSM_EFORMAT);
  free(bad);
  free(png);
  free(pix);
}

/* A W x H RGB PNG whose one zlib stream holds the image rows (filter 0) and
 * then `extra` more zero bytes: valid to libpng, which inflates and discards
 * the surplus after the last row. With extra in the gigabytes it is a
 * decompression bomb of a few megabytes. *len gets its size; caller frees. */
static uint8_t *make_bomb(uint32_t W, uint32_t H, size_t extra, size_t *len) {
  const size_t raw = (size_t)H * (1 + 3 * (size_t)W);
  uint8_t *rows = calloc(raw, 1), zeros[65536] = {0};
  for (size_t i = 0; i < raw; i++)
    if (i % (1 + 3 * W) != 0) rows[i] = (uint8_t)(i * 29);
  size_t cap = raw + extra / 500 + 4096, n = 0;
  uint8_t *z = malloc(cap), *png = NULL;
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit(&zs, 9);
  zs.next_out = z;
  zs.avail_out = (uInt)cap;
  zs.next_in = rows;
  zs.avail_in = (uInt)raw;
  deflate(&zs, Z_NO_FLUSH);
  for (size_t left = extra; left > 0;) {
    size_t k = left < sizeof zeros ? left : sizeof zeros;
    zs.next_in = zeros;
    zs.avail_in = (uInt)k;
    deflate(&zs, Z_NO_FLUSH);
    left -= k;
  }
  zs.next_in = NULL;
  zs.avail_in = 0;
  int zrc = deflate(&zs, Z_FINISH);
  n = zs.total_out;
  deflateEnd(&zs);
  CHECK(zrc == Z_STREAM_END, "bomb: deflate finished (%d)", zrc);
  png = malloc(n + 128);
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  memcpy(png, sig, 8);
  uint8_t ihdr[13] = {0};
  put_be32(ihdr, W);
  put_be32(ihdr + 4, H);
  ihdr[8] = 8;
  ihdr[9] = 2;
  size_t pos = 8;
  put_chunk(png, &pos, "IHDR", ihdr, 13);
  put_chunk(png, &pos, "IDAT", z, (uint32_t)n);
  put_chunk(png, &pos, "IEND", NULL, 0);
  free(rows);
  free(z);
  *len = pos;
  return png;
}

/* Decompression bombs: the inflated size is bounded by what the declared
 * image needs, so a bomb is refused after inflating about that much (not
 * gigabytes), while an exact stream and a little slack decode. */
static void test_bombs(void) {
  char err[256] = "";
  size_t len = 0;
  uint8_t *png = make_bomb(8, 8, 0, &len), *out = NULL;
  int h, w, c;
  CHECK(pngio_decode(&out, &h, &w, &c, png, len, 3, 64, err, sizeof err) == 0 && h == 8 && w == 8,
        "the bomb builder's plain 8x8 decodes: %s", err);
  free(out);
  free(png);
  png = make_bomb(8, 8, 100, &len);
  out = NULL;
  CHECK(pngio_decode(&out, &h, &w, &c, png, len, 3, 64, err, sizeof err) == 0,
        "100 stray bytes after the rows are tolerated: %s", err);
  free(out);
  free(png);
  png = make_bomb(8, 8, (size_t)64 << 20, &len); /* 64 MiB of zeros in ~64 KiB */
  expect_fail("8x8 with 64 MiB of zeros after its rows", png, len, 0, GTMSM_EFORMAT);
  err[0] = '\0';
  out = NULL;
  pngio_decode(&out, &h, &w, &c, png, len, 0, 0, err, sizeof err);
  CHECK(strstr(err, "inflates") != NULL, "the message says what was wrong: %s", err);
  free(out);
  free(png);
}

/* Random byte mutations of a valid PNG: each decode may succeed or fail but
 * must not crash, over-read or leak (ASan/UBSan builds check that). */
static void test_mutations(void) {
  char err[256] = "";
  uint8_t *pix = random_pixels(16 * 12 * 3, 21), *png = NULL;
  size_t len = 0;
  CHECK(pngio_encode(&png, &len, pix, 12, 16, 3, err, sizeof err) == 0, "encode: %s", err);
  static const int WANT[4] = {0, 1, 3, 4};
  rng_t r;
  rng_init(&r, 2024, 3);
  int ok = 0, failed = 0;
  uint8_t *m = malloc(len);
  for (int it = 0; it < 3000; it++) {
    memcpy(m, png, len);
    int flips = 1 + (int)rng_below(&r, 4);
    for (int f = 0; f < flips; f++) m[8 + rng_below(&r, (uint32_t)(len - 8))] = (uint8_t)rng_u32(&r);
    if (it % 2) fix_crcs(m, len);
    size_t cut = rng_below(&r, 4) == 0 ? rng_below(&r, (uint32_t)len) : len;
    uint8_t *out = NULL;
    int h, w, c;
    int rc = pngio_decode(&out, &h, &w, &c, m, cut, WANT[rng_below(&r, 4)], 1 << 16, err,
                          sizeof err);
    if (rc == 0) {
      ok++;
      CHECK(out && h > 0 && w > 0 && (c == 1 || c == 3 || c == 4), "mutant decoded oddly");
    } else {
      failed++;
      CHECK(!out, "failed decode left a buffer");
    }
    free(out);
  }
  printf("mutations: %d decoded, %d rejected\n", ok, failed);
  free(m);
  free(png);
  free(pix);
}

static void test_files(void) {
  char err[512] = "", path[1024];
  snprintf(path, sizeof path, "%s/test_png_roundtrip.png", GTMSM_BINARY_DIR);
  uint8_t *pix = random_pixels(5 * 7 * 3, 31), *back = NULL;
  int rc = pngio_write_file(path, pix, 5, 7, 3, err, sizeof err);
  CHECK(rc == 0, "write %s: %s", path, err);
  int h, w, c;
  rc = pngio_read_file(&back, &h, &w, &c, path, 0, 0, err, sizeof err);
  CHECK(rc == 0 && h == 5 && w == 7 && c == 3 && memcmp(back, pix, 5 * 7 * 3) == 0,
        "read back %s: rc %d %s", path, rc, err);
  free(back);
  remove(path);

  back = NULL;
  rc = pngio_read_file(&back, &h, &w, &c, "/nonexistent/dir/x.png", 0, 0, err, sizeof err);
  CHECK(rc == GTMSM_EIO && !back && strstr(err, "/nonexistent/dir/x.png"),
        "missing file: rc %d %s", rc, err);
  rc = pngio_write_file("/nonexistent/dir/x.png", pix, 5, 7, 3, err, sizeof err);
  CHECK(rc == GTMSM_EIO, "write into a missing directory: rc %d %s", rc, err);
  /* A file that is not a PNG: the message names the file. */
  snprintf(path, sizeof path, "%s/data/worlds/README.md", GTMSM_SOURCE_DIR);
  rc = pngio_read_file(&back, &h, &w, &c, path, 0, 0, err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && strstr(err, "README.md"), "README as PNG: rc %d %s", rc, err);
  free(pix);
}

/* Every world listed in data/worlds/worlds.tsv decodes to 32x32x3, and no
 * source photo appears in both splits. */
static void test_worlds(void) {
  char path[1024], line[1024], err[512] = "";
  snprintf(path, sizeof path, "%s/data/worlds/worlds.tsv", GTMSM_SOURCE_DIR);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL, "cannot open %s", path);
  if (!f) return;
  int n_train = 0, n_test = 0, bad = 0, header = 1;
  char train_src[64][32], test_src[64][32];
  int nts = 0, nes = 0;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    if (header) {
      header = 0;
      continue;
    }
    char rel[256], split[16], src[32];
    if (sscanf(line, "%255s %15s %31s", rel, split, src) != 3) continue;
    snprintf(path, sizeof path, "%s/data/worlds/%s", GTMSM_SOURCE_DIR, rel);
    uint8_t *pix = NULL;
    int h, w, c;
    int rc = pngio_read_file(&pix, &h, &w, &c, path, 0, 0, err, sizeof err);
    if (rc || h != 32 || w != 32 || c != 3) {
      bad++;
      fprintf(stderr, "%s: rc %d %dx%dx%d %s\n", rel, rc, h, w, c, err);
    }
    free(pix);
    int is_train = strcmp(split, "train") == 0;
    n_train += is_train;
    n_test += !is_train;
    char(*list)[32] = is_train ? train_src : test_src;
    int *nl = is_train ? &nts : &nes;
    int seen = 0;
    for (int i = 0; i < *nl; i++) seen |= strcmp(list[i], src) == 0;
    if (!seen && *nl < 64) snprintf(list[(*nl)++], 32, "%s", src);
  }
  fclose(f);
  CHECK(bad == 0, "%d worlds failed to decode as 32x32x3", bad);
  CHECK(n_train >= 50 && n_test >= 20, "only %d train / %d test worlds", n_train, n_test);
  for (int i = 0; i < nts; i++)
    for (int j = 0; j < nes; j++)
      CHECK(strcmp(train_src[i], test_src[j]) != 0, "source %s is in both splits",
            train_src[i]);
  printf("worlds: %d train from %d photos, %d test from %d photos, all 32x32x3\n", n_train, nts,
         n_test, nes);
}

int main(void) {
  test_round_trip(5, 7, 3);
  test_round_trip(5, 7, 1);
  test_round_trip(4, 3, 4);
  test_round_trip(1, 1, 3);
  test_round_trip(32, 32, 3);
  test_round_trip(1, 257, 1);
  test_want_channels();
  test_other_kinds();
  test_rejects();
  test_bombs();
  test_mutations();
  test_files();
  test_worlds();
  return test_finish("test_png");
}
