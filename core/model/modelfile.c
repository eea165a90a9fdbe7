/* Model files and checkpoints. */
#include "model/modelfile.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

static const char GTM_MAGIC[8] = {'G', 'T', 'M', 'S', 'M', 'M', 'D', 'L'};
static const char CKPT_MAGIC[8] = {'G', 'T', 'M', 'S', 'M', 'C', 'K', 'P'};
#define META_MAX (1u << 20)

/* The config's names of the parts' kinds, indexed by their enums. */
static const char *const TRANS_NAMES[] = {"gated2d", "rot3d", "walk3d"};
static const char *const KEYMAP_NAMES[] = {"identity", "periodic"};
static const char *const PRIOR_NAMES[] = {"mixture", "mlp"};
static const char *const INFER_NAMES[] = {"actions", "landmark"};

/* Keys added after format 2 are written only when they differ from the value
 * that a file without them means (the 2-D design), so the canonical config
 * of an older model, and with it its content hash, does not change when a
 * key is added: older files keep loading. */
static void put_newer_keys(json_t *j, const gtmsm_config *c) {
  if (c->trans != GTMSM_TRANS_GATED2D) json_object_set_new(j, "transition", json_string(TRANS_NAMES[c->trans]));
  if (c->keymap != GTMSM_KEYMAP_IDENTITY) json_object_set_new(j, "keymap", json_string(KEYMAP_NAMES[c->keymap]));
  if (c->keymap_learned) json_object_set_new(j, "keymap_learned", json_integer(c->keymap_learned));
  if (c->prior != GTMSM_PRIOR_MIXTURE) {
    json_object_set_new(j, "prior", json_string(PRIOR_NAMES[c->prior]));
    json_object_set_new(j, "prior_hidden", json_integer(c->prior_hidden));
  }
  if (c->infer != GTMSM_INFER_ACTIONS) {
    json_object_set_new(j, "inference", json_string(INFER_NAMES[c->infer]));
    json_object_set_new(j, "landmark_k", json_integer(c->landmark_k));
    json_object_set_new(j, "landmark_hidden", json_integer(c->landmark_hidden));
  }
}

json_t *gtmsm_config_to_json(const gtmsm_config *c) {
  json_t *names = json_array();
  for (int i = 0; i < c->A; i++) json_array_append_new(names, json_string(c->action_names[i]));
  json_t *j = json_pack("{s:i, s:i, s:i, s:o, s:i, s:s, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:f}", "frame_height",
                   c->H, "frame_width", c->W, "frame_channels", c->C, "actions", names, "latent",
                   c->Z, "vae", c->vae == GTMSM_VAE_CONV ? "conv" : "fc", "channels", c->channels,
                   "hidden", c->hidden, "state", c->S, "gate_hidden", c->gate_hidden, "k",
                   c->K, "delta", (double)c->delta, "transition_std", (double)c->trans_std,
                   "decoder", c->decoder == GTMSM_DEC_BERNOULLI ? "bernoulli" : "gaussian",
                   "decoder_logvar_init", (double)c->dec_logvar_init);
  if (j) put_newer_keys(j, c);
  return j;
}

