/* Shortest round-trip reals in the daemon's JSON (see jsonfmt.h). jansson
 * 2.14 prints a real with one fixed precision for the whole document
 * (JSON_REAL_PRECISION, "%.17g" by default): 17 digits read back exactly but
 * show the binary noise of 0.1, and fewer lose values. So its output is
 * scanned once, and every number token with a fraction or an exponent is
 * printed again with the fewest digits that read back as the same double. */
#include "jsonfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t jsonfmt_format_double(char *out, size_t outlen, double v) {
  int p = 1;
  for (; p < 17; p++) {
    snprintf(out, outlen, "%.*g", p, v);
    if (strtod(out, NULL) == v) break;
  }
  snprintf(out, outlen, "%.*g", p, v);
  /* %.{p}g switches to an exponent once the decimal exponent X >= p: keep
   * the fixed form of %.17g (100.0 is "100.0", not "1e+02") by giving it
   * the digits up to the point, which still read back as v. */
  if (strchr(out, 'e') && v != 0) {
    const int X = (int)floor(log10(fabs(v)));
    if (X >= p && X < 17) snprintf(out, outlen, "%.*g", X + 1, v);
  }
  /* jansson's exponent style: no '+', no leading zeros ("1e22", "1.5e-7"). */
  char *e = strchr(out, 'e');
  if (e) {
    char *d = e + 1, *x = e + 1;
    if (*x == '+') x++;
    else if (*x == '-') *d++ = *x++;
    while (x[0] == '0' && x[1]) x++;
    memmove(d, x, strlen(x) + 1);
  }
  size_t n = strlen(out);
  if (!strpbrk(out, ".e") && n + 2 < outlen) {
    memcpy(out + n, ".0", 3);
    n += 2;
  }
  return n;
}

json_t *jsonfmt_real_f32(float f) {
  char s[32];
  for (int p = 1; p <= 9; p++) {
    snprintf(s, sizeof s, "%.*g", p, (double)f);
    if ((float)strtod(s, NULL) == f) return json_real(strtod(s, NULL));
  }
  return json_real((double)f); /* 9 digits always read back: not reached for finite f */
}

char *jsonfmt_dumps(const json_t *j, size_t flags) {
  char *in = json_dumps(j, flags);
  if (!in) return NULL;
  /* A rewritten number is never longer than jansson's: same notation, at
   * most its 17 digits. So the output fits in place of the input. */
  size_t r = 0, w = 0;
  int in_string = 0;
  while (in[r]) {
    const char c = in[r];
    if (in_string) {
      in[w++] = in[r++];
      if (c == '\\' && in[r]) in[w++] = in[r++];
      else if (c == '"') in_string = 0;
      continue;
    }
    if (c == '"') {
      in_string = 1;
      in[w++] = in[r++];
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      const size_t len = strspn(in + r, "-+.0123456789eE");
      char tok[64], out[64];
      const int real = len < sizeof tok && (memchr(in + r, '.', len) || memchr(in + r, 'e', len) ||
                                            memchr(in + r, 'E', len));
      if (real) {
        memcpy(tok, in + r, len);
        tok[len] = '\0';
        size_t n = jsonfmt_format_double(out, sizeof out, strtod(tok, NULL));
        if (n <= len) {
          memcpy(in + w, out, n);
          w += n;
          r += len;
          continue;
        }
      }
      memmove(in + w, in + r, len);
      w += len;
      r += len;
      continue;
    }
    in[w++] = in[r++];
  }
  in[w] = '\0';
  return in;
}

json_t *jsonfmt_f32_array(const float *v, int n) {
  json_t *a = json_array();
  for (int k = 0; a && k < n; k++)
    if (json_array_append_new(a, jsonfmt_real_f32(v[k])) != 0) { /* NULL (non-finite) is refused */
      json_decref(a);
      a = NULL;
    }
  return a;
}
