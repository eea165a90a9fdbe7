/* Throughput of the nn layers at the sizes GTMSM trains with: linear layers on
 * a batch of 16 sequences x 288 steps = 4608 frames (8x8x3 = 192 inputs), and
 * convolutions on 32x32x3 images: the stride-2 stack of issue 2 and the four
 * layers core/model/vae_conv.c runs (3x3 stride 1 and 4x4 stride 2, 32 and 64
 * channels). Each layer's forward + backward (din, dw, db) is timed and set
 * against raw cblas_sgemm calls of the same GEMM shapes timed in the same run,
 * so `ratio = ours / sgemm` is the share of GEMM speed the layer keeps after
 * bias, im2col/col2im and copies.
 *
 *   bench_nn [--threads N] [--conv-batch B]
 *
 * Then the elementwise activations the model runs (ELU, tanh, sigmoid,
 * softplus, exp), forward + backward on one sequence's hidden layer (288 x 256
 * values): the scalar libm code they replaced (kept below as the reference,
 * as it was in core/nn/activation.c) against nn/vecmath on its generic path
 * and on its AVX2 path, in the same run, as ns per element and ratios.
 *
 *   bench_nn [--threads N] [--conv-batch B] [--only TEXT] [--act-only]
 *
 * --only TEXT runs only the conv rows whose layer name or shape contains TEXT
 * (e.g. "3x32x32 -> 32x16x16"): no linear rows, no activations (for profiling).
 *
 * Prints markdown tables. Timing: a sample is one warm call repeated for at
 * least SAMPLE_SECONDS, as seconds per call; ours and the reference(s) are
 * sampled round-robin, at least MIN_SAMPLES rounds and MIN_TOTAL seconds, and
 * the fastest sample of each is kept. With one OpenBLAS thread (how every
 * GTMSM program runs it) all the work is in the calling thread, and the clock
 * is that thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a machine shared
 * with other work, time spent descheduled then counts for neither side. With
 * more threads it is wall time (CLOCK_MONOTONIC). Both sides get the same
 * clock and the same treatment. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <math.h>

#include "nn/activation.h"
#include "nn/blas_core.h"
#include "nn/conv.h"
#include "nn/linear.h"
#include "nn/rng.h"
#include "nn/vecmath.h"

#define SAMPLE_SECONDS 0.05
#define MIN_SAMPLES 7
#define MIN_TOTAL 1.5

static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void) {
  struct timespec ts;
  clock_gettime(bench_clock, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef void (*bench_fn)(void *ctx);

/* Seconds per call of fn(ctx) over calls repeated for at least SAMPLE_SECONDS. */
static double sample(bench_fn fn, void *ctx) {
  int reps = 0;
  double t0 = now(), t;
  do {
    fn(ctx);
    reps++;
    t = now() - t0;
  } while (t < SAMPLE_SECONDS);
  return t / reps;
}

/* t[i] = fastest sample of fns[i](ctxs[i]), i < n, sampled round-robin after
 * one warm-up call each (page faults, thread start). */
static void time_fns(double *t, bench_fn *fns, void **ctxs, int n) {
  for (int i = 0; i < n; i++) fns[i](ctxs[i]), t[i] = 1e30;
  double t0 = now();
  for (int round = 0; round < MIN_SAMPLES || now() - t0 < MIN_TOTAL; round++)
    for (int i = 0; i < n; i++) {
      double x = sample(fns[i], ctxs[i]);
      if (x < t[i]) t[i] = x;
    }
}

static float *alloc_random(size_t n, uint64_t seed) {
  float *p = malloc(n * sizeof(float));
  if (!p) {
    fprintf(stderr, "bench_nn: out of memory (%zu floats)\n", n);
    exit(1);
  }
  rng_t r;
  rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) p[i] = 0.1f * (2.0f * rng_uniform(&r) - 1.0f);
  return p;
}

/* One table row; extra, when not NULL, is one more column. */
static void print_row(const char *layer, const char *shape, int shape_width, int B, double flops,
                      double t_ours, double t_gemm, const char *extra) {
  printf("| %-22s | %-*s | %5d | %8.2f | %7.1f | %7.1f | %5.2f |", layer, shape_width, shape, B,
         1e3 * t_ours, flops / t_ours * 1e-9, flops / t_gemm * 1e-9, t_gemm / t_ours);
  if (extra) printf(" %s |", extra);
  printf("\n");
}

