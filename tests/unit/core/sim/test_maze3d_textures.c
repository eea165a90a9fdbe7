/* Tests for core/sim/maze3d_textures and textured mazes: the loader (only
 * regular *.png files, in name order; gray and RGBA become RGB; resized to the
 * texture size, row 0 at the top; errors with a message and an empty set),
 * maze3d_texture_set_add's argument checks, and mazes built with a set:
 * identical frames for the same seed and set, other assignments for other
 * seeds, the procedural maze's grid, pillars and explorer path, the set's
 * images on the screen, and the procedural golden frame when no set is given.
 * Also loads the bundled set in data/textures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "img/png.h"
#include "nn/rng.h"
#include "sim/maze3d.h"
#include "sim/maze3d_textures.h"
#include "testlib.h"

#define TEX MAZE3D_TEXTURE_SIZE
#define MAX_SURFACES 30

static char tmpdir[] = "/tmp/gtmsm_test_textures_XXXXXX";
static char made[32][512]; /* paths created under tmpdir, removed at the end (reverse order) */
static int n_made;

static const char *tmp_path(const char *sub, const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s%s%s%s%s", tmpdir, sub[0] ? "/" : "", sub, name[0] ? "/" : "", name);
  return buf;
}

static void remember(const char *path) {
  if (n_made < 32) snprintf(made[n_made++], sizeof made[0], "%s", path);
}

static void make_dir(const char *sub) {
  const char *p = tmp_path(sub, "");
  CHECK(mkdir(p, 0755) == 0, "mkdir %s", p);
  remember(p);
}

/* A solid (or two-band) PNG: top half `top`, bottom half `bottom`. */
static void write_png(const char *sub, const char *name, int H, int W, int C, const uint8_t *top,
                      const uint8_t *bottom) {
  uint8_t *pix = malloc((size_t)H * W * C);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) memcpy(pix + ((size_t)y * W + x) * C, y < H / 2 ? top : bottom, (size_t)C);
  const char *p = tmp_path(sub, name);
  char err[256] = "";
  CHECK(pngio_write_file(p, pix, H, W, C, err, sizeof err) == 0, "write %s: %s", p, err);
  remember(p);
  free(pix);
}

static void write_bytes(const char *sub, const char *name, const void *data, size_t n) {
  const char *p = tmp_path(sub, name);
  FILE *f = fopen(p, "wb");
  CHECK(f && fwrite(data, 1, n, f) == n, "write %s", p);
  if (f) fclose(f);
  remember(p);
}

static void cleanup(void) {
  for (int i = n_made - 1; i >= 0; i--) remove(made[i]);
  rmdir(tmpdir);
}

/* 1 if every texel of image i of ts equals rgb / 255. */
static int texture_is(const maze3d_texture_set *ts, int i, const uint8_t rgb[3]) {
  const float *t = maze3d_texture_set_get(ts, i);
  for (int k = 0; k < TEX * TEX; k++)
    for (int c = 0; c < 3; c++)
      if (t[k * 3 + c] != (float)rgb[c] / 255.0f) return 0;
  return 1;
}

