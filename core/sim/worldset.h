/* A set of 32x32 RGB worlds loaded from a folder of PNG files: each image is
 * centre-cropped to a square and area-resized to 32x32 (the --images option and
 * the bundled photo worlds under data/worlds/). Files are taken in name order
 * so a world's index is stable. */
#ifndef GTMSM_SIM_WORLDSET_H
#define GTMSM_SIM_WORLDSET_H

#include <stddef.h>

#include "sim/world.h"

typedef struct {
  int n;
  float *worlds;   /* (n, 32, 32, 3) in [0, 1] */
  char **names;    /* (n) file names */
} worldset;

/* Loads every *.png in dir. Fails on an unreadable PNG (naming it) or an empty folder. */
int worldset_load(worldset *ws, const char *dir, char *err, size_t errlen);
void worldset_free(worldset *ws);
static inline const float *worldset_get(const worldset *ws, int i) {
  return ws->worlds + (size_t)i * WORLD_SIZE * WORLD_SIZE * 3;
}

#endif
