/* Loading the models folder and describing models (see models.h). */
#include "models.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "codec.h"
#include "log.h"
#include "model/modelfile.h"
#include "util.h"

/* Publishes e: the slot is written before the count that makes it visible. */
int models_add(model_registry *r, model_entry *e) {
  const int n = atomic_load_explicit(&r->n, memory_order_relaxed);
  if (n >= MODELS_MAX) return GTMSM_EINVAL;
  r->v[n] = e;
  atomic_store_explicit(&r->n, n + 1, memory_order_release);
  return 0;
}

int models_count(const model_registry *r) {
  return atomic_load_explicit(&((model_registry *)r)->n, memory_order_acquire);
}

static long long mtime_of(const model_entry *e) {
  return atomic_load_explicit(&((model_entry *)e)->mtime_ns, memory_order_relaxed);
}

/* Newer: a later file, then the greater version string (deterministic). */
static int newer(const model_entry *a, const model_entry *b) {
  const long long ta = mtime_of(a), tb = mtime_of(b);
  if (ta != tb) return ta > tb;
  return strcmp(a->m->content_hash, b->m->content_hash) > 0;
}

const model_entry *models_find(const model_registry *r, const char *name) {
  const model_entry *best = NULL;
  const int n = models_count(r);
  for (int i = 0; i < n; i++)
    if (strcmp(r->v[i]->name, name) == 0 && (!best || newer(r->v[i], best))) best = r->v[i];
  return best;
}

const model_entry *models_find_version(const model_registry *r, const char *name,
                                       const char *version) {
  const int n = models_count(r);
  for (int i = 0; i < n; i++)
    if (strcmp(r->v[i]->name, name) == 0 && strcmp(r->v[i]->m->content_hash, version) == 0)
      return r->v[i];
  return NULL;
}

int models_names(const model_registry *r) {
  const int n = models_count(r);
  int names = 0;
  for (int i = 0; i < n; i++) {
    int first = 1;
    for (int j = 0; j < i && first; j++) first = strcmp(r->v[j]->name, r->v[i]->name) != 0;
    names += first;
  }
  return names;
}

/* Already loaded from this file as it is now (same path, time and size). */
static int loaded_unchanged(const model_registry *r, const char *path, const struct stat *sb) {
  const int n = models_count(r);
  for (int i = 0; i < n; i++)
    if (strcmp(r->v[i]->file, path) == 0 && r->v[i]->size == (long long)sb->st_size &&
        mtime_of(r->v[i]) == (long long)sb->st_mtim.tv_sec * 1000000000LL + sb->st_mtim.tv_nsec)
      return 1;
  return 0;
}

/* Loads path as a version of name unless it is loaded already; *added is
 * incremented when a new version was published. Only GTMSM_ENOMEM and a full
 * registry (GTMSM_EINVAL) are errors: a bad file is logged and skipped. */
static int load_file(model_registry *r, const char *name, const char *path, int *added) {
  /* Opening a FIFO (or a device) would block start-up or read forever:
   * only regular files (a symlink to one is fine) are models. */
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    log_at(LOG_LEVEL_WARN, NULL, "models", "{s:s, s:s}", "file", path, "msg",
           "skipped: not a regular file");
    return 0;
  }
  if (loaded_unchanged(r, path, &sb)) return 0;
  char err[512] = "";
  model_entry *e = calloc(1, sizeof *e);
  gtmsm_model *m = calloc(1, sizeof *m);
  if (!e || !m) {
    free(e);
    free(m);
    return GTMSM_ENOMEM;
  }
  if (gtmsm_model_load(m, path, err, sizeof err)) {
    log_at(LOG_LEVEL_ERROR, NULL, "models", "{s:s, s:s, s:s}", "file", path, "error", err, "msg",
           "skipped: model file does not load");
    free(m);
    free(e);
    return 0;
  }
  snprintf(e->name, sizeof e->name, "%s", name);
  snprintf(e->file, sizeof e->file, "%s", path);
  e->mtime_ns = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
  e->size = (long long)sb.st_size;
  e->m = m;
  e->owned = 1;
  const model_entry *same = models_find_version(r, name, m->content_hash);
  if (same) { /* the same parameters under another file name: one version, as new as its
               * latest file (the one atomic field of an entry that changes) */
    if (e->mtime_ns > mtime_of(same))
      atomic_store_explicit(&((model_entry *)same)->mtime_ns, e->mtime_ns, memory_order_relaxed);
    log_at(LOG_LEVEL_DEBUG, NULL, "models", "{s:s, s:s, s:s}", "file", path, "version",
           m->content_hash, "msg", "already loaded from another file");
    gtmsm_model_free(m);
    free(m);
    free(e);
    return 0;
  }
  /* measured now (main set OpenBLAS to one thread) rather than in the first request */
  int rows = gtmsm_infer_rows(m);
  if (models_add(r, e)) {
    log_at(LOG_LEVEL_ERROR, NULL, "models", "{s:s, s:i}", "file", path, "msg",
           "skipped: the daemon holds its maximum of model versions", "max", MODELS_MAX);
    gtmsm_model_free(m);
    free(m);
    free(e);
    return GTMSM_EINVAL;
  }
  (*added)++;
  log_at(LOG_LEVEL_INFO, NULL, "models", "{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i}", "msg",
         "model loaded", "name", name, "version", m->content_hash, "file", path, "width", m->cfg.W,
         "height", m->cfg.H, "channels", m->cfg.C, "inference_rows", rows);
  return 0;
}

