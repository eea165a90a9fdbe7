/* Image navigation: determinism by seed, walls and obstacles block, the crop
 * at a position equals the image region, the explorer's repeat statistics,
 * ground truth of revisits, and procedural worlds that differ by place. */
#include <stdlib.h>
#include <string.h>

#include "sim/imagenav.h"
#include "sim/world.h"
#include "testlib.h"

enum { T = 300 };

static void test_determinism(void) {
  static float w[WORLD_SIZE * WORLD_SIZE * 3], w2[WORLD_SIZE * WORLD_SIZE * 3];
  world_generate(w, 7);
  world_generate(w2, 7);
  CHECK(memcmp(w, w2, sizeof w) == 0, "same seed, same world");
  world_generate(w2, 8);
  CHECK(memcmp(w, w2, sizeof w) != 0, "different seed, different world");
  static float f1[T * IMAGENAV_FRAME], f2[T * IMAGENAV_FRAME];
  int a1[T], a2[T];
  imagenav_truth t1[T], t2[T];
  imagenav_options o = imagenav_default_options();
  imagenav_episode(w, &o, 99, T, f1, a1, t1);
  imagenav_episode(w, &o, 99, T, f2, a2, t2);
  CHECK(memcmp(f1, f2, sizeof f1) == 0 && memcmp(a1, a2, sizeof a1) == 0 &&
            memcmp(t1, t2, sizeof t1) == 0,
        "same seed, same episode");
  imagenav_episode(w, &o, 100, T, f2, a2, t2);
  CHECK(memcmp(a1, a2, sizeof a1) != 0, "different seed, different actions");
  CHECK(a1[0] == IMAGENAV_STAY && t1[0].col == 4 && t1[0].row == 4, "starts at the centre with the no-op");
  for (int i = 0; i < WORLD_SIZE * WORLD_SIZE * 3; i++)
    CHECK(w[i] >= 0 && w[i] <= 1 && w[i] * 255.0f == (float)(int)(w[i] * 255.0f + 0.5f),
          "world value %g at %d is an 8-bit level in [0,1]", w[i], i);
}

static void test_walls_and_crop(void) {
  static float w[WORLD_SIZE * WORLD_SIZE * 3];
  for (int i = 0; i < WORLD_SIZE * WORLD_SIZE * 3; i++) w[i] = (float)i / (WORLD_SIZE * WORLD_SIZE * 3);
  imagenav env;
  imagenav_init(&env, w, 0, 0);
  imagenav_truth tr;
  imagenav_step(&env, IMAGENAV_LEFT, &tr);
  CHECK(tr.col == 0 && tr.row == 0 && !tr.moved, "left wall blocks");
  imagenav_step(&env, IMAGENAV_UP, &tr);
  CHECK(tr.col == 0 && tr.row == 0 && !tr.moved, "top wall blocks");
  imagenav_step(&env, IMAGENAV_RIGHT, &tr);
  CHECK(tr.col == 1 && tr.row == 0 && tr.moved && !tr.seen_before, "right moves");
  imagenav_step(&env, IMAGENAV_LEFT, &tr);
  CHECK(tr.col == 0 && tr.seen_before, "back at a seen cell");
  for (int i = 0; i < 20; i++) imagenav_step(&env, IMAGENAV_DOWN, &tr);
  CHECK(tr.row == IMAGENAV_GRID - 1, "bottom wall stops at row 8 (got %d)", tr.row);
  for (int i = 0; i < 20; i++) imagenav_step(&env, IMAGENAV_RIGHT, &tr);
  CHECK(tr.col == IMAGENAV_GRID - 1, "right wall stops at col 8 (got %d)", tr.col);
  /* crop equals the image region, corner at 3 * (col, row) */
  float frame[IMAGENAV_FRAME];
  for (int row = 0; row < IMAGENAV_GRID; row++)
    for (int col = 0; col < IMAGENAV_GRID; col++) {
      imagenav_view_at(&env, col, row, frame);
      int bad = 0;
      for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
          for (int c = 0; c < 3; c++)
            bad += frame[(y * 8 + x) * 3 + c] != w[((3 * row + y) * WORLD_SIZE + 3 * col + x) * 3 + c];
      CHECK(bad == 0, "crop at (%d, %d) differs from the image region in %d values", col, row, bad);
    }
  /* obstacles block */
  imagenav_init(&env, w, 4, 4);
  env.blocked[4][5] = 1;
  imagenav_step(&env, IMAGENAV_RIGHT, &tr);
  CHECK(tr.col == 4 && !tr.moved, "obstacle blocks");
  rng_t r;
  rng_init(&r, 1, 1);
  imagenav_init(&env, w, 4, 4);
  imagenav_add_obstacles(&env, &r, 10);
  int n = 0;
  for (int row = 0; row < IMAGENAV_GRID; row++)
    for (int col = 0; col < IMAGENAV_GRID; col++) n += env.blocked[row][col];
  CHECK(n == 10 && !env.blocked[4][4], "10 obstacles, none under the agent (got %d)", n);
  imagenav_explorer ex;
  imagenav_explorer_init(&ex, 3, 3, 2.0);
  for (int t = 0; t < 5000; t++) {
    imagenav_step(&env, imagenav_explorer_next(&ex), &tr);
    CHECK(!env.blocked[tr.row][tr.col], "walked into an obstacle at step %d", t);
  }
}

