/* Line-plot layout and rendering: margins sized from the tick labels, nice
 * tick steps, data-to-pixel mapping with clamping, legend. */
#include "img/plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

#define PLOT_PAD 6       /* blank border around everything, at scale 1 */
#define PLOT_TICK_LEN 3  /* tick marks outside the axes, at scale 1 */
#define PLOT_MAX_TICKS 64
#define PLOT_MIN_AREA 20 /* smallest plot area side in pixels */

plot_opts plot_default(void) {
  plot_opts o;
  memset(&o, 0, sizeof o);
  o.x0 = 1.0;
  o.dx = 1.0;
  o.text_scale = 1;
  o.legend = 1;
  o.background = draw_color(255, 255, 255);
  o.axis = draw_color(0, 0, 0);
  o.grid = draw_color(225, 225, 225);
  o.text = draw_color(0, 0, 0);
  return o;
}

draw_rgb plot_color(size_t i) {
  /* Tableau-like hues: distinct on white and for common colour blindness. */
  static const draw_rgb PALETTE[8] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                      {214, 39, 40},  {148, 103, 189}, {140, 86, 75},
                                      {227, 119, 194}, {127, 127, 127}};
  return PALETTE[i % 8];
}

/* 1, 2 or 5 times a power of ten, so that span / step <= max_ticks. */
static double nice_step(double span, int max_ticks) {
  if (max_ticks < 1) max_ticks = 1;
  double raw = span / max_ticks;
  double mag = pow(10.0, floor(log10(raw)));
  double f = raw / mag;
  double m = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
  return m * mag;
}

/* Tick label with as many decimals as the step needs (0.25 needs 2). */
static void tick_label(char *buf, size_t len, double v, double step) {
  if (fabs(v) < step * 1e-9) v = 0.0; /* no "-0" */
  if (fabs(v) >= 1e6 || step < 1e-6) {
    snprintf(buf, len, "%.3g", v);
    return;
  }
  int decimals = 0;
  double s = step;
  while (decimals < 6 && fabs(s - round(s)) > 1e-9 * fabs(step) + 1e-12) {
    s *= 10.0;
    decimals++;
  }
  snprintf(buf, len, "%.*f", decimals, v);
}

/* Ticks lo <= t <= hi at multiples of step; returns how many (capped). */
static int ticks_make(double *t, double lo, double hi, double step) {
  int n = 0;
  double first = ceil(lo / step - 1e-9);
  for (int k = 0; k < PLOT_MAX_TICKS; k++) {
    double v = (first + k) * step;
    if (v > hi + step * 1e-9) break;
    t[n++] = v;
  }
  return n;
}

/* Pixel coordinate of v on an axis from lo (at p0) to hi (at p1), clamped
 * far outside the canvas so the int conversion is always defined; the line
 * drawer clips the rest. */
static int axis_map(double v, double lo, double hi, int p0, int p1) {
  double p = p0 + (v - lo) / (hi - lo) * (p1 - p0);
  if (!(p > -1e6)) p = -1e6;
  if (p > 1e6) p = 1e6;
  return (int)lround(p);
}

