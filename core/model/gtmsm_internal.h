/* The model as parts (internal to core/model; see docs/ARCHITECTURE.md).
 *
 * A model is a list of parts, one per role: the frame VAE, the transition,
 * the key map, the prior. Which kind plays each role, and with which sizes, is
 * data in the config (and so in the model file). Each kind is one file with
 * an ops table: the spec of its tensors (names, sizes, init), its workspace,
 * forward and backward (llm.c style: backward accumulates += into the
 * gradients, laid out like the parameters). A part's tensors are the
 * contiguous range [part_first[role], part_first[role + 1]) of the model's
 * parameter table, so gtmsm_tensor(m, role, i, base) is tensor i of that part
 * in the parameters (base = m->p.data) or in a gradient (base = grad): the
 * same view bound twice. Retrieval (kNN, gather) has no parameters and is
 * plain functions. The orchestrators are elbo.c (training loss) and api.c
 * (observe, predict): both call the same transition, key map and prior code. */
#ifndef GTMSM_MODEL_GTMSM_INTERNAL_H
#define GTMSM_MODEL_GTMSM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "model/dnd.h"
#include "model/gtmsm.h"
#include "nn/params.h"
#include "nn/rng.h"

#define GTMSM_PART_MAX_TENSORS 16
#define LV_RANGE 8.0f /* a log-variance = LV_RANGE * tanh(raw / LV_RANGE) */

static inline float *gtmsm_tensor(const gtmsm_model *m, int role, int i, const float *base) {
  return (float *)base + m->p.entries[m->part_first[role] + i].offset;
}

struct gtmsm_vae_ops;
struct gtmsm_trans_ops;
struct gtmsm_keymap_ops;
struct gtmsm_prior_ops;
struct gtmsm_infer_ops;
/* Frees the inference workspaces api.c keeps in m (gtmsm_model_free calls it). */
void gtmsm_ws_pool_free(gtmsm_model *m);

/* The part of each role a configuration selects. */
void gtmsm_parts_of(const gtmsm_config *c, const struct gtmsm_vae_ops **vae,
                    const struct gtmsm_trans_ops **trans, const struct gtmsm_keymap_ops **keymap,
                    const struct gtmsm_prior_ops **prior);
const struct gtmsm_infer_ops *gtmsm_infer_of(const gtmsm_config *c);

/* ---- frame VAE: fc | conv ------------------------------------------------ */
struct gtmsm_vae_ops {
  const char *name;
  /* Its tensors into out (GTMSM_PART_MAX_TENSORS); returns the count. */
  int (*specs)(const gtmsm_config *c, param_spec *out);
  void *(*ws_new)(const gtmsm_config *c, int N, int train); /* NULL on OOM */
  void (*ws_free)(void *ws);
  /* eo (N, 2Z): mean and raw log-variance, from frames x (N, H, W, C) */
  void (*encode)(const gtmsm_model *m, void *ws, const float *x, int N, float *eo);
  /* d_eo (N, 2Z) -> parameter gradients (x is the encode's input) */
  void (*encode_backward)(const gtmsm_model *m, void *ws, const float *x, int N, const float *d_eo,
                          float *grad);
  /* xm (N, D) from z (N, Z): the Gaussian mean or the Bernoulli logits */
  void (*decode)(const gtmsm_model *m, void *ws, const float *z, int N, float *xm);
  /* d_xm (N, D) -> dz (N, Z) (accumulated) and parameter gradients */
  void (*decode_backward)(const gtmsm_model *m, void *ws, const float *z, int N, const float *d_xm,
                          float *dz, float *grad);
  /* Optional (NULL: decode, then the first n rows): xm (n, D), the first n
   * rows of decode(z (N, Z)) bit for bit, without computing the others'
   * (1 <= n <= N). Inference pads a frame to a block of rows; this skips
   * the padding's work wherever rows do not share GEMMs. */
  void (*decode_first)(const gtmsm_model *m, void *ws, const float *z, int N, int n, float *xm);
  /* Optional (NULL: encode): eo (N, 2Z) whose rows r0 .. r0 + n - 1 are
   * encode(x (N, D))'s bit for bit; the other rows are not defined. */
  void (*encode_rows)(const gtmsm_model *m, void *ws, const float *x, int N, int r0, int n, float *eo);
  /* Optional, all three or none: decode_first in two steps, for a block
   * shared among threads (api.c). head_floats: floats per row of the head's
   * output, 0 when the split does not apply (the images are not decoded on
   * their own); decode_head: what mixes the N rows of z (the first layer)
   * into h (N, head_floats); decode_tail: xm (n, D) of n rows of h, each
   * image on its own, the bits of decode_first's rows. */
  size_t (*head_floats)(const gtmsm_config *c);
  void (*decode_head)(const gtmsm_model *m, void *ws, const float *z, int N, float *h);
  void (*decode_tail)(const gtmsm_model *m, void *ws, const float *h, int n, float *xm);
  /* Optional, all three or none: the inference encoder, eo (N, 2Z) with each
   * row a function of its frame alone (the same bits whatever N or the
   * row's place; not encode's bits). infer_new packs what it needs of m's
   * weights (NULL when out of memory), encode_infer runs on it (N at most the
   * ws's rows), infer_free frees it. */
  void *(*infer_new)(const gtmsm_model *m);
  void (*encode_infer)(const gtmsm_model *m, const void *pk, void *ws, const float *x, int N, float *eo);
  void (*infer_free)(void *pk);
};
extern const struct gtmsm_vae_ops gtmsm_vae_fc, gtmsm_vae_conv;
/* mu, lv (N, Z) of frames x (N, D) by the VAE's inference encoder on its
 * packed weights pk (infer_new); ws sized for at least N rows. */
