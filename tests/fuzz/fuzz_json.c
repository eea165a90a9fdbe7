/* libFuzzer target: the JSON request bodies. Every input goes through the
 * prediction-request parser, the {"model"} parser, the {"observations": [...]}
 * path, the RFC 3339 parser and, as an import would, the memory
 * deserialiser. Checks: no crash, leak or UB; accepted requests are within
 * their limits; errors carry an HTTP status and a slug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz_common.h"

static void check_error(int rc, const codec_error *e) {
  if (rc != 0 && (rc < 400 || rc > 599 || !e->slug)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const gtmsm_model *m = fuzz_model();
  const char *body = (const char *)data;
  codec_error e;
  codec_predict p;
  int rc = codec_parse_predict(m, body, size, 64, &p, &e);
  check_error(rc, &e);
  if (rc == 0) {
    if (p.n < 1 || p.n > 64) abort();
    for (int i = 0; i < p.n; i++)
      if (p.actions[i] < 0 || p.actions[i] >= m->cfg.A) abort();
    codec_predict_free(&p);
  }
  char name[CODEC_ID_MAX + 1], version[CODEC_VERSION_MAX + 1];
  rc = codec_parse_model_request(body, size, name, version, &e);
  check_error(rc, &e);
  if (rc == 0 && (!codec_valid_id(name) || (version[0] && !codec_valid_version(version)))) abort();
  /* a page token: whatever the bytes, refused with 400 or decoded to a position whose
   * canonical token is exactly the input */
  char token[CODEC_TOKEN_MAX + 8];
  const size_t tn = size < sizeof token - 1 ? size : sizeof token - 1;
  memcpy(token, body, tn);
  token[tn] = '\0';
  int64_t after = 0;
  rc = codec_page_token_decode(token, NULL, &after, &e);
  check_error(rc, &e);
  if (rc == 0) {
    char again[CODEC_TOKEN_MAX + 1];
    codec_page_token_encode(after, NULL, again);
    if (after < 1 || strcmp(again, token) != 0) abort();
  }
  json_t *j = NULL;
  if (codec_parse_json(body, size, &j, &e) == 0) {
    const json_t *list = json_object_get(j, "observations");
    static uint8_t pix[8 * 8 * 3];
    for (size_t i = 0; i < json_array_size(list) && i < 64; i++) {
      int64_t t;
      int a;
      check_error(codec_parse_observation(m, json_array_get(list, i), "observations[i]", &t, &a, pix, &e), &e);
    }
    json_decref(j);
  }
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  long long ms;
  if (codec_parse_time(s, &ms) == 0 && ms < 0) abort();
  codec_valid_id(s);
  free(s);
  gtmsm_memory *mem = NULL;
  if (gtmsm_memory_deserialize(m, data, size, &mem, NULL, 0) == 0) {
    if (mem->steps < 0 || (size_t)mem->steps != dnd_size(mem->mem)) abort();
    gtmsm_memory_free(mem);
  }
  return 0;
}
