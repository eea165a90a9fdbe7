/* Loading world images from a folder. */
#include "sim/worldset.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "img/image.h"
#include "img/png.h"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_png_suffix(const char *s) {
  size_t n = strlen(s);
  return n > 4 && (strcmp(s + n - 4, ".png") == 0 || strcmp(s + n - 4, ".PNG") == 0);
}

int worldset_load(worldset *ws, const char *dir, char *err, size_t errlen) {
  memset(ws, 0, sizeof *ws);
  int rc = GTMSM_OK, cap = 0;
  uint8_t *pix = NULL, small[WORLD_SIZE * WORLD_SIZE * 3];
  DIR *d = opendir(dir);
  if (!d) return gtmsm_fail(err, errlen, GTMSM_EIO, "cannot open folder %s", dir);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!has_png_suffix(e->d_name)) continue;
    if (ws->n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nn = realloc(ws->names, (size_t)cap * sizeof *nn);
      if (!nn) {
        rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
        goto done;
      }
      ws->names = nn;
    }
    ws->names[ws->n] = strdup(e->d_name);
    if (!ws->names[ws->n]) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
      goto done;
    }
    ws->n++;
  }
  if (ws->n == 0) {
    rc = gtmsm_fail(err, errlen, GTMSM_EINVAL, "no .png files in %s", dir);
    goto done;
  }
  qsort(ws->names, (size_t)ws->n, sizeof *ws->names, cmp_str);
  ws->worlds = malloc((size_t)ws->n * sizeof small * sizeof(float));
  if (!ws->worlds) {
    rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < ws->n; i++) {
    char path[4096], perr[256];
    int H, W, C;
    snprintf(path, sizeof path, "%s/%s", dir, ws->names[i]);
    if (pngio_read_file(&pix, &H, &W, &C, path, 3, 0, perr, sizeof perr) ||
        image_square_resize(small, WORLD_SIZE, pix, H, W, 3, perr, sizeof perr)) {
      rc = gtmsm_fail(err, errlen, GTMSM_EFORMAT, "%s", perr);
      goto done;
    }
    image_float_from_u8((float *)worldset_get(ws, i), small, sizeof small);
    free(pix);
    pix = NULL;
  }
done:
  free(pix);
  closedir(d);
  if (rc) worldset_free(ws);
  return rc;
}

void worldset_free(worldset *ws) {
  for (int i = 0; i < ws->n; i++) free(ws->names ? ws->names[i] : NULL);
  free(ws->names);
  free(ws->worlds);
  memset(ws, 0, sizeof *ws);
}
