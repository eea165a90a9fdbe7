/* Request parsing/validation and reply encodings (see codec.h). */
#include "codec.h"

#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "img/base64.h"
#include "img/png.h"

int codec_fail(codec_error *e, int status, const char *slug, const char *fmt, ...) {
  if (e) {
    e->status = status;
    e->slug = slug;
    e->limit = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
  }
  return status;
}

/* Prefixes e->detail with "where: " (truncating the end if it gets long). */
static void prefix_detail(codec_error *e, const char *where) {
  if (!e) return;
  size_t w = strlen(where) + 2, n = strlen(e->detail);
  if (w >= sizeof e->detail) return;
  if (n + w >= sizeof e->detail) n = sizeof e->detail - w - 1;
  memmove(e->detail + w, e->detail, n);
  e->detail[w + n] = '\0';
  memcpy(e->detail, where, w - 2);
  e->detail[w - 2] = ':';
  e->detail[w - 1] = ' ';
}

int codec_valid_id(const char *s) {
  size_t n = 0;
  if (!s) return 0;
  for (; s[n]; n++) {
    char c = s[n];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    if (!ok || n >= CODEC_ID_MAX) return 0;
  }
  return n > 0;
}

/* "right, left, up" into out: the model's action names for error details. */
static void action_list(const gtmsm_model *m, char *out, size_t outlen) {
  size_t j = 0;
  out[0] = '\0';
  for (int i = 0; i < m->cfg.A && j + 1 < outlen; i++)
    j += (size_t)snprintf(out + j, outlen - j, "%s%s", i ? ", " : "", m->cfg.action_names[i]);
}

static int unknown_action(const gtmsm_model *m, const char *what, codec_error *e) {
  char names[256];
  action_list(m, names, sizeof names);
  return codec_fail(e, 422, "unknown-action", "unknown action %s; expected one of %s or an index 0..%d",
                    what, names, m->cfg.A - 1);
}

int codec_action(const gtmsm_model *m, const json_t *v, int *out, codec_error *e) {
  if (json_is_string(v)) {
    int a = gtmsm_action_index(m, json_string_value(v));
    if (a < 0) {
      char what[96];
      snprintf(what, sizeof what, "'%.64s'", json_string_value(v));
      return unknown_action(m, what, e);
    }
    *out = a;
    return 0;
  }
  if (json_is_integer(v)) {
    json_int_t a = json_integer_value(v);
    if (a < 0 || a >= m->cfg.A) {
      char what[48];
      snprintf(what, sizeof what, "index %lld", (long long)a);
      return unknown_action(m, what, e);
    }
    *out = (int)a;
    return 0;
  }
  return codec_fail(e, 400, "invalid-request", "action must be a name (string) or an index (integer)");
}

