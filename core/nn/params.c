/* Parameter block layout, initialisation, checkpoint I/O and Adam. */
#include "nn/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "nn/rng.h"

static const char PARAMS_MAGIC[8] = {'G', 'T', 'M', 'S', 'M', 'P', 'B', '1'};

int params_init(param_block *pb, const param_spec *specs, size_t n, uint64_t seed,
                char *err, size_t errlen) {
  memset(pb, 0, sizeof *pb);
  int rc = GTMSM_OK;
  pb->entries = calloc(n ? n : 1, sizeof *pb->entries);
  if (!pb->entries) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  pb->n = n;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (strlen(specs[i].name) >= PARAMS_NAME_MAX) {
      rc = gtmsm_fail(err, errlen, GTMSM_EINVAL, "parameter name '%s' too long", specs[i].name);
      goto done;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(specs[i].name, specs[j].name) == 0) {
        rc = gtmsm_fail(err, errlen, GTMSM_EINVAL, "duplicate parameter '%s'", specs[i].name);
        goto done;
      }
    strcpy(pb->entries[i].name, specs[i].name);
    pb->entries[i].offset = total;
    pb->entries[i].size = specs[i].size;
    pb->entries[i].lr_scale = 1.0f;
    total += specs[i].size;
  }
  pb->total = total;
  /* One allocation for data, grad, m, v. */
  pb->data = calloc(4 * (total ? total : 1), sizeof(float));
  if (!pb->data) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory for %zu parameters", total);
    goto done;
  }
  pb->grad = pb->data + total;
  pb->m = pb->grad + total;
  pb->v = pb->m + total;
  for (size_t i = 0; i < n; i++) {
    rng_t r;
    rng_init(&r, seed, (uint64_t)i + 1);
    float *p = pb->data + pb->entries[i].offset;
    if (specs[i].fan_in > 0) {
      float bound = 1.0f / sqrtf((float)specs[i].fan_in);
      for (size_t k = 0; k < specs[i].size; k++) p[k] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
    } else if (specs[i].fan_in < 0) {
      for (size_t k = 0; k < specs[i].size; k++) p[k] = specs[i].init_value;
    }
  }
done:
  if (rc) params_free(pb);
  return rc;
}

void params_free(param_block *pb) {
  free(pb->entries);
  free(pb->data);
  memset(pb, 0, sizeof *pb);
}

int params_find(const param_block *pb, const char *name) {
  for (size_t i = 0; i < pb->n; i++)
    if (strcmp(pb->entries[i].name, name) == 0) return (int)i;
  return -1;
}

float *params_get(const param_block *pb, const char *name) {
  int i = params_find(pb, name);
  return i < 0 ? NULL : pb->data + pb->entries[i].offset;
}

void params_zero_grad(param_block *pb) { memset(pb->grad, 0, pb->total * sizeof(float)); }

double params_grad_norm(const param_block *pb) {
  double s = 0;
  for (size_t i = 0; i < pb->total; i++) s += (double)pb->grad[i] * pb->grad[i];
  return sqrt(s);
}

int params_save(const param_block *pb, FILE *f, char *err, size_t errlen) {
  uint64_t n = pb->n, step = (uint64_t)pb->step;
  int ok = fwrite(PARAMS_MAGIC, 1, 8, f) == 8 && fwrite(&n, 8, 1, f) == 1 &&
           fwrite(&step, 8, 1, f) == 1;
  for (size_t i = 0; ok && i < pb->n; i++) {
    uint64_t size = pb->entries[i].size;
    ok = fwrite(pb->entries[i].name, 1, PARAMS_NAME_MAX, f) == PARAMS_NAME_MAX &&
         fwrite(&size, 8, 1, f) == 1;
  }
  /* data, m, v (gradients are transient and not saved). */
  ok = ok && fwrite(pb->data, sizeof(float), pb->total, f) == pb->total &&
       fwrite(pb->m, sizeof(float), pb->total, f) == pb->total &&
       fwrite(pb->v, sizeof(float), pb->total, f) == pb->total;
  return ok ? GTMSM_OK : gtmsm_fail(err, errlen, GTMSM_EIO, "writing parameter block failed");
}