static void test_load(void) {
  static const uint8_t red[3] = {255, 0, 0}, green[3] = {0, 255, 0}, blue[3] = {0, 0, 255};
  static const uint8_t gray[1] = {77}, rgba[4] = {10, 20, 30, 0}, hi[3] = {200, 200, 200},
                       lo[3] = {100, 100, 100};
  make_dir("set");
  /* Written in an order unlike the name order. */
  write_png("set", "b.png", 16, 16, 3, green, green);
  write_png("set", "a.png", 64, 64, 3, hi, lo);        /* resized 64 -> 32: two bands */
  write_png("set", "c.PNG", 8, 8, 1, gray, gray);      /* gray -> RGB */
  write_png("set", "10.png", 12, 40, 4, rgba, rgba);   /* RGBA, not square */
  write_png("set", "d.png.txt", 8, 8, 3, red, red);    /* not a .png name */
  write_png("set", ".hidden.png", 8, 8, 3, blue, blue); /* hidden */
  make_dir("set/folder.png");                          /* not a regular file */
  write_bytes("set", "notes.txt", "hello", 5);

  maze3d_texture_set ts = {0};
  char err[256] = "";
  int rc = maze3d_texture_set_load(&ts, tmp_path("set", ""), err, sizeof err);
  CHECK(rc == 0, "load: %s", err);
  if (rc) return;
  static const char *want[] = {"10.png", "a.png", "b.png", "c.PNG"};
  CHECK(ts.n == 4, "loaded %d images, expected 4 (only regular, visible *.png)", ts.n);
  for (int i = 0; i < ts.n && i < 4; i++)
    CHECK(strcmp(ts.names[i], want[i]) == 0, "image %d is %s, expected %s (strcmp order)", i,
          ts.names[i], want[i]);
  if (ts.n == 4) {
    static const uint8_t rgb_of_rgba[3] = {10, 20, 30}, gray3[3] = {77, 77, 77};
    CHECK(texture_is(&ts, 0, rgb_of_rgba), "RGBA: alpha dropped, RGB kept");
    CHECK(texture_is(&ts, 2, green), "solid green 16x16 resized to %d", TEX);
    CHECK(texture_is(&ts, 3, gray3), "gray replicated to RGB");
    const float *t = maze3d_texture_set_get(&ts, 1);
    int ok = 1;
    for (int y = 0; y < TEX; y++)
      for (int x = 0; x < TEX; x++)
        for (int c = 0; c < 3; c++)
          ok &= t[(y * TEX + x) * 3 + c] == (y < TEX / 2 ? 200.0f : 100.0f) / 255.0f;
    CHECK(ok, "two-band 64x64 image: top band on rows 0..%d after resizing", TEX / 2 - 1);
  }
  /* Two loads of the same folder are the same set. */
  maze3d_texture_set again = {0};
  CHECK(maze3d_texture_set_load(&again, tmp_path("set", ""), err, sizeof err) == 0, "reload: %s",
        err);
  CHECK(again.n == ts.n && memcmp(again.tex, ts.tex, (size_t)ts.n * TEX * TEX * 3 * sizeof(float)) == 0,
        "reloading gives other texels");
  maze3d_texture_set_free(&again);
  maze3d_texture_set_free(&ts);
  CHECK(ts.n == 0 && ts.tex == NULL && ts.names == NULL, "free leaves an empty set");
  maze3d_texture_set_free(&ts); /* twice is fine */
}

/* Every failure returns its code, a message naming the culprit, and an empty set. */
static void expect_fail(const char *dir, int code, const char *needle, const char *what) {
  maze3d_texture_set ts = {0};
  char err[512] = "";
  int rc = maze3d_texture_set_load(&ts, dir, err, sizeof err);
  CHECK(rc == code, "%s: rc %d, expected %d (%s)", what, rc, code, err);
  CHECK(strstr(err, needle) != NULL, "%s: message '%s' does not mention '%s'", what, err, needle);
  CHECK(ts.n == 0 && ts.tex == NULL && ts.names == NULL, "%s: set not left empty", what);
  printf("%s: %s\n", what, err);
  maze3d_texture_set_free(&ts);
}

static void test_load_errors(void) {
  static const uint8_t grey[3] = {128, 128, 128};
  expect_fail(tmp_path("missing", ""), GTMSM_EIO, "missing", "missing folder");
  make_dir("empty");
  write_bytes("empty", "readme.txt", "no pictures", 11);
  expect_fail(tmp_path("empty", ""), GTMSM_EINVAL, "no .png files", "folder without PNGs");
  make_dir("bad");
  write_png("bad", "a.png", 8, 8, 3, grey, grey);
  write_bytes("bad", "b.png", "this is not a PNG file at all", 29);
  expect_fail(tmp_path("bad", ""), GTMSM_EFORMAT, "b.png", "a file that is not a PNG");
  make_dir("cut");
  write_png("cut", "whole.png", 8, 8, 3, grey, grey);
  {
    /* The first 40 bytes of a valid PNG: signature and IHDR, no image data. */
    FILE *f = fopen(tmp_path("cut", "whole.png"), "rb");
    uint8_t head[40];
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    CHECK(got == sizeof head, "read back whole.png");
    write_bytes("cut", "truncated.png", head, got);
  }
  expect_fail(tmp_path("cut", ""), GTMSM_EFORMAT, "truncated.png", "a truncated PNG");
  /* Unreadable: a dangling link (permissions would not stop root). */
  make_dir("dangling");
  const char *link = tmp_path("dangling", "gone.png");
  CHECK(symlink("/nonexistent/gone.png", link) == 0, "symlink %s", link);
  remember(link);
  expect_fail(tmp_path("dangling", ""), GTMSM_EIO, "gone.png", "an unreadable file");
}

