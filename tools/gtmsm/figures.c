/* Evaluation figures: the per-step CSV, a PSNR plot and frame strips. */
#include "figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/draw.h"
#include "img/image.h"
#include "img/plot.h"
#include "img/png.h"

#define STRIP_SCALE 4
#define STRIP_COLUMNS 16
#define STRIP_GAP 2
#define STRIP_LABEL_W 64

int figures_strip(const char *path, const float *rows[], const char *labels[], int nrows, int n,
                  int H, int W, int C, const int *flags, char *err, size_t errlen) {
  int cols = n < STRIP_COLUMNS ? n : STRIP_COLUMNS;
  int fw = W * STRIP_SCALE, fh = H * STRIP_SCALE;
  int width = STRIP_LABEL_W + cols * (fw + STRIP_GAP), height = 14 + nrows * (fh + STRIP_GAP) + 4;
  image_t im = {0};
  uint8_t *tmp = malloc((size_t)H * W * C);
  int rc = tmp ? image_init(&im, height, width, 3, err, errlen) : GTMSM_ENOMEM;
  if (rc) goto done;
  draw_fill(&im, draw_color(255, 255, 255));
  for (int c = 0; c < cols; c++) {
    int step = cols == 1 ? 0 : (int)((long)c * (n - 1) / (cols - 1));
    char lab[16];
    snprintf(lab, sizeof lab, "%d", step + 1);
    int x = STRIP_LABEL_W + c * (fw + STRIP_GAP);
    draw_text(&im, x, 3, lab, flags && !flags[step] ? draw_color(200, 0, 0) : draw_color(0, 0, 0), 1);
    for (int r = 0; r < nrows; r++) {
      int y = 14 + r * (fh + STRIP_GAP);
      if ((rc = image_u8_from_float(tmp, rows[r] + (size_t)step * H * W * C, (size_t)H * W * C, err, errlen)) ||
          (rc = draw_blit(&im, x, y, tmp, H, W, C, STRIP_SCALE, err, errlen)))
        goto done;
    }
  }
  for (int r = 0; r < nrows; r++) draw_text(&im, 2, 14 + r * (fh + STRIP_GAP) + fh / 2 - 3, labels[r], draw_color(0, 0, 0), 1);
  rc = pngio_write_file(path, im.pix, im.H, im.W, 3, err, errlen);
done:
  free(tmp);
  image_free(&im);
  return rc;
}

/* The trajectory xy (n, 2) as a polyline in pixels (ax + bx x, ay + by y).
 * Segments with an end that is not finite (a degenerate fit) are skipped;
 * ends far outside the picture are clamped before they become ints
 * (draw_line clips the rest). */
static int map_px(double v) {
  return v < -1e6 ? -1000000 : v > 1e6 ? 1000000 : (int)lround(v);
}

static void map_polyline(image_t *im, const float *xy, int n, double ax, double bx, double ay, double by,
                         draw_rgb c) {
  for (int t = 1; t < n; t++) {
    const float *a = xy + 2 * (t - 1), *b = xy + 2 * t;
    if (!(isfinite(a[0]) && isfinite(a[1]) && isfinite(b[0]) && isfinite(b[1]))) continue;
    draw_line(im, map_px(ax + bx * a[0]), map_px(ay + by * a[1]), map_px(ax + bx * b[0]), map_px(ay + by * b[1]), c);
  }
}

/* The four trajectories of a map figure (true and learned, memorized and
 * predicted; xy (n, 2) each) and their legend below the map at y. */