int plot_draw_lines(image_t *im, const plot_series *series, size_t ns, const plot_opts *opts,
                    char *err, size_t errlen) {
  plot_opts o = opts ? *opts : plot_default();
  int ts = o.text_scale < 1 ? 1 : o.text_scale;
  if (!im || !im->pix || im->H <= 0 || im->W <= 0)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "plot: no canvas");
  if (!isfinite(o.x0) || !isfinite(o.dx) || !(o.dx > 0))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "plot: need finite x0 and dx > 0 (got %g, %g)",
                      o.x0, o.dx);
  if (ns > 0 && !series) return gtmsm_fail(err, errlen, GTMSM_EINVAL, "plot: NULL series");

  /* Data ranges. */
  size_t nmax = 0;
  double dlo = INFINITY, dhi = -INFINITY;
  for (size_t s = 0; s < ns; s++) {
    if (series[s].n > 0 && !series[s].y)
      return gtmsm_fail(err, errlen, GTMSM_EINVAL, "plot: series %zu has no values", s);
    if (series[s].n > nmax) nmax = series[s].n;
    for (size_t i = 0; i < series[s].n; i++) {
      double v = series[s].y[i];
      if (!isfinite(v)) continue;
      if (v < dlo) dlo = v;
      if (v > dhi) dhi = v;
    }
  }
  int fixed_y = o.ymin < o.ymax;
  if (fixed_y && (!isfinite(o.ymin) || !isfinite(o.ymax)))
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "plot: non-finite y range");
  double ylo = fixed_y ? o.ymin : dlo, yhi = fixed_y ? o.ymax : dhi;
  if (!fixed_y && !(dlo <= dhi)) { /* no finite value at all */
    ylo = 0.0;
    yhi = 1.0;
  } else if (!fixed_y && dlo == dhi) {
    double pad = fabs(dlo) > 1.0 ? fabs(dlo) * 0.05 : 1.0;
    ylo = dlo - pad;
    yhi = dhi + pad;
  }
  double xlo = o.x0, xhi = o.x0 + (double)(nmax > 1 ? nmax - 1 : 1) * o.dx;
  if (nmax <= 1) xlo = o.x0 - o.dx;
  if (!isfinite(yhi - ylo) || !isfinite(xhi - xlo) || !(yhi - ylo > 0) || !(xhi - xlo > 0))
    return gtmsm_fail(err, errlen, GTMSM_ERANGE, "plot: value range too large to draw");

  /* Vertical layout first: the number of y ticks depends only on it. */
  int lh = DRAW_LINE_HEIGHT * ts, fh = DRAW_FONT_H * ts, pad = PLOT_PAD * ts;
  int tick = PLOT_TICK_LEN * ts;
  int title_y = pad;
  int ylabel_y = title_y + (o.title ? lh + ts : 0);
  /* The top y tick label is centred on the top edge: half a glyph above. */
  int top = ylabel_y + (o.ylabel ? lh + ts : 0) + fh / 2 + ts;
  int bottom = tick + ts + fh + (o.xlabel ? ts * 3 + lh : 0) + pad;
  int plot_h = im->H - top - bottom;
  if (plot_h < PLOT_MIN_AREA)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "plot: canvas %dx%d too small", im->W, im->H);

  double ystep = nice_step(yhi - ylo, plot_h / (3 * lh) > 2 ? plot_h / (3 * lh) : 2);
  if (!fixed_y) {
    ylo = floor(ylo / ystep) * ystep;
    yhi = ceil(yhi / ystep) * ystep;
  }
  double yt[PLOT_MAX_TICKS];
  int nyt = ticks_make(yt, ylo, yhi, ystep);
  char label[48];
  int ylab_w = 0;
  for (int k = 0; k < nyt; k++) {
    tick_label(label, sizeof label, yt[k], ystep);
    int w = draw_text_width(label, ts);
    if (w > ylab_w) ylab_w = w;
  }
  int left = pad + ylab_w + ts + tick;
  int right = pad + 2 * DRAW_FONT_ADVANCE * ts; /* room for half a last x label */
  int plot_w = im->W - left - right;
  if (plot_w < PLOT_MIN_AREA)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "plot: canvas %dx%d too small", im->W, im->H);

  /* x ticks: room for the wider of the end labels plus three blanks each. */
  char la[48], lb[48];
  double xstep0 = nice_step(xhi - xlo, 10);
  tick_label(la, sizeof la, xlo, xstep0);
  tick_label(lb, sizeof lb, xhi, xstep0);
  int xlab_w = draw_text_width(la, ts) > draw_text_width(lb, ts) ? draw_text_width(la, ts)
                                                                 : draw_text_width(lb, ts);
  int max_xt = plot_w / (xlab_w + 3 * DRAW_FONT_ADVANCE * ts);
  double xstep = nice_step(xhi - xlo, max_xt > 1 ? max_xt : 1);
  /* Sample positions are integers in the common case (steps): never put a
   * tick between two of them. */
  if (xstep < o.dx && fabs(o.dx - round(o.dx)) < 1e-12 && fabs(o.x0 - round(o.x0)) < 1e-12)
    xstep = o.dx;
  double xt[PLOT_MAX_TICKS];
  int nxt = ticks_make(xt, xlo, xhi, xstep);

  int px0 = left, px1 = left + plot_w - 1, py0 = top + plot_h - 1, py1 = top;
  draw_fill(im, o.background);

  /* Grid and ticks. */
  for (int k = 0; k < nyt; k++) {
    int py = axis_map(yt[k], ylo, yhi, py0, py1);
    draw_line(im, px0, py, px1, py, o.grid);
    draw_line(im, px0 - tick, py, px0 - 1, py, o.axis);
    tick_label(label, sizeof label, yt[k], ystep);
    int w = draw_text_width(label, ts);
    draw_text(im, px0 - tick - ts - w, py - fh / 2, label, o.text, ts);
  }
  for (int k = 0; k < nxt; k++) {
    int px = axis_map(xt[k], xlo, xhi, px0, px1);
    draw_line(im, px, py1, px, py0, o.grid);
    draw_line(im, px, py0 + 1, px, py0 + tick, o.axis);
    tick_label(label, sizeof label, xt[k], xstep);
    int w = draw_text_width(label, ts);
    draw_text(im, px - w / 2, py0 + tick + ts + 1, label, o.text, ts);
  }
  draw_line(im, px0, py0, px1, py0, o.axis);
  draw_line(im, px0, py0, px0, py1, o.axis);

  /* Series. A marker is drawn for isolated points too, so a single finite
   * value between gaps stays visible. */
  for (size_t s = 0; s < ns; s++) {
    const plot_series *se = &series[s];
    int have_prev = 0, qx = 0, qy = 0;
    for (size_t i = 0; i < se->n; i++) {
      double v = se->y[i];
      if (!isfinite(v)) {
        have_prev = 0;
        continue;
      }
      int cx = axis_map(o.x0 + (double)i * o.dx, xlo, xhi, px0, px1);
      int cy = axis_map(v, ylo, yhi, py0, py1);
      int next_finite = i + 1 < se->n && isfinite(se->y[i + 1]);
      if (have_prev) draw_line(im, qx, qy, cx, cy, se->color);
      if (o.markers || (!have_prev && !next_finite))
        draw_rect_fill(im, cx - ts, cy - ts, 2 * ts + 1, 2 * ts + 1, se->color);
      have_prev = 1;
      qx = cx;
      qy = cy;
    }
  }

  /* Legend. */
  int n_leg = 0, leg_w = 0;
  for (size_t s = 0; s < ns; s++) {
    if (!series[s].label || !series[s].label[0]) continue;
    n_leg++;
    int w = draw_text_width(series[s].label, ts);
    if (w > leg_w) leg_w = w;
  }
  if (o.legend && n_leg > 0) {
    int swatch = 4 * DRAW_FONT_ADVANCE * ts / 2;
    int box_w = 3 * ts + swatch + 2 * ts + leg_w + 3 * ts;
    int box_h = n_leg * lh + 3 * ts;
    int bx = px1 - 2 * ts - box_w, by = py1 + 2 * ts;
    draw_rect_fill(im, bx, by, box_w, box_h, o.background);
    draw_rect(im, bx, by, box_w, box_h, o.grid);
    int row = 0;
    for (size_t s = 0; s < ns; s++) {
      if (!series[s].label || !series[s].label[0]) continue;
      int ty = by + 2 * ts + row * lh;
      int ly = ty + fh / 2;
      draw_rect_fill(im, bx + 3 * ts, ly - ts / 2, swatch, ts > 1 ? ts : 2, series[s].color);
      draw_text(im, bx + 3 * ts + swatch + 2 * ts, ty, series[s].label, o.text, ts);
      row++;
    }
  }

  /* Titles last so nothing overdraws them. */
  if (o.title) {
    int w = draw_text_width(o.title, ts);
    draw_text(im, (im->W - w) / 2, title_y, o.title, o.text, ts);
  }
  if (o.ylabel) draw_text(im, pad, ylabel_y, o.ylabel, o.text, ts);
  if (o.xlabel) {
    int w = draw_text_width(o.xlabel, ts);
    draw_text(im, px0 + (plot_w - w) / 2, py0 + tick + ts + fh + 3 * ts, o.xlabel, o.text, ts);
  }
  return GTMSM_OK;
}