static void test_explorer_stats(void) {
  /* Runs of a direction have Poisson(rate) length given a non-zero draw; the
   * share of "stay" steps is P(0) / (P(0) + E[n]) = e^-2 / (e^-2 + 2) = 0.0634. */
  imagenav_explorer ex;
  imagenav_explorer_init(&ex, 1, 1, 2.0);
  int stays = 0, n = 200000, counts[5] = {0};
  for (int i = 0; i < n; i++) {
    int a = imagenav_explorer_next(&ex);
    counts[a]++;
    stays += a == IMAGENAV_STAY;
  }
  double share = (double)stays / n, expect = 0.1353352832 / (0.1353352832 + 2.0);
  CHECK_NEAR(share, expect, 0.004, 0, "share of stay actions");
  for (int a = 0; a < 4; a++) CHECK_NEAR(counts[a] / (double)(n - stays), 0.25, 0.01, 0, "direction share");
}

static void test_world_places_differ(void) {
  /* crops at different places of a procedural world look different */
  static float w[WORLD_SIZE * WORLD_SIZE * 3];
  int total = 0, similar = 0;
  for (uint64_t seed = 0; seed < 20; seed++) {
    world_generate(w, seed);
    imagenav env;
    imagenav_init(&env, w, 0, 0);
    float a[IMAGENAV_FRAME], b[IMAGENAV_FRAME];
    for (int i = 0; i < 81; i++)
      for (int j = i + 1; j < 81; j++) {
        imagenav_view_at(&env, i % 9, i / 9, a);
        imagenav_view_at(&env, j % 9, j / 9, b);
        double mse = 0;
        for (int k = 0; k < IMAGENAV_FRAME; k++) mse += (a[k] - b[k]) * (a[k] - b[k]) / IMAGENAV_FRAME;
        total++;
        similar += mse < 1e-4; /* PSNR above 40 dB: indistinguishable */
      }
  }
  printf("pairs of crops closer than 40 dB: %d of %d\n", similar, total);
  CHECK(similar < total / 100, "%d of %d crop pairs nearly identical", similar, total);
}

static void test_avoid_walls(void) {
  /* the wall-free explorer never issues a move that does not move */
  static float w[WORLD_SIZE * WORLD_SIZE * 3], f[T * IMAGENAV_FRAME];
  int a[T], bumps = 0, bumps_default = 0;
  imagenav_truth tr[T];
  world_generate(w, 1);
  imagenav_options o = imagenav_default_options();
  for (uint64_t seed = 0; seed < 20; seed++) {
    o.avoid_walls = 1;
    imagenav_episode(w, &o, seed, T, f, a, tr);
    for (int t = 1; t < T; t++) bumps += a[t] != IMAGENAV_STAY && !tr[t].moved;
    o.avoid_walls = 0;
    imagenav_episode(w, &o, seed, T, f, a, tr);
    for (int t = 1; t < T; t++) bumps_default += a[t] != IMAGENAV_STAY && !tr[t].moved;
  }
  printf("wall bumps in 20 episodes: %d wall-free, %d default\n", bumps, bumps_default);
  CHECK(bumps == 0, "%d bumps with avoid_walls", bumps);
  CHECK(bumps_default > 100, "default explorer bumps into walls (%d)", bumps_default);
}

int main(void) {
  test_avoid_walls();
  test_determinism();
  test_walls_and_crop();
  test_explorer_stats();
  test_world_places_differ();
  return test_finish("test_imagenav");
}
