/* The maze3d options shared by the subcommands that build mazes: scenario,
 * frame size and --textures. One set of table rows (OPTS_MAZE3D_DEFS), so the
 * flags, their help and their ranges are the same in gen, eval and train, and
 * one function from the parsed options to a maze3d_config. */
#ifndef GTMSM_TOOLS_OPTS_MAZE3D_H
#define GTMSM_TOOLS_OPTS_MAZE3D_H

#include <stddef.h>
#include <stdint.h>

#include "opts.h"
#include "sim/maze3d.h"
#include "sim/maze3d_textures.h"

typedef struct {
  const char *scenario; /* rotate | walk | multiroom */
  int size;             /* frame width = height */
  const char *textures; /* folder of PNG textures; NULL: procedural */
} opts_maze3d;

/* walk, 32x32, procedural textures. */
opts_maze3d opts_maze3d_default(void);

/* Rows for a command's opt_def table, pointing into *o (which must outlive
 * the parse): --scenario, --size, --textures. */
#define OPTS_MAZE3D_DEFS(o)                                                                    \
  {"scenario", OPT_STRING, &(o)->scenario, 1, 0, "maze3d: rotate | walk | multiroom"},         \
      {"size", OPT_INT, &(o)->size, 8, 256, "maze3d frame size (32 or 64)"},                   \
      {"textures", OPT_STRING, &(o)->textures, 1, 0,                                           \
       "maze3d: folder of PNG textures, each room's wall/floor/ceiling drawn by seed "        \
       "(default procedural)"}

/* Loads the --textures folder into ts (zeroed by the caller; free with
 * maze3d_texture_set_free) when o->textures is set, else leaves ts empty.
 * Load once per command and pass ts to every opts_maze3d_config. Errors as
 * maze3d_texture_set_load. */
int opts_maze3d_load_textures(const opts_maze3d *o, maze3d_texture_set *ts, char *err,
                              size_t errlen);

/* The config of one maze: maze3d_config_default, the layout of o->scenario,
 * W = H = o->size, the seed, and textures = ts when ts holds images (ts may
 * be NULL; borrowed, read by maze3d_new only). *scenario (may be NULL)
 * receives the scenario for maze3d_explorer_init. Returns 0 or GTMSM_EINVAL
 * (unknown scenario, message in err). */
int opts_maze3d_config(maze3d_config *cfg, int *scenario, const opts_maze3d *o, uint64_t seed,
                       const maze3d_texture_set *ts, char *err, size_t errlen);

#endif
