/* The maze3d options shared by gen, eval and train (see opts_maze3d.h). */
#include "opts_maze3d.h"

#include <string.h>

#include "base/err.h"

opts_maze3d opts_maze3d_default(void) {
  opts_maze3d o = {.scenario = "walk", .size = 32, .textures = NULL};
  return o;
}

int opts_maze3d_load_textures(const opts_maze3d *o, maze3d_texture_set *ts, char *err,
                              size_t errlen) {
  memset(ts, 0, sizeof *ts);
  if (!o->textures) return 0;
  return maze3d_texture_set_load(ts, o->textures, err, errlen);
}

int opts_maze3d_config(maze3d_config *cfg, int *scenario, const opts_maze3d *o, uint64_t seed,
                       const maze3d_texture_set *ts, char *err, size_t errlen) {
  int sc = maze3d_scenario_from_name(o->scenario);
  if (sc < 0)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL,
                      "unknown --scenario '%s' (rotate, walk or multiroom)", o->scenario);
  *cfg = maze3d_config_default();
  maze3d_config_for_scenario(cfg, sc);
  cfg->W = cfg->H = o->size;
  cfg->seed = seed;
  cfg->textures = ts && ts->n > 0 ? ts : NULL;
  if (scenario) *scenario = sc;
  return 0;
}
