/* Request parsing and validation for gtmsmd, and the encodings of replies:
 * ids, actions (by name or index), observations (JSON objects and NDJSON
 * lines with base64 PNG frames), prediction requests, film strips and base64
 * PNGs. Pure code over jansson and core/img: no HTTP, no SQL, so it is unit
 * tested and fuzzed directly.
 *
 * Every parser reports a failure as a codec_error: the HTTP status it maps to
 * (400 malformed, 422 not acceptable for this model or these limits), a
 * problem slug (urn:gtmsm:problem:<slug>) and a detail saying what was wrong
 * and what was expected. Details may quote client text; the problem writer
 * (http.c) escapes and truncates them. */
#ifndef GTMSMD_CODEC_H
#define GTMSMD_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "model/api.h"

#define CODEC_ID_MAX 64

typedef struct {
  int status;       /* HTTP status */
  const char *slug; /* static string */
  char detail[512];
  long long limit;  /* the limit that was exceeded, or -1 */
} codec_error;

/* Fills e and returns status (so `return codec_fail(e, 400, ...)`). */
int codec_fail(codec_error *e, int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Non-zero iff s is a valid session id or model name: 1..64 of A-Z a-z 0-9 _ -. */
int codec_valid_id(const char *s);

/* One action from JSON: a name of m's actions or an index 0..A-1. 400 for
 * another JSON type, 422 unknown-action otherwise. *out set on success. */
int codec_action(const gtmsm_model *m, const json_t *v, int *out, codec_error *e);
/* The same from text (a query parameter): a name, or digits for an index. */
int codec_action_text(const gtmsm_model *m, const char *s, int *out, codec_error *e);

/* Decodes a PNG (len bytes, borrowed, untrusted) that must be exactly m's
 * frame shape (H, W, C) into pix (H * W * C bytes, caller's). 400 bad-png
 * when it does not decode, 422 frame-shape for another size or channel count. */
int codec_decode_frame(const gtmsm_model *m, const uint8_t *png, size_t len, uint8_t *pix,
                       codec_error *e);

/* One observation object {"t", "action", "frame", ...ignored keys} (borrowed)
 * into *t, *action and pix (H * W * C bytes, caller's). where prefixes the
 * detail ("line 3", "observations[2]"). */
int codec_parse_observation(const gtmsm_model *m, const json_t *o, const char *where, int64_t *t,
                            int *action, uint8_t *pix, codec_error *e);
/* The same from one NDJSON line (len bytes, borrowed): 400 malformed-ndjson
 * for a line that is not a JSON object. */
int codec_parse_observation_line(const gtmsm_model *m, const char *line, size_t len,
                                 int64_t line_no, int64_t *t, int *action, uint8_t *pix,
                                 codec_error *e);

/* Parses body (len bytes, borrowed) as one JSON value into *out (new
 * reference; caller decrefs). 400 malformed-json with jansson's message. */
int codec_parse_json(const char *body, size_t len, json_t **out, codec_error *e);

/* A model version as the API writes it: 1..16 of 0-9 a-f (a content hash). */
#define CODEC_VERSION_MAX 16
int codec_valid_version(const char *s);

/* {"model": "<name>", "model_version": "<version>"} -> name (CODEC_ID_MAX +
 * 1 bytes) and version (CODEC_VERSION_MAX + 1 bytes; "" when the optional
 * "model_version" is absent or null). 400 on anything else. */
int codec_parse_model_request(const char *body, size_t len, char *name, char *version,
                              codec_error *e);

/* The page token of GET /v1/sessions: opaque to clients, base64url (no
 * padding) of "s1:<last row id>:<model filter>", so a token only continues
 * the listing it came from. encode writes it into out (CODEC_TOKEN_MAX + 1
 * bytes); decode checks one against the request's model filter (NULL: none)
 * and gives the row id to continue after: 0, or 400 invalid-request. */
#define CODEC_TOKEN_MAX 128
void codec_page_token_encode(int64_t after_sid, const char *model, char *out);
int codec_page_token_decode(const char *token, const char *model, int64_t *after_sid,
                            codec_error *e);

typedef struct {
  int n;                   /* actions */
  int *actions;            /* (n), owned: free with codec_predict_free */
  gtmsm_predict_mode mode; /* default mean */
  uint64_t seed;           /* default 0 */
} codec_predict;

/* {"actions": [...], "mode": "mean"|"sample", "seed": N} into out. 1 to
 * max_actions actions (422 too-many-actions beyond, with the limit). */
int codec_parse_predict(const gtmsm_model *m, const char *body, size_t len, long long max_actions,
                        codec_predict *out, codec_error *e);
void codec_predict_free(codec_predict *p);

/* Parses an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SS[.mmm]Z" (as the API writes
 * them) into ms since the epoch. Returns 0 or -1. */
int codec_parse_time(const char *s, long long *ms);

/* Content negotiation on an Accept header (borrowed, may be NULL) among
 * types (n <= 8 lowercase "type/subtype", borrowed, in the server's order of
 * preference), as RFC 9110 12.5.1 has it: a type's q is that of the most
 * specific range matching it (exact, then "type/<any>", then "<any>/<any>"),
 * and q=0 refuses it; the highest q wins, on a tie the type whose range comes
 * first in the header, then the earlier in types. Returns its index; 0 when there is no
 * header (or a blank one); -1 when nothing is acceptable (406). A range that
 * does not parse (no '/', a q outside 0..1) is ignored. */
int codec_pick_media(const char *accept, const char *const *types, int n);

/* Lays n frames (n, H, W, C) side by side into out (H, n * W, C). Both borrowed. */
void codec_film_strip(uint8_t *out, const uint8_t *frames, int n, int H, int W, int C);

/* PNG of pix (H, W, C), borrowed, as a new base64 string *out (caller frees).
 * Returns 0 or a negative GTMSM_E* code. */
int codec_png_base64(const uint8_t *pix, int H, int W, int C, char **out);
/* The same with pngio_encode_fast (predicted frames: replies, not files;
 * demo episodes and exports keep pngio_encode, the bytes `gtmsm gen` writes). */
int codec_png_base64_fast(const uint8_t *pix, int H, int W, int C, char **out);

#endif
