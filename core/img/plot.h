/* Line plots rendered into an image_t, for figures such as PSNR against
 * prediction step: axes with "nice" ticks (1, 2 or 5 times a power of ten)
 * and labels, a light grid, one 1-px polyline per series and a legend, all
 * in the built-in font of img/draw.h. Everything is clipped to the canvas. */
#ifndef GTMSM_IMG_PLOT_H
#define GTMSM_IMG_PLOT_H

#include <stddef.h>

#include "img/draw.h"
#include "img/image.h"

typedef struct {
  const double *y;   /* (n) values, borrowed; NaN and +-Inf leave a gap */
  size_t n;
  draw_rgb color;
  const char *label; /* borrowed; NULL or "" keeps the series out of the legend */
} plot_series;

typedef struct {
  const char *title;  /* centred on top; NULL for none (all strings borrowed) */
  const char *xlabel; /* centred under the x axis; NULL for none */
  const char *ylabel; /* above the y axis, since the font does not rotate */
  double x0, dx;      /* sample i of every series is at x = x0 + i dx; dx > 0 */
  double ymin, ymax;  /* fixed y range if ymin < ymax (points outside are
                         clipped), else fitted to the finite data and widened
                         to whole ticks */
  int text_scale;     /* >= 1; 1 is the 5x7 font, 2 doubles it */
  int markers;        /* non-zero: a small square on every finite point */
  int legend;         /* non-zero: legend box in the top-right corner */
  draw_rgb background, axis, grid, text;
} plot_opts;

/* x0 = 1, dx = 1 (prediction steps count from 1), auto y, scale 1, legend on,
 * markers off, white background, black axes and text, light gray grid. */
plot_opts plot_default(void);

/* A fixed palette of 8 distinguishable colours, cycling with i. */
draw_rgb plot_color(size_t i);

/* Clears im to opts->background and draws the ns series (borrowed) with the
 * options (borrowed; NULL for plot_default()). Returns 0, or GTMSM_EINVAL
 * for a bad argument (dx <= 0, non-finite x0/dx/y range, a series with
 * y == NULL and n > 0) or a canvas too small for the axes and their labels
 * (at text scale 1 about 60 x 50 pixels, 60 x 80 with title and axis labels;
 * proportionally more at larger scales), GTMSM_ERANGE when the finite
 * values span more than a double can hold. */
int plot_draw_lines(image_t *im, const plot_series *series, size_t ns, const plot_opts *opts,
                    char *err, size_t errlen);

#endif
