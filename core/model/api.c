/* Per-session memory, observation and prediction on a trained model. */
#include "model/api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "nn/rng.h"

static const char MEM_MAGIC[8] = {'G', 'T', 'M', 'S', 'M', 'M', 'E', 'M'};
#define MEM_VERSION 1u
#define MEM_HEADER (8 + 4 + 4 + 8)

/* Inference runs the networks on blocks of a fixed number of rows, the last
 * one zero-padded: BLAS kernels may round differently for different matrix
 * heights, and a frame's encoding (stored in memory) or a predicted frame
 * must not depend on how many others came in the same request. */
#define ROW_BLOCK 64

static void encode_blocked(const gtmsm_model *m, gtmsm_ws *ws, float *xpad, const float *x, int n,
                           float *mu, float *lv, float *mu_b, float *lv_b) {
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z;
  for (int b0 = 0; b0 < n; b0 += ROW_BLOCK) {
    int rows = n - b0 < ROW_BLOCK ? n - b0 : ROW_BLOCK;
    memset(xpad, 0, sizeof(float) * (size_t)ROW_BLOCK * D);
    memcpy(xpad, x + (size_t)b0 * D, sizeof(float) * (size_t)rows * D);
    gtmsm_encode(m, ws, xpad, ROW_BLOCK, mu_b, lv_b);
    memcpy(mu + (size_t)b0 * Z, mu_b, sizeof(float) * (size_t)rows * Z);
    memcpy(lv + (size_t)b0 * Z, lv_b, sizeof(float) * (size_t)rows * Z);
  }
}

static void decode_blocked(const gtmsm_model *m, gtmsm_ws *ws, float *zpad, const float *z, int n,
                           float *out, float *out_b) {
  const int D = gtmsm_config_D(&m->cfg), Z = m->cfg.Z;
  for (int b0 = 0; b0 < n; b0 += ROW_BLOCK) {
    int rows = n - b0 < ROW_BLOCK ? n - b0 : ROW_BLOCK;
    memset(zpad, 0, sizeof(float) * (size_t)ROW_BLOCK * Z);
    memcpy(zpad, z + (size_t)b0 * Z, sizeof(float) * (size_t)rows * Z);
    gtmsm_decode_mean(m, ws, zpad, ROW_BLOCK, out_b);
    memcpy(out + (size_t)b0 * D, out_b, sizeof(float) * (size_t)rows * D);
  }
}

gtmsm_memory *gtmsm_memory_new(const gtmsm_model *m) {
  gtmsm_memory *mem = calloc(1, sizeof *mem);
  if (!mem) return NULL;
  mem->mem = dnd_new(m->cfg.S, 2 * m->cfg.Z, NULL, 0);
  if (!mem->mem) {
    free(mem);
    return NULL;
  }
  return mem;
}

void gtmsm_memory_free(gtmsm_memory *mem) {
  if (!mem) return;
  dnd_free(mem->mem);
  free(mem);
}

int gtmsm_action_index(const gtmsm_model *m, const char *name) {
  for (int i = 0; i < m->cfg.A; i++)
    if (strcmp(m->cfg.action_names[i], name) == 0) return i;
  return -1;
}

static int check_actions(const gtmsm_model *m, const int *actions, int n, char *err, size_t errlen) {
  for (int i = 0; i < n; i++)
    if (actions[i] < 0 || actions[i] >= m->cfg.A)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "action %d at %d out of range 0..%d", actions[i], i,
                        m->cfg.A - 1);
  return GTMSM_OK;
}

