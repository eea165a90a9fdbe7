/* The convolutional frame VAE, on core/nn/conv: encoder
 *   x (3, H, W) -> conv 3x3 s1 -> ELU (c1, H, W) -> conv 4x4 s2 -> ELU (c2, H/2, W/2)
 *   -> linear -> (mu, raw logvar) (2Z)
 * and decoder
 *   z (Z) -> linear -> ELU (c2, H/2, W/2) -> conv-transpose 4x4 s2 -> ELU (c1, H, W)
 *   -> conv 3x3 s1 -> (C, H, W) mean or logits,
 * with c2 = 2 c1; then the decoder's per-pixel log-variance. Frames are HWC
 * outside and CHW inside. */
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm_internal.h"

#include "nn/activation.h"
#include "nn/conv.h"
#include "nn/linear.h"

#define ACT ACT_ELU
enum { EC1W, EC1B, EC2W, EC2B, EFW, EFB, DFW, DFB, DT1W, DT1B, DC2W, DC2B, LOGVAR, NT };

static int conv_specs(const gtmsm_config *c, param_spec *out) {
  int Z = c->Z, c1 = c->channels, c2 = 2 * c1, F = c2 * (c->H / 2) * (c->W / 2), C = c->C;
  int D = gtmsm_config_D(c);
  param_spec s[NT] = {
      {"enc.c1w", (size_t)c1 * C * 9, C * 9, 0},     {"enc.c1b", (size_t)c1, 0, 0},
      {"enc.c2w", (size_t)c2 * c1 * 16, c1 * 16, 0}, {"enc.c2b", (size_t)c2, 0, 0},
      {"enc.fw", (size_t)2 * Z * F, F, 0},           {"enc.fb", (size_t)2 * Z, 0, 0},
      {"dec.fw", (size_t)F * Z, Z, 0},               {"dec.fb", (size_t)F, 0, 0},
      {"dec.t1w", (size_t)c2 * c1 * 16, c2 * 4, 0},  {"dec.t1b", (size_t)c1, 0, 0},
      {"dec.c2w", (size_t)C * c1 * 9, c1 * 9, 0},    {"dec.c2b", (size_t)C, -1, 0.5f},
      {"dec.logvar", (size_t)D, -1, c->dec_logvar_init},
  };
  if (c->decoder == GTMSM_DEC_BERNOULLI) s[DC2B].init_value = 0.0f; /* output bias: logits 0 */
  memcpy(out, s, sizeof s);
  return NT;
}

typedef struct vae_conv_ws vae_conv_ws;
static void vae_conv_ws_free(void *ws);

struct vae_conv_ws {
  int N;
  float *x_chw;             /* (N, C, H, W) */
  float *a1_pre, *a1;       /* (N, c1, H, W) */
  float *a2_pre, *a2;       /* (N, c2, H2, W2) */
  float *b1_pre, *b1;       /* (N, c2, H2, W2) */
  float *b2_pre, *b2;       /* (N, c1, H, W) */
  float *out_chw;           /* (N, C, H, W) */
  float *col;               /* im2col scratch, the largest of the four layers */
  float *g1, *g2;           /* gradient scratch, (N, max(c1 H W, C H W)) each */
};

/* Activation sizes per row: (c1, H, W) and (c2, H/2, W/2). */
static void layer_sizes(const gtmsm_config *c, size_t *hw1, size_t *hw2) {
  *hw1 = (size_t)c->channels * c->H * c->W;
  *hw2 = (size_t)2 * c->channels * (c->H / 2) * (c->W / 2);
}

