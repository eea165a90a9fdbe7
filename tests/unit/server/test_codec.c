/* Request parsing and validation (server/codec.c) against a small model
 * (8x8x3 frames, actions right, left, up, down, stay): ids, actions by name
 * and index, frames (good PNG, wrong size, wrong channels, truncated,
 * garbage), observation objects and NDJSON lines with each kind of mistake
 * mapped to its status and problem slug, prediction requests and their
 * limits, film strips, base64 PNG round trips, RFC 3339 times and Accept
 * negotiation with q-values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "img/base64.h"
#include "img/png.h"
#include "log.h"
#include "testlib.h"

static gtmsm_model M;
static uint8_t PIX[8 * 8 * 3];

static char *png_b64(const uint8_t *pix, int H, int W, int C) {
  uint8_t *png = NULL;
  size_t len = 0;
  char *b64 = NULL;
  if (pngio_encode(&png, &len, pix, H, W, C, NULL, 0) == 0) base64_encode(&b64, NULL, png, len, NULL, 0);
  free(png);
  return b64;
}

static void test_ids(void) {
  char id64[65], id65[66];
  memset(id64, 'a', 64);
  id64[64] = '\0';
  memset(id65, 'b', 65);
  id65[65] = '\0';
  const char *good[] = {"a", "Z9", "walker-1", "under_score", id64};
  const char *bad[] = {"", "a b", "a/b", "a.b", "ü", "a\n", id65, "%41"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    CHECK(codec_valid_id(good[i]), "'%s' should be a valid id", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(!codec_valid_id(bad[i]), "'%s' should be refused", bad[i]);
  CHECK(!codec_valid_id(NULL), "NULL is not an id");
  printf("ids: 1..64 of A-Z a-z 0-9 _ - (%zu good, %zu bad checked)\n", sizeof good / sizeof *good,
         sizeof bad / sizeof *bad);
}

static void test_actions(void) {
  codec_error e;
  int a = -1;
  json_t *v = json_string("up");
  CHECK(codec_action(&M, v, &a, &e) == 0 && a == 2, "'up' is action 2 (got %d)", a);
  json_decref(v);
  v = json_integer(4);
  CHECK(codec_action(&M, v, &a, &e) == 0 && a == 4, "index 4");
  json_decref(v);
  v = json_integer(5);
  CHECK(codec_action(&M, v, &a, &e) == 422 && strcmp(e.slug, "unknown-action") == 0, "index 5: 422");
  json_decref(v);
  v = json_string("jump");
  CHECK(codec_action(&M, v, &a, &e) == 422 && strstr(e.detail, "'jump'") && strstr(e.detail, "right, left"),
        "unknown name: 422 naming it and the choices: %s", e.detail);
  json_decref(v);
  v = json_real(1.0);
  CHECK(codec_action(&M, v, &a, &e) == 400 && strcmp(e.slug, "invalid-request") == 0, "a real: 400");
  json_decref(v);
  CHECK(codec_action_text(&M, "left", &a, &e) == 0 && a == 1, "text 'left'");
  CHECK(codec_action_text(&M, "3", &a, &e) == 0 && a == 3, "text '3'");
  CHECK(codec_action_text(&M, "5", &a, &e) == 422, "text '5': 422");
  CHECK(codec_action_text(&M, "-1", &a, &e) == 422, "text '-1': 422");
  CHECK(codec_action_text(&M, NULL, &a, &e) == 400, "no action: 400");
  printf("actions: names, indices, out of range 422, wrong type 400\n");
}

static void test_frames(void) {
  codec_error e;
  uint8_t out[sizeof PIX];
  uint8_t *png = NULL;
  size_t len = 0;
  CHECK(pngio_encode(&png, &len, PIX, 8, 8, 3, NULL, 0) == 0, "encode");
  CHECK(codec_decode_frame(&M, png, len, out, &e) == 0 && memcmp(out, PIX, sizeof PIX) == 0,
        "a good frame decodes to its pixels");
  int rc = codec_decode_frame(&M, png, 40, out, &e);
  CHECK(rc == 400 && strcmp(e.slug, "bad-png") == 0, "truncated: 400 bad-png (%d %s)", rc, e.detail);
  printf("truncated: %s\n", e.detail);
  rc = codec_decode_frame(&M, (const uint8_t *)"GIF89a", 6, out, &e);
  CHECK(rc == 400 && strcmp(e.slug, "bad-png") == 0, "garbage: 400");
  rc = codec_decode_frame(&M, png, 0, out, &e);
  CHECK(rc == 400, "empty: 400");
  free(png);
  static uint8_t big[16 * 16 * 4];
  CHECK(pngio_encode(&png, &len, big, 16, 16, 3, NULL, 0) == 0, "encode 16x16");
  rc = codec_decode_frame(&M, png, len, out, &e);
  CHECK(rc == 422 && strcmp(e.slug, "frame-shape") == 0 && strstr(e.detail, "16x16") &&
            strstr(e.detail, "expected 8x8"), "16x16: 422 saying both sizes: %s", e.detail);
  free(png);
  CHECK(pngio_encode(&png, &len, big, 8, 8, 1, NULL, 0) == 0, "encode gray");
  rc = codec_decode_frame(&M, png, len, out, &e);
  CHECK(rc == 422 && strstr(e.detail, "1 channel;") && strstr(e.detail, "3 channels"),
        "gray: 422 naming the channels: %s", e.detail);
  free(png);
  CHECK(pngio_encode(&png, &len, big, 8, 8, 4, NULL, 0) == 0, "encode RGBA");
  CHECK(codec_decode_frame(&M, png, len, out, &e) == 422, "RGBA: 422");
  free(png);
  /* a huge declared size is refused from the header, before any decoding */
  CHECK(pngio_encode(&png, &len, big, 8, 8, 3, NULL, 0) == 0, "encode");
  png[16] = 0x7f; /* width 0x7f000008 */
  rc = codec_decode_frame(&M, png, len, out, &e);
  CHECK(rc == 422 && strcmp(e.slug, "frame-shape") == 0, "a 2-billion-pixel header: 422 (%d)", rc);
  free(png);
  printf("frames: exact shape required (size from IHDR first), decoding errors are 400\n");
}

