/* The GTMSM model for 2-D navigation (paper sections 3 and 4.1): a VAE per
 * frame, a 2-D state-space model with a learned wall gate (eq. 4), and a DND
 * memory whose k nearest entries form a mixture prior over the frame latent.
 *
 * This header holds the configuration, the parameter layout, the training loss
 * of one sequence (forward and backward), and the inference API the service
 * calls (memory, observe, predict). */
#ifndef GTMSM_MODEL_GTMSM_H
#define GTMSM_MODEL_GTMSM_H

#include <stddef.h>
#include <stdint.h>

#include "nn/activation.h"
#include "nn/params.h"

#define GTMSM_MAX_ACTIONS 16
#define GTMSM_MAX_K 32
#define GTMSM_MAX_S 4
#define GTMSM_MAX_GATE 256

typedef enum { GTMSM_DEC_GAUSS, GTMSM_DEC_BERNOULLI } gtmsm_decoder;
typedef enum { GTMSM_VAE_FC, GTMSM_VAE_CONV } gtmsm_vae;

typedef struct {
  int H, W, C;         /* frame shape; D = H * W * C */
  int A;               /* actions */
  char action_names[GTMSM_MAX_ACTIONS][16];
  int Z;               /* latent size */
  gtmsm_vae vae;       /* fully connected or convolutional encoder/decoder */
  int hidden;          /* FC: hidden width (two hidden layers each way) */
  int channels;        /* conv: channels of the first conv layer (the second has twice) */
  int S;               /* state size (2) */
  int gate_hidden;     /* wall gate MLP width */
  int K;               /* neighbours retrieved */
  float delta;         /* mixture weight regulariser: w ~ 1 / (d^2 + delta) */
  float trans_std;     /* SSM transition noise std */
  gtmsm_decoder decoder;
  float dec_logvar_init; /* Gaussian decoder: initial per-pixel log-variance */
} gtmsm_config;

gtmsm_config gtmsm_default_config(void);
/* Checks ranges; returns 0 or GTMSM_EINVAL with a message. */
int gtmsm_config_check(const gtmsm_config *c, char *err, size_t errlen);
static inline int gtmsm_config_D(const gtmsm_config *c) { return c->H * c->W * c->C; }

/* Builds the parameter table of a configuration into specs (capacity cap);
 * returns the number of tensors. */
int gtmsm_param_specs(const gtmsm_config *c, param_spec *specs, int cap);

typedef struct {
  gtmsm_config cfg;
  param_block p;
  /* Borrowed views into p.data, resolved once by gtmsm_model_bind. */
  float *enc_w1, *enc_b1, *enc_w2, *enc_b2, *enc_w3, *enc_b3;      /* FC */
  float *dec_w1, *dec_b1, *dec_w2, *dec_b2, *dec_w3, *dec_b3;      /* FC */
  float *enc_c1w, *enc_c1b, *enc_c2w, *enc_c2b, *enc_fw, *enc_fb;  /* conv */
  float *dec_fw, *dec_fb, *dec_t1w, *dec_t1b, *dec_c2w, *dec_c2b;  /* conv */
  float *dec_logvar;
  float *ssm_B;  /* (A, S): displacement per action */
  float *gate_w1, *gate_b1, *gate_w2, *gate_b2, *gate_w3, *gate_b3;
  char meta_json[4096]; /* training provenance written into model files */
  char content_hash[17];
} gtmsm_model;

/* Allocates parameters for cfg initialised from seed. */
int gtmsm_model_init(gtmsm_model *m, const gtmsm_config *cfg, uint64_t seed, char *err,
                     size_t errlen);
void gtmsm_model_free(gtmsm_model *m);

/* ---- Training loss of one sequence ---------------------------------------- */

