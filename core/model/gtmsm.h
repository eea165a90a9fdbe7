/* GTMSM (paper sections 3 and 4): a VAE per frame, a state-space model over
 * the agent's pose, and a DND memory whose nearest entries form the prior of
 * the frame latent. The model is a set of parts (gtmsm_internal.h): which
 * kind plays each role (VAE fc | conv, transition gated 2-D | rotation, key
 * map identity | periodic, prior mixture | learned) is data in the config.
 *
 * This header holds the configuration, the model (parameters and parts), the
 * training loss of one sequence (forward and backward, elbo.c), and the
 * encoder/decoder that evaluation reuses; the service's API is api.h. */
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
#define GTMSM_MAX_H 4 /* floats of a transition's own state */

typedef enum { GTMSM_DEC_GAUSS, GTMSM_DEC_BERNOULLI } gtmsm_decoder;
typedef enum { GTMSM_VAE_FC, GTMSM_VAE_CONV } gtmsm_vae;
typedef enum { GTMSM_TRANS_GATED2D, GTMSM_TRANS_ROT3D, GTMSM_TRANS_WALK3D } gtmsm_trans;
typedef enum { GTMSM_KEYMAP_IDENTITY, GTMSM_KEYMAP_PERIODIC } gtmsm_keymap;
typedef enum { GTMSM_PRIOR_MIXTURE, GTMSM_PRIOR_MLP } gtmsm_prior;
/* State inference: from the actions alone (eq. 2) | with landmarks (app. D) */
typedef enum { GTMSM_INFER_ACTIONS, GTMSM_INFER_LANDMARK } gtmsm_infer;
#define GTMSM_MAX_LANDMARK_K 16

/* Roles of the parts, in the order of their tensors in the parameter block
 * (state inference last: a model without landmarks keeps its layout). */
enum { GTMSM_ROLE_VAE, GTMSM_ROLE_TRANS, GTMSM_ROLE_KEYMAP, GTMSM_ROLE_PRIOR, GTMSM_ROLE_INFER, GTMSM_ROLES };
#define GTMSM_MAX_TENSORS 64

typedef struct {
  int H, W, C;         /* frame shape; D = H * W * C */
  int A;               /* actions */
  char action_names[GTMSM_MAX_ACTIONS][32]; /* maze3d: "forward_turn_right" */
  int Z;               /* latent size */
  gtmsm_vae vae;       /* fully connected or convolutional encoder/decoder */
  int hidden;          /* FC: hidden width (two hidden layers each way) */
  int channels;        /* conv: channels of the first conv layer (the second has twice) */
  int S;               /* state size (2; 3 with a heading) */
  gtmsm_trans trans;   /* transition kind (gated 2-D: eq. 4; rotation: eq. 5; walking: 4.2.2) */
  int gate_hidden;     /* gated 2-D: wall gate MLP width */
  gtmsm_keymap keymap; /* DND keys: the state, or (s1, s2, cos s3, sin s3) */
  int keymap_learned;  /* periodic keys through a learned linear layer */
  gtmsm_prior prior;   /* inverse-distance mixture, or the learned view-combining prior */
  int prior_hidden;    /* learned prior: MLP width */
  int K;               /* neighbours retrieved */
  float delta;         /* mixture weight regulariser: w ~ 1 / (d^2 + delta) */
  float trans_std;     /* SSM transition noise std */
  gtmsm_decoder decoder;
  float dec_logvar_init; /* Gaussian decoder: initial per-pixel log-variance */
  gtmsm_infer infer;   /* state inference: actions alone, or landmarks (reverse DND query on z) */
  int landmark_k;      /* landmarks: entries retrieved by the reverse query (1..GTMSM_MAX_LANDMARK_K) */
  int landmark_hidden; /* landmarks: width of the gain network kappa(d^2) */
} gtmsm_config;

gtmsm_config gtmsm_default_config(void);
/* Checks ranges; returns 0 or GTMSM_EINVAL with a message. */
int gtmsm_config_check(const gtmsm_config *c, char *err, size_t errlen);
static inline int gtmsm_config_D(const gtmsm_config *c) { return c->H * c->W * c->C; }

/* Size of a DND key: S (identity) or S + 1 (periodic: the angle as cos, sin). */
int gtmsm_key_size(const gtmsm_config *c);

/* Builds the parameter table of a configuration into specs (capacity cap),
 * the parts' tensors in role order; part_first (GTMSM_ROLES + 1, may be
 * NULL) receives where each part starts. Returns the number of tensors (which
 * may exceed cap: nothing past cap is written). */
int gtmsm_param_specs(const gtmsm_config *c, param_spec *specs, int cap, int *part_first);