static int line_status(const char *line, const char **slug, char *detail) {
  codec_error e = {0};
  int64_t t = -1;
  int a = -1;
  uint8_t pix[sizeof PIX];
  int rc = codec_parse_observation_line(&M, line, strlen(line), 3, &t, &a, pix, &e);
  *slug = rc ? e.slug : "";
  if (detail) snprintf(detail, 512, "%s", rc ? e.detail : "");
  return rc;
}

static void test_observations(void) {
  char *f = png_b64(PIX, 8, 8, 3);
  char line[2048], detail[512];
  const char *slug;
  snprintf(line, sizeof line, "{\"t\": 17, \"action\": \"left\", \"frame\": \"%s\", \"truth\": {\"x\": 1}}", f);
  codec_error e;
  int64_t t = -1;
  int a = -1;
  uint8_t pix[sizeof PIX];
  CHECK(codec_parse_observation_line(&M, line, strlen(line), 1, &t, &a, pix, &e) == 0 && t == 17 &&
            a == 1 && memcmp(pix, PIX, sizeof PIX) == 0, "a gen line parses (extra keys ignored): %s", e.detail);
  struct {
    const char *fmt; /* %s = the good frame */
    int status;
    const char *slug;
  } cases[] = {
      {"{\"t\": 1, \"action\": 0, \"frame\": \"%s\"}", 0, ""},
      {"{\"t\": 1, \"action\": 0, \"frame\": \"%s\"", 400, "malformed-ndjson"},
      {"[1, 2, \"%s\"]", 400, "invalid-request"},
      {"{\"action\": 0, \"frame\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": 1, \"frame\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": 1, \"action\": 0, \"x\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": -1, \"action\": 0, \"frame\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": \"1\", \"action\": 0, \"frame\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": 1.0, \"action\": 0, \"frame\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": 1e3, \"action\": 0, \"frame\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": 99999999999999999999, \"action\": 0, \"frame\": \"%s\"}", 400, "malformed-ndjson"},
      {"{\"t\": 1, \"action\": null, \"frame\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": 1, \"action\": \"fly\", \"frame\": \"%s\"}", 422, "unknown-action"},
      {"{\"t\": 1, \"action\": 7, \"frame\": \"%s\"}", 422, "unknown-action"},
      {"{\"t\": 1, \"action\": 0, \"frame\": 5, \"pad\": \"%s\"}", 400, "invalid-request"},
      {"{\"t\": 1, \"action\": 0, \"frame\": \"%s=\"}", 400, "bad-base64"},
      {"{\"t\": 1, \"action\": 0, \"frame\": \"@%s\"}", 400, "bad-base64"},
      {"{\"t\": 1, \"t\": 2, \"action\": 0, \"frame\": \"%s\"}", 400, "malformed-ndjson"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    snprintf(line, sizeof line, cases[i].fmt, f);
    int rc = line_status(line, &slug, detail);
    CHECK(rc == cases[i].status && strcmp(slug, cases[i].slug) == 0, "case %zu (%.60s...): got %d %s, want %d %s",
          i, cases[i].fmt, rc, slug, cases[i].status, cases[i].slug);
    if (rc) CHECK(strncmp(detail, "line 3", 6) == 0, "case %zu: the detail names the line: %s", i, detail);
  }
  printf("observation lines: %zu cases map to their status and slug; details name the line\n",
         sizeof cases / sizeof *cases);
  line_status("not json at all", &slug, detail);
  printf("e.g. %s\n", detail);
  /* a frame of the wrong size inside a line */
  static uint8_t big[16 * 8 * 3];
  char *f2 = png_b64(big, 8, 16, 3);
  snprintf(line, sizeof line, "{\"t\": 1, \"action\": 0, \"frame\": \"%s\"}", f2);
  CHECK(line_status(line, &slug, detail) == 422 && strcmp(slug, "frame-shape") == 0 &&
            strstr(detail, "line 3: frame is 16x8"), "a 16x8 frame in a line: %s", detail);
  free(f2);
  free(f);
}

static void test_predict(void) {
  codec_predict p;
  codec_error e;
  const char *body = "{\"actions\": [\"left\", 2, \"stay\"]}";
  CHECK(codec_parse_predict(&M, body, strlen(body), 1024, &p, &e) == 0 && p.n == 3 && p.actions[0] == 1 &&
            p.actions[1] == 2 && p.actions[2] == 4 && p.mode == GTMSM_PREDICT_MEAN && p.seed == 0,
        "defaults: mean, seed 0");
  codec_predict_free(&p);
  body = "{\"actions\": [0], \"mode\": \"sample\", \"seed\": 9007199254740993}";
  CHECK(codec_parse_predict(&M, body, strlen(body), 1024, &p, &e) == 0 && p.mode == GTMSM_PREDICT_SAMPLE &&
            p.seed == 9007199254740993ULL, "sample mode and a 64-bit seed");
  codec_predict_free(&p);
  struct {
    const char *body;
    int status;
    const char *slug;
  } cases[] = {
      {"", 400, "malformed-json"},
      {"{\"actions\": [0]", 400, "malformed-json"},
      {"[0, 1]", 400, "invalid-request"},
      {"{\"actions\": \"left\"}", 400, "invalid-request"},
      {"{\"actions\": []}", 422, "too-many-actions"},
      {"{\"actions\": [0, 0, 0, 0, 0]}", 422, "too-many-actions"},
      {"{\"actions\": [0, \"jump\"]}", 422, "unknown-action"},
      {"{\"actions\": [0, {}]}", 400, "invalid-request"},
      {"{\"actions\": [0], \"mode\": \"best\"}", 400, "invalid-request"},
      {"{\"actions\": [0], \"mode\": 1}", 400, "invalid-request"},
      {"{\"actions\": [0], \"seed\": -1}", 400, "invalid-request"},
      {"{\"actions\": [0], \"seed\": 1.5}", 400, "invalid-request"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int rc = codec_parse_predict(&M, cases[i].body, strlen(cases[i].body), 4, &p, &e);
    CHECK(rc == cases[i].status && strcmp(e.slug, cases[i].slug) == 0 && p.actions == NULL,
          "predict '%s': got %d %s, want %d %s", cases[i].body, rc, rc ? e.slug : "", cases[i].status,
          cases[i].slug);
  }
  const char *five = "{\"actions\": [0, 0, 0, 0, 0]}", *jump = "{\"actions\": [0, \"jump\"]}";
  codec_parse_predict(&M, five, strlen(five), 4, &p, &e);
  CHECK(e.limit == 4 && strstr(e.detail, "1..4"), "too many actions reports the limit: %s", e.detail);
  codec_parse_predict(&M, jump, strlen(jump), 4, &p, &e);
  CHECK(strncmp(e.detail, "actions[1]: ", 12) == 0, "the detail names the index: %s", e.detail);
  char name[CODEC_ID_MAX + 1], version[CODEC_VERSION_MAX + 1];
  CHECK(codec_parse_model_request("{\"model\": \"imagenav\"}", 21, name, version, &e) == 0 &&
        strcmp(name, "imagenav") == 0 && version[0] == '\0', "model request");
  const char *mv = "{\"model\": \"imagenav\", \"model_version\": \"0123abcd\"}";
  CHECK(codec_parse_model_request(mv, strlen(mv), name, version, &e) == 0 && strcmp(version, "0123abcd") == 0,
        "model request with a version");
  const char *bad_versions[] = {"{\"model\": \"m\", \"model_version\": \"\"}",
                                "{\"model\": \"m\", \"model_version\": \"ABC\"}",
                                "{\"model\": \"m\", \"model_version\": 12}",
                                "{\"model\": \"m\", \"model_version\": \"0123456789abcdef0\"}"};
  for (size_t i = 0; i < sizeof bad_versions / sizeof *bad_versions; i++)
    CHECK(codec_parse_model_request(bad_versions[i], strlen(bad_versions[i]), name, version, &e) == 400,
          "bad model_version %s: 400", bad_versions[i]);
  CHECK(codec_parse_model_request("{\"model\": \"a b\"}", 16, name, version, &e) == 400, "bad model name: 400");
  CHECK(codec_parse_model_request("{}", 2, name, version, &e) == 400, "no model: 400");
  printf("predictions: %zu malformed or out-of-limit bodies refused with the right status\n",
         sizeof cases / sizeof *cases);
}

static void test_strip_and_png(void) {
  uint8_t frames[3 * 2 * 2]; /* (3, 2, 2, 1) */
  for (int i = 0; i < 12; i++) frames[i] = (uint8_t)i;
  uint8_t strip[12];
  codec_film_strip(strip, frames, 3, 2, 2, 1);
  const uint8_t want[12] = {0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11};
  CHECK(memcmp(strip, want, 12) == 0, "film strip: frames side by side, row by row");
  char *b = NULL;
  CHECK(codec_png_base64(PIX, 8, 8, 3, &b) == 0 && b, "png base64");
  char *b2 = NULL;
  codec_png_base64(PIX, 8, 8, 3, &b2);
  CHECK(b && b2 && strcmp(b, b2) == 0, "PNG encoding is deterministic");
  uint8_t *png = NULL;
  size_t len = 0;
  base64_decode(&png, &len, b, strlen(b), NULL, 0);
  uint8_t out[sizeof PIX];
  codec_error e;
  CHECK(codec_decode_frame(&M, png, len, out, &e) == 0 && memcmp(out, PIX, sizeof PIX) == 0,
        "base64 PNG round trip");
  free(png);
  free(b);
  free(b2);
  printf("film strip layout, deterministic PNG, base64 round trip\n");
}

static void test_accept(void) {
  static const char *const TYPES[] = {"application/json", "image/png", "application/x-ndjson"};
  struct {
    const char *accept;
    int want; /* index into TYPES, -1: nothing acceptable (406) */
  } cases[] = {
      {NULL, 0},
      {"", 0},
      {"  ", 0},
      {"*/*", 0},
      {"image/png", 1},
      {"IMAGE/PNG", 1},
      {"application/x-ndjson", 2},
      {"image/png, application/json", 1},          /* equal q: the first listed */
      {"application/json, image/png", 0},
      {"image/png;q=0, application/json", 0},      /* q=0: not acceptable */
      {"image/png; q=0, */*", 0},
      {"image/png;q=0.5, application/json;q=0.9", 0},
      {"application/json;q=0.2, image/png;q=0.3", 1},
      {"image/*", 1},
      {"image/*;q=0.1, application/x-ndjson;q=0.2", 2},
      {"*/*;q=0.1, image/png", 1},
      {"application/*", 0},
      {"application/*;q=0.5, application/x-ndjson", 2},
      {"*/*, application/json;q=0", 1},            /* the exact range decides json, not any/any */
      {"image/png;q=0", -1},
      {"*/*;q=0", -1},
      {"text/html", -1},
      {"text/html, image/png;q=0.001", 1},
      {"image/png;q=1.0", 1},
      {"image/png;q=1.5, application/json", 0},    /* an invalid q drops that range */
      {"image/png;q=abc, application/json", 0},
      {"image/png;level=1;q=0.8, application/json;q=0.7", 1},
      {",,, image/png ,", 1},
      {"image/png;q=0.000, application/json;q=0.001", 0},
      {"garbage", -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int got = codec_pick_media(cases[i].accept, TYPES, 3);
    CHECK(got == cases[i].want, "Accept '%s' -> %d (expected %d)", cases[i].accept ? cases[i].accept : "(none)",
          got, cases[i].want);
  }
  printf("Accept: %zu headers with q-values, wildcards and refusals\n", sizeof cases / sizeof *cases);
}

static void test_times(void) {
  long long cases[] = {0, 1, 999, 1000, 86399999, 951782400000LL /* 2000-02-29 */, 1790000000123LL,
                       4102444800000LL /* 2100-01-01 */};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char s[32];
    long long back = -1;
    log_format_time(s, cases[i]);
    CHECK(codec_parse_time(s, &back) == 0 && back == cases[i], "%lld -> %s -> %lld", cases[i], s, back);
  }
  long long x;
  CHECK(codec_parse_time("2026-01-02T03:04:05Z", &x) == 0 && x % 1000 == 0, "no fraction");
  const char *bad[] = {"", "2026-01-02", "2026-01-02T03:04:05", "2026-13-02T03:04:05Z",
                       "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+01:00", "1960-01-01T00:00:00Z"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(codec_parse_time(bad[i], &x) == -1, "'%s' refused", bad[i]);
  CHECK(codec_parse_time(NULL, &x) == -1, "NULL refused");
  printf("RFC 3339 times: %zu round trips, %zu refusals\n", sizeof cases / sizeof *cases,
         sizeof bad / sizeof *bad);
}

static void test_page_tokens(void) {
  const struct {
    long long sid;
    const char *model;
  } cases[] = {{1, NULL}, {2, "imagenav"}, {9223372036854775807LL, NULL},
               {123456789, "a-model_with-64-characters-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}};
  codec_error e;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char tok[CODEC_TOKEN_MAX + 1];
    int64_t back = -1;
    codec_page_token_encode(cases[i].sid, cases[i].model, tok);
    CHECK(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(tok),
          "token %s is base64url", tok);
    CHECK(codec_page_token_decode(tok, cases[i].model, &back, &e) == 0 && back == cases[i].sid,
          "token %s -> %lld (want %lld)", tok, (long long)back, cases[i].sid);
    CHECK(codec_page_token_decode(tok, cases[i].model ? NULL : "other", &back, &e) == 400 &&
          strstr(e.detail, "model filter"), "token %s with another model filter: 400 (%s)", tok, e.detail);
  }
  char t[CODEC_TOKEN_MAX + 1], forged[CODEC_TOKEN_MAX + 2];
  codec_page_token_encode(5, NULL, t);
  snprintf(forged, sizeof forged, "%sA", t);
  int64_t x;
  /* "s1:0:", "s1:-3:", "s1:12", "s1:+4:", "xx:4:", "s1:4:" + 'A' past the end, not base64url, empty, too long */
  const char *bad[] = {"czE6MDo", "czE6LTM6", "czE6MTI", "czE6KzQ6", "eHg6NDo", forged, "czE6NDo=",
                       "czE6N*o", "", "czE6NDo.", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(codec_page_token_decode(bad[i], NULL, &x, &e) == 400 && e.status == 400,
          "page token '%s' refused", bad[i]);
  printf("page tokens: %zu round trips, %zu refusals\n", sizeof cases / sizeof *cases,
         sizeof bad / sizeof *bad);
}

int main(void) {
  char err[256];
  gtmsm_config c = gtmsm_default_config();
  c.hidden = 8;
  c.Z = 2;
  c.gate_hidden = 4;
  if (gtmsm_model_init(&M, &c, 1, err, sizeof err)) {
    fprintf(stderr, "model: %s\n", err);
    return 1;
  }
  for (size_t i = 0; i < sizeof PIX; i++) PIX[i] = (uint8_t)(i * 37 % 251);
  test_ids();
  test_page_tokens();
  test_actions();
  test_frames();
  test_observations();
  test_predict();
  test_strip_and_png();
  test_times();
  test_accept();
  gtmsm_model_free(&M);
  return test_finish("test_codec");
}