typedef struct {
  int N;          /* steps in the sequence */
  int T;          /* memorized steps (the first T); prediction steps are T..N-1 */
  float aux;      /* weight of the leave-one-out term over memorized steps */
  float kl_weight;/* KL annealing factor (1 = the ELBO) */
  int K;          /* neighbours retrieved (0: the model's K); a training curriculum may start wider */
  float delta;    /* mixture weight regulariser (0: the model's delta) */
  float still;    /* weight of the still-frame term (see gtmsm.c); 0 = off */
} gtmsm_seq_spec;

typedef struct {
  double loss;       /* minimised: -(ELBO over prediction steps) - aux * (LOO ELBO) */
  double recon_pred; /* sum over prediction steps of log p(x|z) */
  double kl_pred;    /* sum over prediction steps of the KL estimate */
  double recon_mem, kl_mem; /* the same over memorized steps (leave-one-out) */
  double mse_pred;   /* mean squared error of the decoded sample, prediction steps */
  double still;      /* the still-frame term (unweighted sum) */
} gtmsm_seq_stats;

typedef struct gtmsm_ws gtmsm_ws; /* per-thread workspace (opaque) */

/* Workspace for up to N_max rows; train = 0 leaves out the gradient buffers
 * (inference only: encode, decode). NULL when out of memory. */
gtmsm_ws *gtmsm_ws_new(const gtmsm_config *c, int N_max, int train);
void gtmsm_ws_free(gtmsm_ws *ws);
/* Retrieved indices of the last gtmsm_seq_loss, (rows, K) (borrowed; tests). */
const int *gtmsm_ws_idx(const gtmsm_ws *ws);

/* Forward and backward of one sequence. frames (N, D) in [0, 1], actions (N)
 * (actions[0] is ignored: the first frame is at the origin state), eps_z (N, Z)
 * and eps_s (N, S) standard normal draws (borrowed). Gradients are accumulated
 * (+=) into grad, laid out like m->p.data (pass NULL to skip the backward
 * pass). Returns 0, or GTMSM_ENAN if the loss is not finite. */
int gtmsm_seq_loss(const gtmsm_model *m, gtmsm_ws *ws, const gtmsm_seq_spec *spec,
                   const float *frames, const int *actions, const float *eps_z,
                   const float *eps_s, float *grad, gtmsm_seq_stats *stats);

/* ---- Building blocks shared by training and inference --------------------- */

/* Encoder: mu, lv (N, Z) from frames x (N, D). ws sized for N. */
void gtmsm_encode(const gtmsm_model *m, gtmsm_ws *ws, const float *x, int N, float *mu,
                  float *lv);
/* Decoder mean: out (N, D) from z (N, Z); Bernoulli models return probabilities. */
void gtmsm_decode_mean(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, float *out);
/* One transition of the state mean: s_next (S) from s (S) and action a. */
void gtmsm_transition(const gtmsm_model *m, const float *s, int a, float *s_next);
/* k nearest of keys (n, S) to q (S) by brute force, excluding index `skip`
 * (-1 for none); ties broken by the smaller index. Returns the number found. */
int gtmsm_knn_brute(const float *keys, int n, int S, const float *q, int K, int skip, int *idx,
                    float *d2);
/* State rollout of N steps into the workspace: s_0 = 0, then
 * s_t = s_{t-1} + g(s_{t-1} + B a_t) B a_t + trans_std * eps_s[t]. */
void gtmsm_ssm_forward(const gtmsm_model *m, gtmsm_ws *ws, const int *actions, const float *eps_s,
                       int N);
/* Backward through the rollout from the state gradients in
 * gtmsm_ws_dstates(ws) (N, S), which it consumes; accumulates into grad. */
void gtmsm_ssm_backward(const gtmsm_model *m, gtmsm_ws *ws, const int *actions, int N, float *grad);
/* Borrowed views of the workspace: states (N, S) and their gradients (N, S). */
float *gtmsm_ws_states(gtmsm_ws *ws);
float *gtmsm_ws_dstates(gtmsm_ws *ws);
/* Mixture weights w (k) from squared distances d2 (k). */
void gtmsm_mixture_weights(const float *d2, int k, float delta, float *w);

#endif
