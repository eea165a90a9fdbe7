/* The model API the service and the CLI call: per-session memory, observe,
 * predict, and memory (de)serialisation. core/ knows nothing of HTTP or SQL;
 * this is the whole surface the daemon needs (see docs/ARCHITECTURE.md).
 *
 * A memory is the DND of (key of the state mean, frame latent mean and
 * log-variance) pairs, for a model with landmark inference also the reverse
 * DND of (latent mean -> state mean) pairs, plus the current state belief (its mean: the transition
 * noise is tiny and inference rolls the means). observe and predict run the
 * model's own transition, key map and prior parts (gtmsm_internal.h), the
 * same code as training. Thread safety: a model is read-only after
 * loading and may be shared; a memory must not be used by two threads at
 * once, except that concurrent gtmsm_predict calls on the same memory are
 * safe (it only reads). */
#ifndef GTMSM_MODEL_API_H
#define GTMSM_MODEL_API_H

#include <stddef.h>
#include <stdint.h>

#include "model/dnd.h"
#include "model/gtmsm.h"

typedef struct {
  dnd *mem;                 /* keys (mapped states), values: mu, logvar (2Z), then the prior's extra */
  dnd *rev;                 /* landmarks only (else NULL): keys latent means (Z), values states (S);
                               entry i is the reverse of mem's entry i */
  float state[GTMSM_MAX_S]; /* state mean after the last observation */
  float hidden[GTMSM_MAX_H];/* the transition's own state (walking: velocity) */
  int H;                    /* its size (0: the transition has none) */
  long steps;               /* observations so far */
} gtmsm_memory;

typedef enum { GTMSM_PREDICT_MEAN, GTMSM_PREDICT_SAMPLE } gtmsm_predict_mode;

/* The smallest inference block of m (a divisor of 48; see api.c): the
 * verified blocks are measured bit for bit on the running BLAS kernels at the
 * first inference, then cached in m. */
int gtmsm_infer_rows(const gtmsm_model *m);

/* A new empty memory for m (caller frees with gtmsm_memory_free); NULL on OOM. */
gtmsm_memory *gtmsm_memory_new(const gtmsm_model *m);
void gtmsm_memory_free(gtmsm_memory *mem);

/* Observes n steps: actions (n) and frames (n, D) in [0, 1] (borrowed). The
 * first observation of a memory is at the origin state and its action is
 * ignored; each later one first moves the state by its action (with
 * landmark inference, the posterior mean: the move corrected toward the
 * states of earlier frames that match this one). Frames are
 * encoded in one batch. Returns 0, GTMSM_EINVAL (bad action), GTMSM_ENAN or
 * GTMSM_ENOMEM (the memory is then unchanged). */
int gtmsm_observe(const gtmsm_model *m, gtmsm_memory *mem, const int *actions, const float *frames,
                  int n, char *err, size_t errlen);
/* A one-frame observation (n = 1) is encoded in a batch with those of
 * concurrent calls on the same model (other memories, other threads), each at
 * its own row position, so with the bits it gets alone; a lone call is not
 * delayed. Batches and frames encoded that way so far (tests, metrics): */
void gtmsm_shared_encode_stats(long long *batches, long long *frames);
/* For tests: a batch's leader first waits this many microseconds (once) for
 * more frames to queue, so batches form however the threads are scheduled;
 * 0, the default, delays nobody. Set it while no observation runs. */
void gtmsm_shared_encode_set_gather_us(int us);

/* The same, also writing the state each observation is stored under into
 * states_out (n, S) (may be NULL): the inferred trajectory. */
int gtmsm_observe_states(const gtmsm_model *m, gtmsm_memory *mem, const int *actions, const float *frames, int n,
                         float *states_out, char *err, size_t errlen);

/* Predicts the frames after each of n actions from the memory's current state,
 * without changing the memory. frames_out (n, D) in [0, 1]; states_out (n, S)
 * may be NULL. Mean mode rolls the state means and decodes the mixture-mean
 * latent; sample mode adds transition noise, draws a mixture component by its
 * weight and a latent from it, all from seed, and decodes the mean frame of
 * that latent. With an empty memory the prior is N(0, I). With landmark
 * inference the memory also knows where moves failed (observations whose
 * view did not change although the transition moved): a predicted move of
 * the same action from within a fifth of a move of such a place stays.
 * A block of frames is decoded while the next is rolled out, on an idle
 * helper thread when there is one (model/par.h; the frames do not depend on
 * it). Returns 0, GTMSM_EINVAL or GTMSM_ENOMEM. */
int gtmsm_predict(const gtmsm_model *m, const gtmsm_memory *mem, const int *actions, int n,
                  gtmsm_predict_mode mode, uint64_t seed, float *frames_out, float *states_out,
                  char *err, size_t errlen);

/* gtmsm_predict with the frames as bytes: pix_out (n, D) holds
 * image_u8_from_float of the frames gtmsm_predict writes (the same bytes),
 * converted on the threads that decode them. */
int gtmsm_predict_u8(const gtmsm_model *m, const gtmsm_memory *mem, const int *actions, int n,
                     gtmsm_predict_mode mode, uint64_t seed, uint8_t *pix_out, float *states_out,
                     char *err, size_t errlen);

/* Serialised memory: "GTMSMMEM" u32 version u32 S i64 steps, S float32 state,
 * (version 2, transitions with their own state: u32 H, H float32), then the
 * DND's own serialisation. Version 3 (memories with a reverse index): u32 H,
 * H float32 (H may be 0), u64 length of the forward DND's serialisation, it,
 * then the reverse DND's. Models without landmarks write versions 1 and 2 as
 * before. *buf is new (caller frees). */
int gtmsm_memory_serialize(const gtmsm_memory *mem, int S, uint8_t **buf, size_t *len);
/* Rebuilds a memory for m from buf (borrowed, untrusted), checking that its
 * state and value sizes match m. A landmark model's reverse index is read
 * from version 3, or rebuilt from the entries of an older version. */
int gtmsm_memory_deserialize(const gtmsm_model *m, const uint8_t *buf, size_t len,
                             gtmsm_memory **out, char *err, size_t errlen);
/* The belief a store persists with a session, as floats: the state mean (S)
 * then the transition's own state (H; walking: Delta). BELIEF_MAX bounds it. */
#define GTMSM_BELIEF_MAX (GTMSM_MAX_S + GTMSM_MAX_H)
int gtmsm_belief_floats(const gtmsm_memory *mem, int S);
void gtmsm_belief_get(const gtmsm_memory *mem, int S, float *out);
/* Sets the belief from in (gtmsm_belief_floats) floats; GTMSM_EFORMAT if one
 * is not finite (the memory is then unchanged). */
int gtmsm_belief_set(gtmsm_memory *mem, int S, const float *in);

/* Appends one stored entry (key, value as the memory's DND holds them,
 * borrowed) to mem, and its reverse entry when mem has a reverse index: what
 * a store that persists entries calls to rebuild a memory. Returns 0 or
 * dnd_insert's codes (mem unchanged on error). */
int gtmsm_memory_insert_entry(const gtmsm_model *m, gtmsm_memory *mem, const float *key, const float *value);

/* Approximate bytes held by a memory (for cache accounting). */
size_t gtmsm_memory_bytes(const gtmsm_memory *mem);

/* Index of an action name in m's action list, or -1. */
int gtmsm_action_index(const gtmsm_model *m, const char *name);

#endif