static void map_paths(image_t *im, const float *xt, const float *xm, int memorize, int n, double ax, double bx,
                      double ay, double by, int ox, int y0) {
  const draw_rgb c[4] = {draw_color(255, 255, 255), draw_color(40, 120, 255), draw_color(255, 150, 0),
                         draw_color(230, 0, 40)};
  const char *labels[4] = {"true, memorized", "true, predicted", "learned, memorized", "learned, predicted"};
  map_polyline(im, xt, memorize, ax, bx, ay, by, c[0]);
  map_polyline(im, xt + 2 * (memorize - 1), n - memorize + 1, ax, bx, ay, by, c[1]);
  map_polyline(im, xm, memorize, ax, bx, ay, by, c[2]);
  map_polyline(im, xm + 2 * (memorize - 1), n - memorize + 1, ax, bx, ay, by, c[3]);
  for (int k = 0; k < 4; k++) {
    int y = y0 + 6 + k * DRAW_LINE_HEIGHT;
    draw_rect_fill(im, ox, y + 2, 14, 3, c[k]);
    if (k == 0) draw_rect(im, ox - 1, y + 1, 16, 5, draw_color(0, 0, 0));
    draw_text(im, ox + 20, y, labels[k], draw_color(0, 0, 0), 1);
  }
}

/* OUT/map_<e>.png of image navigation: the world (8 pixels per world pixel),
 * its obstacle cells crossed out, the true and the learned trajectory (grid
 * cells; a cell's view is the 8x8 crop at 3 x (col, row)). */
#define INAV_MAP_SCALE 8
static int imagenav_map_figure(const char *path, const eval_result *res, int e, char *err, size_t errlen) {
  const int n = res->memorize + res->predict, side = WORLD_SIZE * INAV_MAP_SCALE, ox = 8, oy = 22;
  const int legend_h = 4 * DRAW_LINE_HEIGHT + 8, cell = IMAGENAV_STRIDE * INAV_MAP_SCALE;
  image_t im = {0};
  int rc = image_init(&im, oy + side + legend_h, side + 16, 3, err, errlen);
  if (rc) return rc;
  draw_fill(&im, draw_color(255, 255, 255));
  char title[96];
  snprintf(title, sizeof title, "episode %d: %d memorized + %d predicted", e, res->memorize, res->predict);
  draw_text(&im, ox, 6, title, draw_color(0, 0, 0), 1);
  uint8_t px[WORLD_SIZE * WORLD_SIZE * 3];
  const float *w = res->world + (size_t)e * WORLD_SIZE * WORLD_SIZE * 3;
  for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)lroundf(255.0f * (w[i] < 0 ? 0 : w[i] > 1 ? 1 : w[i]));
  if (!(rc = draw_blit(&im, ox, oy, px, WORLD_SIZE, WORLD_SIZE, 3, INAV_MAP_SCALE, err, errlen))) {
    /* cell (c, r) is centred at pixel 3c + 4 of the world */
    const double a = ox + (IMAGENAV_VIEW / 2.0) * INAV_MAP_SCALE, b = oy + (IMAGENAV_VIEW / 2.0) * INAV_MAP_SCALE;
    const unsigned char *bl = res->blocked + (size_t)e * IMAGENAV_GRID * IMAGENAV_GRID;
    for (int r = 0; r < IMAGENAV_GRID; r++)
      for (int c = 0; c < IMAGENAV_GRID; c++) {
        if (!bl[r * IMAGENAV_GRID + c]) continue;
        int x0 = (int)lround(a + c * cell) - cell / 2, y0 = (int)lround(b + r * cell) - cell / 2;
        draw_rect_fill(&im, x0, y0, cell, cell, draw_color(60, 60, 60));
        draw_line(&im, x0, y0, x0 + cell - 1, y0 + cell - 1, draw_color(255, 255, 255));
        draw_line(&im, x0 + cell - 1, y0, x0, y0 + cell - 1, draw_color(255, 255, 255));
      }
    map_paths(&im, res->xy_true + (size_t)e * n * 2, res->xy_model + (size_t)e * n * 2, res->memorize, n, a, cell,
              b, cell, ox, oy + side);
    rc = pngio_write_file(path, im.pix, im.H, im.W, 3, err, errlen);
  }
  image_free(&im);
  return rc;
}

