/* maze3d internals shared by maze3d*.c (not part of the public API): the maze
 * struct, the physics body, and the functions one maze3d file calls in
 * another. Symbols are marked with a double underscore, maze3d__*. */
#ifndef GTMSM_SIM_MAZE3D_INTERNAL_H
#define GTMSM_SIM_MAZE3D_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nn/rng.h"
#include "sim/maze3d.h"

#define MAZE3D__TEX MAZE3D_TEXTURE_SIZE /* texels per unit (textures repeat every cell) */
#define MAZE3D__MAX_ROOMS 9
#define MAZE3D__PI 3.141592653589793
#define MAZE3D__TWO_PI 6.283185307179586

enum { MAZE3D__FLOOR = 0, MAZE3D__WALL = 1 };

/* What the physics integrates: pose and world velocity. */
typedef struct {
  double x, y, h, vx, vy;
} maze3d__body;

typedef struct {
  int x0, y0, w, h; /* interior cells [x0, x0 + w) x [y0, y0 + h) */
} maze3d__room;

typedef struct {
  double x, y, r, height;
  float c1[3], c2[3];
  int pattern; /* 0 solid, 1 horizontal bands, 2 vertical stripes, 3 checks */
} maze3d__pillar;

/* A region's look: rooms 0..n_rooms-1, then the corridors. Textures point into
 * maze3d.tex. */
typedef struct {
  float *wall, *floor, *ceil; /* (TEX, TEX, 3) each */
  float wall_mean[3], floor_mean[3];
} maze3d__look;

struct maze3d {
  maze3d_config cfg;
  int gw, gh;         /* grid width and height in cells */
  uint8_t *cell;      /* (gh, gw) MAZE3D__FLOOR or MAZE3D__WALL */
  int8_t *region;     /* (gh, gw) room id, n_rooms for corridor, -1 for wall */
  uint8_t *blocked;   /* (gh, gw) wall or pillar cell: what the planner avoids */
  int n_rooms;
  maze3d__room rooms[MAZE3D__MAX_ROOMS];
  int n_pillars;
  maze3d__pillar *pillars; /* (n_pillars) */
  maze3d__look looks[MAZE3D__MAX_ROOMS + 1];
  float *tex;         /* (n_rooms + 1, 3, TEX, TEX, 3) all textures */
  int textured;       /* 1 if the looks came from cfg.textures */
  int tex_pick[(MAZE3D__MAX_ROOMS + 1) * 3]; /* textured: set image of each region's wall, floor, ceiling */
  maze3d__body body;
  /* render workspace, sized once in maze3d_new */
  int RW, RH;         /* render size: W and H times supersample */
  float *img;         /* (RH, RW, 3) */
  float *zbuf;        /* (RW) perpendicular wall distance per column */
  float *row_slope;   /* (RH) (row centre - horizon) / focal length */
};

/* maze3d_layout.c: fills grid, rooms, pillars and textures from cfg.seed.
 * Allocates m->cell, region, blocked, pillars and tex (freed by maze3d_free). */
int maze3d__layout_build(maze3d *m, char *err, size_t errlen);

/* maze3d_physics.c: one agent step of b under action; *collided is set to 1
 * if any tick had to push the agent out of a wall or pillar. If min_clear is
 * non-NULL it receives the smallest clearance (distance to walls and pillars
 * minus the radius) seen at the end of any tick. Reads only the map. */
void maze3d__physics_step(const maze3d *m, maze3d__body *b, int action, int *collided,
                          double *min_clear);
/* 1 if a circle of the agent's radius at (x, y) overlaps a wall or pillar. */
int maze3d__overlaps(const maze3d *m, double x, double y);

/* maze3d_render.c: allocates nothing; m->img etc. exist. */
void maze3d__render_init_tables(maze3d *m);

#endif
