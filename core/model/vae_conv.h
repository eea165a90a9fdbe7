/* The convolutional VAE variant (internal to core/model): encoder
 *   x (3, H, W) -> conv 3x3 s1 -> ELU (c1, H, W) -> conv 4x4 s2 -> ELU (c2, H/2, W/2)
 *   -> linear -> (mu, raw logvar) (2Z)
 * and decoder
 *   z (Z) -> linear -> ELU (c2, H/2, W/2) -> conv-transpose 4x4 s2 -> ELU (c1, H, W)
 *   -> conv 3x3 s1 -> (C, H, W) mean or logits,
 * with c2 = 2 c1. Frames are HWC outside and CHW inside. */
#ifndef GTMSM_MODEL_VAE_CONV_H
#define GTMSM_MODEL_VAE_CONV_H

#include "model/gtmsm.h"

typedef struct vae_conv_ws vae_conv_ws;

/* Workspace for up to N rows; train adds the gradient buffers. NULL on OOM. */
vae_conv_ws *vae_conv_ws_new(const gtmsm_config *c, int N, int train);
void vae_conv_ws_free(vae_conv_ws *ws);

/* eo (N, 2Z) from frames x (N, H, W, C). */
void vae_conv_encode(const gtmsm_model *m, vae_conv_ws *ws, const float *x, int N, float *eo);
/* From d_eo (N, 2Z) accumulates the encoder's parameter gradients into grad. */
void vae_conv_encode_backward(const gtmsm_model *m, vae_conv_ws *ws, int N, const float *d_eo,
                              float *grad);
/* xm (N, H, W, C) from z (N, Z). */
void vae_conv_decode(const gtmsm_model *m, vae_conv_ws *ws, const float *z, int N, float *xm);
/* From d_xm (N, H, W, C) accumulates dz (N, Z) and the decoder's parameter gradients. */
void vae_conv_decode_backward(const gtmsm_model *m, vae_conv_ws *ws, const float *z, int N,
                              const float *d_xm, float *dz, float *grad);

#endif