/* An optional string key that names one of n choices (index into *out). */
static int get_choice(const json_t *j, const char *key, const char *const *names, int n, int *out, char *err,
                      size_t errlen) {
  json_t *v = json_object_get(j, key);
  if (!v) return 0;
  const char *s = json_string_value(v);
  for (int i = 0; s && i < n; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = i;
      return 0;
    }
  char list[256] = "";
  for (int i = 0; i < n; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
  return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: '%s' must be one of %s", key, list);
}

static int get_int(const json_t *j, const char *key, int *out, char *err, size_t errlen) {
  json_t *v = json_object_get(j, key);
  if (!json_is_integer(v))
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: '%s' missing or not an integer", key);
  json_int_t x = json_integer_value(v);
  if (x < -1000000 || x > 1000000)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: '%s' out of range", key);
  *out = (int)x;
  return 0;
}

static int get_float(const json_t *j, const char *key, float *out, char *err, size_t errlen) {
  json_t *v = json_object_get(j, key);
  if (!json_is_number(v))
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: '%s' missing or not a number", key);
  *out = (float)json_number_value(v);
  return 0;
}

int gtmsm_config_from_json(const json_t *j, gtmsm_config *c, char *err, size_t errlen) {
  static const char *const keys[] = {"frame_height", "frame_width", "frame_channels", "actions",
                                     "latent", "hidden", "state", "gate_hidden", "k", "delta",
                                     "transition_std", "decoder", "decoder_logvar_init", "vae",
                                     "channels", "transition", "keymap", "keymap_learned", "prior",
                                     "prior_hidden", "inference", "landmark_k", "landmark_hidden"};
  if (!json_is_object(j)) return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config is not an object");
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)j, key, val) {
    int known = 0;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) known |= strcmp(key, keys[i]) == 0;
    if (!known) return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: unknown key '%s'", key);
  }
  memset(c, 0, sizeof *c);
  int rc;
  if ((rc = get_int(j, "frame_height", &c->H, err, errlen)) ||
      (rc = get_int(j, "frame_width", &c->W, err, errlen)) ||
      (rc = get_int(j, "frame_channels", &c->C, err, errlen)) ||
      (rc = get_int(j, "latent", &c->Z, err, errlen)) ||
      (rc = get_int(j, "hidden", &c->hidden, err, errlen)) ||
      (rc = get_int(j, "state", &c->S, err, errlen)) ||
      (rc = get_int(j, "gate_hidden", &c->gate_hidden, err, errlen)) ||
      (rc = get_int(j, "k", &c->K, err, errlen)) ||
      (rc = get_float(j, "delta", &c->delta, err, errlen)) ||
      (rc = get_float(j, "transition_std", &c->trans_std, err, errlen)) ||
      (rc = get_float(j, "decoder_logvar_init", &c->dec_logvar_init, err, errlen)))
    return rc;
  /* "vae" and "channels" came with the convolutional variant; files without
   * them are fully connected models. */
  c->vae = GTMSM_VAE_FC;
  c->channels = 32;
  const char *vae = json_string_value(json_object_get(j, "vae"));
  if (json_object_get(j, "vae")) {
    if (vae && strcmp(vae, "conv") == 0) c->vae = GTMSM_VAE_CONV;
    else if (!vae || strcmp(vae, "fc") != 0)
      return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: 'vae' must be fc or conv");
  }
  if (json_object_get(j, "channels") && (rc = get_int(j, "channels", &c->channels, err, errlen))) return rc;
  /* the parts' kinds: absent means the 2-D design */
  int tk = GTMSM_TRANS_GATED2D, kk = GTMSM_KEYMAP_IDENTITY, pk = GTMSM_PRIOR_MIXTURE;
  c->prior_hidden = 256;
  if ((rc = get_choice(j, "transition", TRANS_NAMES, 3, &tk, err, errlen)) ||
      (rc = get_choice(j, "keymap", KEYMAP_NAMES, 2, &kk, err, errlen)) ||
      (rc = get_choice(j, "prior", PRIOR_NAMES, 2, &pk, err, errlen)))
    return rc;
  c->trans = (gtmsm_trans)tk;
  c->keymap = (gtmsm_keymap)kk;
  c->prior = (gtmsm_prior)pk;
  /* landmark inference (app. D) came later: absent means from the actions */
  int ik = GTMSM_INFER_ACTIONS;
  if ((rc = get_choice(j, "inference", INFER_NAMES, 2, &ik, err, errlen))) return rc;
  c->infer = (gtmsm_infer)ik;
  c->landmark_k = 4;
  c->landmark_hidden = 16;
  if (json_object_get(j, "landmark_k") && (rc = get_int(j, "landmark_k", &c->landmark_k, err, errlen))) return rc;
  if (json_object_get(j, "landmark_hidden") &&
      (rc = get_int(j, "landmark_hidden", &c->landmark_hidden, err, errlen)))
    return rc;
  if (json_object_get(j, "keymap_learned") &&
      (rc = get_int(j, "keymap_learned", &c->keymap_learned, err, errlen)))
    return rc;
  if (json_object_get(j, "prior_hidden") && (rc = get_int(j, "prior_hidden", &c->prior_hidden, err, errlen)))
    return rc;
  json_t *names = json_object_get(j, "actions");
  if (!json_is_array(names) || json_array_size(names) < 1 || json_array_size(names) > GTMSM_MAX_ACTIONS)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: 'actions' must be an array of 1..%d names",
                      GTMSM_MAX_ACTIONS);
  c->A = (int)json_array_size(names);
  for (int i = 0; i < c->A; i++) {
    const char *s = json_string_value(json_array_get(names, (size_t)i));
    if (!s || !*s || strlen(s) >= sizeof c->action_names[i])
      return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: action %d is not a short string", i);
    strcpy(c->action_names[i], s);
  }
  const char *dec = json_string_value(json_object_get(j, "decoder"));
  if (dec && strcmp(dec, "gaussian") == 0) c->decoder = GTMSM_DEC_GAUSS;
  else if (dec && strcmp(dec, "bernoulli") == 0) c->decoder = GTMSM_DEC_BERNOULLI;
  else return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "config: 'decoder' must be gaussian or bernoulli");
  return gtmsm_config_check(c, err, errlen);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