int gtmsm_observe(const gtmsm_model *m, gtmsm_memory *mem, const int *actions, const float *frames,
                  int n, char *err, size_t errlen) {
  const int S = m->cfg.S, Z = m->cfg.Z;
  int rc = GTMSM_OK;
  if (n <= 0) return GTMSM_OK;
  if ((rc = check_actions(m, actions, n, err, errlen))) return rc;
  float *mu = malloc((size_t)n * Z * sizeof(float)), *lv = malloc((size_t)n * Z * sizeof(float));
  float *val = malloc((size_t)2 * Z * sizeof(float));
  const int D = gtmsm_config_D(&m->cfg);
  float *xpad = malloc(sizeof(float) * (size_t)ROW_BLOCK * (D + 2 * Z));
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, ROW_BLOCK, 0);
  size_t size0 = dnd_size(mem->mem);
  float state0[GTMSM_MAX_S];
  long steps0 = mem->steps;
  memcpy(state0, mem->state, sizeof state0);
  if (!mu || !lv || !val || !ws || !xpad) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  float *mu_b = xpad + (size_t)ROW_BLOCK * D, *lv_b = mu_b + (size_t)ROW_BLOCK * Z;
  encode_blocked(m, ws, xpad, frames, n, mu, lv, mu_b, lv_b);
  for (int i = 0; i < n; i++) {
    if (mem->steps > 0) {
      float next[GTMSM_MAX_S];
      gtmsm_transition(m, mem->state, actions[i], next);
      memcpy(mem->state, next, (size_t)S * sizeof(float));
    }
    memcpy(val, mu + (size_t)i * Z, (size_t)Z * sizeof(float));
    memcpy(val + Z, lv + (size_t)i * Z, (size_t)Z * sizeof(float));
    rc = dnd_insert(mem->mem, mem->state, val);
    if (rc) {
      rc = gtmsm_fail(err, errlen, rc, "memory insert failed at observation %d (%s)", i,
                      rc == GTMSM_ENAN ? "non-finite encoding" : rc == GTMSM_ERANGE ? "memory full" : "out of memory");
      goto done;
    }
    mem->steps++;
  }
done:
  if (rc) { /* the memory is as before the call */
    dnd_truncate(mem->mem, size0);
    memcpy(mem->state, state0, sizeof state0);
    mem->steps = steps0;
  }
  gtmsm_ws_free(ws);
  free(mu);
  free(lv);
  free(val);
  free(xpad);
  return rc;
}

int gtmsm_predict(const gtmsm_model *m, const gtmsm_memory *mem, const int *actions, int n,
                  gtmsm_predict_mode mode, uint64_t seed, float *frames_out, float *states_out,
                  char *err, size_t errlen) {
  const int S = m->cfg.S, Z = m->cfg.Z, D = gtmsm_config_D(&m->cfg);
  const int K = m->cfg.K;
  int rc = GTMSM_OK;
  if (n <= 0) return GTMSM_OK;
  if ((rc = check_actions(m, actions, n, err, errlen))) return rc;
  float *z = calloc((size_t)n * Z, sizeof(float));
  float *zpad = malloc(sizeof(float) * (size_t)ROW_BLOCK * (Z + D));
  gtmsm_ws *ws = gtmsm_ws_new(&m->cfg, ROW_BLOCK, 0);
  if (!z || !ws || !zpad) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  rng_t r;
  rng_init(&r, seed, 0x5eed);
  float s[GTMSM_MAX_S];
  memcpy(s, mem->state, sizeof s);
  int idx[GTMSM_MAX_K];
  float d2[GTMSM_MAX_K], w[GTMSM_MAX_K];
  for (int t = 0; t < n; t++) {
    float next[GTMSM_MAX_S];
    gtmsm_transition(m, s, actions[t], next);
    memcpy(s, next, sizeof s);
    if (mode == GTMSM_PREDICT_SAMPLE)
      for (int k = 0; k < S; k++) s[k] += m->cfg.trans_std * rng_normal(&r);
    if (states_out) memcpy(states_out + (size_t)t * S, s, (size_t)S * sizeof(float));
    float *zt = z + (size_t)t * Z;
    int found = dnd_query(mem->mem, s, K, idx, d2);
    if (found <= 0) { /* empty memory: the standard normal prior */
      if (mode == GTMSM_PREDICT_SAMPLE)
        for (int k = 0; k < Z; k++) zt[k] = rng_normal(&r);
      continue;
    }
    gtmsm_mixture_weights(d2, found, m->cfg.delta, w);
    if (mode == GTMSM_PREDICT_MEAN) {
      for (int j = 0; j < found; j++) {
        const float *v = dnd_value(mem->mem, (size_t)idx[j]);
        for (int k = 0; k < Z; k++) zt[k] += w[j] * v[k];
      }
    } else {
      float u = rng_uniform(&r), c = 0;
      int j = 0;
      for (; j < found - 1; j++) {
        c += w[j];
        if (u < c) break;
      }
      const float *v = dnd_value(mem->mem, (size_t)idx[j]);
      for (int k = 0; k < Z; k++) zt[k] = v[k] + expf(0.5f * v[Z + k]) * rng_normal(&r);
    }
  }
  decode_blocked(m, ws, zpad, z, n, frames_out, zpad + (size_t)ROW_BLOCK * Z);
  for (size_t i = 0; i < (size_t)n * D; i++) {
    float v = frames_out[i];
    frames_out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
done:
  gtmsm_ws_free(ws);
  free(z);
  free(zpad);
  return rc;
}

/* Little-endian fields, whatever the host, like the DND's own serialisation:
 * a dump must load on any replica. */
static void put_u32(uint8_t *p, uint32_t x) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t x) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  uint32_t x = 0;
  for (int i = 0; i < 4; i++) x |= (uint32_t)p[i] << (8 * i);
  return x;
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t x = 0;
  for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
  return x;
}
static void put_f32(uint8_t *p, float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  put_u32(p, x);
}
static float get_f32(const uint8_t *p) {
  uint32_t x = get_u32(p);
  float f;
  memcpy(&f, &x, 4);
  return f;
}

