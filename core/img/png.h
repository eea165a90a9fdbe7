/* PNG in memory and in files, on libpng 1.6: 8-bit images (H, W, C), rows
 * top to bottom, channels interleaved, C = 1 (gray), 3 (RGB) or 4 (RGBA).
 *
 * Decoding treats its input as untrusted: width * height is bounded before any
 * pixel buffer is allocated, the inflated size by the image size, truncated or corrupt data is an error with a
 * message, and libpng's longjmp error path frees everything it and we
 * allocated. Encoding is deterministic: zlib level 9, libpng's adaptive filter
 * choice (a pure function of the pixels), and no tIME, text or gamma chunks,
 * so the same pixels give the same bytes for a given zlib version.
 *
 * The prefix is pngio_ rather than png_ because libpng owns png_*.
 * Converting model outputs in [0, 1] to bytes and back: image_u8_from_float
 * and image_float_from_u8 in img/image.h. */
#ifndef GTMSM_IMG_PNG_H
#define GTMSM_IMG_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Bound on width * height used by the decoders when max_pixels is 0: 2^24
 * pixels (4096 x 4096), 64 MiB as RGBA; far above any world or figure. */
#define PNGIO_MAX_PIXELS_DEFAULT ((size_t)1 << 24)
/* pngio_read_file refuses larger files before reading them whole. */
#define PNGIO_MAX_FILE_BYTES ((size_t)1 << 28)

/* Encodes pix (H, W, C), borrowed, C in {1, 3, 4}, into a new malloc'd PNG
 * *out of *out_len bytes (caller frees; NULL on failure).
 * Returns 0, GTMSM_EINVAL (bad shape), GTMSM_ENOMEM or GTMSM_EFORMAT (libpng
 * refused; should not happen). */
int pngio_encode(uint8_t **out, size_t *out_len, const uint8_t *pix, int H, int W, int C,
                 char *err, size_t errlen);
/* pngio_encode with settings for replies rather than files: the rows
 * unfiltered, deflated by libdeflate at level 1 instead of libpng's choice
 * among all filters per row at zlib level 9; several times faster for about
 * the same bytes (bench_model's film strip row). Fixed, so the bytes still
 * depend only on the pixels (and the libdeflate version). */
int pngio_encode_fast(uint8_t **out, size_t *out_len, const uint8_t *pix, int H, int W, int C,
                      char *err, size_t errlen);

/* pngio_encode, then writes the bytes to path (created or truncated; removed
 * again if the write fails). pix and path are borrowed. Adds GTMSM_EIO. */
int pngio_write_file(const char *path, const uint8_t *pix, int H, int W, int C, char *err,
                     size_t errlen);

/* Decodes the PNG data (len bytes, borrowed, untrusted) into a new malloc'd
 * *pix (H, W, C) (caller frees; NULL on failure) and reports its shape.
 *
 * want_C = 0 keeps the file's kind among 1/3/4 channels: gray -> 1; RGB and
 * palette -> 3; anything with alpha (RGBA, gray+alpha, or a tRNS chunk) -> 4,
 * gray+alpha expanded to RGBA. want_C = 1, 3 or 4 converts: colour -> gray
 * uses libpng's default sRGB weights (0.2126, 0.7152, 0.0722); gray -> RGB
 * replicates; alpha is dropped, not composited, when not wanted; an added
 * alpha is opaque (255). Always: palettes are expanded, 1/2/4-bit gray is
 * scaled to 8 bits, 16-bit samples are scaled to 8 bits with rounding,
 * interlacing is undone, and gamma/colour-space chunks are ignored (values are
 * passed through as stored).
 *
 * max_pixels bounds width * height (0: PNGIO_MAX_PIXELS_DEFAULT; at most
 * SIZE_MAX / 4 whatever is passed, so the byte count cannot wrap); larger
 * images fail with GTMSM_ERANGE before their pixels are allocated. The image
 * data may inflate to at most what the IHDR's rows need plus 4 KiB: a
 * decompression bomb (a valid image whose zlib stream continues with
 * gigabytes) is GTMSM_EFORMAT after inflating about that much. The whole
 * stream through IEND must be present: truncation anywhere is GTMSM_EFORMAT
 * with the offset in the message. Trailing bytes after IEND are ignored.
 * Returns 0, GTMSM_EINVAL (bad want_C or NULL data with len > 0),
 * GTMSM_EFORMAT, GTMSM_ERANGE or GTMSM_ENOMEM. */
int pngio_decode(uint8_t **pix, int *H, int *W, int *C, const uint8_t *data, size_t len,
                 int want_C, size_t max_pixels, char *err, size_t errlen);

/* Reads path (borrowed) whole, at most PNGIO_MAX_FILE_BYTES, then
 * pngio_decode. Adds GTMSM_EIO; errors name the file. */
int pngio_read_file(uint8_t **pix, int *H, int *W, int *C, const char *path, int want_C,
                    size_t max_pixels, char *err, size_t errlen);

#endif