void gtmsm_model_hash(const gtmsm_model *m, char *out) {
  uint64_t h = 0xcbf29ce484222325ULL;
  /* the architecture and inference settings (K, delta, actions, ...) are part
   * of what a version means: the same weights under another config predict
   * other frames */
  json_t *cj = gtmsm_config_to_json(&m->cfg);
  char *cs = cj ? json_dumps(cj, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
  if (cs) h = fnv1a(h, cs, strlen(cs) + 1);
  free(cs);
  json_decref(cj);
  for (size_t i = 0; i < m->p.n; i++) {
    const param_entry *e = &m->p.entries[i];
    h = fnv1a(h, e->name, strlen(e->name) + 1);
    h = fnv1a(h, m->p.data + e->offset, e->size * sizeof(float));
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static int write_u32(FILE *f, uint32_t x) { return fwrite(&x, 4, 1, f) == 1; }
static int write_u64(FILE *f, uint64_t x) { return fwrite(&x, 8, 1, f) == 1; }
static int read_u32(FILE *f, uint32_t *x) { return fread(x, 4, 1, f) == 1; }
static int read_u64(FILE *f, uint64_t *x) { return fread(x, 8, 1, f) == 1; }

/* The .gtm body (everything after the magic) of m with metadata meta. */
static int write_model_body(FILE *f, const gtmsm_model *m, const char *meta) {
  size_t mlen = strlen(meta);
  int ok = write_u32(f, GTM_FORMAT_VERSION) && write_u32(f, (uint32_t)mlen) &&
           fwrite(meta, 1, mlen, f) == mlen && write_u32(f, (uint32_t)m->p.n);
  for (size_t i = 0; ok && i < m->p.n; i++) {
    const param_entry *e = &m->p.entries[i];
    uint32_t nl = (uint32_t)strlen(e->name);
    ok = write_u32(f, nl) && fwrite(e->name, 1, nl, f) == nl && write_u64(f, e->size) &&
         fwrite(m->p.data + e->offset, sizeof(float), e->size, f) == e->size;
  }
  return ok;
}

/* Metadata of m: its config, hash, and the keys of extra / m->meta_json. */
static char *model_meta(const gtmsm_model *m, const json_t *extra, char *hash_out) {
  json_t *meta = json_loads(m->meta_json, 0, NULL);
  if (!json_is_object(meta)) {
    json_decref(meta);
    meta = json_object();
  }
  if (extra) json_object_update(meta, (json_t *)extra);
  gtmsm_model_hash(m, hash_out);
  json_object_set_new(meta, "format", json_string("gtmsm"));
  json_object_set_new(meta, "format_version", json_integer(GTM_FORMAT_VERSION));
  json_object_set_new(meta, "config", gtmsm_config_to_json(&m->cfg));
  json_object_set_new(meta, "content_hash", json_string(hash_out));
  char *s = json_dumps(meta, JSON_SORT_KEYS | JSON_INDENT(1));
  json_decref(meta);
  return s;
}

static int atomic_write(const char *path, int (*body)(FILE *, const void *), const void *arg,
                        char *err, size_t errlen) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "path too long");
  FILE *f = fopen(tmp, "wb");
  if (!f) return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot write %s: %s", tmp, strerror(errno));
  int ok = body(f, arg);
  ok = fflush(f) == 0 && ok;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return gtmsm_fail(err, errlen, GTMSM_EIO, "writing %s failed", path);
  }
  return GTMSM_OK;
}