void gtmsm_encode_infer(const gtmsm_model *m, gtmsm_ws *ws, const void *pk, const float *x, int N, float *mu,
                        float *lv);
/* The decoder's per-pixel log-variance is the last tensor of either VAE. */
float *gtmsm_vae_dec_logvar(const gtmsm_model *m, const float *base);

/* ---- transition: gated 2-D (eq. 4) | rotation (eq. 5) | walking (4.2.2) --- */
struct gtmsm_trans_ops {
  const char *name;
  int (*specs)(const gtmsm_config *c, param_spec *out);
  void (*init)(gtmsm_model *m, uint64_t seed); /* after the spec init (may be NULL) */
  /* Floats of the transition's own state h (walking: the velocity); 0: none. */
  int (*hidden_size)(const gtmsm_config *c);
  void *(*ws_new)(const gtmsm_config *c, int N); /* what the backward needs per step */
  void (*ws_free)(void *ws);
  /* One step of the mean: s_next (S), h_next (hidden) from s, h and action a.
   * With ws, keeps what the backward of step t needs. */
  void (*step)(const gtmsm_model *m, const float *s, const float *h, int a, float *s_next,
               float *h_next, void *ws, int t);
  /* Backward through steps N-1..1 of a rollout s_t = step(s_{t-1}, a_t) +
   * noise: ds (N, S) (and dh (N, hidden), may be NULL) hold d loss / d s_t and
   * are consumed back to t = 0; accumulates the parameter gradients. s (N, S)
   * are the rollout's states. */
  void (*backward)(const gtmsm_model *m, void *ws, const int *actions, int N, const float *s,
                   float *ds, float *dh, float *grad);
  /* Optional (NULL: landmark inference cannot use this transition). The
   * backward of step t of a rollout alone: d_next (S) = d loss / d
   * step(s_{t-1}, a_t) -> ds_prev (S) (accumulated) and the parameter
   * gradients; backward_finish after steps N-1..1 adds what the transition
   * batches over steps. backward is the same as these in sequence. */
  void (*step_backward)(const gtmsm_model *m, void *ws, int t, int a, const float *d_next, float *ds_prev,
                        float *grad);
  void (*backward_finish)(const gtmsm_model *m, void *ws, int N, float *grad);
  /* Optional (NULL: no gate): the wall gate g_t of step t of the last
   * rollout, and an extra d loss / d g_t (N) that the next backward adds
   * (the displacement regression of image navigation with obstacles). */
  float (*gate)(const void *ws, int t);
  void (*gate_grad)(void *ws, int N, const float *dg);
};
extern const struct gtmsm_trans_ops gtmsm_trans_gated2d, gtmsm_trans_rot3d, gtmsm_trans_walk3d;
/* The 3-D transitions' B (A, 3): small random displacements and turns (std
 * 0.1, about 6 degrees), so a random walk spreads the states from the first
 * update and no turn starts near a full circle; an action named "none" (the
 * no-op that labels an episode's first frame, which the model ignores)
 * starts at zero, and so stays a no-op: it is never trained. */