int params_load(param_block *pb, FILE *f, char *err, size_t errlen) {
  char magic[8];
  uint64_t n, step;
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, PARAMS_MAGIC, 8) != 0)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "not a parameter block (bad magic)");
  if (fread(&n, 8, 1, f) != 1 || fread(&step, 8, 1, f) != 1)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "truncated parameter block header");
  if (n != pb->n)
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "parameter block has %llu tensors, expected %zu",
                      (unsigned long long)n, pb->n);
  for (size_t i = 0; i < pb->n; i++) {
    char name[PARAMS_NAME_MAX];
    uint64_t size;
    if (fread(name, 1, PARAMS_NAME_MAX, f) != PARAMS_NAME_MAX || fread(&size, 8, 1, f) != 1)
      return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "truncated parameter table");
    name[PARAMS_NAME_MAX - 1] = 0;
    if (strcmp(name, pb->entries[i].name) != 0 || size != pb->entries[i].size)
      return gtmsm_fail(err, errlen, GTMSM_EFORMAT,
                        "parameter %zu is '%s' (%llu floats), expected '%s' (%zu floats)", i, name,
                        (unsigned long long)size, pb->entries[i].name, pb->entries[i].size);
  }
  /* Read into a scratch block first: a failed load leaves pb untouched. */
  float *tmp = malloc(3 * (pb->total ? pb->total : 1) * sizeof(float));
  if (!tmp) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
  if (fread(tmp, sizeof(float), 3 * pb->total, f) != 3 * pb->total) {
    free(tmp);
    return gtmsm_fail(err, errlen, GTMSM_EFORMAT, "truncated parameter data");
  }
  memcpy(pb->data, tmp, pb->total * sizeof(float));
  memcpy(pb->m, tmp + pb->total, pb->total * sizeof(float));
  memcpy(pb->v, tmp + 2 * pb->total, pb->total * sizeof(float));
  free(tmp);
  pb->step = (long)step;
  return GTMSM_OK;
}

adam_config adam_default(void) {
  adam_config c = {.lr = 1e-3f, .lr_final = 1e-3f, .anneal_steps = 0, .beta1 = 0.9f,
                   .beta2 = 0.999f, .eps = 1e-8f, .clip_norm = 0};
  return c;
}

float adam_lr(const adam_config *c, long step) {
  if (c->anneal_steps <= 0 || step >= c->anneal_steps) return c->anneal_steps > 0 ? c->lr_final : c->lr;
  double f = (double)step / (double)c->anneal_steps;
  return (float)(c->lr + (c->lr_final - c->lr) * f);
}

double adam_update(param_block *pb, const adam_config *c) {
  double norm = params_grad_norm(pb);
  if (!isfinite(norm)) return NAN;
  float scale = 1.0f;
  if (c->clip_norm > 0 && norm > c->clip_norm) scale = (float)(c->clip_norm / norm);
  float lr = adam_lr(c, pb->step);
  pb->step++;
  float bc1 = 1.0f - powf(c->beta1, (float)pb->step);
  float bc2 = 1.0f - powf(c->beta2, (float)pb->step);
  for (size_t e = 0; e < pb->n; e++) {
    const param_entry *pe = &pb->entries[e];
    float lre = lr * pe->lr_scale;
    for (size_t i = pe->offset; i < pe->offset + pe->size; i++) {
      float g = pb->grad[i] * scale;
      float m = c->beta1 * pb->m[i] + (1.0f - c->beta1) * g;
      float v = c->beta2 * pb->v[i] + (1.0f - c->beta2) * g * g;
      pb->m[i] = m;
      pb->v[i] = v;
      pb->data[i] -= lre * (m / bc1) / (sqrtf(v / bc2) + c->eps);
    }
  }
  return norm;
}