typedef struct {
  const gtmsm_model *m;
  const char *meta;
  const json_t *state;
} save_args;

static int model_writer(FILE *f, const void *p) {
  const save_args *a = p;
  return fwrite(GTM_MAGIC, 1, 8, f) == 8 && write_model_body(f, a->m, a->meta);
}

int gtmsm_model_save(const gtmsm_model *m, const char *path, const json_t *extra, char *err,
                     size_t errlen) {
  char hash[17];
  char *meta = model_meta(m, extra, hash);
  if (!meta) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  save_args a = {m, meta, NULL};
  int rc = atomic_write(path, model_writer, &a, err, errlen);
  free(meta);
  return rc;
}

/* Reads a .gtm body (after the magic) into m. */
static int read_model_body(FILE *f, gtmsm_model *m, const char *path, char *err, size_t errlen) {
  int rc = GTMSM_OK;
  char *meta = NULL;
  json_t *mj = NULL;
  uint32_t version, mlen, n;
  if (!read_u32(f, &version) || !read_u32(f, &mlen))
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: truncated header", path);
  if (version != GTM_FORMAT_VERSION)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: format version %u, this build reads %d", path,
                      version, GTM_FORMAT_VERSION);
  if (mlen == 0 || mlen > META_MAX)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: metadata length %u out of range", path, mlen);
  meta = malloc(mlen + 1);
  if (!meta) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  if (fread(meta, 1, mlen, f) != mlen) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: truncated metadata", path);
    goto done;
  }
  meta[mlen] = 0;
  json_error_t je;
  mj = json_loads(meta, 0, &je);
  if (!json_is_object(mj)) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: metadata is not a JSON object: %s", path, je.text);
    goto done;
  }
  gtmsm_config cfg;
  char cerr[256];
  if (gtmsm_config_from_json(json_object_get(mj, "config"), &cfg, cerr, sizeof cerr)) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: %s", path, cerr);
    goto done;
  }
  if ((rc = gtmsm_model_init(m, &cfg, 0, err, errlen))) goto done;
  if (!read_u32(f, &n) || n != m->p.n) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: %u tensors, the config needs %zu", path, n, m->p.n);
    goto done;
  }
  for (size_t i = 0; i < m->p.n; i++) {
    const param_entry *e = &m->p.entries[i];
    uint32_t nl;
    uint64_t count;
    char name[PARAMS_NAME_MAX];
    if (!read_u32(f, &nl) || nl >= PARAMS_NAME_MAX || fread(name, 1, nl, f) != nl || !read_u64(f, &count)) {
      rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: truncated tensor table at %zu", path, i);
      goto done;
    }
    name[nl] = 0;
    if (strcmp(name, e->name) != 0 || count != e->size) {
      rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: tensor %zu is '%s' (%llu floats), expected '%s' (%zu)",
                      path, i, name, (unsigned long long)count, e->name, e->size);
      goto done;
    }
    if (fread(m->p.data + e->offset, sizeof(float), e->size, f) != e->size) {
      rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: truncated data of '%s'", path, name);
      goto done;
    }
    for (size_t k = 0; k < e->size; k++)
      if (!isfinite(m->p.data[e->offset + k])) {
        rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: tensor '%s' holds a NaN or Inf", path, name);
        goto done;
      }
  }
  gtmsm_model_hash(m, m->content_hash);
  const char *want = json_string_value(json_object_get(mj, "content_hash"));
  if (!want || strcmp(want, m->content_hash) != 0) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: content hash %s does not match the data (%s)",
                    path, want ? want : "(missing)", m->content_hash);
    goto done;
  }
  if (mlen >= sizeof m->meta_json) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: metadata over %zu bytes", path, sizeof m->meta_json);
    goto done;
  }
  memcpy(m->meta_json, meta, mlen + 1);
