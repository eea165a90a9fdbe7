/* The gated 2-D transition (paper eq. 4): s' = s + g(s + B a) B a, with g a
 * small MLP (tanh, tanh, sigmoid) that sees the position the move would lead
 * to and learns to cancel moves into walls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm_internal.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/vecmath.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define GATE_BIAS_INIT 3.0f /* gate starts open: sigmoid(3) = 0.95 */
/* The gate sees the projected position times this: learned states span about
 * +-10 units, and unscaled inputs would saturate its tanh units from the start. */
#define GATE_IN 0.25f
enum { B, W1, B1, W2, B2, W3, B3, NT };

static int gated_specs(const gtmsm_config *c, param_spec *out) {
  int G = c->gate_hidden, S = c->S;
  param_spec s[NT] = {
      {"ssm.B", (size_t)c->A * S, 1, 0},
      {"gate.w1", (size_t)G * S, S, 0},       {"gate.b1", (size_t)G, 0, 0},
      {"gate.w2", (size_t)G * G, G, 0},       {"gate.b2", (size_t)G, 0, 0},
      {"gate.w3", (size_t)G, G, 0},           {"gate.b3", 1, -1, GATE_BIAS_INIT},
  };
  memcpy(out, s, sizeof s);
  return NT;
}

/* Displacements start as one random unit-ish vector per action, so the states
 * of a random walk spread out from the first update on. */
static void gated_init(gtmsm_model *m, uint64_t seed) {
  float *Bm = gtmsm_tensor(m, GTMSM_ROLE_TRANS, B, m->p.data);
  rng_t r;
  rng_init(&r, seed, 77);
  for (int i = 0; i < m->cfg.A * m->cfg.S; i++) Bm[i] = rng_normal(&r) * 0.7f;
}

static int gated_hidden(const gtmsm_config *c) {
  (void)c;
  return 0;
}

typedef struct {
  float *p, *gjac;                      /* (N, S): gate input, d gate / d (s + u) */
  float *g, *dg;                        /* (N): gate, its sigmoid' */
  float *gh1_pre, *gh1, *gh2_pre, *gh2; /* (N, G) */
  float *d_go;                          /* (N) */
  float *d_gh1, *d_gh2;                 /* (N, G) */
  float *dg_ext;                        /* (N) extra d loss / d g_t (gate_grad) */
  int N, dg_on;
} gated_ws;

static void gated_ws_free(void *p) {
  gated_ws *ws = p;
  if (!ws) return;
  float *all[] = {ws->p,   ws->gjac,    ws->g,   ws->dg,   ws->gh1_pre, ws->gh1,
                  ws->gh2_pre, ws->gh2, ws->d_go, ws->d_gh1, ws->d_gh2, ws->dg_ext};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(ws);
}

static void *gated_ws_new(const gtmsm_config *c, int N) {
  gated_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  size_t n = (size_t)N, S = (size_t)c->S, G = (size_t)c->gate_hidden;
  struct {
    float **p;
    size_t n;
  } bufs[] = {{&ws->p, n * S},   {&ws->gjac, n * S},    {&ws->g, n},       {&ws->dg, n},
              {&ws->gh1_pre, n * G}, {&ws->gh1, n * G}, {&ws->gh2_pre, n * G}, {&ws->gh2, n * G},
              {&ws->d_go, n},    {&ws->d_gh1, n * G},   {&ws->d_gh2, n * G}, {&ws->dg_ext, n}};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (!(*bufs[i].p = calloc(bufs[i].n ? bufs[i].n : 1, sizeof(float)))) {
      gated_ws_free(ws);
      return NULL;
    }
  ws->N = N;
  return ws;
}

#define T(i) gtmsm_tensor(m, GTMSM_ROLE_TRANS, (i), m->p.data)

/* out[r] = b[r] + sum_j w[r][j] x[j] for the rows of whole groups of 16
 * (w (G, G) row-major); returns the rows done. Sixteen rows at a time as
 * four SSE vectors of four rows, their four sums in flight, each step of j
 * transposing a 4 x 4 block of w so that a vector holds one column. */
