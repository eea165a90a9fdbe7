/* The models a daemon serves: every *.gtm in the models folder, loaded once
 * at start and read-only afterwards (shared by all threads). A model's name
 * is its file stem; its version is the content hash of its parameters. */
#ifndef GTMSMD_MODELS_H
#define GTMSMD_MODELS_H

#include <jansson.h>

#include "model/api.h"

typedef struct {
  char name[65];
  gtmsm_model *m; /* owned */
} model_entry;

typedef struct {
  model_entry *v; /* (n), owned, sorted by name */
  int n;
} model_registry;

/* Loads every readable, valid *.gtm in dir into r (initialised here). A
 * missing or empty folder gives zero models and a warning; a file that fails
 * to load, has an invalid name or is not a regular file (a FIFO would block
 * start-up) is logged and skipped. Returns 0, or
 * GTMSM_ENOMEM. */
int models_load_dir(model_registry *r, const char *dir);
/* Frees every model; r is zeroed. */
void models_free(model_registry *r);
/* The model named name, or NULL. Borrowed, valid until models_free. */
const model_entry *models_find(const model_registry *r, const char *name);
/* The model's public description (new reference): name, version, frame shape,
 * actions, state size, memory k, latent size, environment and training. */
json_t *models_to_json(const model_entry *e);

#endif