int gtmsm_memory_serialize(const gtmsm_memory *mem, int S, uint8_t **buf, size_t *len) {
  uint8_t *db = NULL;
  size_t dl = 0;
  *buf = NULL;
  *len = 0;
  if (dnd_serialize(mem->mem, &db, &dl)) return GTMSM_ENOMEM;
  size_t total = MEM_HEADER + (size_t)S * 4 + dl;
  uint8_t *b = malloc(total);
  if (!b) {
    free(db);
    return GTMSM_ENOMEM;
  }
  memcpy(b, MEM_MAGIC, 8);
  put_u32(b + 8, MEM_VERSION);
  put_u32(b + 12, (uint32_t)S);
  put_u64(b + 16, (uint64_t)mem->steps);
  for (int k = 0; k < S; k++) put_f32(b + MEM_HEADER + 4 * k, mem->state[k]);
  memcpy(b + MEM_HEADER + (size_t)S * 4, db, dl);
  free(db);
  *buf = b;
  *len = total;
  return GTMSM_OK;
}

int gtmsm_memory_deserialize(const gtmsm_model *m, const uint8_t *buf, size_t len,
                             gtmsm_memory **out, char *err, size_t errlen) {
  *out = NULL;
  const int S = m->cfg.S;
  if (len < MEM_HEADER || memcmp(buf, MEM_MAGIC, 8) != 0)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "not a serialised GTMSM memory");
  uint32_t version, s;
  uint64_t steps;
  version = get_u32(buf + 8);
  s = get_u32(buf + 12);
  steps = get_u64(buf + 16);
  if (version != MEM_VERSION)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "memory format version %u, expected %u", version, MEM_VERSION);
  if ((int)s != S || len < MEM_HEADER + (size_t)S * 4)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "memory state size %u does not match the model's %d", s, S);
  gtmsm_memory *mem = calloc(1, sizeof *mem);
  if (!mem) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  for (int k = 0; k < S; k++) mem->state[k] = get_f32(buf + MEM_HEADER + 4 * k);
  for (int k = 0; k < S; k++)
    if (!isfinite(mem->state[k])) {
      free(mem);
      return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "memory state is not finite");
    }
  mem->steps = (long)steps;
  int rc = dnd_deserialize(buf + MEM_HEADER + (size_t)S * 4, len - MEM_HEADER - (size_t)S * 4, &mem->mem,
                           err, errlen);
  if (rc) {
    free(mem);
    return rc;
  }
  if (dnd_key_size(mem->mem) != S || dnd_value_size(mem->mem) != 2 * m->cfg.Z ||
      dnd_size(mem->mem) != (size_t)steps) {
    rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                    "memory shape (key %d, value %d, %zu entries for %llu steps) does not match the "
                    "model (key %d, value %d)",
                    dnd_key_size(mem->mem), dnd_value_size(mem->mem), dnd_size(mem->mem),
                    (unsigned long long)steps, S, 2 * m->cfg.Z);
    gtmsm_memory_free(mem);
    return rc;
  }
  *out = mem;
  return GTMSM_OK;
}

size_t gtmsm_memory_bytes(const gtmsm_memory *mem) {
  size_t n = dnd_size(mem->mem);
  int S = dnd_key_size(mem->mem), V = dnd_value_size(mem->mem);
  /* entries plus the kd-tree's permutation and nodes, roughly */
  return sizeof *mem + n * ((size_t)(S + V) * sizeof(float) * 2 + 16);
}