static int gate_matvec16(float *out, const float *w, const float *b, const float *x, int G) {
  int r = 0;
#if defined(__SSE2__)
  for (; r + 16 <= G; r += 16) {
    __m128 acc[4];
    for (int q = 0; q < 4; q++) acc[q] = _mm_loadu_ps(b + r + 4 * q);
    int j = 0;
    for (; j + 4 <= G; j += 4) {
      const __m128 x0 = _mm_set1_ps(x[j]), x1 = _mm_set1_ps(x[j + 1]), x2 = _mm_set1_ps(x[j + 2]),
                   x3 = _mm_set1_ps(x[j + 3]);
      for (int q = 0; q < 4; q++) {
        const float *wr = w + (size_t)(r + 4 * q) * G + j;
        __m128 c0 = _mm_loadu_ps(wr), c1 = _mm_loadu_ps(wr + G), c2 = _mm_loadu_ps(wr + 2 * G),
               c3 = _mm_loadu_ps(wr + 3 * G);
        _MM_TRANSPOSE4_PS(c0, c1, c2, c3); /* c0: column j of the four rows, ... */
        acc[q] = _mm_add_ps(acc[q], _mm_mul_ps(c0, x0));
        acc[q] = _mm_add_ps(acc[q], _mm_mul_ps(c1, x1));
        acc[q] = _mm_add_ps(acc[q], _mm_mul_ps(c2, x2));
        acc[q] = _mm_add_ps(acc[q], _mm_mul_ps(c3, x3));
      }
    }
    for (; j < G; j++)
      for (int q = 0; q < 4; q++) {
        const float *wc = w + (size_t)(r + 4 * q) * G + j;
        acc[q] = _mm_add_ps(acc[q], _mm_mul_ps(_mm_set_ps(wc[3 * G], wc[2 * G], wc[G], wc[0]), _mm_set1_ps(x[j])));
      }
    for (int q = 0; q < 4; q++) _mm_storeu_ps(out + r + 4 * q, acc[q]);
  }
#else
  (void)out, (void)w, (void)b, (void)x, (void)G;
#endif
  return r;
}

/* Gate at input x = GATE_IN * (projected position) (S): fills hidden
 * activations h1_pre, h1, h2_pre, h2 (G) and, when jac is given, d gate / d x
 * (S) and *dg, the sigmoid's derivative at the gate's input. Returns the gate
 * in (0, 1). The derivatives of tanh and sigmoid are taken from their inputs
 * (1 - h^2 and g (1 - g) cancel where they saturate). */
static float gate_forward(const gtmsm_model *m, const float *p, float *h1_pre, float *h1,
                          float *h2_pre, float *h2, float *jac, float *dg) {
  int S = m->cfg.S, G = m->cfg.gate_hidden;
  const float *w1 = T(W1), *w2 = T(W2), *b2 = T(B2), *w3 = T(W3), *b3 = T(B3);
  linear_forward(h1_pre, p, w1, T(B1), 1, S, G);
  act_forward(h1, h1_pre, (size_t)G, ACT_TANH, 0);
  /* G x G matvec by hand: sgemm's overhead dominates at this size. Each row
   * is summed from b2[i] in j order, one rounded multiply and one rounded add
   * per term, whichever loop runs it (same bits). */
  int r = gate_matvec16(h2_pre, w2, b2, h1, G);
  for (; r + 8 <= G; r += 8) { /* eight sums in flight instead of one chain */
    float acc[8];
    for (int k = 0; k < 8; k++) acc[k] = b2[r + k];
    for (int j = 0; j < G; j++)
      for (int k = 0; k < 8; k++) acc[k] += w2[(size_t)(r + k) * G + j] * h1[j];
    for (int k = 0; k < 8; k++) h2_pre[r + k] = acc[k];
  }
  for (; r < G; r++) {
    float acc = b2[r];
    const float *wr = w2 + (size_t)r * G;
    for (int j = 0; j < G; j++) acc += wr[j] * h1[j];
    h2_pre[r] = acc;
  }
  vm_tanh(h2, h2_pre, (size_t)G);
  float o = b3[0];
  for (int j = 0; j < G; j++) o += w3[j] * h2[j];
  float g = vm_sigmoidf(o);
  if (jac) {
    float dh2[GTMSM_MAX_GATE], dh1[GTMSM_MAX_GATE], s1[GTMSM_MAX_GATE], s2[GTMSM_MAX_GATE];
    float dgo = vm_dsigmoidf(o);
    *dg = dgo;
    vm_sech2(s1, h1_pre, (size_t)G);
    vm_sech2(s2, h2_pre, (size_t)G);
    for (int j = 0; j < G; j++) dh2[j] = dgo * w3[j] * s2[j];
    for (int j = 0; j < G; j++) dh1[j] = 0;
    for (int i = 0; i < G; i++) {
      const float *wr = w2 + (size_t)i * G;
      for (int j = 0; j < G; j++) dh1[j] += wr[j] * dh2[i];
    }
    for (int j = 0; j < G; j++) dh1[j] *= s1[j];
    for (int k = 0; k < S; k++) {
      float acc = 0;
      for (int j = 0; j < G; j++) acc += w1[(size_t)j * S + k] * dh1[j];
      jac[k] = acc;
    }
  }
  return g;
}

static void gated_step(const gtmsm_model *m, const float *s, const float *h, int a, float *s_next,
                       float *h_next, void *p, int t) {
  (void)h;
  (void)h_next;
  gated_ws *ws = p;
  const int S = m->cfg.S, G = m->cfg.gate_hidden;
  const float *u = T(B) + (size_t)a * S;
  float xl[GTMSM_MAX_S], hl[4][GTMSM_MAX_GATE];
  float *x = ws ? ws->p + (size_t)t * S : xl, *jac = ws ? ws->gjac + (size_t)t * S : NULL;
  for (int k = 0; k < S; k++) x[k] = GATE_IN * (s[k] + u[k]);
  float g = ws ? gate_forward(m, x, ws->gh1_pre + (size_t)t * G, ws->gh1 + (size_t)t * G,
                              ws->gh2_pre + (size_t)t * G, ws->gh2 + (size_t)t * G, jac, ws->dg + t)
               : gate_forward(m, x, hl[0], hl[1], hl[2], hl[3], NULL, NULL);
  if (ws) {
    for (int k = 0; k < S; k++) jac[k] *= GATE_IN; /* d gate / d (s_{t-1} + u_t) */
    ws->g[t] = g;
  }
  for (int k = 0; k < S; k++) s_next[k] = s[k] + g * u[k];
}