int codec_action_text(const gtmsm_model *m, const char *s, int *out, codec_error *e) {
  if (!s || !*s) return codec_fail(e, 400, "invalid-request", "missing action query parameter");
  int a = gtmsm_action_index(m, s);
  if (a >= 0) {
    *out = a;
    return 0;
  }
  size_t n = strspn(s, "0123456789");
  if (n == strlen(s) && n <= 6) {
    long v = strtol(s, NULL, 10);
    if (v < m->cfg.A) {
      *out = (int)v;
      return 0;
    }
  }
  char what[96];
  snprintf(what, sizeof what, "'%.64s'", s);
  return unknown_action(m, what, e);
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int codec_decode_frame(const gtmsm_model *m, const uint8_t *png, size_t len, uint8_t *pix,
                       codec_error *e) {
  static const uint8_t SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const int H = m->cfg.H, W = m->cfg.W, C = m->cfg.C;
  /* The IHDR gives the size before any pixel is decoded: a wrong size is a
   * clear 422 without paying for (or trusting) the decode. */
  if (len >= 24 && memcmp(png, SIG, 8) == 0 && memcmp(png + 12, "IHDR", 4) == 0) {
    uint32_t w = be32(png + 16), h = be32(png + 20);
    if (w != (uint32_t)W || h != (uint32_t)H)
      return codec_fail(e, 422, "frame-shape", "frame is %ux%u pixels; expected %dx%d (width x height)",
                        w, h, W, H);
  }
  char err[256] = "";
  uint8_t *dec = NULL;
  int h = 0, w = 0, c = 0;
  int rc = pngio_decode(&dec, &h, &w, &c, png, len, 0, (size_t)H * (size_t)W, err, sizeof err);
  if (rc) {
    free(dec);
    if (rc == GTMSM_ENOMEM) return codec_fail(e, 503, "overloaded", "out of memory decoding a frame");
    return codec_fail(e, 400, "bad-png", "frame is not a valid PNG: %s", err);
  }
  if (h != H || w != W || c != C) {
    free(dec);
    return codec_fail(e, 422, "frame-shape",
                      "frame is %dx%d with %d channel%s; expected %dx%d with %d channel%s", w, h, c,
                      c == 1 ? "" : "s", W, H, C, C == 1 ? "" : "s");
  }
  memcpy(pix, dec, (size_t)H * W * C);
  free(dec);
  return 0;
}

int codec_parse_observation(const gtmsm_model *m, const json_t *o, const char *where, int64_t *t,
                            int *action, uint8_t *pix, codec_error *e) {
  if (!json_is_object(o))
    return codec_fail(e, 400, "invalid-request", "%s: an observation must be a JSON object "
                      "{\"t\", \"action\", \"frame\"}", where);
  const json_t *jt = json_object_get(o, "t"), *ja = json_object_get(o, "action"),
               *jf = json_object_get(o, "frame");
  if (!jt || !ja || !jf)
    return codec_fail(e, 400, "invalid-request", "%s: missing \"%s\"; an observation has \"t\", "
                      "\"action\" and \"frame\"", where, !jt ? "t" : !ja ? "action" : "frame");
  if (!json_is_integer(jt) || json_integer_value(jt) < 0)
    return codec_fail(e, 400, "invalid-request", "%s: \"t\" must be an integer >= 0 (the step index)",
                      where);
  int rc = codec_action(m, ja, action, e);
  if (rc) {
    prefix_detail(e, where);
    return rc;
  }
  if (!json_is_string(jf))
    return codec_fail(e, 400, "invalid-request", "%s: \"frame\" must be a base64 PNG string", where);
  uint8_t *png = NULL;
  size_t plen = 0;
  char err[256] = "";
  rc = base64_decode(&png, &plen, json_string_value(jf), json_string_length(jf), err, sizeof err);
  if (rc) {
    free(png);
    if (rc == GTMSM_ENOMEM) return codec_fail(e, 503, "overloaded", "out of memory");
    return codec_fail(e, 400, "bad-base64", "%s: \"frame\" is not valid base64: %s", where, err);
  }
  rc = codec_decode_frame(m, png, plen, pix, e);
  free(png);
  if (rc) {
    prefix_detail(e, where);
    return rc;
  }
  *t = (int64_t)json_integer_value(jt);
  return 0;
}

int codec_parse_observation_line(const gtmsm_model *m, const char *line, size_t len,
                                 int64_t line_no, int64_t *t, int *action, uint8_t *pix,
                                 codec_error *e) {
  json_error_t jerr;
  char where[48];
  snprintf(where, sizeof where, "line %lld", (long long)line_no);
  json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!o)
    return codec_fail(e, 400, "malformed-ndjson", "%s is not JSON: %s (column %d); expected one "
                      "{\"t\", \"action\", \"frame\"} object per line", where, jerr.text, jerr.column);
  int rc = codec_parse_observation(m, o, where, t, action, pix, e);
  json_decref(o);
  return rc;
}