typedef struct {
  gtmsm_config cfg;
  param_block p;
  /* The parts (static tables) and where each one's tensors start in p. */
  const struct gtmsm_vae_ops *vae;
  const struct gtmsm_trans_ops *trans;
  const struct gtmsm_keymap_ops *keymap;
  const struct gtmsm_prior_ops *prior;
  const struct gtmsm_infer_ops *infer;
  int part_first[GTMSM_ROLES + 1];
  char meta_json[4096]; /* training provenance written into model files */
  char content_hash[17];
  uint64_t infer_blocks; /* verified inference block sizes, cached by api.c (gtmsm_infer_rows); 0: not measured */
  struct gtmsm_ws_pool *ws_pool; /* api.c: inference workspaces kept between calls (NULL until the first) */
} gtmsm_model;

/* The kind of the part playing role (GTMSM_ROLE_*): "fc", "conv", "gated2d",
 * "rot3d", "identity", "periodic", "mixture", "mlp", "actions", "landmark"
 * (static string). */
const char *gtmsm_part_name(const gtmsm_model *m, int role);

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
  float still;    /* weight of the still-frame term (see elbo.c); 0 = off */
  /* Optional targets (NULL: none), borrowed: (N, hidden) true agent-frame
   * displacements, regressed with weight disp_weight on the transition's own
   * state (walking: Delta_t) for t >= 1; ignored by transitions without one. */
  const float *displacement;
  float disp_weight;
  /* Optional (NULL: none), borrowed: (N) whether the move of step t
   * succeeded (1), failed (0), or no target (< 0: stay, the first step);
   * the gated 2-D transition's gate g_t is regressed on it with weight
   * disp_weight (image navigation with obstacles, app. D.1); with landmark
   * inference instead the inferred state: a failed move adds disp_weight
   * ||s_t - s_{t-1}||^2 (see elbo.c). */
  const float *moved;
} gtmsm_seq_spec;

typedef struct {
  double loss;       /* minimised: -(ELBO over prediction steps) - aux * (LOO ELBO) */
  double recon_pred; /* sum over prediction steps of log p(x|z) */
  double kl_pred;    /* sum over prediction steps of the KL estimate */
  double recon_mem, kl_mem; /* the same over memorized steps (leave-one-out) */
  double mse_pred;   /* mean squared error of the decoded sample, prediction steps */
  double still;      /* the still-frame term (unweighted sum) */
  double kl_s;       /* sum over steps of KL(q(s_t) || p(s_t | s_{t-1}, a_t)) (landmarks; 0 from actions) */
  double displacement; /* displacement regression (unweighted sum; walking: Delta, gated 2-D: the gate) */
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
 * pass). Returns 0, GTMSM_EINVAL if the spec is not 2 <= T < N <= the
 * workspace's rows, or GTMSM_ENAN if the loss is not finite. */
int gtmsm_seq_loss(const gtmsm_model *m, gtmsm_ws *ws, const gtmsm_seq_spec *spec,
                   const float *frames, const int *actions, const float *eps_z,
                   const float *eps_s, float *grad, gtmsm_seq_stats *stats);

/* ---- Building blocks shared by training and inference --------------------- */

/* Encoder: mu, lv (N, Z) from frames x (N, D). ws sized for N. */
void gtmsm_encode(const gtmsm_model *m, gtmsm_ws *ws, const float *x, int N, float *mu,
                  float *lv);
/* Rows r0 .. r0 + rows - 1 of gtmsm_encode of x (N, D) into the same rows of
 * mu, lv (N, Z), bit for bit, skipping what the other rows alone need where
 * the VAE can; the other rows of mu, lv are left as they were. */
void gtmsm_encode_rows(const gtmsm_model *m, gtmsm_ws *ws, const float *x, int N, int r0, int rows, float *mu,
                       float *lv);
/* Decoder mean: out (N, D) from z (N, Z); Bernoulli models return probabilities. */
void gtmsm_decode_mean(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, float *out);
/* out (n, D): the first n rows of gtmsm_decode_mean of z (N, Z), bit for bit,
 * skipping what the other rows alone need where the VAE can (1 <= n <= N). */
void gtmsm_decode_mean_first(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, int n, float *out);
/* gtmsm_decode_mean_first in two steps, where the VAE decodes each image on
 * its own past a first layer that mixes a block's rows (the conv VAE at
 * 32x32): gtmsm_decode_head_floats, the floats per row of that layer's
 * output (0: no such split, the others must not be called);
 * gtmsm_decode_head, h (N, head_floats) from z (N, Z); gtmsm_decode_mean_tail,
 * out (n, D) from n rows of h: the bits of gtmsm_decode_mean_first's rows. */
size_t gtmsm_decode_head_floats(const gtmsm_model *m);
void gtmsm_decode_head(const gtmsm_model *m, gtmsm_ws *ws, const float *z, int N, float *h);
void gtmsm_decode_mean_tail(const gtmsm_model *m, gtmsm_ws *ws, const float *h, int n, float *out);

#endif