static void test_add_errors(void) {
  maze3d_texture_set ts = {0};
  uint8_t pix[4 * 4 * 4] = {0};
  char err[256] = "";
  CHECK(maze3d_texture_set_add(&ts, "ok", pix, 4, 4, 3, err, sizeof err) == 0, "add: %s", err);
  CHECK(maze3d_texture_set_add(&ts, "c0", pix, 4, 4, 0, err, sizeof err) == GTMSM_EINVAL && err[0],
        "0 channels accepted");
  CHECK(maze3d_texture_set_add(&ts, "c5", pix, 4, 4, 5, err, sizeof err) == GTMSM_EINVAL,
        "5 channels accepted");
  CHECK(maze3d_texture_set_add(&ts, "h0", pix, 0, 4, 3, err, sizeof err) == GTMSM_EINVAL,
        "0 rows accepted");
  CHECK(maze3d_texture_set_add(&ts, "null", NULL, 4, 4, 3, err, sizeof err) == GTMSM_EINVAL,
        "NULL pixels accepted");
  CHECK(ts.n == 1 && strcmp(ts.names[0], "ok") == 0, "failed adds changed the set (n = %d)", ts.n);
  maze3d_texture_set_free(&ts);
  /* A config whose set is empty is refused. */
  maze3d_config c = maze3d_config_default();
  c.textures = &ts;
  maze3d *m = NULL;
  CHECK(maze3d_new(&m, &c, err, sizeof err) == GTMSM_EINVAL && !m && err[0], "empty set accepted");
}

/* A set of n distinct solid colours, image i with hue i / n. */
static void solid_set(maze3d_texture_set *ts, int n) {
  memset(ts, 0, sizeof *ts);
  for (int i = 0; i < n; i++) {
    uint8_t px[3] = {(uint8_t)(37 * i + 20), (uint8_t)(255 - 23 * i), (uint8_t)(91 * i % 256)};
    char name[16];
    snprintf(name, sizeof name, "solid%02d", i);
    char err[256] = "";
    CHECK(maze3d_texture_set_add(ts, name, px, 1, 1, 3, err, sizeof err) == 0, "add: %s", err);
  }
}

