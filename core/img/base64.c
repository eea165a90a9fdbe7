/* Strict RFC 4648 base64 encoder and decoder. */
#include "img/base64.h"

#include <stdlib.h>

#include "base/err.h"

static const char B64_ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of a base64 symbol, or -1: a switch on ranges rather than a 256-entry
 * table so the alphabet is written once. */
static int b64_value(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

size_t base64_encoded_len(size_t n) {
  size_t groups = n / 3 + (n % 3 != 0);
  if (groups > (SIZE_MAX - 1) / 4) return 0;
  return 4 * groups;
}

size_t base64_decoded_size(size_t len) { return 3 * (len / 4 + (len % 4 != 0)); }

int base64_encode(char **out, size_t *out_len, const void *data, size_t n, char *err,
                  size_t errlen) {
  *out = NULL;
  if (out_len) *out_len = 0;
  size_t m = base64_encoded_len(n);
  if (m == 0 && n > 0)
    return gtmsm_fail(err, errlen, GTMSM_ERANGE, "base64: %zu bytes too many to encode", n);
  char *s = malloc(m + 1);
  if (!s) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "base64: out of memory for %zu chars", m);
  const uint8_t *p = data;
  size_t i = 0, k = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    s[k++] = B64_ALPHABET[v >> 18];
    s[k++] = B64_ALPHABET[(v >> 12) & 63];
    s[k++] = B64_ALPHABET[(v >> 6) & 63];
    s[k++] = B64_ALPHABET[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    s[k++] = B64_ALPHABET[v >> 18];
    s[k++] = B64_ALPHABET[(v >> 12) & 63];
    s[k++] = '=';
    s[k++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    s[k++] = B64_ALPHABET[v >> 18];
    s[k++] = B64_ALPHABET[(v >> 12) & 63];
    s[k++] = B64_ALPHABET[(v >> 6) & 63];
    s[k++] = '=';
  }
  s[k] = '\0';
  *out = s;
  if (out_len) *out_len = k;
  return GTMSM_OK;
}

/* A printable description of ch for error messages: user text is never
 * echoed raw. */
static int b64_bad_char(char *err, size_t errlen, unsigned char ch, size_t at) {
  if (ch >= 0x21 && ch < 0x7f)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "base64: invalid character '%c' at offset %zu",
                      ch, at);
  return gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "base64: invalid character 0x%02x at offset %zu", ch, at);
}

int base64_decode(uint8_t **out, size_t *out_len, const char *s, size_t len, char *err,
                  size_t errlen) {
  *out = NULL;
  *out_len = 0;
  /* Scan everything first so a bad character is reported even when the
   * length is also wrong: the offset is the more useful clue. */
  size_t pad = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '=') {
      /* '=' may fill only the last one or two places of the last quantum. */
      int at_end = len % 4 == 0 && (i == len - 1 || (i == len - 2 && s[len - 1] == '='));
      if (!at_end)
        return gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                          "base64: misplaced padding '=' at offset %zu", i);
      pad++;
      continue;
    }
    if (b64_value(ch) < 0) return b64_bad_char(err, errlen, ch, i);
  }
  if (len % 4 != 0)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                      "base64: length %zu is not a multiple of 4 (offset %zu starts an incomplete "
                      "group)",
                      len, len - len % 4);
  int rc = GTMSM_OK;
  size_t n = len / 4 * 3 - pad;
  uint8_t *b = malloc(n ? n : 1);
  if (!b) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "base64: out of memory for %zu bytes", n);
  size_t k = 0;
  for (size_t i = 0; i < len; i += 4) {
    const unsigned char *q = (const unsigned char *)s + i;
    uint32_t v = (uint32_t)b64_value(q[0]) << 18 | (uint32_t)b64_value(q[1]) << 12;
    if (q[2] != '=') v |= (uint32_t)b64_value(q[2]) << 6;
    if (q[3] != '=') v |= (uint32_t)b64_value(q[3]);
    b[k++] = (uint8_t)(v >> 16);
    if (q[2] != '=') b[k++] = (uint8_t)(v >> 8);
    if (q[3] != '=') b[k++] = (uint8_t)v;
    /* Non-zero bits that padding discards would give a second encoding of
     * the same bytes; reject them at the last symbol that carries them. */
    if (q[3] == '=') {
      uint32_t dropped = q[2] == '=' ? (v >> 12) & 0xf : (v >> 6) & 0x3;
      if (dropped) {
        rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                        "base64: non-zero padding bits in '%c' at offset %zu",
                        q[2] == '=' ? q[1] : q[2], q[2] == '=' ? i + 1 : i + 2);
        goto done;
      }
    }
  }
  *out = b;
  *out_len = n;
  b = NULL;
done:
  free(b);
  return rc;
}
