/* The key map parts (keymap.c) alone: the identity returns the state; the
 * periodic map is (s1, s2, cos s3, sin s3), the same for headings s3 and
 * s3 + 2 pi k; the learned map starts as the identity on those (equal to
 * the plain periodic map); and gradient checks under L = sum r . keys of the
 * learned layer's tensors and of the states, tolerance 1e-3. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gtmsm.h"
#include "model/gtmsm_internal.h"
#include "testlib.h"

#define TWO_PI 6.283185307179586
enum { N = 6, KS_P = 4 }; /* states; periodic key size */

typedef struct {
  gtmsm_model m;
  int S, KS;
  float s[N * 3], keys[N * KS_P], r[N * KS_P];
} ctx_t;

static double key_loss(void *p) {
  ctx_t *c = p;
  c->m.keymap->forward(&c->m, c->s, N, c->keys);
  return test_dot(c->keys, c->r, (size_t)N * c->KS);
}

static int model_for(ctx_t *c, gtmsm_keymap kind, int learned, uint64_t seed) {
  gtmsm_config cfg = gtmsm_default_config();
  if (kind == GTMSM_KEYMAP_PERIODIC) {
    cfg.S = 3;
    cfg.trans = GTMSM_TRANS_ROT3D;
  }
  cfg.keymap = kind;
  cfg.keymap_learned = learned;
  char err[256];
  int rc = gtmsm_model_init(&c->m, &cfg, seed, err, sizeof err);
  CHECK(rc == 0, "init: %s", err);
  c->S = cfg.S;
  c->KS = gtmsm_key_size(&cfg);
  return rc;
}

/* Every tensor of the part and the states. cos, sin and a linear layer:
 * smooth, so Richardson's extrapolation on a wide step. */
static void check_grad(ctx_t *c, const char *kind) {
  float *grad = calloc(c->m.p.total, sizeof(float));
  float ds[N * 3] = {0};
  CHECK(grad != NULL, "out of memory");
  if (!grad) return;
  key_loss(c);
  c->m.keymap->backward(&c->m, c->s, N, c->r, ds, grad);
  gc_opts o = gc_default();
  o.eps = 5e-2;
  o.richardson = 1;
  o.noise = 1;
  o.tol = 1e-3;
  o.floor = 1e-2;
  char label[80];
  for (int e = c->m.part_first[GTMSM_ROLE_KEYMAP]; e < c->m.part_first[GTMSM_ROLE_KEYMAP + 1]; e++) {
    const param_entry *pe = &c->m.p.entries[e];
    snprintf(label, sizeof label, "%s/%s", kind, pe->name);
    gradcheck(label, c->m.p.data + pe->offset, grad + pe->offset, pe->size, key_loss, c, &o);
  }
  snprintf(label, sizeof label, "%s/states (ds)", kind);
  gradcheck(label, c->s, ds, (size_t)N * c->S, key_loss, c, &o);
  free(grad);
}

/* keys(s) == keys(s + (0, 0, 2 pi k)) within float rounding: s3 + 2 pi k is
 * rounded to float (half an ulp, below 1e-6 for |s3 + 2 pi k| < 16) and
 * cosf, sinf add an ulp of the result, so the raw keys agree within 2e-6;
 * a learned layer multiplies that by at most its largest row sum of |W|. */