static maze3d *make(int layout, uint64_t seed, const maze3d_texture_set *ts) {
  maze3d_config c = maze3d_config_default();
  c.layout = layout;
  c.seed = seed;
  c.textures = ts;
  maze3d *m = NULL;
  char err[256] = "";
  int rc = maze3d_new(&m, &c, err, sizeof err);
  CHECK(rc == 0 && m, "maze3d_new(seed %llu): %s", (unsigned long long)seed, err);
  return m;
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

static uint64_t frame_hash(maze3d *m) {
  const maze3d_config *c = maze3d_get_config(m);
  size_t n = (size_t)c->W * c->H * 3;
  float *f = malloc(n * sizeof(float));
  uint8_t *u = malloc(n);
  maze3d_render(m, f);
  maze3d_frame_to_u8(u, f, n);
  uint64_t h = fnv1a64(u, n);
  free(f);
  free(u);
  return h;
}

/* An explorer episode of T steps: actions and frame hashes. */
static void episode(maze3d *m, int layout, int T, int *actions, uint64_t *hashes) {
  maze3d_explorer ex;
  char err[256] = "";
  int rc = maze3d_explorer_init(&ex, m, layout ? MAZE3D_SCENARIO_MULTIROOM : MAZE3D_SCENARIO_WALK,
                                9, err, sizeof err);
  CHECK(rc == 0, "explorer_init: %s", err);
  if (rc) return;
  for (int t = 0; t < T; t++) {
    actions[t] = maze3d_explorer_next(&ex);
    maze3d_step(m, actions[t], NULL);
    hashes[t] = frame_hash(m);
  }
  maze3d_explorer_free(&ex);
}

static void test_determinism(const maze3d_texture_set *ts) {
  enum { T = 60 };
  int aa[T], ab[T], ap[T];
  uint64_t ha[T], hb[T], hp[T];
  for (int layout = 0; layout < 2; layout++) {
    maze3d *a = make(layout, 21, ts), *b = make(layout, 21, ts), *p = make(layout, 21, NULL);
    if (!a || !b || !p) return;
    episode(a, layout, T, aa, ha);
    episode(b, layout, T, ab, hb);
    episode(p, layout, T, ap, hp);
    CHECK(memcmp(ha, hb, sizeof ha) == 0, "layout %d: same seed and set, different frames", layout);
    CHECK(memcmp(aa, ap, sizeof aa) == 0, "layout %d: textures changed the explorer's path", layout);
    int same_frames = 0;
    for (int t = 0; t < T; t++) same_frames += ha[t] == hp[t];
    CHECK(same_frames == 0, "layout %d: %d of %d textured frames equal the procedural ones", layout,
          same_frames, T);
    /* Same grid and pillars as the procedural maze of the seed. */
    int same = maze3d_grid_width(a) == maze3d_grid_width(p) &&
               maze3d_grid_height(a) == maze3d_grid_height(p) &&
               maze3d_pillar_count(a) == maze3d_pillar_count(p);
    for (int y = 0; same && y < maze3d_grid_height(a); y++)
      for (int x = 0; x < maze3d_grid_width(a); x++) same &= maze3d_is_wall(a, x, y) == maze3d_is_wall(p, x, y);
    for (int i = 0; same && i < maze3d_pillar_count(a); i++) {
      double x1, y1, r1, x2, y2, r2;
      maze3d_pillar_get(a, i, &x1, &y1, &r1);
      maze3d_pillar_get(p, i, &x2, &y2, &r2);
      same &= x1 == x2 && y1 == y2 && r1 == r2;
    }
    CHECK(same, "layout %d: a texture set changed the grid or the pillars", layout);
    int pa[MAX_SURFACES], pb[MAX_SURFACES];
    size_t ns = 3 * (size_t)(maze3d_room_count(a) + 1);
    CHECK(maze3d_texture_assignment(a, pa, MAX_SURFACES) == 0 &&
              maze3d_texture_assignment(b, pb, MAX_SURFACES) == 0 && memcmp(pa, pb, ns * sizeof *pa) == 0,
          "layout %d: same seed, different assignment", layout);
    CHECK(maze3d_texture_assignment(p, pa, MAX_SURFACES) == GTMSM_EINVAL,
          "assignment reported for a procedural maze");
    CHECK(maze3d_texture_assignment(a, pa, ns - 1) == GTMSM_EINVAL, "short output accepted");
    maze3d_free(a);
    maze3d_free(b);
    maze3d_free(p);
  }
}

/* Over 20 seeds: assignments vary with the seed, every image is used before
 * any repeats, and a region's three surfaces differ. */
static void test_assignment(const maze3d_texture_set *ts) {
  int picks[20][MAX_SURFACES], counts[MAZE3D_TEXTURES_MAX] = {0};
  int distinct = 0;
  for (int s = 0; s < 20; s++) {
    maze3d *m = make(MAZE3D_LAYOUT_MULTIROOM, (uint64_t)s + 100, ts);
    if (!m) return;
    int ns = 3 * (maze3d_room_count(m) + 1);
    memset(picks[s], -1, sizeof picks[s]);
    CHECK(maze3d_texture_assignment(m, picks[s], MAX_SURFACES) == 0, "assignment");
    int fresh = 1;
    for (int q = 0; q < s; q++) fresh &= memcmp(picks[q], picks[s], sizeof picks[s]) != 0;
    distinct += fresh;
    for (int i = 0; i < ns; i++) {
      CHECK(picks[s][i] >= 0 && picks[s][i] < ts->n, "pick %d out of range", picks[s][i]);
      if (picks[s][i] >= 0 && picks[s][i] < ts->n) counts[picks[s][i]]++;
      for (int j = 0; j < i && j < ts->n; j++)
        if (i < ts->n) CHECK(picks[s][i] != picks[s][j], "seed %d: image %d repeats before all were used", s, picks[s][i]);
    }
    for (int k = 0; k < ns / 3; k++)
      CHECK(picks[s][3 * k] != picks[s][3 * k + 1] && picks[s][3 * k] != picks[s][3 * k + 2] &&
                picks[s][3 * k + 1] != picks[s][3 * k + 2],
            "seed %d region %d: repeated texture within a region", s, k);
    maze3d_free(m);
  }
  CHECK(distinct >= 18, "only %d distinct assignments over 20 seeds", distinct);
  for (int i = 0; i < ts->n; i++) CHECK(counts[i] > 0, "image %d never drawn in 20 mazes", i);
  printf("assignment: %d distinct over 20 seeds; image use", distinct);
  for (int i = 0; i < ts->n; i++) printf(" %d", counts[i]);
  printf("\n");
}

/* With solid colours, no pillars and no supersampling, each pixel is its
 * surface's colour times a light factor: the horizon row shows the assigned
 * wall colour, the bottom row the floor's, the top row the ceiling's. */
static void test_on_screen(const maze3d_texture_set *ts) {
  maze3d_config c = maze3d_config_default();
  c.seed = 4;
  c.supersample = 1;
  c.objects_min = c.objects_max = 0;
  c.textures = ts;
  maze3d *m = NULL;
  char err[256] = "";
  if (maze3d_new(&m, &c, err, sizeof err)) {
    CHECK(0, "maze3d_new: %s", err);
    return;
  }
  maze3d_pose p = {maze3d_grid_width(m) / 2.0, maze3d_grid_height(m) / 2.0, 0.3};
  CHECK(maze3d_reset(m, &p, NULL, err, sizeof err) == 0, "reset: %s", err);
  int pick[MAX_SURFACES];
  maze3d_texture_assignment(m, pick, MAX_SURFACES);
  float frame[32 * 32 * 3];
  maze3d_render(m, frame);
  const int rows[3] = {16, 31, 0}; /* wall, floor, ceiling */
  for (int s = 0; s < 3; s++) {
    const float *want = maze3d_texture_set_get(ts, pick[s]);
    int ok = 1;
    for (int x = 0; x < 32; x++) {
      const float *px = frame + ((size_t)rows[s] * 32 + (size_t)x) * 3;
      float lit = px[0] / want[0]; /* the same factor on every channel */
      ok &= lit > 0.0f && lit <= 1.0f;
      for (int ch = 1; ch < 3; ch++) ok &= fabsf(px[ch] - want[ch] * lit) <= 1e-5f;
    }
    CHECK(ok, "surface %d: row %d does not show set image %d", s, rows[s], pick[s]);
  }
  maze3d_free(m);
}

/* No set: the first golden frame of test_maze3d.c's table, unchanged. */
static void test_unset_golden(void) {
  maze3d *m = make(MAZE3D_LAYOUT_SINGLE_ROOM, 1, NULL);
  if (!m) return;
  rng_t r;
  rng_init(&r, 1, 1);
  maze3d_pose p;
  CHECK(maze3d_sample_pose(m, &r, 0.2, &p) == 0, "sample_pose");
  p.heading = 0.0;
  float f[32 * 32 * 3];
  uint8_t u[32 * 32 * 3];
  maze3d_render_at(m, &p, f);
  maze3d_frame_to_u8(u, f, sizeof u);
  uint64_t h = fnv1a64(u, sizeof u);
  CHECK(h == 0x56802f29caed34b3ULL, "unset set: golden frame 0 got 0x%016llx", (unsigned long long)h);
  maze3d_free(m);
}

static void test_bundled(void) {
  maze3d_texture_set ts = {0};
  char err[256] = "";
  int rc = maze3d_texture_set_load(&ts, GTMSM_SOURCE_DIR "/data/textures", err, sizeof err);
  CHECK(rc == 0, "bundled set: %s", err);
  CHECK(ts.n >= 6 && ts.n <= 12, "bundled set has %d images", ts.n);
  for (int i = 1; i < ts.n; i++) CHECK(strcmp(ts.names[i - 1], ts.names[i]) < 0, "names not sorted");
  if (!rc) {
    test_assignment(&ts);
    test_determinism(&ts);
  }
  maze3d_texture_set_free(&ts);
}

int main(void) {
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_load();
  test_load_errors();
  test_add_errors();
  maze3d_texture_set solid = {0};
  solid_set(&solid, 7);
  test_determinism(&solid);
  test_assignment(&solid);
  test_on_screen(&solid);
  maze3d_texture_set_free(&solid);
  solid_set(&solid, 1); /* one image: every surface takes it */
  maze3d *m = make(MAZE3D_LAYOUT_MULTIROOM, 3, &solid);
  int pick[MAX_SURFACES];
  if (m) {
    CHECK(maze3d_texture_assignment(m, pick, MAX_SURFACES) == 0, "assignment");
    for (int i = 0; i < 3 * (maze3d_room_count(m) + 1); i++) CHECK(pick[i] == 0, "pick %d", pick[i]);
  }
  maze3d_free(m);
  maze3d_texture_set_free(&solid);
  test_unset_golden();
  test_bundled();
  cleanup();
  return test_finish("test_maze3d_textures");
}