/* name.gtm -> name in out (a valid id), else 0. */
static int model_stem(const char *file, char *out, size_t outlen) {
  size_t len = strlen(file);
  if (len <= 4 || strcmp(file + len - 4, ".gtm") != 0) return 0;
  snprintf(out, outlen, "%.*s", (int)(len - 4), file);
  return 1;
}

/* The *.gtm files of folder dir/name, as versions of name, in byte order of
 * their names (so which file names a version found twice does not depend on
 * the file system's order). */
static int scan_versions(model_registry *r, const char *dir, const char *name, int *added) {
  char sub[4096];
  snprintf(sub, sizeof sub, "%s/%s", dir, name);
  struct dirent **list = NULL;
  const int n = scandir(sub, &list, NULL, alphasort);
  if (n < 0) return 0;
  int rc = 0;
  for (int i = 0; i < n; i++) {
    char stem[256], path[4600];
    if (!rc && model_stem(list[i]->d_name, stem, sizeof stem)) {
      snprintf(path, sizeof path, "%s/%s", sub, list[i]->d_name);
      rc = load_file(r, name, path, added);
    }
    free(list[i]);
  }
  free(list);
  return rc;
}

/* The models of dir; *missing (may be NULL) says the folder could not be opened. */
static int scan(model_registry *r, const char *dir, int *added, int *missing) {
  struct dirent **list = NULL;
  const int n = scandir(dir, &list, NULL, alphasort); /* byte order (the C locale) */
  if (missing) *missing = n < 0;
  if (n < 0) {
    log_at(LOG_LEVEL_WARN, NULL, "models", "{s:s, s:s, s:s}", "dir", dir, "error", strerror(errno),
           "msg", models_count(r) ? "models folder missing: serving the versions loaded before"
                                  : "models folder missing: serving no models (not ready)");
    return 0;
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    const struct dirent *de = list[i];
    char name[256], path[4096];
    if (rc || de->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    struct stat sb;
    if (!model_stem(de->d_name, name, sizeof name)) {
      /* a folder NAME/ holds more versions of NAME */
      if (codec_valid_id(de->d_name) && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        rc = scan_versions(r, dir, de->d_name, added);
      continue;
    }
    if (!codec_valid_id(name)) {
      log_at(LOG_LEVEL_WARN, NULL, "models", "{s:s, s:s}", "file", de->d_name, "msg",
             "skipped: a model name is 1..64 of A-Z a-z 0-9 _ -");
      continue;
    }
    rc = load_file(r, name, path, added);
  }
  for (int i = 0; i < n; i++) free(list[i]);
  free(list);
  return rc;
}

int models_load_dir(model_registry *r, const char *dir) {
  memset(r, 0, sizeof *r);
  int added = 0, missing = 0;
  int rc = scan(r, dir, &added, &missing);
  if (models_count(r) == 0 && rc == 0 && !missing)
    log_at(LOG_LEVEL_WARN, NULL, "models", "{s:s, s:s}", "dir", dir, "msg",
           "no *.gtm models in the folder: serving no models (not ready)");
  return rc == GTMSM_EINVAL ? 0 : rc;
}

int models_reload(model_registry *r, const char *dir, int *added) {
  int n = 0;
  int rc = scan(r, dir, &n, NULL);
  if (added) *added = n;
  return rc;
}

void models_free(model_registry *r) {
  const int n = models_count(r);
  for (int i = 0; i < n; i++) {
    if (r->v[i]->owned) {
      gtmsm_model_free(r->v[i]->m);
      free(r->v[i]->m);
      free(r->v[i]);
    }
  }
  memset(r, 0, sizeof *r);
}

json_t *models_to_json(const model_entry *e) {
  const gtmsm_config *c = &e->m->cfg;
  json_t *actions = json_array();
  for (int i = 0; i < c->A; i++) json_array_append_new(actions, json_string(c->action_names[i]));
  json_t *meta = json_loads(e->m->meta_json, 0, NULL);
  json_t *env = meta ? json_object_get(meta, "environment") : NULL;
  json_t *training = meta ? json_object_get(meta, "training") : NULL;
  json_t *scenario = meta ? json_object_get(meta, "scenario") : NULL;
  json_t *parts = json_pack("{s:s, s:s, s:s, s:s}", "vae", gtmsm_part_name(e->m, GTMSM_ROLE_VAE), "transition",
                            gtmsm_part_name(e->m, GTMSM_ROLE_TRANS), "keymap",
                            gtmsm_part_name(e->m, GTMSM_ROLE_KEYMAP), "prior",
                            gtmsm_part_name(e->m, GTMSM_ROLE_PRIOR));
  /* only when not from the actions, so older models describe themselves as before */
  if (parts && c->infer != GTMSM_INFER_ACTIONS)
    json_object_set_new(parts, "inference", json_string(gtmsm_part_name(e->m, GTMSM_ROLE_INFER)));
  json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:i, s:o, s:i, s:i, s:i, s:O, s:O, s:O, s:o}", "name", e->name,
                        "version", e->m->content_hash, "frame_width", c->W, "frame_height", c->H,
                        "frame_channels", c->C, "actions", actions, "state_size", c->S, "memory_k",
                        c->K, "latent_size", c->Z, "environment", env ? env : json_null(),
                        "scenario", scenario ? scenario : json_null(),
                        "training", training ? training : json_null(), "parts", parts);
  json_decref(meta);
  return j;
}

