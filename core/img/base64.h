/* Base64 (RFC 4648 section 4: alphabet A-Z a-z 0-9 + /, '=' padding) for
 * carrying PNGs and other bytes inside JSON. Decoding is strict because its
 * input comes from clients: no whitespace, no missing or extra padding, no
 * non-zero bits in the last symbol before padding (RFC 4648 3.5), so every
 * byte string has exactly one accepted encoding. */
#ifndef GTMSM_IMG_BASE64_H
#define GTMSM_IMG_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Length of the encoding of n bytes, 4 * ceil(n / 3), without the NUL; 0 if
 * that does not fit in a size_t with room for the NUL. */
size_t base64_encoded_len(size_t n);

/* Upper bound on the bytes decoded from len characters, 3 * ceil(len / 4);
 * exact for valid unpadded-tail input, up to 2 more than needed otherwise. */
size_t base64_decoded_size(size_t len);

/* Encodes data (n bytes, borrowed; may be NULL when n = 0) into a new
 * malloc'd NUL-terminated string *out (caller frees; NULL on failure) of
 * *out_len characters (out_len may be NULL).
 * Returns 0, GTMSM_ERANGE (n too large) or GTMSM_ENOMEM. */
int base64_encode(char **out, size_t *out_len, const void *data, size_t n, char *err,
                  size_t errlen);

/* Decodes the len characters of s (borrowed, need not be NUL-terminated) into
 * a new malloc'd buffer *out (caller frees; NULL on failure; a 1-byte
 * allocation when the result is empty) of *out_len bytes.
 * Returns 0, GTMSM_ENOMEM or GTMSM_EFORMAT with a message naming the offset
 * of the first offending character (length not a multiple of 4, a character
 * outside the alphabet, '=' anywhere but the last one or two places, or
 * non-zero padding bits). */
int base64_decode(uint8_t **out, size_t *out_len, const char *s, size_t len, char *err,
                  size_t errlen);

#endif