static void *vae_conv_ws_new(const gtmsm_config *c, int N, int train) {
  vae_conv_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  size_t hw1, hw2, n = (size_t)N, D = (size_t)gtmsm_config_D(c);
  layer_sizes(c, &hw1, &hw2);
  size_t col = conv2d_workspace_floats(N, c->C, c->H, c->W, c->channels, 3, 1, 1);
  size_t t2 = conv2d_workspace_floats(N, c->channels, c->H, c->W, 2 * c->channels, 4, 2, 1);
  size_t t3 = conv_transpose2d_workspace_floats(N, 2 * c->channels, c->H / 2, c->W / 2, c->channels, 4, 2, 1);
  size_t t4 = conv2d_workspace_floats(N, c->channels, c->H, c->W, c->C, 3, 1, 1);
  if (t2 > col) col = t2;
  if (t3 > col) col = t3;
  if (t4 > col) col = t4;
  size_t g = hw1 > D ? hw1 : D;
  if (hw2 > g) g = hw2;
  struct {
    float **p;
    size_t n;
  } bufs[] = {{&ws->x_chw, n * D},   {&ws->a1_pre, n * hw1}, {&ws->a1, n * hw1}, {&ws->a2_pre, n * hw2},
              {&ws->a2, n * hw2},    {&ws->b1_pre, n * hw2}, {&ws->b1, n * hw2}, {&ws->b2_pre, n * hw1},
              {&ws->b2, n * hw1},    {&ws->out_chw, n * D},  {&ws->col, col},    {&ws->g1, train ? n * g : 1},
              {&ws->g2, train ? n * g : 1}};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
    *bufs[i].p = malloc(sizeof(float) * (bufs[i].n ? bufs[i].n : 1));
    if (!*bufs[i].p) {
      vae_conv_ws_free(ws);
      return NULL;
    }
  }
  ws->N = N;
  return ws;
}

static void vae_conv_ws_free(void *p) {
  vae_conv_ws *ws = p;
  if (!ws) return;
  float *all[] = {ws->x_chw, ws->a1_pre, ws->a1, ws->a2_pre, ws->a2, ws->b1_pre, ws->b1,
                  ws->b2_pre, ws->b2, ws->out_chw, ws->col, ws->g1, ws->g2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(ws);
}

#define T(i) gtmsm_tensor(m, GTMSM_ROLE_VAE, (i), w)
#define G(i) gtmsm_tensor(m, GTMSM_ROLE_VAE, (i), grad)

/* (N, H, W, C) <-> (N, C, H, W) */
static void hwc_to_chw(float *out, const float *in, int N, int H, int W, int C) {
  for (int n = 0; n < N; n++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < C; c++)
          out[(((size_t)n * C + c) * H + y) * W + x] = in[(((size_t)n * H + y) * W + x) * C + c];
}

static void chw_to_hwc(float *out, const float *in, int N, int H, int W, int C) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
          out[(((size_t)n * H + y) * W + x) * C + c] = in[(((size_t)n * C + c) * H + y) * W + x];
}

/* 1 when both convolutions of the encoder (and both of the decoder: the same
 * grids, H x W and H/2 x W/2) compute every image on its own. */
static int convs_per_image(const gtmsm_config *c) {
  return conv_images_independent(c->H * c->W) && conv_images_independent((c->H / 2) * (c->W / 2));
}

/* The convolutions over images r0 .. r0 + n - 1 only when both compute
 * every image on its own (convs_per_image; the other rows of their
 * output are zeroed), else over all N; the linear layer over all N rows (its
 * GEMM's rows share tiles; a row's result does not depend on the others'
 * values). */
