/* Model files (.gtm) and training checkpoints.
 *
 * .gtm layout (little-endian):
 *   "GTMSMMDL"  u32 format_version (1)  u32 meta_len  meta JSON (UTF-8)
 *   u32 n_tensors, then per tensor: u32 name_len, name, u64 count, count float32
 * The metadata holds the architecture config, environment, action names,
 * frame shape, training provenance and "content_hash": FNV-1a 64 over the
 * canonical config JSON, the tensor names and bytes, checked on load. */
#ifndef GTMSM_MODEL_MODELFILE_H
#define GTMSM_MODEL_MODELFILE_H

#include <jansson.h>
#include <stddef.h>

#include "model/gtmsm.h"

#define GTM_FORMAT_VERSION 2 /* 2: the content hash covers the config too */

/* Config <-> JSON object. to_json returns a new reference. from_json checks
 * every key (unknown keys are errors) and the ranges. */
json_t *gtmsm_config_to_json(const gtmsm_config *c);
int gtmsm_config_from_json(const json_t *j, gtmsm_config *c, char *err, size_t errlen);

/* Content hash of the config and parameters as 16 hex digits into out (17 bytes). */
void gtmsm_model_hash(const gtmsm_model *m, char *out);

/* Writes m to path atomically (temp file + rename). extra (borrowed, may be
 * NULL) is merged into the metadata (e.g. "environment", "training"). */
int gtmsm_model_save(const gtmsm_model *m, const char *path, const json_t *extra, char *err,
                     size_t errlen);
/* Loads path into m (initialised here; gtmsm_model_free after). The whole
 * metadata object is kept in m->meta_json. */
int gtmsm_model_load(gtmsm_model *m, const char *path, char *err, size_t errlen);

/* Checkpoint: the model file plus Adam state and trainer state (a JSON object,
 * borrowed) in one file, written atomically. */
int gtmsm_checkpoint_save(const gtmsm_model *m, const json_t *trainer_state, const char *path,
                          char *err, size_t errlen);
/* Loads a checkpoint into m (initialised here) and returns the trainer state
 * as a new reference in *trainer_state. */
int gtmsm_checkpoint_load(gtmsm_model *m, json_t **trainer_state, const char *path, char *err,
                          size_t errlen);

#endif
