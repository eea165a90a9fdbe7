/* One maze3d episode as the CLI writes it and as training and evaluation use
 * it (see maze3d_episode in maze3d.h). */
#include <stdlib.h>

#include "base/err.h"
#include "sim/maze3d.h"

int maze3d_episode(const maze3d_config *cfg, int scenario, uint64_t seed, int T, int first, float *frames,
                   int *actions, maze3d_truth *truth, char *err, size_t errlen) {
  maze3d *m = NULL;
  maze3d_explorer ex = {0};
  if (T < 1 || first < 0 || first > T)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "maze3d episode: %d steps from %d", T, first);
  int rc = maze3d_new(&m, cfg, err, errlen);
  if (!rc) rc = maze3d_explorer_init(&ex, m, scenario, seed, err, errlen);
  const size_t fsz = (size_t)cfg->W * cfg->H * 3;
  for (int t = 0; t < T && !rc; t++) {
    maze3d_truth tr;
    int a = t > 0 ? maze3d_explorer_next(&ex) : MAZE3D_ACTION_NONE;
    maze3d_step(m, a, &tr);
    if (actions) actions[t] = a;
    if (truth) truth[t] = tr;
    if (frames && t >= first) maze3d_render(m, frames + (size_t)(t - first) * fsz);
  }
  maze3d_explorer_free(&ex);
  maze3d_free(m);
  return rc;
}
