/* Procedural worlds: a smooth colour field, then shapes, then texture. Each
 * layer draws from its own RNG stream so changing one layer's recipe does not
 * reshuffle the others. */
#include "sim/world.h"

#include <math.h>
#include <string.h>

#include "nn/rng.h"

#define N WORLD_SIZE
#define SS 4 /* supersampling per axis for anti-aliased shape edges */

static void random_colour(rng_t *r, float *c) {
  /* Hue-saturation-value draws give more natural colours than uniform RGB. */
  float h = rng_uniform(r) * 6.0f, s = 0.2f + 0.8f * rng_uniform(r), v = 0.15f + 0.85f * rng_uniform(r);
  int i = (int)h;
  float f = h - (float)i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  float rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
  memcpy(c, rgb[i % 6], 3 * sizeof(float));
}

/* Bilinear upsampling of a G x G grid of random colours. */
static void colour_field(float *w, rng_t *r) {
  enum { G = 4 };
  float grid[G][G][3];
  for (int i = 0; i < G; i++)
    for (int j = 0; j < G; j++) random_colour(r, grid[i][j]);
  for (int y = 0; y < N; y++)
    for (int x = 0; x < N; x++) {
      float fy = (float)y / (N - 1) * (G - 1), fx = (float)x / (N - 1) * (G - 1);
      int y0 = (int)fy, x0 = (int)fx;
      if (y0 > G - 2) y0 = G - 2;
      if (x0 > G - 2) x0 = G - 2;
      float ty = fy - (float)y0, tx = fx - (float)x0;
      for (int c = 0; c < 3; c++)
        w[(y * N + x) * 3 + c] = (1 - ty) * ((1 - tx) * grid[y0][x0][c] + tx * grid[y0][x0 + 1][c]) +
                                 ty * ((1 - tx) * grid[y0 + 1][x0][c] + tx * grid[y0 + 1][x0 + 1][c]);
    }
}

enum { SHAPE_ELLIPSE, SHAPE_RECT, SHAPE_TRIANGLE, SHAPE_KINDS };

typedef struct {
  int kind;
  float cx, cy, a, b, angle; /* centre, half-axes, rotation */
  float tri[3][2];
} shape;

static int shape_inside(const shape *s, float x, float y) {
  if (s->kind == SHAPE_TRIANGLE) {
    float d[3];
    for (int k = 0; k < 3; k++) {
      const float *p = s->tri[k], *q = s->tri[(k + 1) % 3];
      d[k] = (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0]);
    }
    return (d[0] >= 0 && d[1] >= 0 && d[2] >= 0) || (d[0] <= 0 && d[1] <= 0 && d[2] <= 0);
  }
  float ca = cosf(s->angle), sa = sinf(s->angle);
  float u = (x - s->cx) * ca + (y - s->cy) * sa, v = -(x - s->cx) * sa + (y - s->cy) * ca;
  if (s->kind == SHAPE_ELLIPSE) return (u * u) / (s->a * s->a) + (v * v) / (s->b * s->b) <= 1.0f;
  return fabsf(u) <= s->a && fabsf(v) <= s->b;
}

static void draw_shapes(float *w, rng_t *r) {
  int count = 3 + (int)rng_below(r, 6);
  for (int n = 0; n < count; n++) {
    shape s = {.kind = (int)rng_below(r, SHAPE_KINDS),
               .cx = rng_uniform(r) * N,
               .cy = rng_uniform(r) * N,
               .a = 2.0f + rng_uniform(r) * 9.0f,
               .b = 2.0f + rng_uniform(r) * 9.0f,
               .angle = rng_uniform(r) * 3.14159265f};
    for (int k = 0; k < 3; k++) {
      s.tri[k][0] = s.cx + (rng_uniform(r) - 0.5f) * 22.0f;
      s.tri[k][1] = s.cy + (rng_uniform(r) - 0.5f) * 22.0f;
    }
    float col[3], alpha = 0.6f + 0.4f * rng_uniform(r);
    random_colour(r, col);
    /* Shading across the shape gives it a gradient, like lit surfaces. */
    float gx = (rng_uniform(r) - 0.5f) * 0.04f, gy = (rng_uniform(r) - 0.5f) * 0.04f;
    for (int y = 0; y < N; y++)
      for (int x = 0; x < N; x++) {
        int hits = 0;
        for (int sy = 0; sy < SS; sy++)
          for (int sx = 0; sx < SS; sx++)
            hits += shape_inside(&s, (float)x + (sx + 0.5f) / SS, (float)y + (sy + 0.5f) / SS);
        if (!hits) continue;
        float cover = alpha * (float)hits / (SS * SS);
        float shade = 1.0f + gx * ((float)x - s.cx) + gy * ((float)y - s.cy);
        for (int c = 0; c < 3; c++) {
          float *p = &w[(y * N + x) * 3 + c];
          *p = (1 - cover) * *p + cover * col[c] * shade;
        }
      }
  }
}

/* Stripes or fine noise over a random rectangle, plus faint global grain. */
static void draw_texture(float *w, rng_t *r) {
  int x0 = (int)rng_below(r, N - 8), y0 = (int)rng_below(r, N - 8);
  int x1 = x0 + 6 + (int)rng_below(r, (uint32_t)(N - x0 - 6)), y1 = y0 + 6 + (int)rng_below(r, (uint32_t)(N - y0 - 6));
  int kind = (int)rng_below(r, 2);
  float period = 2.0f + rng_uniform(r) * 4.0f, ang = rng_uniform(r) * 3.14159265f;
  float amp = 0.1f + 0.15f * rng_uniform(r);
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) {
      float m = kind == 0 ? amp * sinf(6.2831853f * ((float)x * cosf(ang) + (float)y * sinf(ang)) / period)
                          : amp * (rng_uniform(r) - 0.5f) * 2.0f;
      for (int c = 0; c < 3; c++) w[(y * N + x) * 3 + c] += m;
    }
  for (int i = 0; i < N * N * 3; i++) w[i] += 0.02f * (rng_uniform(r) - 0.5f);
}

void world_generate(float *world, uint64_t seed) {
  rng_t r;
  rng_init(&r, seed, 1001);
  colour_field(world, &r);
  rng_init(&r, seed, 1002);
  draw_shapes(world, &r);
  rng_init(&r, seed, 1003);
  draw_texture(world, &r);
  /* Quantised to 8 bits, so a world is exactly what its PNG carries. */
  for (int i = 0; i < N * N * 3; i++) {
    float v = world[i] < 0 ? 0 : world[i] > 1 ? 1 : world[i];
    world[i] = roundf(v * 255.0f) / 255.0f;
  }
}