static void conv_encode_rows(const gtmsm_model *m, void *p, const float *x, int N, int r0, int n, float *eo) {
  vae_conv_ws *ws = p;
  const float *w = m->p.data;
  const gtmsm_config *c = &m->cfg;
  int c1 = c->channels, c2 = 2 * c1, H = c->H, W = c->W, Z = c->Z;
  size_t hw1, hw2, D = (size_t)H * W * c->C;
  layer_sizes(c, &hw1, &hw2);
  if (!convs_per_image(c)) r0 = 0, n = N;
  hwc_to_chw(ws->x_chw + r0 * D, x + r0 * D, n, H, W, c->C);
  conv2d_forward(ws->a1_pre + r0 * hw1, ws->col, ws->x_chw + r0 * D, T(EC1W), T(EC1B), n, c->C, H, W, c1, 3, 1, 1);
  act_forward(ws->a1 + r0 * hw1, ws->a1_pre + r0 * hw1, (size_t)n * hw1, ACT, 1.0f);
  conv2d_forward(ws->a2_pre + r0 * hw2, ws->col, ws->a1 + r0 * hw1, T(EC2W), T(EC2B), n, c1, H, W, c2, 4, 2, 1);
  act_forward(ws->a2 + r0 * hw2, ws->a2_pre + r0 * hw2, (size_t)n * hw2, ACT, 1.0f);
  memset(ws->a2, 0, sizeof(float) * (size_t)r0 * hw2);
  memset(ws->a2 + (size_t)(r0 + n) * hw2, 0, sizeof(float) * (size_t)(N - r0 - n) * hw2);
  linear_forward(eo, ws->a2, T(EFW), T(EFB), N, (int)hw2, 2 * Z);
}

static void vae_conv_encode(const gtmsm_model *m, void *p, const float *x, int N, float *eo) {
  conv_encode_rows(m, p, x, N, 0, N, eo);
}

static void vae_conv_encode_backward(const gtmsm_model *m, void *p, const float *x, int N,
                                     const float *d_eo, float *grad) {
  vae_conv_ws *ws = p;
  const gtmsm_config *c = &m->cfg;
  const float *w = m->p.data;
  (void)x; /* kept in CHW order by the forward */
  int c1 = c->channels, c2 = 2 * c1, H = c->H, W = c->W, Z = c->Z;
  size_t hw1, hw2;
  layer_sizes(c, &hw1, &hw2);
  memset(ws->g1, 0, sizeof(float) * (size_t)N * hw2);
  linear_backward(ws->g1, G(EFW), G(EFB), d_eo, ws->a2, T(EFW),
                  N, (int)hw2, 2 * Z);
  memset(ws->g2, 0, sizeof(float) * (size_t)N * hw2);
  act_backward(ws->g2, ws->g1, ws->a2_pre, ws->a2, (size_t)N * hw2, ACT, 1.0f);
  memset(ws->g1, 0, sizeof(float) * (size_t)N * hw1);
  conv2d_backward(ws->g1, G(EC2W), G(EC2B), ws->col, ws->g2, ws->a1,
                  T(EC2W), N, c1, H, W, c2, 4, 2, 1);
  memset(ws->g2, 0, sizeof(float) * (size_t)N * hw1);
  act_backward(ws->g2, ws->g1, ws->a1_pre, ws->a1, (size_t)N * hw1, ACT, 1.0f);
  conv2d_backward(NULL, G(EC1W), G(EC1B), ws->col, ws->g2,
                  ws->x_chw, T(EC1W), N, c->C, H, W, c1, 3, 1, 1);
}

/* The decoder after its linear layer for B images whose linear outputs are
 * h (B, c2 H/2 W/2); xm gets the first n of them (n <= B). Every image on
 * its own where convs_per_image says so (then any B gives each image the
 * same bits). */
static void conv_decode_after_linear(const gtmsm_model *m, vae_conv_ws *ws, const float *h, int B, int n, float *xm) {
  const float *w = m->p.data;
  const gtmsm_config *c = &m->cfg;
  int c1 = c->channels, c2 = 2 * c1, H = c->H, W = c->W;
  size_t hw1, hw2;
  layer_sizes(c, &hw1, &hw2);
  act_forward(ws->b1, h, (size_t)B * hw2, ACT, 1.0f);
  conv_transpose2d_forward(ws->b2_pre, ws->col, ws->b1, T(DT1W), T(DT1B), B, c2, H / 2, W / 2, c1, 4, 2, 1);
  act_forward(ws->b2, ws->b2_pre, (size_t)B * hw1, ACT, 1.0f);
  conv2d_forward(ws->out_chw, ws->col, ws->b2, T(DC2W), T(DC2B), B, c1, H, W, c->C, 3, 1, 1);
  chw_to_hwc(xm, ws->out_chw, n, H, W, c->C);
}