/* Step t of s_t = s_{t-1} + g(s_{t-1} + u_t) u_t backwards: ds (S) -> dsp (S). */
static void gated_step_backward(const gtmsm_model *m, void *p, int t, int a, const float *ds, float *dsp,
                                float *grad) {
  gated_ws *ws = p;
  const int S = m->cfg.S;
  const float *u = T(B) + (size_t)a * S, *jac = ws->gjac + (size_t)t * S;
  float *dB = gtmsm_tensor(m, GTMSM_ROLE_TRANS, B, grad);
  float g = ws->g[t], dsu = 0;
  for (int k = 0; k < S; k++) dsu += ds[k] * u[k];
  if (ws->dg_on) dsu += ws->dg_ext[t]; /* d loss / d g_t from outside (regression) */
  for (int k = 0; k < S; k++) {
    dsp[k] += ds[k] + dsu * jac[k];
    dB[(size_t)a * S + k] += g * ds[k] + dsu * jac[k];
  }
  ws->d_go[t] = dsu * ws->dg[t]; /* through the sigmoid */
}

/* The gate parameters, batched over steps 1..N-1 (after every step's backward). */
static void gated_backward_finish(const gtmsm_model *m, void *p, int N, float *grad) {
  gated_ws *ws = p;
  const int S = m->cfg.S, G = m->cfg.gate_hidden;
  const float *w3 = T(W3);
  ws->dg_on = 0;
  int n1 = N - 1;
  const float *gh2 = ws->gh2 + G, *gh1 = ws->gh1 + G, *pin = ws->p + S;
  float *dgw3 = gtmsm_tensor(m, GTMSM_ROLE_TRANS, W3, grad), *dgb3 = gtmsm_tensor(m, GTMSM_ROLE_TRANS, B3, grad);
  memset(ws->d_gh2, 0, (size_t)N * G * sizeof(float));
  for (int t = 1; t < N; t++) {
    float dgo = ws->d_go[t];
    dgb3[0] += dgo;
    for (int j = 0; j < G; j++) {
      dgw3[j] += dgo * ws->gh2[(size_t)t * G + j];
      ws->d_gh2[(size_t)t * G + j] = dgo * w3[j];
    }
  }
  memset(ws->d_gh1, 0, (size_t)N * G * sizeof(float));
  act_backward(ws->d_gh1 + G, ws->d_gh2 + G, ws->gh2_pre + G, gh2, (size_t)n1 * G, ACT_TANH, 0);
  memset(ws->d_gh2, 0, (size_t)N * G * sizeof(float));
  linear_backward(ws->d_gh2 + G, gtmsm_tensor(m, GTMSM_ROLE_TRANS, W2, grad),
                  gtmsm_tensor(m, GTMSM_ROLE_TRANS, B2, grad), ws->d_gh1 + G, gh1, T(W2), n1, G, G);
  memset(ws->d_gh1, 0, (size_t)N * G * sizeof(float));
  act_backward(ws->d_gh1 + G, ws->d_gh2 + G, ws->gh1_pre + G, gh1, (size_t)n1 * G, ACT_TANH, 0);
  linear_backward(NULL, gtmsm_tensor(m, GTMSM_ROLE_TRANS, W1, grad), gtmsm_tensor(m, GTMSM_ROLE_TRANS, B1, grad),
                  ws->d_gh1 + G, pin, T(W1), n1, S, G);
}

static void gated_backward(const gtmsm_model *m, void *p, const int *actions, int N, const float *s,
                           float *d_s, float *dh, float *grad) {
  (void)s;
  (void)dh;
  const int S = m->cfg.S;
  /* states, backwards in time */
  for (int t = N - 1; t >= 1; t--)
    gated_step_backward(m, p, t, actions[t], d_s + (size_t)t * S, d_s + (size_t)(t - 1) * S, grad);
  gated_backward_finish(m, p, N, grad);
}

static float gated_gate(const void *p, int t) { return ((const gated_ws *)p)->g[t]; }

static void gated_gate_grad(void *p, int N, const float *dg) {
  gated_ws *ws = p;
  memcpy(ws->dg_ext, dg, sizeof(float) * (size_t)N);
  ws->dg_on = 1;
}

const struct gtmsm_trans_ops gtmsm_trans_gated2d = {"gated2d", gated_specs, gated_init, gated_hidden,
                                                    gated_ws_new, gated_ws_free, gated_step,
                                                    gated_backward, gated_step_backward,
                                                    gated_backward_finish, gated_gate, gated_gate_grad};