void gtmsm_trans_init_3d(gtmsm_model *m, float *B, uint64_t seed);

/* ---- key map: identity | periodic (s1, s2, cos s3, sin s3), optionally learned linear */
struct gtmsm_keymap_ops {
  const char *name;
  int (*specs)(const gtmsm_config *c, param_spec *out);
  void (*init)(gtmsm_model *m);
  /* keys (N, KS) from states s (N, S) */
  void (*forward)(const gtmsm_model *m, const float *s, int N, float *keys);
  /* dkeys (N, KS) -> ds (N, S) (accumulated) and parameter gradients */
  void (*backward)(const gtmsm_model *m, const float *s, int N, const float *dkeys, float *ds,
                   float *grad);
};
extern const struct gtmsm_keymap_ops gtmsm_keymap_identity, gtmsm_keymap_periodic;

/* ---- retrieval (retrieval.c) --------------------------------------------- */
/* k nearest of keys (n, KS) to q (KS) by brute force, excluding index `skip`
 * (-1 for none); ties broken by the smaller index; sorted by distance.
 * Returns the number found. */
int gtmsm_knn_brute(const float *keys, int n, int KS, const float *q, int K, int skip, int *idx,
                    float *d2);
/* Backward of d2[r][j] = |keys[q_row[r]] - keys[idx[r][j]]|^2 for R rows:
 * dd2 (R, K) -> dkeys (n, KS) (accumulated, row by row in order). */
void gtmsm_knn_d2_backward(const float *keys, int KS, const int *q_row, const int *idx,
                           const float *dd2, int R, int K, float *dkeys);

/* ---- prior: inverse-distance mixture | learned view-combining (app. A.2) -- */
/* What a prior sees of one step: the K retrieved entries. */
typedef struct {
  int R, K, Z, S;
  const int *idx;        /* (R, K) retrieved memory rows */
  const float *d2;       /* (R, K) squared key distances */
  const float *mem_mu;   /* (n, Z) memory values: latent means, indexed by idx */
  const float *mem_lv;   /* (n, Z) and log-variances */
  const float *mem_s;    /* (n, S) memory states */
  const float *s;        /* (R, S) query states */
  const float *mu, *lv;  /* (R, Z) q(z|x) of the query rows */
  const float *z;        /* (R, Z) the reparameterised sample */
} gtmsm_prior_in;
/* Gradients a prior's backward accumulates into (any may be NULL when unused),
 * except dd2, which it overwrites. */
typedef struct {
  float *d_mem_mu, *d_mem_lv, *d_mem_s; /* (n, .) scattered by idx */
  float *d_s;                           /* (R, S) */
  float *d_mu, *d_lv, *d_z;             /* (R, Z) */
  float *dd2;                           /* (R, K), overwritten (gtmsm_mixture_weights_backward) */
} gtmsm_prior_grad;

