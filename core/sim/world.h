/* Procedural 32x32 RGB worlds for image navigation: deterministic by seed,
 * with natural-image-like statistics (smooth colour fields, shapes with
 * anti-aliased edges, textured patches) so that crops at different places look
 * different. */
#ifndef GTMSM_SIM_WORLD_H
#define GTMSM_SIM_WORLD_H

#include <stdint.h>

#define WORLD_SIZE 32

/* Fills world (WORLD_SIZE, WORLD_SIZE, 3) with values in [0, 1]. */
void world_generate(float *world, uint64_t seed);

#endif