int figures_eval(const char *out, const eval_result *res, int H, int W, int C, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/psnr.csv", out);
  FILE *f = fopen(path, "w");
  if (!f) return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot write %s", path);
  fprintf(f, "step,model,oracle,no_memory,visited_share\n");
  int P = res->predict;
  for (int p = 0; p < P; p++)
    fprintf(f, "%d,%.4f,%.4f,%.4f,%.4f\n", p + 1, res->psnr[p], res->psnr[P + p], res->psnr[2 * P + p],
            res->visited[p]);
  if (fclose(f) != 0) return gtmsm_fail(err, errlen, GTMSM_EIO, "writing %s failed", path);

  image_t im = {0};
  int rc = image_init(&im, 360, 640, 3, err, errlen);
  if (rc) return rc;
  plot_series s[EVAL_METHODS];
  for (int k = 0; k < EVAL_METHODS; k++)
    s[k] = (plot_series){.y = res->psnr + (size_t)k * P, .n = (size_t)P, .color = plot_color((size_t)k),
                         .label = EVAL_METHOD_NAMES[k]};
  plot_opts po = plot_default();
  po.title = "PSNR of predicted frames (mean over episodes)";
  po.xlabel = "prediction step";
  po.ylabel = "PSNR dB";
  rc = plot_draw_lines(&im, s, EVAL_METHODS, &po, err, errlen);
  snprintf(path, sizeof path, "%s/psnr.png", out);
  if (!rc) rc = pngio_write_file(path, im.pix, im.H, im.W, 3, err, errlen);
  image_free(&im);
  if (rc) return rc;

  size_t per = (size_t)P * H * W * C;
  for (int e = 0; e < res->keep; e++) {
    const float *rows[] = {res->truth + e * per, res->pred[EVAL_MODEL] + e * per,
                           res->pred[EVAL_ORACLE] + e * per};
    const char *labels[] = {"true", "model", "oracle"};
    snprintf(path, sizeof path, "%s/strip_%d.png", out, e);
    if ((rc = figures_strip(path, rows, labels, 3, P, H, W, C, res->visited_flags + (size_t)e * P, err, errlen)))
      return rc;
    if (!res->xy_model) continue; /* recordings: no map */
    snprintf(path, sizeof path, "%s/map_%d.png", out, e);
    if ((rc = imagenav_map_figure(path, res, e, err, errlen))) return rc;
  }
  return GTMSM_OK;
}

/* One line plot into path: ns series of n doubles each. */
static int line_plot(const char *path, const plot_series *s, int ns, const char *title, const char *xlabel,
                     const char *ylabel, double x0, char *err, size_t errlen) {
  image_t im = {0};
  int rc = image_init(&im, 360, 640, 3, err, errlen);
  if (rc) return rc;
  plot_opts po = plot_default();
  po.title = title;
  po.xlabel = xlabel;
  po.ylabel = ylabel;
  po.x0 = x0;
  rc = plot_draw_lines(&im, s, (size_t)ns, &po, err, errlen);
  if (!rc) rc = pngio_write_file(path, im.pix, im.H, im.W, 3, err, errlen);
  image_free(&im);
  return rc;
}

/* OUT/map_<e>.png: the room from above with the true trajectory and the
 * learned one (s1, s2 through the similarity fitted on the memorized steps),
 * each memorized part and predicted part in its own colour. */
static int map_figure(const char *path, const m3e_result *res, int e, int memorize, char *err, size_t errlen) {
  const int n = memorize + res->predict, mw = res->map_w[e], mh = res->map_h[e], cell = res->map_cell[e];
  const int ox = 8, oy = 22, legend_h = 4 * DRAW_LINE_HEIGHT + 8;
  int W = mw + 16 < 300 ? 300 : mw + 16;
  image_t im = {0};
  int rc = image_init(&im, oy + mh + legend_h, W, 3, err, errlen);
  if (rc) return rc;
  draw_fill(&im, draw_color(255, 255, 255));
  char title[96];
  snprintf(title, sizeof title, "episode %d: %d memorized + %d predicted", e, memorize, res->predict);
  draw_text(&im, ox, 6, title, draw_color(0, 0, 0), 1);
  if (!(rc = draw_blit(&im, ox, oy, res->map[e], mh, mw, 3, 1, err, errlen))) {
    map_paths(&im, res->xy_true + (size_t)e * n * 2, res->xy_model + (size_t)e * n * 2, memorize, n, ox, cell,
              oy + mh, -cell, ox, oy + mh);
    rc = pngio_write_file(path, im.pix, im.H, im.W, 3, err, errlen);
  }
  image_free(&im);
  return rc;
}

