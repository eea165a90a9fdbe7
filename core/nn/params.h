/* A parameter block: every parameter of a network in one allocation laid out
 * from a size table (llm.c style), with gradients and Adam moments in the same
 * layout so the optimizer is one flat loop and save/load is one write. */
#ifndef GTMSM_NN_PARAMS_H
#define GTMSM_NN_PARAMS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PARAMS_NAME_MAX 48

typedef struct {
  const char *name;
  size_t size;  /* number of floats */
  int fan_in;   /* > 0: initialise uniform(+-1/sqrt(fan_in)); 0: zeros; < 0: constant init_value */
  float init_value;
} param_spec;

typedef struct {
  char name[PARAMS_NAME_MAX];
  size_t offset, size;
  float lr_scale; /* multiplies the learning rate of this tensor (1 after params_init) */
} param_entry;

typedef struct {
  size_t n;          /* tensors */
  param_entry *entries;
  size_t total;      /* floats */
  float *data;       /* (total) parameters */
  float *grad;       /* (total) gradients, same layout */
  float *m, *v;      /* (total) Adam moments, same layout */
  long step;         /* optimizer steps taken */
} param_block;

/* Lays out and allocates a block from specs (borrowed) and initialises it from
 * seed. Returns 0 or GTMSM_ENOMEM / GTMSM_EINVAL (duplicate or long name). */
int params_init(param_block *pb, const param_spec *specs, size_t n, uint64_t seed,
                char *err, size_t errlen);
void params_free(param_block *pb);
/* Borrowed pointer into pb->data for name, or NULL. */
float *params_get(const param_block *pb, const char *name);
/* Index of name in entries, or -1. */
int params_find(const param_block *pb, const char *name);
void params_zero_grad(param_block *pb);
/* L2 norm of the whole gradient (double accumulation). */
double params_grad_norm(const param_block *pb);

/* Checkpoint I/O: layout, parameters, Adam moments and step. Loading checks that
 * the file's layout equals pb's (same names and sizes in the same order). */
int params_save(const param_block *pb, FILE *f, char *err, size_t errlen);
int params_load(param_block *pb, FILE *f, char *err, size_t errlen);

typedef struct {
  float lr;           /* initial learning rate */
  float lr_final;     /* reached after anneal_steps, then held */
  long anneal_steps;  /* 0: constant lr */
  float beta1, beta2, eps;
  float clip_norm;    /* > 0: scale the gradient to at most this L2 norm */
} adam_config;

adam_config adam_default(void);
/* Learning rate at a step under linear annealing. */
float adam_lr(const adam_config *c, long step);
/* One Adam update from pb->grad (clipped first if configured); increments
 * pb->step. Returns the gradient norm before clipping, or NaN if the gradient
 * is not finite (parameters are then left untouched). */
double adam_update(param_block *pb, const adam_config *c);

#endif