/* ---- linear ---- */

typedef struct {
  int B, IN, OUT;
  float *in, *w, *b, *out, *dout, *din, *dw, *db; // (B, IN) (OUT, IN) (OUT) (B, OUT) (B, OUT) ...
} lin_bench;

static void lin_ours(void *p) {
  lin_bench *l = p;
  linear_forward(l->out, l->in, l->w, l->b, l->B, l->IN, l->OUT);
  linear_backward(l->din, l->dw, l->db, l->dout, l->in, l->w, l->B, l->IN, l->OUT);
}

/* The three GEMMs linear forward + backward issue, without bias or its gradient. */
static void lin_gemm(void *p) {
  lin_bench *l = p;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->B, l->OUT, l->IN, 1.0f, l->in, l->IN,
              l->w, l->IN, 0.0f, l->out, l->OUT);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->B, l->IN, l->OUT, 1.0f, l->dout,
              l->OUT, l->w, l->IN, 1.0f, l->din, l->IN);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->OUT, l->IN, l->B, 1.0f, l->dout, l->OUT,
              l->in, l->IN, 1.0f, l->dw, l->IN);
}

static void bench_linear(int B, int IN, int OUT) {
  lin_bench l = {.B = B, .IN = IN, .OUT = OUT};
  size_t nin = (size_t)B * IN, nout = (size_t)B * OUT, nw = (size_t)OUT * IN;
  l.in = alloc_random(nin, 1), l.w = alloc_random(nw, 2), l.b = alloc_random((size_t)OUT, 3);
  l.out = alloc_random(nout, 4), l.dout = alloc_random(nout, 5), l.din = alloc_random(nin, 6);
  l.dw = alloc_random(nw, 7), l.db = alloc_random((size_t)OUT, 8);
  double t[2];
  bench_fn fns[2] = {lin_ours, lin_gemm};
  void *ctxs[2] = {&l, &l};
  time_fns(t, fns, ctxs, 2);
  double t_ours = t[0], t_gemm = t[1];
  char shape[64];
  snprintf(shape, sizeof shape, "%d -> %d", IN, OUT);
  print_row("linear fwd+bwd", shape, 26, B, 6.0 * B * IN * OUT, t_ours, t_gemm, NULL);
  free(l.in), free(l.w), free(l.b), free(l.out), free(l.dout), free(l.din), free(l.dw), free(l.db);
}

/* ---- conv and transposed conv ---- */

/* The reference is the three GEMMs of an ideal im2col implementation (see
 * conv_gemm), on cache-hot buffers, in the fastest of several ways to run
 * them, none of which depends on what conv.c does, so it cannot be tuned to
 * flatter the layer: one image per GEMM or chunks of at least 512 or 2048
 * columns (sgemm's speed depends a little on the width), each with the
 * overwriting GEMMs as beta = 0 or as memset + beta = 1.
 *
 * conv.c issues these shapes, with one exception: a stride-1 conv with
 * OC <= IC computes din as a GEMM (IC, H*W, OC*K*K) on im2col(dout) instead
 * of (IC*K*K, OH*OW, OC) plus col2im; for the "same"-padded layers here
 * (3x3, pad 1) that is the same flop count, and the reference keeps the
 * im2col shape and the GFLOP/s count the im2col flops. */
static const int REF_COLS[] = {1, 512, 2048};
#define N_REF (sizeof REF_COLS / sizeof *REF_COLS)

typedef struct {
  int transposed, B, IC, H, W, OC, K, stride, pad;
  int OH, OW;
  float *in, *w, *b, *out, *dout, *din, *dw, *db, *ws;
  /* reference GEMMs on plain buffers, per chunk of G images (see conv_gemm) */
  int G, gm, gn, gk;                  // forward GEMM (gm, G*gn, gk)
  int zero; // overwriting GEMMs as memset + beta = 1 instead of beta = 0 (see conv_gemm)
  float *ga, *gb, *gc, *gd, *ge, *gf; // (gm, gk) (gk, G gn) (gm, G gn) (gm, G gn) (gm, gk) (gk, G gn)
} conv_bench;

