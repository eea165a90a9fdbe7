/* Base64: the RFC 4648 section 10 test vectors both ways, round trips of
 * random bytes of every length 0..64, the size helpers, and rejection of bad
 * characters, bad padding and wrong lengths with the offending offset named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/base64.h"
#include "nn/rng.h"
#include "testlib.h"

static void test_vectors(void) {
  static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
  char err[256] = "";
  for (int i = 0; i < 7; i++) {
    char *s = NULL;
    size_t slen = 99;
    int rc = base64_encode(&s, &slen, plain[i], strlen(plain[i]), err, sizeof err);
    CHECK(rc == 0 && s && strcmp(s, coded[i]) == 0 && slen == strlen(coded[i]),
          "encode \"%s\": got \"%s\" expected \"%s\"", plain[i], s ? s : "(null)", coded[i]);
    uint8_t *b = NULL;
    size_t blen = 99;
    rc = base64_decode(&b, &blen, coded[i], strlen(coded[i]), err, sizeof err);
    CHECK(rc == 0 && b && blen == strlen(plain[i]) && memcmp(b, plain[i], blen) == 0,
          "decode \"%s\": rc %d len %zu %s", coded[i], rc, blen, err);
    printf("\"%s\" <-> \"%s\"\n", plain[i], coded[i]);
    free(s);
    free(b);
  }
  /* NULL data is fine for an empty encode. */
  char *s = NULL;
  CHECK(base64_encode(&s, NULL, NULL, 0, err, sizeof err) == 0 && s && s[0] == '\0',
        "empty encode from NULL");
  free(s);
}

static void test_round_trips(void) {
  rng_t r;
  rng_init(&r, 4648, 1);
  char err[256] = "";
  int bad = 0;
  for (size_t n = 0; n <= 64; n++) {
    uint8_t *data = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)rng_below(&r, 256);
    char *s = NULL;
    size_t slen = 0;
    int rc = base64_encode(&s, &slen, data, n, err, sizeof err);
    if (rc || slen != base64_encoded_len(n) || strlen(s) != slen || slen % 4 != 0) bad++;
    uint8_t *back = NULL;
    size_t blen = 0;
    rc = base64_decode(&back, &blen, s, slen, err, sizeof err);
    if (rc || blen != n || memcmp(back, data, n) != 0) {
      bad++;
      fprintf(stderr, "length %zu: rc %d got %zu bytes %s\n", n, rc, blen, err);
    }
    if (blen > base64_decoded_size(slen) || base64_decoded_size(slen) - blen > 2) bad++;
    free(data);
    free(s);
    free(back);
  }
  CHECK(bad == 0, "%d failures over lengths 0..64", bad);
  printf("round trip of random bytes, lengths 0..64: %s\n", bad ? "FAILED" : "ok");
  CHECK(base64_encoded_len(0) == 0 && base64_encoded_len(1) == 4 && base64_encoded_len(3) == 4 &&
            base64_encoded_len(4) == 8,
        "encoded_len");
  CHECK(base64_decoded_size(0) == 0 && base64_decoded_size(4) == 3 &&
            base64_decoded_size(5) == 6,
        "decoded_size");
  CHECK(base64_encoded_len(SIZE_MAX) == 0, "encoded_len must report overflow as 0");
}

/* s must be rejected with GTMSM_EFORMAT and a message containing want. */
static void reject(const char *s, const char *want) {
  char err[256] = "";
  uint8_t *b = (uint8_t *)1;
  size_t blen = 7;
  int rc = base64_decode(&b, &blen, s, strlen(s), err, sizeof err);
  CHECK(rc == GTMSM_EFORMAT && b == NULL && blen == 0, "\"%s\" should be rejected (rc %d)", s,
        rc);
  CHECK(strstr(err, want) != NULL, "\"%s\": message \"%s\" lacks \"%s\"", s, err, want);
  printf("reject \"%s\": %s\n", s, err);
}

static void test_rejects(void) {
  reject("Zm9", "length 3");
  reject("Zm9vY", "length 5");
  reject("Zm9v\n", "0x0a at offset 4");
  reject("Zm 9v", "offset 2");
  reject("Zm9v-A==", "'-' at offset 4");       /* base64url alphabet is not accepted */
  reject("Zm9v_A==", "'_' at offset 4");
  reject("Zm9\xc3\xa9", "0xc3 at offset 3");    /* non-ASCII, not echoed raw */
  reject("Zg=", "offset 2");                     /* missing '=' */
  reject("Zg", "length 2");                      /* missing padding altogether */
  reject("Z===", "misplaced padding '=' at offset 1");
  reject("====", "offset 0");
  reject("Zm=v", "misplaced padding '=' at offset 2");
  reject("Zg==Zm9v", "misplaced padding '=' at offset 2");
  reject("Zm9vYg==Zm9v", "offset 6");
  reject("Zm9v====", "offset 4");
  reject("Zh==", "non-zero padding bits in 'h' at offset 1"); /* decodes to 'f' if lax */
  reject("Zm9=", "non-zero padding bits in '9' at offset 2");
  /* The canonical forms of the same bytes are accepted. */
  char err[256] = "";
  uint8_t *b = NULL;
  size_t blen = 0;
  CHECK(base64_decode(&b, &blen, "Zm8=", 4, err, sizeof err) == 0 && blen == 2, "Zm8=: %s",
        err);
  free(b);
  /* Only len characters are read: no NUL terminator needed. */
  b = NULL;
  CHECK(base64_decode(&b, &blen, "Zm9vJUNK", 4, err, sizeof err) == 0 && blen == 3 &&
            memcmp(b, "foo", 3) == 0,
        "prefix decode: %s", err);
  free(b);
}

int main(void) {
  test_vectors();
  test_round_trips();
  test_rejects();
  return test_finish("test_base64");
}