int codec_parse_json(const char *body, size_t len, json_t **out, codec_error *e) {
  json_error_t jerr;
  *out = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
  if (!*out)
    return codec_fail(e, 400, "malformed-json", "body is not JSON: %s (line %d, column %d)", jerr.text,
                      jerr.line, jerr.column);
  return 0;
}

int codec_valid_version(const char *s) {
  size_t n = 0;
  if (!s) return 0;
  for (; s[n]; n++)
    if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')) || n >= CODEC_VERSION_MAX)
      return 0;
  return n > 0;
}

int codec_parse_model_request(const char *body, size_t len, char *name, char *version,
                              codec_error *e) {
  json_t *j = NULL;
  version[0] = '\0';
  int rc = codec_parse_json(body, len, &j, e);
  if (rc) return rc;
  const json_t *jm = json_is_object(j) ? json_object_get(j, "model") : NULL;
  const json_t *jv = json_is_object(j) ? json_object_get(j, "model_version") : NULL;
  if (!json_is_string(jm)) {
    rc = codec_fail(e, 400, "invalid-request", "expected {\"model\": \"<name>\"} (and optionally "
                    "\"model_version\")");
  } else if (!codec_valid_id(json_string_value(jm))) {
    rc = codec_fail(e, 400, "invalid-request", "model name '%.64s' is not 1..64 of A-Z a-z 0-9 _ -",
                    json_string_value(jm));
  } else if (jv && !json_is_null(jv) && !codec_valid_version(json_string_value(jv))) {
    rc = codec_fail(e, 400, "invalid-request", "\"model_version\" must be a version as GET "
                    "/v1/models/{name} lists them (1..16 of 0-9 a-f)");
  } else {
    snprintf(name, CODEC_ID_MAX + 1, "%s", json_string_value(jm));
    if (json_is_string(jv)) snprintf(version, CODEC_VERSION_MAX + 1, "%s", json_string_value(jv));
  }
  json_decref(j);
  return rc;
}

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void codec_page_token_encode(int64_t after_sid, const char *model, char *out) {
  char raw[96];
  const int n = snprintf(raw, sizeof raw, "s1:%lld:%s", (long long)after_sid, model ? model : "");
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (int i = 0; i < n; i++) {
    acc = acc << 8 | (uint8_t)raw[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out[o++] = B64URL[(acc >> bits) & 63];
    }
  }
  if (bits) out[o++] = B64URL[(acc << (6 - bits)) & 63];
  out[o] = '\0';
}

int codec_page_token_decode(const char *token, const char *model, int64_t *after_sid,
                            codec_error *e) {
  char raw[CODEC_TOKEN_MAX];
  size_t n = 0, len = strlen(token);
  uint32_t acc = 0;
  int bits = 0;
  *after_sid = 0;
  if (len == 0 || len > CODEC_TOKEN_MAX) goto bad;
  for (size_t i = 0; i < len; i++) {
    const char *p = strchr(B64URL, token[i]);
    if (!p || !token[i]) goto bad;
    acc = acc << 6 | (uint32_t)(p - B64URL);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      raw[n++] = (char)((acc >> bits) & 0xff);
    }
  }
  raw[n] = '\0';
  if (strlen(raw) != n || strncmp(raw, "s1:", 3) != 0) goto bad;
  char *end = NULL;
  errno = 0;
  const long long sid = strtoll(raw + 3, &end, 10);
  if (errno || end == raw + 3 || *end != ':' || sid < 1 || raw[3] == '+' || raw[3] == '-') goto bad;
  if (strcmp(end + 1, model ? model : "") != 0)
    return codec_fail(e, 400, "invalid-request", "page_token belongs to a listing with another "
                      "model filter; send the same ?model= as the request that returned it");
  /* the canonical encoding only: one token per position */
  char again[CODEC_TOKEN_MAX + 1];
  codec_page_token_encode(sid, model, again);
  if (strcmp(again, token) != 0) goto bad;
  *after_sid = sid;
  return 0;