static void conv_ours(void *p) {
  conv_bench *c = p;
  if (c->transposed) {
    conv_transpose2d_forward(c->out, c->ws, c->in, c->w, c->b, c->B, c->IC, c->H, c->W, c->OC, c->K,
                             c->stride, c->pad);
    conv_transpose2d_backward(c->din, c->dw, c->db, c->ws, c->dout, c->in, c->w, c->B, c->IC, c->H,
                              c->W, c->OC, c->K, c->stride, c->pad);
  } else {
    conv2d_forward(c->out, c->ws, c->in, c->w, c->b, c->B, c->IC, c->H, c->W, c->OC, c->K,
                   c->stride, c->pad);
    conv2d_backward(c->din, c->dw, c->db, c->ws, c->dout, c->in, c->w, c->B, c->IC, c->H, c->W,
                    c->OC, c->K, c->stride, c->pad);
  }
}

/* The three GEMMs an im2col implementation runs per chunk of G images, as
 * (rows, cols, inner), with M x K the weight matrix as the GEMM sees it (conv:
 * OC x IC*K*K; transposed: OC*K*K x IC) and N = G * grid pixels:
 *   forward (M, N, K),  weight gradient (M, K, N),  input-side gradient (K, N, M).
 * They run here on plain buffers that stay cache-hot from chunk to chunk
 * (the layers stream through the batch), without bias, im2col or col2im;
 * inputs stay fixed and gradients accumulate, as in the layers, so no value
 * grows from one repeat to the next. The two GEMMs that overwrite their
 * output run either with beta = 0 or, when c->zero, as memset + beta = 1,
 * which conv.c does because OpenBLAS's own beta = 0 pass is slow; the
 * reference is the faster of the two, so the layer gets no credit for it. */
static void conv_gemm(void *p) {
  conv_bench *c = p;
  int M = c->gm, K = c->gk;
  float beta = c->zero ? 1.0f : 0.0f;
  for (int b0 = 0; b0 < c->B; b0 += c->G) {
    int g = c->B - b0 < c->G ? c->B - b0 : c->G, N = g * c->gn;
    if (c->zero) memset(c->gc, 0, (size_t)M * N * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, c->ga, K, c->gb, N, beta,
                c->gc, N); // forward: (M, K) @ (K, N)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, c->gd, N, c->gb, N, 1.0f,
                c->ge, K); // weight gradient: (M, N) @ (N, K)
    if (c->zero) memset(c->gf, 0, (size_t)K * N * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, c->ga, K, c->gd, N, beta,
                c->gf, N); // input-side gradient: (K, M) @ (M, N)
  }
}

static const char *conv_only; /* --only: run the conv rows whose layer or shape contains it */