done:
  if (rc && m->p.data) gtmsm_model_free(m);
  json_decref(mj);
  free(meta);
  return rc;
}

int gtmsm_model_load(gtmsm_model *m, const char *path, char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  FILE *f = fopen(path, "rb");
  if (!f) return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot open %s: %s", path, strerror(errno));
  char magic[8];
  int rc;
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, GTM_MAGIC, 8) != 0)
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: not a GTMSM model file (bad magic)", path);
  else
    rc = read_model_body(f, m, path, err, errlen);
  if (rc == 0 && fgetc(f) != EOF) {
    gtmsm_model_free(m);
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: trailing bytes after the last tensor", path);
  }
  fclose(f);
  return rc;
}

static int ckpt_writer(FILE *f, const void *p) {
  const save_args *a = p;
  char *state = json_dumps(a->state, JSON_SORT_KEYS | JSON_COMPACT);
  if (!state) return 0;
  size_t sl = strlen(state);
  int ok = fwrite(CKPT_MAGIC, 1, 8, f) == 8 && write_u32(f, (uint32_t)sl) &&
           fwrite(state, 1, sl, f) == sl && write_model_body(f, a->m, a->meta) &&
           params_save(&a->m->p, f, NULL, 0) == 0;
  free(state);
  return ok;
}

int gtmsm_checkpoint_save(const gtmsm_model *m, const json_t *trainer_state, const char *path,
                          char *err, size_t errlen) {
  char hash[17];
  char *meta = model_meta(m, NULL, hash);
  if (!meta) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  save_args a = {m, meta, trainer_state};
  int rc = atomic_write(path, ckpt_writer, &a, err, errlen);
  free(meta);
  return rc;
}

int gtmsm_checkpoint_load(gtmsm_model *m, json_t **trainer_state, const char *path, char *err,
                          size_t errlen) {
  memset(m, 0, sizeof *m);
  *trainer_state = NULL;
  int rc = GTMSM_OK;
  char *state = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot open %s: %s", path, strerror(errno));
  char magic[8];
  uint32_t sl;
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, CKPT_MAGIC, 8) != 0 || !read_u32(f, &sl) ||
      sl > META_MAX) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: not a GTMSM checkpoint", path);
    goto done;
  }
  state = malloc(sl + 1);
  if (!state || fread(state, 1, sl, f) != sl) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: truncated trainer state", path);
    goto done;
  }
  state[sl] = 0;
  *trainer_state = json_loads(state, 0, NULL);
  if (!*trainer_state) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s: trainer state is not JSON", path);
    goto done;
  }
  if ((rc = read_model_body(f, m, path, err, errlen))) goto done;
  if ((rc = params_load(&m->p, f, err, errlen))) goto done;
done:
  if (rc) {
    if (m->p.data) gtmsm_model_free(m);
    json_decref(*trainer_state);
    *trainer_state = NULL;
  }
  free(state);
  fclose(f);
  return rc;
}
