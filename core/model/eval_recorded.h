/* Evaluation on recorded episodes (what an agent saw and did, from a file or
 * a gtmsmd database) instead of simulated ones: the same protocol as
 * eval.h / eval_maze3d.h (memorize the first T steps, predict the next P
 * from the actions alone, per-step PSNR against baselines), filling the same
 * result structs so the CLI's summary and figures apply unchanged.
 *
 * A recording may carry the truth (where the agent was). Baselines and
 * metrics that need it are NAN without it (their figures skip NAN), and then
 * every step counts as unseen (unvisited):
 *   imagenav  oracle (needs the true cell), visited / unvisited, position error;
 *   maze3d    nearest_view and seen / unseen (need the true pose), heading and
 *             position errors; reconstruction, last_frame, no_memory do not.
 * Truth is used only when every evaluated recording has it. */
#ifndef GTMSM_MODEL_EVAL_RECORDED_H
#define GTMSM_MODEL_EVAL_RECORDED_H

#include <stddef.h>
#include <stdint.h>

#include "model/eval.h"
#include "model/eval_maze3d.h"
#include "model/gtmsm.h"

/* The truth of one step, as floats. imagenav: x = column, y = row of the
 * view's cell. maze3d: position (cells), heading (radians) and what the agent
 * felt since the previous step (the displacement targets of walk3d). */
enum { REC_TRUTH_X, REC_TRUTH_Y, REC_TRUTH_HEADING, REC_TRUTH_D_FORWARD, REC_TRUTH_D_LEFT,
       REC_TRUTH_D_HEADING, REC_TRUTH_N };

/* One recording, all borrowed. Frames are bytes, as recorded, so that long
 * recordings stay compact; they become floats in [0, 1] only per window. */
typedef struct {
  int n;                  /* steps */
  const uint8_t *frames;  /* (n, H, W, C) */
  const uint8_t *actions; /* (n): indices into the model's actions */
  const float *truth;     /* (n, REC_TRUTH_N), or NULL */
} eval_recording;

typedef struct {
  const eval_recording *recs; /* (episodes), borrowed; each at least memorize + predict long */
  int episodes, memorize, predict;
  int keep;                   /* episodes whose frames are kept for strips */
  int threads;
  double seen_cells, seen_deg; /* maze3d: "seen" tolerance (as m3e_config) */
} eval_recorded_config;

/* imagenav protocol on recordings (model, oracle, no_memory). Fills res (free
 * with eval_result_free); deterministic for any thread count. Returns 0 or a
 * GTMSM_E* code with a message (a recording too short, an action the model
 * does not have). */
int gtmsm_eval_recorded_imagenav(const gtmsm_model *m, const eval_recorded_config *cfg, eval_result *res,
                                 char *err, size_t errlen);
/* maze3d protocol on recordings (model, reconstruction, nearest_view,
 * last_frame, no_memory). Fills res (free with m3e_result_free). */
int gtmsm_eval_recorded_maze3d(const gtmsm_model *m, const eval_recorded_config *cfg, m3e_result *res,
                               char *err, size_t errlen);

#endif
