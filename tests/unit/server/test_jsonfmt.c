/* The daemon's JSON text (server/jsonfmt.c): reals in the shortest form that
 * reads back as the same double (0.1 is "0.1"), float32 values as their
 * shortest float decimal, integral reals keep ".0", integers and strings
 * (digits, escapes, "e" inside strings) are untouched, and for many random
 * doubles and floats the text reads back bit for bit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfmt.h"
#include "nn/rng.h"
#include "testlib.h"

static void check_dump(json_t *j, const char *want) {
  char *s = jsonfmt_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  CHECK(s && strcmp(s, want) == 0, "got '%s' expected '%s'", s ? s : "(null)", want);
  free(s);
  json_decref(j);
}

static void test_cases(void) {
  check_dump(json_real(0.1), "0.1");
  check_dump(json_real(0.05), "0.05");
  check_dump(json_real(1e-4), "0.0001");
  check_dump(json_real(100.0), "100.0");
  check_dump(json_real(1.0), "1.0");
  check_dump(json_real(-2.5), "-2.5");
  check_dump(json_real(0.0), "0.0");
  check_dump(json_real(1e22), "1e22");
  check_dump(json_real(1.5e-7), "1.5e-7");
  check_dump(json_real(1.0 / 3.0), "0.3333333333333333");
  check_dump(json_integer(10000000000000001LL), "10000000000000001");
  check_dump(jsonfmt_real_f32(0.1f), "0.1");
  check_dump(jsonfmt_real_f32(-0.7f), "-0.7");
  check_dump(jsonfmt_real_f32(3.14159274f), "3.1415927");
  check_dump(json_pack("{s:s, s:f, s:[f, i], s:s}", "a", "0.10000000000000001", "b", 0.1, "c",
                       0.2, 3, "d", "x\"1.25e+00\\\"2.50"),
             "{\"a\":\"0.10000000000000001\",\"b\":0.1,\"c\":[0.2,3],\"d\":\"x\\\"1.25e+00\\\\\\\"2.50\"}");
}

/* Random bit patterns: every finite double and float prints and reads back. */
static void test_round_trip(void) {
  rng_t r;
  rng_init(&r, 7, 0);
  int bad = 0;
  for (int i = 0; i < 20000; i++) {
    uint64_t bits = ((uint64_t)rng_u32(&r) << 32) | rng_u32(&r);
    double v;
    memcpy(&v, &bits, sizeof v);
    if (!isfinite(v)) continue;
    json_t *j = json_real(v);
    char *s = jsonfmt_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    if (!s || strtod(s, NULL) != v) {
      if (bad++ < 5) fprintf(stderr, "double %.17g printed '%s'\n", v, s ? s : "(null)");
    }
    free(s);
    uint32_t fb = rng_u32(&r);
    float f;
    memcpy(&f, &fb, sizeof f);
    if (!isfinite(f)) continue;
    j = jsonfmt_real_f32(f);
    s = jsonfmt_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    if (!s || (float)strtod(s, NULL) != f) {
      if (bad++ < 5) fprintf(stderr, "float %.9g printed '%s'\n", (double)f, s ? s : "(null)");
    }
    free(s);
  }
  CHECK(bad == 0, "%d values did not read back", bad);
}

int main(void) {
  test_cases();
  test_round_trip();
  return test_finish("test_jsonfmt");
}
