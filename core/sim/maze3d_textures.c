/* maze3d texture sets: building a set image by image, loading one from a
 * folder of PNG files, and reporting which images a maze drew. The drawing
 * itself (which image goes on which surface) lives with the other looks in
 * maze3d_layout.c. */
#include "sim/maze3d_textures.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "img/image.h"
#include "img/png.h"
#include "sim/maze3d_internal.h"

#define TEX MAZE3D_TEXTURE_SIZE

void maze3d_texture_set_free(maze3d_texture_set *ts) {
  if (!ts) return;
  for (int i = 0; i < ts->n; i++) free(ts->names[i]);
  free(ts->names);
  free(ts->tex);
  memset(ts, 0, sizeof *ts);
}

/* Room for one more image; tex and names grow together (a failed second
 * realloc leaves the first one larger than cap, which is harmless). */
static int set_reserve(maze3d_texture_set *ts, char *err, size_t errlen) {
  if (ts->n < ts->cap) return 0;
  int cap = ts->cap ? 2 * ts->cap : 16;
  if (cap > MAZE3D_TEXTURES_MAX) cap = MAZE3D_TEXTURES_MAX;
  float *tex = realloc(ts->tex, (size_t)cap * TEX * TEX * 3 * sizeof(float));
  if (!tex) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "textures: out of memory");
  ts->tex = tex;
  char **names = realloc(ts->names, (size_t)cap * sizeof *names);
  if (!names) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "textures: out of memory");
  ts->names = names;
  ts->cap = cap;
  return 0;
}

int maze3d_texture_set_add(maze3d_texture_set *ts, const char *name, const uint8_t *pix, int H,
                           int W, int C, char *err, size_t errlen) {
  uint8_t small[TEX * TEX * IMAGE_MAX_C];
  if (!ts || !name || !pix)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "textures: NULL set, name or pixels");
  if (C < 1 || C > 4)
    return gtmsm_fail(err, errlen, GTMSM_EINVAL, "textures: %s: %d channels (need 1..4)", name,
                      C);
  if (ts->n >= MAZE3D_TEXTURES_MAX)
    return gtmsm_fail(err, errlen, GTMSM_ERANGE, "textures: more than %d images",
                      MAZE3D_TEXTURES_MAX);
  char msg[192];
  int rc = image_square_resize(small, TEX, pix, H, W, C, msg, sizeof msg);
  if (rc) return gtmsm_fail(err, errlen, rc, "textures: %s: %s", name, msg);
  if ((rc = set_reserve(ts, err, errlen))) return rc;
  char *copy = strdup(name);
  if (!copy) return gtmsm_fail(err, errlen, GTMSM_ENOMEM, "textures: out of memory");
  float *dst = ts->tex + (size_t)ts->n * TEX * TEX * 3; /* (TEX, TEX, 3) */
  for (int i = 0; i < TEX * TEX; i++) {
    const uint8_t *p = small + (size_t)i * (size_t)C;
    for (int c = 0; c < 3; c++) dst[i * 3 + c] = (float)p[C >= 3 ? c : 0] / 255.0f;
  }
  ts->names[ts->n++] = copy;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_png_name(const char *s) {
  size_t n = strlen(s);
  return s[0] != '.' && n > 4 && (strcmp(s + n - 4, ".png") == 0 || strcmp(s + n - 4, ".PNG") == 0);
}

int maze3d_texture_set_load(maze3d_texture_set *ts, const char *dir, char *err, size_t errlen) {
  int rc = 0, n = 0, cap = 0;
  char **names = NULL; /* (n) PNG file names in dir */
  uint8_t *pix = NULL;
  char path[4096];
  memset(ts, 0, sizeof *ts);
  DIR *d = opendir(dir);
  if (!d) {
    rc = gtmsm_fail(err, errlen, GTMSM_EIO, "textures: cannot open folder %s: %s", dir,
                    strerror(errno));
    goto done;
  }
  for (struct dirent *e; (e = readdir(d));) {
    if (!is_png_name(e->d_name)) continue;
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
      rc = gtmsm_fail(err, errlen, GTMSM_EINVAL, "textures: path too long in %s", dir);
      goto done;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
      rc = gtmsm_fail(err, errlen, GTMSM_EIO, "textures: cannot read %s: %s", path,
                      strerror(errno));
      goto done;
    }
    if (!S_ISREG(st.st_mode)) continue; /* a folder or device named *.png */
    if (n == MAZE3D_TEXTURES_MAX) {
      rc = gtmsm_fail(err, errlen, GTMSM_ERANGE, "textures: more than %d PNG files in %s",
                      MAZE3D_TEXTURES_MAX, dir);
      goto done;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      char **grown = realloc(names, (size_t)cap * sizeof *grown);
      if (!grown) {
        rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "textures: out of memory");
        goto done;
      }
      names = grown;
    }
    if (!(names[n] = strdup(e->d_name))) {
      rc = gtmsm_fail(err, errlen, GTMSM_ENOMEM, "textures: out of memory");
      goto done;
    }
    n++;
  }
  if (n == 0) {
    rc = gtmsm_fail(err, errlen, GTMSM_EINVAL, "textures: no .png files in %s", dir);
    goto done;
  }
  /* readdir order depends on the file system; the set's order must not. */
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  for (int i = 0; i < n; i++) {
    char msg[320];
    int H, W, C;
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    rc = pngio_read_file(&pix, &H, &W, &C, path, 3, 0, msg, sizeof msg);
    if (rc) {
      rc = gtmsm_fail(err, errlen, rc, "textures: %s", msg);
      goto done;
    }
    if ((rc = maze3d_texture_set_add(ts, names[i], pix, H, W, C, err, errlen))) goto done;
    free(pix);
    pix = NULL;
  }
done:
  if (d) closedir(d);
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  free(pix);
  if (rc) maze3d_texture_set_free(ts);
  return rc;
}

int maze3d_texture_assignment(const maze3d *m, int *out, size_t n_out) {
  size_t need = 3 * (size_t)(m->n_rooms + 1);
  if (!m->textured || n_out < need) return GTMSM_EINVAL;
  memcpy(out, m->tex_pick, need * sizeof *out);
  return 0;
}