/* The linear layer over all N rows (its GEMM's rows share tiles), the rest
 * over the first n images only when both convolutions compute every image on
 * its own (convs_per_image), else over all N. xm gets n images. */
static void conv_decode_first(const gtmsm_model *m, void *p, const float *z, int N, int n, float *xm) {
  vae_conv_ws *ws = p;
  const float *w = m->p.data;
  const gtmsm_config *c = &m->cfg;
  size_t hw1, hw2;
  layer_sizes(c, &hw1, &hw2);
  linear_forward(ws->b1_pre, z, T(DFW), T(DFB), N, c->Z, (int)hw2);
  conv_decode_after_linear(m, ws, ws->b1_pre, convs_per_image(c) ? n : N, n, xm);
}

/* decode_first in two steps where the images are decoded on their own past
 * the linear layer (convs_per_image; else head_floats is 0 and neither
 * runs): the head, the linear layer over the N rows of z into h (N,
 * head_floats); the tail, images from their rows of h. */
static size_t conv_head_floats(const gtmsm_config *c) {
  size_t hw1, hw2;
  layer_sizes(c, &hw1, &hw2);
  return convs_per_image(c) ? hw2 : 0;
}

static void conv_decode_head(const gtmsm_model *m, void *p, const float *z, int N, float *h) {
  (void)p;
  const float *w = m->p.data;
  linear_forward(h, z, T(DFW), T(DFB), N, m->cfg.Z, (int)conv_head_floats(&m->cfg));
}

static void conv_decode_tail(const gtmsm_model *m, void *p, const float *h, int n, float *xm) {
  conv_decode_after_linear(m, p, h, n, n, xm);
}

static void vae_conv_decode(const gtmsm_model *m, void *p, const float *z, int N, float *xm) {
  conv_decode_first(m, p, z, N, N, xm);
}

static void vae_conv_decode_backward(const gtmsm_model *m, void *p, const float *z, int N,
                                     const float *d_xm, float *dz, float *grad) {
  vae_conv_ws *ws = p;
  const gtmsm_config *c = &m->cfg;
  const float *w = m->p.data;
  int c1 = c->channels, c2 = 2 * c1, H = c->H, W = c->W, Z = c->Z;
  size_t hw1, hw2;
  layer_sizes(c, &hw1, &hw2);
  hwc_to_chw(ws->g2, d_xm, N, H, W, c->C); /* d out_chw */
  memset(ws->g1, 0, sizeof(float) * (size_t)N * hw1);
  conv2d_backward(ws->g1, G(DC2W), G(DC2B), ws->col, ws->g2, ws->b2,
                  T(DC2W), N, c1, H, W, c->C, 3, 1, 1);
  memset(ws->g2, 0, sizeof(float) * (size_t)N * hw1);
  act_backward(ws->g2, ws->g1, ws->b2_pre, ws->b2, (size_t)N * hw1, ACT, 1.0f);
  memset(ws->g1, 0, sizeof(float) * (size_t)N * hw2);
  conv_transpose2d_backward(ws->g1, G(DT1W), G(DT1B), ws->col, ws->g2,
                            ws->b1, T(DT1W), N, c2, H / 2, W / 2, c1, 4, 2, 1);
  memset(ws->g2, 0, sizeof(float) * (size_t)N * hw2);
  act_backward(ws->g2, ws->g1, ws->b1_pre, ws->b1, (size_t)N * hw2, ACT, 1.0f);
  linear_backward(dz, G(DFW), G(DFB), ws->g2, z, T(DFW), N, Z,
                  (int)hw2);
}

const struct gtmsm_vae_ops gtmsm_vae_conv = {"conv", conv_specs, vae_conv_ws_new, vae_conv_ws_free,
                                             vae_conv_encode, vae_conv_encode_backward,
                                             vae_conv_decode, vae_conv_decode_backward,
                                             conv_decode_first, conv_encode_rows,
                                             conv_head_floats, conv_decode_head, conv_decode_tail,
                                             NULL, NULL, NULL};