static void check_periodic(ctx_t *c, const char *kind) {
  const float *w = c->m.cfg.keymap_learned ? gtmsm_tensor(&c->m, GTMSM_ROLE_KEYMAP, 0, c->m.p.data) : NULL;
  double gain = 1;
  if (w)
    for (int i = 0; i < KS_P; i++) {
      double row = 0;
      for (int j = 0; j < KS_P; j++) row += fabs(w[i * KS_P + j]);
      gain = fmax(gain, row);
    }
  const double tol = 2e-6 * gain;
  const float headings[] = {-3.1f, -1.0f, 0.0f, 0.4f, 1.5707964f, 2.9f, 3.14159f, 4.0f};
  const int shifts[] = {1, -1, 2};
  double worst = 0;
  for (size_t h = 0; h < sizeof headings / sizeof *headings; h++)
    for (size_t k = 0; k < sizeof shifts / sizeof *shifts; k++) {
      float s[3] = {0.75f, -1.25f, headings[h]},
            s2[3] = {s[0], s[1], (float)(headings[h] + shifts[k] * TWO_PI)};
      float k1[KS_P], k2[KS_P];
      c->m.keymap->forward(&c->m, s, 1, k1);
      c->m.keymap->forward(&c->m, s2, 1, k2);
      for (int i = 0; i < KS_P; i++) {
        worst = fmax(worst, fabs((double)k1[i] - k2[i]));
        CHECK(fabs((double)k1[i] - k2[i]) <= tol,
              "%s: keymap(s3 = %g)[%d] = %.9g, keymap(s3 + %d * 2 pi) = %.9g", kind, (double)headings[h], i,
              (double)k1[i], shifts[k], (double)k2[i]);
      }
    }
  printf("%s: keymap(s) vs keymap(s + (0, 0, 2 pi k)), k = 1, -1, 2: max |diff| %.2e (tol %.1e)\n", kind,
         worst, tol);
}

int main(void) {
  static ctx_t c;
  /* identity: the state itself */
  model_for(&c, GTMSM_KEYMAP_IDENTITY, 0, 1);
  test_fill_uniform(c.s, N * 2, -3, 3, 2);
  test_fill_uniform(c.r, N * 2, -1, 1, 3);
  key_loss(&c);
  CHECK(c.KS == 2 && memcmp(c.keys, c.s, sizeof(float) * N * 2) == 0, "identity keys != states");
  check_grad(&c, "identity");
  gtmsm_model_free(&c.m);

  /* periodic: (s1, s2, cos s3, sin s3) */
  model_for(&c, GTMSM_KEYMAP_PERIODIC, 0, 4);
  test_fill_uniform(c.s, N * 3, -3, 3, 5);
  test_fill_uniform(c.r, N * KS_P, -1, 1, 6);
  key_loss(&c);
  CHECK(c.KS == KS_P, "periodic key size %d", c.KS);
  for (int n = 0; n < N; n++) {
    const float *s = c.s + n * 3, *k = c.keys + n * KS_P;
    double want[KS_P] = {s[0], s[1], cos(s[2]), sin(s[2])};
    for (int i = 0; i < KS_P; i++) CHECK_NEAR(k[i], want[i], 1e-7, 0, "periodic key");
  }
  float plain[N * KS_P];
  memcpy(plain, c.keys, sizeof plain);
  check_periodic(&c, "periodic");
  check_grad(&c, "periodic");
  gtmsm_model_free(&c.m);

  /* learned: at init W = I, b = 0, so exactly the plain periodic keys */
  model_for(&c, GTMSM_KEYMAP_PERIODIC, 1, 7);
  test_fill_uniform(c.s, N * 3, -3, 3, 5); /* the states above */
  test_fill_uniform(c.r, N * KS_P, -1, 1, 6);
  key_loss(&c);
  int same = 1;
  for (int i = 0; i < N * KS_P; i++) same &= c.keys[i] == plain[i];
  CHECK(same, "learned key map at init differs from the plain periodic map");
  printf("learned key map at init == plain periodic map (exact): %s\n", same ? "yes" : "no");
  /* then a layer away from the identity */
  float *w = gtmsm_tensor(&c.m, GTMSM_ROLE_KEYMAP, 0, c.m.p.data),
        *b = gtmsm_tensor(&c.m, GTMSM_ROLE_KEYMAP, 1, c.m.p.data);
  float noise[KS_P * KS_P];
  test_fill_uniform(noise, KS_P * KS_P, -0.5f, 0.5f, 8);
  for (int i = 0; i < KS_P * KS_P; i++) w[i] += noise[i];
  test_fill_uniform(b, KS_P, -0.5f, 0.5f, 9);
  check_periodic(&c, "learned");
  check_grad(&c, "learned");
  gtmsm_model_free(&c.m);
  return test_finish("test_part_keymap");
}
