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

static int by_name(const void *a, const void *b) {
  return strcmp(((const model_entry *)a)->name, ((const model_entry *)b)->name);
}

int models_load_dir(model_registry *r, const char *dir) {
  memset(r, 0, sizeof *r);
  DIR *d = opendir(dir);
  if (!d) {
    log_at(LOG_LEVEL_WARN, NULL, "models", "{s:s, s:s, s:s}", "dir", dir, "error", strerror(errno),
           "msg", "models folder missing: serving no models (not ready)");
    return 0;
  }
  int rc = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len <= 4 || strcmp(de->d_name + len - 4, ".gtm") != 0) continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(len - 4), de->d_name);
    if (!codec_valid_id(name)) {
      log_at(LOG_LEVEL_WARN, NULL, "models", "{s:s, s:s}", "file", de->d_name, "msg",
             "skipped: a model name is 1..64 of A-Z a-z 0-9 _ -");
      continue;
    }
    char path[4096], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    /* Opening a FIFO (or a device) would block start-up or read forever:
     * only regular files (a symlink to one is fine) are models. */
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      log_at(LOG_LEVEL_WARN, NULL, "models", "{s:s, s:s}", "file", path, "msg",
             "skipped: not a regular file");
      continue;
    }
    gtmsm_model *m = calloc(1, sizeof *m);
    if (!m) {
      rc = GTMSM_ENOMEM;
      break;
    }
    if (gtmsm_model_load(m, path, err, sizeof err)) {
      log_at(LOG_LEVEL_ERROR, NULL, "models", "{s:s, s:s, s:s}", "file", path, "error", err, "msg",
             "skipped: model file does not load");
      free(m);
      continue;
    }
    if (r->n == cap) {
      cap = cap ? 2 * cap : 4;
      model_entry *v = realloc(r->v, (size_t)cap * sizeof *v);
      if (!v) {
        gtmsm_model_free(m);
        free(m);
        rc = GTMSM_ENOMEM;
        break;
      }
      r->v = v;
    }
    memcpy(r->v[r->n].name, name, strlen(name) + 1); /* valid ids are at most 64 bytes */
    r->v[r->n].m = m;
    r->n++;
    /* measured now (main set OpenBLAS to one thread) rather than in the first request */
    int rows = gtmsm_infer_rows(m);
    log_at(LOG_LEVEL_INFO, NULL, "models", "{s:s, s:s, s:s, s:i, s:i, s:i, s:i}", "msg", "model loaded",
           "name", name, "version", m->content_hash, "width", m->cfg.W, "height", m->cfg.H,
           "channels", m->cfg.C, "inference_rows", rows);
  }
  closedir(d);
  if (r->n > 1) qsort(r->v, (size_t)r->n, sizeof *r->v, by_name);
  if (r->n == 0 && rc == 0)
    log_at(LOG_LEVEL_WARN, NULL, "models", "{s:s, s:s}", "dir", dir, "msg",
           "no *.gtm models in the folder: serving no models (not ready)");
  return rc;
}

void models_free(model_registry *r) {
  for (int i = 0; i < r->n; i++) {
    gtmsm_model_free(r->v[i].m);
    free(r->v[i].m);
  }
  free(r->v);
  memset(r, 0, sizeof *r);
}

const model_entry *models_find(const model_registry *r, const char *name) {
  for (int i = 0; i < r->n; i++)
    if (strcmp(r->v[i].name, name) == 0) return &r->v[i];
  return NULL;
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
