/* libFuzzer target: PNG decoding of untrusted frames, as the daemon does it
 * (codec_decode_frame for an 8x8x3 model) and pngio_decode in every channel
 * mode with a small pixel bound. Checks: no crash, leak or UB; a decoded
 * image respects the bound and its channel request; a frame is accepted only
 * with the model's exact shape. */
#include <stdint.h>
#include <stdlib.h>

#include "codec.h"
#include "fuzz_common.h"
#include "img/png.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const gtmsm_model *m = fuzz_model();
  static uint8_t pix[8 * 8 * 3];
  codec_error e;
  int rc = codec_decode_frame(m, data, size, pix, &e);
  if (rc != 0 && rc != 400 && rc != 422 && rc != 503) abort();
  static const int modes[] = {0, 1, 3, 4};
  for (int k = 0; k < 4; k++) {
    uint8_t *out = NULL;
    int H = 0, W = 0, C = 0;
    rc = pngio_decode(&out, &H, &W, &C, data, size, modes[k], 4096, NULL, 0);
    if (rc == 0) {
      if (!out || H < 1 || W < 1 || (size_t)H * (size_t)W > 4096 || (modes[k] && C != modes[k])) abort();
      volatile uint8_t sink = out[(size_t)H * W * C - 1]; /* the whole buffer is there */
      (void)sink;
    } else if (out) {
      abort();
    }
    free(out);
  }
  return 0;
}
