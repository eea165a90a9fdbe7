/* The models a daemon serves: the *.gtm files of the models folder, each a
 * version of a model, loaded at start and again on SIGHUP (models_reload).
 *
 * Layout: models/NAME.gtm and models/NAME/ANYTHING.gtm are versions of the
 * model NAME; a model's version is the content hash of its parameters, so
 * the same parameters found twice are one version (named by the first file
 * found, folders and files read in byte order of their names, and dated by
 * the latest of them). Several versions of one
 * name are served side by side: a session stays on the version it was made
 * with, new sessions get the newest unless they ask. Newest = the greatest
 * modification time of the file it was loaded from (ties: the greater
 * version string), so replacing models/NAME.gtm and sending SIGHUP makes the
 * new file the default while the old version keeps serving its sessions.
 *
 * Lifetime (read-copy-update without reclamation): entries are only ever
 * appended, each published with one release store of the count, and none is
 * freed before models_free at exit. Readers take no lock and a pointer they
 * got stays valid, so an in-flight request finishes on the model it started
 * with whatever a reload does meanwhile. A file removed from the folder stays
 * loaded (its sessions keep serving) until the daemon restarts. */
#ifndef GTMSMD_MODELS_H
#define GTMSMD_MODELS_H

#include <jansson.h>
#include <stdatomic.h>

#include "model/api.h"

/* Versions a daemon holds at most (every file ever loaded since start). */
#define MODELS_MAX 256

typedef struct {
  char name[65];
  char file[512];     /* the path it was loaded from ("" for one made in memory) */
  /* The latest modification time of the files holding these parameters: what
   * "newest" compares. The one field that changes after publication (a later
   * copy of the same version raises it), hence atomic. */
  _Atomic long long mtime_ns;
  long long size;     /* and its size (a reload skips an unchanged file) */
  gtmsm_model *m;     /* owned (freed by models_free) when owned = 1 */
  int owned;
} model_entry;

typedef struct {
  model_entry *v[MODELS_MAX]; /* (n) published entries, in load order */
  atomic_int n;
} model_registry;

/* Loads every readable, valid model file of dir (layout above) into r
 * (initialised here). A missing or empty folder gives zero models and a
 * warning; a file that fails to load, has an invalid name or is not a
 * regular file (a FIFO would block start-up) is logged and skipped. Returns
 * 0, or GTMSM_ENOMEM. */
int models_load_dir(model_registry *r, const char *dir);
/* Scans dir again (one thread at a time: main's SIGHUP) and publishes the
 * versions not loaded yet; *added (may be NULL) gets how many. Nothing is
 * removed. Returns 0, or GTMSM_ENOMEM / GTMSM_EINVAL (MODELS_MAX reached). */
int models_reload(model_registry *r, const char *dir, int *added);
/* Publishes e (taken: freed by models_free) as is, for tests and for
 * models made in memory; GTMSM_EINVAL when full. Same threading as reload. */
int models_add(model_registry *r, model_entry *e);
/* Frees every entry; r is zeroed. */
void models_free(model_registry *r);
/* Published versions (an acquire load: entries below it are complete). */
int models_count(const model_registry *r);
/* Distinct model names among them. */
int models_names(const model_registry *r);
/* The newest version of name, or NULL. Borrowed, valid until models_free. */
const model_entry *models_find(const model_registry *r, const char *name);
/* Version `version` of name, or NULL. Borrowed, valid until models_free. */
const model_entry *models_find_version(const model_registry *r, const char *name,
                                       const char *version);
/* The model's public description (new reference): name, version, frame shape,
 * actions, state size, memory k, latent size, environment and training. */
json_t *models_to_json(const model_entry *e);
/* The versions of name (new reference), newest first: [{"version",
 * "file", "modified_at"}]; an empty array when none. */
json_t *models_versions_json(const model_registry *r, const char *name);
/* Every model (new reference): the newest version of each name, by name,
 * each with its "versions". */
json_t *models_list_json(const model_registry *r);

#endif