static void bench_conv(const char *layer, int transposed, int B, int IC, int H, int OC, int K,
                       int stride, int pad) {
  char shape[64];
  const int OHW = transposed ? conv_transpose2d_out_size(H, K, stride, pad) : conv2d_out_size(H, K, stride, pad);
  snprintf(shape, sizeof shape, "%dx%dx%d -> %dx%dx%d k%d s%d p%d", IC, H, H, OC, OHW, OHW, K, stride, pad);
  if (conv_only && !strstr(layer, conv_only) && !strstr(shape, conv_only)) return;
  conv_bench c = {.transposed = transposed, .B = B, .IC = IC, .H = H, .W = H, .OC = OC, .K = K,
                  .stride = stride, .pad = pad};
  c.OH = transposed ? conv_transpose2d_out_size(H, K, stride, pad) : conv2d_out_size(H, K, stride, pad);
  c.OW = c.OH;
  size_t nin = (size_t)B * IC * H * H, nout = (size_t)B * OC * c.OH * c.OW;
  size_t nw = (size_t)OC * IC * K * K;
  size_t nws = transposed ? conv_transpose2d_workspace_floats(B, IC, H, H, OC, K, stride, pad)
                          : conv2d_workspace_floats(B, IC, H, H, OC, K, stride, pad);
  c.in = alloc_random(nin, 11), c.w = alloc_random(nw, 12), c.b = alloc_random((size_t)OC, 13);
  c.out = alloc_random(nout, 14), c.dout = alloc_random(nout, 15), c.din = alloc_random(nin, 16);
  c.dw = alloc_random(nw, 17), c.db = alloc_random((size_t)OC, 18), c.ws = alloc_random(nws, 19);
  if (transposed) // grid = input (H, W); weight rows OC*K*K, columns IC
    c.gn = H * H, c.gm = OC * K * K, c.gk = IC;
  else // grid = output (OH, OW); weight rows OC, columns IC*K*K
    c.gn = c.OH * c.OW, c.gm = OC, c.gk = IC * K * K;
  int Gs[N_REF], Gmax = 1;
  for (size_t r = 0; r < N_REF; r++) {
    Gs[r] = (REF_COLS[r] + c.gn - 1) / c.gn;
    if (Gs[r] > B) Gs[r] = B;
    if (Gs[r] > Gmax) Gmax = Gs[r];
  }
  c.ga = alloc_random((size_t)c.gm * c.gk, 21);
  c.gb = alloc_random((size_t)c.gk * Gmax * c.gn, 22);
  c.gc = alloc_random((size_t)c.gm * Gmax * c.gn, 23);
  c.gd = alloc_random((size_t)c.gm * Gmax * c.gn, 24);
  c.ge = alloc_random((size_t)c.gm * c.gk, 25);
  c.gf = alloc_random((size_t)c.gk * Gmax * c.gn, 26);
  double flops = 6.0 * B * c.gn * (double)c.gm * c.gk;
  /* ours and every distinct reference chunking, each with beta = 0 and with
   * memset + beta = 1, round-robin */
  conv_bench refs[2 * N_REF];
  bench_fn fns[1 + 2 * N_REF] = {conv_ours};
  void *ctxs[1 + 2 * N_REF] = {&c};
  int n = 1;
  for (size_t r = 0; r < N_REF; r++) {
    if (r > 0 && Gs[r] == Gs[r - 1]) continue;
    for (int z = 0; z < 2; z++) {
      refs[n - 1] = c;
      refs[n - 1].G = Gs[r], refs[n - 1].zero = z;
      fns[n] = conv_gemm, ctxs[n] = &refs[n - 1], n++;
    }
  }
  double t[1 + 2 * N_REF];
  time_fns(t, fns, ctxs, n);
  double t_ours = t[0], t_gemm = 1e30, t_beta0 = 1e30; // t_beta0: the fastest with beta = 0
  int G_best = 0;
  for (int i = 1; i < n; i++) {
    if (t[i] < t_gemm) t_gemm = t[i], G_best = refs[i - 1].G;
    if (!refs[i - 1].zero && t[i] < t_beta0) t_beta0 = t[i];
  }
  char extra[48];
  snprintf(extra, sizeof extra, "%7d | %12.2f", G_best, t_beta0 / t_ours);
  print_row(layer, shape, 30, B, flops, t_ours, t_gemm, extra);
  free(c.in), free(c.w), free(c.b), free(c.out), free(c.dout), free(c.din), free(c.dw), free(c.db);
  free(c.ws), free(c.ga), free(c.gb), free(c.gc), free(c.gd), free(c.ge), free(c.gf);
}

/* ---- elementwise activations ---- */

/* The scalar code nn/activation.c ran before nn/vecmath (issue 9), verbatim
 * but for the names: libm per element, derivatives from out. */
