/* Shared by the fuzz targets: a small model with the shipped imagenav frame
 * shape (8x8x3, actions right, left, up, down, stay), built once. */
#ifndef GTMSM_FUZZ_COMMON_H
#define GTMSM_FUZZ_COMMON_H

#include <stdlib.h>

#include "model/api.h"

static inline const gtmsm_model *fuzz_model(void) {
  static gtmsm_model m;
  static int ready;
  if (!ready) {
    gtmsm_config c = gtmsm_default_config();
    c.hidden = 8;
    c.Z = 2;
    c.gate_hidden = 4;
    if (gtmsm_model_init(&m, &c, 1, NULL, 0)) abort();
    ready = 1;
  }
  return &m;
}

#endif
