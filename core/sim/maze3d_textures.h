/* Texture sets for maze3d: RGB images, already resized to the maze's texture
 * size, from which a maze draws every region's wall, floor and ceiling look
 * instead of making procedural ones (evaluation on looks never seen in
 * training; see maze3d_config.textures). A set is built image by image from
 * memory or loaded from a folder of PNG files; either way its order is fixed
 * (the folder's file names in strcmp order), so a seed picks the same looks
 * from the same files on any machine. */
#ifndef GTMSM_SIM_MAZE3D_TEXTURES_H
#define GTMSM_SIM_MAZE3D_TEXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "sim/maze3d.h"

/* A set may hold at most this many images (12 KiB of floats each). */
#define MAZE3D_TEXTURES_MAX 1024

struct maze3d_texture_set {
  int n;          /* images */
  float *tex;     /* (n, MAZE3D_TEXTURE_SIZE, MAZE3D_TEXTURE_SIZE, 3) RGB in [0, 1], row 0 at the top */
  char **names;   /* (n) names (file names when loaded from a folder) */
  int cap;        /* allocated slots of tex and names */
};

/* A zeroed struct is an empty set; maze3d_texture_set_free returns it to that. */
void maze3d_texture_set_free(maze3d_texture_set *ts);

/* Appends one image: pix (H, W, C) 8-bit, borrowed, C = 1 (gray, replicated),
 * 3 (RGB) or 4 (RGBA, alpha dropped), centre-cropped to its largest square
 * and area-resized to MAZE3D_TEXTURE_SIZE (image_square_resize). name is
 * copied. Returns 0, GTMSM_EINVAL (bad shape or C), GTMSM_ERANGE (the set
 * already holds MAZE3D_TEXTURES_MAX images) or GTMSM_ENOMEM; on failure the
 * set is unchanged. */
int maze3d_texture_set_add(maze3d_texture_set *ts, const char *name, const uint8_t *pix, int H,
                           int W, int C, char *err, size_t errlen);

/* Loads every regular file in dir (borrowed) whose name ends in .png or .PNG
 * and does not start with '.', in strcmp order of the names, into ts (which
 * must be zeroed or freed; on failure it is left empty). Gray, gray+alpha,
 * palette and RGBA files become RGB (alpha dropped, not composited).
 * Returns 0; GTMSM_EIO (dir cannot be opened, or a file cannot be read),
 * GTMSM_EINVAL (no PNG files), GTMSM_EFORMAT (a file is not a valid PNG),
 * GTMSM_ERANGE (too many files, or an image above the decoder's pixel bound)
 * or GTMSM_ENOMEM; the message names the folder or the file. */
int maze3d_texture_set_load(maze3d_texture_set *ts, const char *dir, char *err, size_t errlen);

/* Image i (MAZE3D_TEXTURE_SIZE, MAZE3D_TEXTURE_SIZE, 3), borrowed from ts. */
static inline const float *maze3d_texture_set_get(const maze3d_texture_set *ts, int i) {
  return ts->tex + (size_t)i * MAZE3D_TEXTURE_SIZE * MAZE3D_TEXTURE_SIZE * 3;
}

/* Which set image each region's look took: (maze3d_room_count(m) + 1, 3)
 * indices into the set, per region (rooms, then the corridors) wall, floor,
 * ceiling; written to out (n_out ints, at least 3 * (rooms + 1)). Returns 0,
 * or GTMSM_EINVAL when m was built without a texture set or n_out is short. */
int maze3d_texture_assignment(const maze3d *m, int *out, size_t n_out);

#endif