static int by_newest(const void *a, const void *b) {
  const model_entry *x = *(const model_entry *const *)a, *y = *(const model_entry *const *)b;
  return newer(x, y) ? -1 : newer(y, x) ? 1 : 0;
}

json_t *models_versions_json(const model_registry *r, const char *name) {
  const model_entry *mine[MODELS_MAX];
  const int n = models_count(r);
  int k = 0;
  for (int i = 0; i < n; i++)
    if (strcmp(r->v[i]->name, name) == 0) mine[k++] = r->v[i];
  if (k > 1) qsort(mine, (size_t)k, sizeof mine[0], by_newest);
  json_t *list = json_array();
  for (int i = 0; i < k; i++) {
    char when[32];
    log_format_time(when, mtime_of(mine[i]) / 1000000);
    const char *slash = strrchr(mine[i]->file, '/');
    json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "version", mine[i]->m->content_hash,
                                          "file", slash ? slash + 1 : mine[i]->file,
                                          "modified_at", when));
  }
  return list;
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(const model_entry *const *)a)->name, (*(const model_entry *const *)b)->name);
}

json_t *models_list_json(const model_registry *r) {
  const model_entry *newest[MODELS_MAX];
  const int n = models_count(r);
  int k = 0;
  for (int i = 0; i < n; i++) {
    const model_entry *e = models_find(r, r->v[i]->name);
    int seen = 0;
    for (int j = 0; j < k && !seen; j++) seen = newest[j] == e;
    if (!seen) newest[k++] = e;
  }
  if (k > 1) qsort(newest, (size_t)k, sizeof newest[0], by_name);
  json_t *list = json_array();
  for (int i = 0; i < k; i++) {
    json_t *j = models_to_json(newest[i]);
    json_object_set_new(j, "versions", models_versions_json(r, newest[i]->name));
    json_array_append_new(list, j);
  }
  return list;
}