bad:
  return codec_fail(e, 400, "invalid-request", "page_token is not a token this server wrote: send "
                    "back next_page_token exactly as a previous page returned it");
}

void codec_predict_free(codec_predict *p) {
  free(p->actions);
  p->actions = NULL;
  p->n = 0;
}

int codec_parse_predict(const gtmsm_model *m, const char *body, size_t len, long long max_actions,
                        codec_predict *out, codec_error *e) {
  memset(out, 0, sizeof *out);
  out->mode = GTMSM_PREDICT_MEAN;
  json_t *j = NULL;
  int rc = codec_parse_json(body, len, &j, e);
  if (rc) return rc;
  const json_t *ja = json_is_object(j) ? json_object_get(j, "actions") : NULL;
  const json_t *jm = json_is_object(j) ? json_object_get(j, "mode") : NULL;
  const json_t *js = json_is_object(j) ? json_object_get(j, "seed") : NULL;
  if (!json_is_array(ja)) {
    rc = codec_fail(e, 400, "invalid-request", "expected {\"actions\": [...], \"mode\": \"mean\"|"
                    "\"sample\", \"seed\": N} with \"actions\" an array");
    goto done;
  }
  size_t n = json_array_size(ja);
  if (n == 0 || n > (size_t)max_actions) {
    rc = codec_fail(e, 422, "too-many-actions", "%zu actions; a prediction takes 1..%lld", n,
                    max_actions);
    if (e) e->limit = max_actions;
    goto done;
  }
  if (jm && !(json_is_string(jm) && (strcmp(json_string_value(jm), "mean") == 0 ||
                                     strcmp(json_string_value(jm), "sample") == 0))) {
    rc = codec_fail(e, 400, "invalid-request", "\"mode\" must be \"mean\" or \"sample\"");
    goto done;
  }
  if (js && !(json_is_integer(js) && json_integer_value(js) >= 0)) {
    rc = codec_fail(e, 400, "invalid-request", "\"seed\" must be an integer >= 0");
    goto done;
  }
  out->actions = malloc(n * sizeof(int));
  if (!out->actions) {
    rc = codec_fail(e, 503, "overloaded", "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    rc = codec_action(m, json_array_get(ja, i), &out->actions[i], e);
    if (rc) {
      char where[32];
      snprintf(where, sizeof where, "actions[%zu]", i);
      prefix_detail(e, where);
      goto done;
    }
  }
  out->n = (int)n;
  if (jm && strcmp(json_string_value(jm), "sample") == 0) out->mode = GTMSM_PREDICT_SAMPLE;
  if (js) out->seed = (uint64_t)json_integer_value(js);
done:
  if (rc) codec_predict_free(out);
  json_decref(j);
  return rc;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static long long days_from_civil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (long long)doe - 719468;
}

int codec_parse_time(const char *s, long long *ms) {
  int y, mo, d, h, mi, sec, n = 0;
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970) return -1;
  long long frac = 0;
  const char *p = s + 19;
  if (*p == '.') {
    int digits = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 3) frac = frac * 10 + (*p - '0');
    if (digits == 0) return -1;
    for (; digits < 3; digits++) frac *= 10;
  }
  if (p[0] != 'Z' || p[1] != '\0') return -1;
  long long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
  *ms = ((days * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL + frac;
  return 0;
}

/* The qvalue at p (n bytes) in thousandths: "0", "0.5", "1.000"... (RFC 9110
 * 12.4.2), or -1. */
static int parse_qvalue(const char *p, size_t n) {
  if (n == 0 || (p[0] != '0' && p[0] != '1')) return -1;
  int q = (p[0] - '0') * 1000;
  if (n == 1) return q;
  if (p[1] != '.' || n > 5) return -1;
  int scale = 100;
  for (size_t i = 2; i < n; i++, scale /= 10) {
    if (p[i] < '0' || p[i] > '9') return -1;
    q += (p[i] - '0') * scale;
  }
  return q <= 1000 ? q : -1;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

int codec_pick_media(const char *accept, const char *const *types, int n) {
  enum { MAX_TYPES = 8 };
  int spec[MAX_TYPES], q[MAX_TYPES];
  size_t pos[MAX_TYPES];
  if (n > MAX_TYPES) n = MAX_TYPES;
  if (!accept) return 0;
  const char *p = accept;
  while (is_ows(*p)) p++;
  if (!*p) return 0;
  for (int i = 0; i < n; i++) spec[i] = -1, q[i] = 0, pos[i] = 0;
  size_t index = 0;
  while (*p) {
    const size_t len = strcspn(p, ","), tlen0 = strcspn(p, ",;");
    const char *t = p, *end = p + len;
    size_t tlen = tlen0;
    while (tlen > 0 && is_ows(*t)) t++, tlen--;
    while (tlen > 0 && is_ows(t[tlen - 1])) tlen--;
    const char *slash = memchr(t, '/', tlen);
    int rq = 1000, ok = slash != NULL && slash > t && slash < t + tlen - 1;
    for (const char *a = p + tlen0; ok && a < end && *a == ';';) { /* parameters */
      const char *v = a + 1;
      while (v < end && is_ows(*v)) v++;
      size_t plen = strcspn(v, ";,");
      if (v + plen > end) plen = (size_t)(end - v);
      size_t vlen = plen;
      while (vlen > 0 && is_ows(v[vlen - 1])) vlen--;
      if (vlen >= 2 && (v[0] == 'q' || v[0] == 'Q') && v[1] == '=') {
        rq = parse_qvalue(v + 2, vlen - 2);
        if (rq < 0) ok = 0;
      }
      a = v + plen;
    }
    for (int i = 0; ok && i < n; i++) {
      const size_t full = strlen(types[i]), major = strcspn(types[i], "/");
      int s = -1;
      if (tlen == full && strncasecmp(t, types[i], full) == 0) s = 2;
      else if (tlen == major + 2 && strncasecmp(t, types[i], major + 1) == 0 && t[major + 1] == '*') s = 1;
      else if (tlen == 3 && strncmp(t, "*/*", 3) == 0) s = 0;
      if (s > spec[i]) spec[i] = s, q[i] = rq, pos[i] = index;
    }
    index++;
    p = *end ? end + 1 : end;
  }
  int best = -1;
  for (int i = 0; i < n; i++) {
    if (spec[i] < 0 || q[i] == 0) continue;
    if (best < 0 || q[i] > q[best] || (q[i] == q[best] && pos[i] < pos[best])) best = i;
  }
  return best;
}

void codec_film_strip(uint8_t *out, const uint8_t *frames, int n, int H, int W, int C) {
  const size_t row = (size_t)W * C, strip_row = row * (size_t)n;
  for (int i = 0; i < n; i++)
    for (int y = 0; y < H; y++)
      memcpy(out + (size_t)y * strip_row + (size_t)i * row,
             frames + ((size_t)i * H + (size_t)y) * row, row);
}

static int png_base64(const uint8_t *pix, int H, int W, int C, int fast, char **out) {
  uint8_t *png = NULL;
  size_t len = 0;
  *out = NULL;
  int rc = fast ? pngio_encode_fast(&png, &len, pix, H, W, C, NULL, 0) : pngio_encode(&png, &len, pix, H, W, C, NULL, 0);
  if (!rc) rc = base64_encode(out, NULL, png, len, NULL, 0);
  free(png);
  return rc;
}

int codec_png_base64(const uint8_t *pix, int H, int W, int C, char **out) {
  return png_base64(pix, H, W, C, 0, out);
}

int codec_png_base64_fast(const uint8_t *pix, int H, int W, int C, char **out) {
  return png_base64(pix, H, W, C, 1, out);
}