struct gtmsm_prior_ops {
  const char *name;
  int (*specs)(const gtmsm_config *c, param_spec *out);
  /* Extra floats a memory entry stores after (mu, lv) for this prior (states). */
  int (*value_extra)(const gtmsm_config *c);
  void *(*ws_new)(const gtmsm_config *c, int R, int train);
  void (*ws_free)(void *ws);
  /* kl (R): the KL term of each row (an estimate at z for a mixture, closed
   * form for a Gaussian); delta the mixture regulariser in force. */
  int (*forward)(const gtmsm_model *m, void *ws, const gtmsm_prior_in *in, float delta, double *kl);
  /* d loss / d kl_r = beta * rowc[r] */
  void (*backward)(const gtmsm_model *m, void *ws, const gtmsm_prior_in *in, float delta, float beta,
                   const float *rowc, const gtmsm_prior_grad *g, float *grad);
  /* Serving, one step: z (Z) from the found (1..K) entries, sorted by
   * distance: d2 (found), values (found) each (2Z + value_extra) floats, query
   * state s (S); ws from ws_new(c, 1, 0). Mean mode writes the prior's mean;
 * sample mode draws from r. */
  void (*predict)(const gtmsm_model *m, void *ws, const float *s, const float *d2,
                  const float *const *values, int found, int sample, rng_t *r, float *z);
};
extern const struct gtmsm_prior_ops gtmsm_prior_mixture, gtmsm_prior_mlp;
/* Mixture weights w (k) from squared distances d2 (k). */
void gtmsm_mixture_weights(const float *d2, int k, float delta, float *w);
/* Backward of the weights: dw (k) -> dd2 (k) (overwritten). */
void gtmsm_mixture_weights_backward(const float *d2, const float *w, const float *dw, int k, float delta,
                                    float *dd2);

/* ---- state inference: actions (eq. 2) | landmarks (app. D) -------------- */
/* Rollout of N steps: s_0 = 0 (and h_0 = 0), then
 * s_t = step(s_{t-1}, h_{t-1}, a_t) + trans_std * eps_s[t]. s (N, S), h (N,
 * hidden) or NULL for a transition without its own state. */
void gtmsm_infer_actions(const gtmsm_model *m, void *trans_ws, const int *actions, const float *eps_s,
                         int N, float *s, float *h);

/* What state inference sees of a sequence (borrowed). */
typedef struct {
  int N, T;            /* steps; memorized steps (the landmark memory of step t: steps j < min(t, T)) */
  const int *actions;  /* (N) */
  const float *mu_z;   /* (N, Z) encoder means: the reverse query's keys */
  const float *eps_s;  /* (N, S) standard normal draws */
} gtmsm_infer_in;

struct gtmsm_infer_ops {
  const char *name;
  int (*specs)(const gtmsm_config *c, param_spec *out);
  void (*init)(gtmsm_model *m, uint64_t seed); /* after the spec init (may be NULL) */
  void *(*ws_new)(const gtmsm_config *c, int N); /* NULL on OOM */
  void (*ws_free)(void *ws);
  /* States s (N, S) sampled from q (h (N, hidden) or NULL: the transition's
   * own state) and kl (N): KL(q(s_t) || p(s_t | s_{t-1}, a_t)), 0 at t = 0
   * and everywhere from actions alone. Keeps what the backward needs in ws
   * and trans_ws. */
  void (*forward)(const gtmsm_model *m, void *ws, void *trans_ws, const gtmsm_infer_in *in, float *s, float *h,
                  double *kl);
  /* ds (N, S) = d loss / d s_t (consumed), dh (N, hidden) or NULL, dkl (N) =
   * d loss / d kl_t -> d_mu_z (N, Z) (accumulated) and the parameter
   * gradients (the transition's included). s are the forward's states. */
  void (*backward)(const gtmsm_model *m, void *ws, void *trans_ws, const gtmsm_infer_in *in, const float *s,
                   float *ds, float *dh, const float *dkl, float *d_mu_z, float *grad);
  /* Serving, one step of the mean: s (S), h from s_prev, h_prev, action a and
   * the frame's encoder mean mu_z (Z), with the reverse memory rev (keys:
   * latent means, values: states; may be NULL or empty); mu_p (S, may be
   * NULL) receives the transition's own prediction, before any correction. */
  int (*observe)(const gtmsm_model *m, const float *s_prev, const float *h_prev, int a, const float *mu_z,
                 const dnd *rev, float *s, float *h, float *mu_p);
};
extern const struct gtmsm_infer_ops gtmsm_infer_actions_part, gtmsm_infer_landmark;

#endif