int figures_eval_maze3d(const char *out, const m3e_result *res, int memorize, int H, int W, int C, char *err,
                        size_t errlen) {
  char path[4096];
  const int P = res->predict;
  snprintf(path, sizeof path, "%s/psnr.csv", out);
  FILE *f = fopen(path, "w");
  if (!f) return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot write %s", path);
  fprintf(f, "step");
  for (int k = 0; k < M3E_METHODS; k++) fprintf(f, ",%s", M3E_METHOD_NAMES[k]);
  fprintf(f, ",seen_share\n");
  for (int p = 0; p < P; p++) {
    fprintf(f, "%d", memorize + p + 1);
    for (int k = 0; k < M3E_METHODS; k++) fprintf(f, ",%.4f", res->psnr[(size_t)k * P + p]);
    fprintf(f, ",%.4f\n", res->seen[p]);
  }
  if (fclose(f) != 0) return gtmsm_fail(err, errlen, GTMSM_EIO, "writing %s failed", path);
  plot_series s[M3E_METHODS];
  for (int k = 0; k < M3E_METHODS; k++)
    s[k] = (plot_series){.y = res->psnr + (size_t)k * P, .n = (size_t)P, .color = plot_color((size_t)k),
                         .label = M3E_METHOD_NAMES[k]};
  snprintf(path, sizeof path, "%s/psnr.png", out);
  int rc = line_plot(path, s, M3E_METHODS, "PSNR of predicted frames (mean over episodes)", "step of the episode",
                     "PSNR dB", memorize + 1, err, errlen);
  if (rc) return rc;
  size_t per = (size_t)P * H * W * C;
  for (int e = 0; e < res->keep; e++) {
    const float *rows[] = {res->truth + e * per, res->pred[M3E_MODEL] + e * per,
                           res->pred[M3E_RECONSTRUCTION] + e * per, res->pred[M3E_NEAREST_VIEW] + e * per};
    const char *labels[] = {"true", "model", "recon", "nearest"};
    snprintf(path, sizeof path, "%s/strip_%d.png", out, e);
    if ((rc = figures_strip(path, rows, labels, 4, P, H, W, C, res->seen_flags + (size_t)e * P, err, errlen)))
      return rc;
    /* recorded episodes have no map (the evaluator leaves it out) */
    if (!res->map || !res->map[e]) continue;
    snprintf(path, sizeof path, "%s/map_%d.png", out, e);
    if ((rc = map_figure(path, res, e, memorize, err, errlen))) return rc;
  }
  if (res->keep > 0) {
    int n = memorize + P;
    double *hd = malloc(sizeof(double) * 2 * (size_t)n);
    if (!hd) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    for (int t = 0; t < n; t++) {
      hd[t] = res->heading_true[t];
      hd[n + t] = res->heading_model[t];
    }
    plot_series hs[2] = {{.y = hd, .n = (size_t)n, .color = plot_color(0), .label = "true heading"},
                         {.y = hd + n, .n = (size_t)n, .color = plot_color(1), .label = "learned s3 (fitted)"}};
    snprintf(path, sizeof path, "%s/heading.png", out);
    rc = line_plot(path, hs, 2, "Heading of episode 0: true and learned (fit on the memorized steps)", "step",
                   "degrees", 1, err, errlen);
    free(hd);
  }
  return rc;
}
