/* The model registry: NAME.gtm and NAME/<file>.gtm are versions of NAME, the same
 * parameters in two files are one version, newest is the latest file time,
 * a reload (SIGHUP) publishes only new files and never drops a loaded one,
 * and FIFOs, bad names and broken files are skipped. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/modelfile.h"
#include "models.h"
#include "testlib.h"

static char DIR_[64];

static gtmsm_model make(unsigned seed) {
  char err[256];
  gtmsm_config c = gtmsm_default_config();
  c.hidden = 8;
  c.Z = 2;
  c.gate_hidden = 4;
  gtmsm_model m;
  if (gtmsm_model_init(&m, &c, seed, err, sizeof err)) {
    fprintf(stderr, "model: %s\n", err);
    exit(1);
  }
  gtmsm_model_hash(&m, m.content_hash);
  return m;
}

/* Saves m as DIR_/rel with modification time t (seconds). */
static void save(const gtmsm_model *m, const char *rel, long t) {
  char path[256], err[256];
  snprintf(path, sizeof path, "%s/%s", DIR_, rel);
  CHECK(gtmsm_model_save(m, path, NULL, err, sizeof err) == 0, "save %s: %s", rel, err);
  const struct timespec ts[2] = {{t, 0}, {t, 0}};
  CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0, "set the time of %s", rel);
}

static void write_file(const char *rel, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", DIR_, rel);
  FILE *f = fopen(path, "wb");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static int versions_are(const model_registry *r, const char *name, const char *const *want, int n) {
  json_t *v = models_versions_json(r, name);
  int ok = (int)json_array_size(v) == n;
  for (int i = 0; ok && i < n; i++)
    ok = strcmp(json_string_value(json_object_get(json_array_get(v, (size_t)i), "version")), want[i]) == 0;
  json_decref(v);
  return ok;
}

int main(void) {
  snprintf(DIR_, sizeof DIR_, "/tmp/gtmsm_models_XXXXXX");
  if (!mkdtemp(DIR_)) return 1;
  gtmsm_model m1 = make(7), m2 = make(8), m3 = make(9);
  char sub[128], path[256];
  snprintf(sub, sizeof sub, "%s/m", DIR_);
  mkdir(sub, 0755);
  save(&m1, "m.gtm", 1000);
  save(&m1, "m/copy.gtm", 3000);  /* the same parameters: one version */
  save(&m2, "m/v2.gtm", 2000);
  save(&m2, "other.gtm", 500);
  write_file("broken.gtm", "GTMSMMDL garbage");
  write_file("bad name.gtm", "x");
  write_file("notes.txt", "not a model");
  snprintf(path, sizeof path, "%s/fifo.gtm", DIR_);
  CHECK(mkfifo(path, 0644) == 0, "a FIFO named *.gtm");

  model_registry r;
  CHECK(models_load_dir(&r, DIR_) == 0, "load the folder");
  CHECK(models_count(&r) == 3 && models_names(&r) == 2, "3 versions of 2 names (%d, %d)", models_count(&r),
        models_names(&r));
  const model_entry *e = models_find(&r, "m");
  CHECK(e && strcmp(e->m->content_hash, m1.content_hash) == 0,
        "newest of m: the version whose file is latest (m/copy.gtm, 3000 s)");
  const char *order[] = {m1.content_hash, m2.content_hash};
  CHECK(versions_are(&r, "m", order, 2), "versions of m, newest first");
  CHECK(models_find_version(&r, "m", m2.content_hash) && models_find_version(&r, "other", m2.content_hash) &&
        !models_find_version(&r, "other", m1.content_hash) && !models_find(&r, "broken"),
        "found by name and version; a broken file is skipped");
  const model_entry *held = models_find_version(&r, "m", m2.content_hash);

  int added = -1;
  CHECK(models_reload(&r, DIR_, &added) == 0 && added == 0 && models_count(&r) == 3,
        "a reload with nothing new adds nothing");
  save(&m3, "m.gtm", 4000); /* replaced by a new version */
  snprintf(path, sizeof path, "%s/m/v2.gtm", DIR_);
  unlink(path); /* and one removed */
  CHECK(models_reload(&r, DIR_, &added) == 0 && added == 1 && models_count(&r) == 4, "the replacement is added (%d)",
        added);
  e = models_find(&r, "m");
  CHECK(e && strcmp(e->m->content_hash, m3.content_hash) == 0, "and is the newest");
  const char *order2[] = {m3.content_hash, m1.content_hash, m2.content_hash};
  CHECK(versions_are(&r, "m", order2, 3), "the replaced and the removed versions stay loaded");
  CHECK(models_find_version(&r, "m", m2.content_hash) == held, "a pointer taken before the reload stays valid");
  json_t *list = models_list_json(&r);
  CHECK(json_array_size(list) == 2 &&
        strcmp(json_string_value(json_object_get(json_array_get(list, 0), "name")), "m") == 0 &&
        json_array_size(json_object_get(json_array_get(list, 0), "versions")) == 3, "the list: names, each with versions");
  json_decref(list);
  models_free(&r);
  CHECK(models_count(&r) == 0, "freed");

  model_registry empty;
  snprintf(path, sizeof path, "%s/no-such-folder", DIR_);
  CHECK(models_load_dir(&empty, path) == 0 && models_count(&empty) == 0, "a missing folder: no models, no error");
  models_free(&empty);

  gtmsm_model_free(&m1);
  gtmsm_model_free(&m2);
  gtmsm_model_free(&m3);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", DIR_);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", DIR_);
  return test_finish("test_models");
}