static inline float old_softplusf(float x) { return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
static inline float old_sigmoidf(float x) {
  if (x >= 0) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}
static void old_act_forward(float *out, const float *in, size_t N, act_kind kind, float alpha) {
  for (size_t i = 0; i < N; i++) {
    float x = in[i], y;
    switch (kind) {
      case ACT_ELU: y = x > 0 ? x : alpha * expm1f(x); break;
      case ACT_SIGMOID: y = old_sigmoidf(x); break;
      case ACT_TANH: y = tanhf(x); break;
      case ACT_SOFTPLUS: y = old_softplusf(x); break;
      case ACT_EXP: y = expf(x); break;
      default: y = x; break;
    }
    out[i] = y;
  }
}
static void old_act_backward(float *din, const float *dout, const float *in, const float *out, size_t N,
                             act_kind kind, float alpha) {
  for (size_t i = 0; i < N; i++) {
    float x = in[i], y = out[i], d;
    switch (kind) {
      case ACT_ELU: d = x > 0 ? 1.0f : y + alpha; break;
      case ACT_SIGMOID: d = y * (1.0f - y); break;
      case ACT_TANH: d = 1.0f - y * y; break;
      case ACT_SOFTPLUS: d = old_sigmoidf(x); break;
      case ACT_EXP: d = y; break;
      default: d = 1.0f; break;
    }
    din[i] += d * dout[i];
  }
}

typedef struct {
  act_kind kind;
  int path; /* -1: the old scalar code; else the vm_isa to run */
  size_t N;
  float *in, *out, *dout, *din; // (N) each
} act_bench;

static void act_run(void *p) {
  act_bench *a = p;
  if (a->path < 0) {
    old_act_forward(a->out, a->in, a->N, a->kind, 1.0f);
    old_act_backward(a->din, a->dout, a->in, a->out, a->N, a->kind, 1.0f);
    return;
  }
  vm_set_isa((vm_isa)a->path); /* cached cpuid: a few ns per call */
  act_forward(a->out, a->in, a->N, a->kind, 1.0f);
  act_backward(a->din, a->dout, a->in, a->out, a->N, a->kind, 1.0f);
}

static void act_run_fwd(void *p) {
  act_bench *a = p;
  if (a->path < 0) {
    old_act_forward(a->out, a->in, a->N, a->kind, 1.0f);
    return;
  }
  vm_set_isa((vm_isa)a->path);
  act_forward(a->out, a->in, a->N, a->kind, 1.0f);
}

static void bench_activations(void) {
  const size_t N = 288 * 256; /* one sequence's hidden layer */
  const act_kind kinds[] = {ACT_ELU, ACT_TANH, ACT_SIGMOID, ACT_SOFTPLUS, ACT_EXP};
  vm_isa was = vm_get_isa();
  clockid_t clock_was = bench_clock;
  bench_clock = CLOCK_THREAD_CPUTIME_ID; /* elementwise code runs in this thread only */
  int have_avx2 = vm_isa_supported(VM_ISA_AVX2);
  float *in = alloc_random(N, 31), *out = alloc_random(N, 32), *dout = alloc_random(N, 33);
  float *din = calloc(N, sizeof(float));
  if (!din) exit(1);
  for (size_t i = 0; i < N; i++) in[i] *= 40.0f; /* uniform on [-4, 4]: both sides of every kink */
  printf("\nElementwise activations, %zu values (288 x 256), forward + backward (forward alone in the "
         "last two columns): ns per value; old = the scalar libm code nn/vecmath replaced; generic / "
         "avx2 = nn/vecmath's two paths%s; ratio = old / new, same run.\n\n",
         N, have_avx2 ? "" : " (no AVX2 here: that column repeats generic)");
  printf("| activation | old ns | generic ns | avx2 ns | old / generic | old / avx2 | fwd old / avx2 | "
         "fwd generic / avx2 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
    act_bench b[3];
    bench_fn fns[6];
    void *ctxs[6];
    act_bench f[3];
    for (int j = 0; j < 3; j++) {
      int path = j == 0 ? -1 : j == 1 ? VM_ISA_GENERIC : (have_avx2 ? VM_ISA_AVX2 : VM_ISA_GENERIC);
      b[j] = (act_bench){kinds[k], path, N, in, out, dout, din};
      f[j] = b[j];
      fns[j] = act_run, ctxs[j] = &b[j];
      fns[3 + j] = act_run_fwd, ctxs[3 + j] = &f[j];
    }
    double t[6];
    time_fns(t, fns, ctxs, 6);
    memset(din, 0, N * sizeof(float)); /* the backward accumulates */
    double ns = 1e9 / (double)N;
    printf("| %s | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %.2f |\n", act_name(kinds[k]), t[0] * ns, t[1] * ns,
           t[2] * ns, t[0] / t[1], t[0] / t[2], t[3] / t[5], t[4] / t[5]);
  }
  vm_set_isa(was);
  bench_clock = clock_was;
  free(in), free(out), free(dout), free(din);
}

int main(int argc, char **argv) {
  char core[128];
  printf("BLAS core: %s\n\n", blas_core_describe(core, sizeof core));
  int threads = 0, conv_batch = 288, act_only = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--act-only") == 0) {
      act_only = 1;
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--conv-batch") == 0 && i + 1 < argc) {
      conv_batch = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      conv_only = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--threads N] [--conv-batch B] [--only TEXT] [--act-only]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 0 || conv_batch <= 0) {
    fprintf(stderr, "bench_nn: --threads must be >= 0 and --conv-batch > 0\n");
    return 2;
  }
  if (threads > 0) openblas_set_num_threads(threads);
  if (openblas_get_num_threads() == 1) bench_clock = CLOCK_THREAD_CPUTIME_ID;
  if (act_only) {
    bench_activations();
    return 0;
  }
  const int B = 16 * 288; // frames per training batch
  printf("bench_nn: OpenBLAS threads %d (clock: %s); linear batch %d frames, conv batch %d images%s\n",
         openblas_get_num_threads(),
         bench_clock == CLOCK_MONOTONIC ? "wall" : "CPU time of the one working thread", B, conv_batch,
         conv_batch == B ? "" : " (a slice of the training batch: conv time scales linearly)");
  printf("GFLOP/s counts 2 flops per multiply-add of the forward and both backward GEMMs; "
         "sgemm = the same GEMM shapes on plain buffers; ratio = ours / sgemm.\n\n");
  printf("| %-22s | %-26s | %5s | %8s | %7s | %7s | %5s |\n", "layer", "shape", "batch",
         "ms/iter", "GFLOP/s", "sgemm", "ratio");
  printf("|%s|%s|%s|%s|%s|%s|%s|\n", "------------------------", "----------------------------",
         "-------", "----------", "---------", "---------", "-------");
  if (!conv_only) {
    bench_linear(B, 192, 256);
    bench_linear(B, 256, 256);
    bench_linear(B, 256, 32);
  }
  printf("\nConvolutions: sgemm = the fastest of the reference GEMMs run one image per GEMM or over "
         "chunks of >= %d and >= %d columns, overwriting with beta = 0 or memset + beta = 1; "
         "sgemm G = images per reference GEMM that won; ratio beta=0 = the ratio against the "
         "fastest reference with beta = 0 only (the reference before issue 9).\n\n",
         REF_COLS[1], REF_COLS[2]);
  printf("| %-22s | %-30s | %5s | %8s | %7s | %7s | %5s | %7s | %12s |\n", "layer", "shape",
         "batch", "ms/iter", "GFLOP/s", "sgemm", "ratio", "sgemm G", "ratio beta=0");
  printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", "------------------------",
         "--------------------------------", "-------", "----------", "---------", "---------",
         "-------", "---------", "--------------");
  /* the stack of issue 2 (two stride-2 convs, two stride-2 transposed convs) */
  bench_conv("conv fwd+bwd", 0, conv_batch, 3, 32, 32, 4, 2, 1);
  bench_conv("conv fwd+bwd", 0, conv_batch, 32, 16, 64, 4, 2, 1);
  bench_conv("convT fwd+bwd", 1, conv_batch, 64, 8, 32, 4, 2, 1);
  bench_conv("convT fwd+bwd", 1, conv_batch, 32, 16, 3, 4, 2, 1);
  /* the layers core/model/vae_conv.c runs at the default 32 channels */
  bench_conv("vae enc c1", 0, conv_batch, 3, 32, 32, 3, 1, 1);
  bench_conv("vae enc c2", 0, conv_batch, 32, 32, 64, 4, 2, 1);
  bench_conv("vae dec t1 (convT)", 1, conv_batch, 64, 16, 32, 4, 2, 1);
  bench_conv("vae dec c2", 0, conv_batch, 32, 32, 3, 3, 1, 1);
  if (!conv_only) bench_activations();
  return 0;
}
