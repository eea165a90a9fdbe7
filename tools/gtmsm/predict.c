/* gtmsm predict: offline prediction from an episode file. Reads NDJSON
 * observations (what `gtmsm gen` prints and the service accepts), memorizes
 * the first --memorize of them, then predicts the frames after the remaining
 * observations' actions (or after --actions), and writes a strip: true frames
 * (when the episode has them) above predicted ones; --ndjson also prints the
 * predicted frames as NDJSON {"index", "action", "png", "state"}. */
#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures.h"
#include "img/base64.h"
#include "img/image.h"
#include "img/png.h"
#include "model/api.h"
#include "model/modelfile.h"
#include "opts.h"
#include "tools.h"

typedef struct {
  int n, cap;
  int *actions;
  float *frames; /* (n, D) */
} episode;

static int episode_push(episode *e, int action, const float *frame, int D) {
  if (e->n == e->cap) {
    int cap = e->cap ? 2 * e->cap : 256;
    int *a = realloc(e->actions, sizeof(int) * (size_t)cap);
    if (!a) return -1;
    e->actions = a;
    float *f = realloc(e->frames, sizeof(float) * (size_t)cap * D);
    if (!f) return -1;
    e->frames = f;
    e->cap = cap;
  }
  e->actions[e->n] = action;
  if (frame) memcpy(e->frames + (size_t)e->n * D, frame, sizeof(float) * (size_t)D);
  e->n++;
  return 0;
}

/* Parses one NDJSON observation line into (action, frame); the line number
 * and a reason go to stderr on failure. */
static int parse_line(const gtmsm_model *m, const char *line, long lineno, int *action, float *frame) {
  char err[256];
  json_error_t je;
  int rc = -1, H, W, C;
  uint8_t *png = NULL, *pix = NULL;
  size_t len;
  json_t *j = json_loads(line, 0, &je);
  const char *an = json_string_value(json_object_get(j, "action"));
  const char *b64 = json_string_value(json_object_get(j, "frame"));
  if (!j || !an || !b64) {
    fprintf(stderr, "gtmsm predict: line %ld: expected an object with \"action\" and \"frame\" strings\n", lineno);
    goto done;
  }
  int a = gtmsm_action_index(m, an);
  if (a < 0 && (strcmp(an, "none") == 0 || json_integer_value(json_object_get(j, "t")) == 0)) a = 0;
  if (a < 0) {
    fprintf(stderr, "gtmsm predict: line %ld: unknown action '%s'\n", lineno, an);
    goto done;
  }
  if (base64_decode(&png, &len, b64, strlen(b64), err, sizeof err) ||
      pngio_decode(&pix, &H, &W, &C, png, len, m->cfg.C, 0, err, sizeof err)) {
    fprintf(stderr, "gtmsm predict: line %ld: %s\n", lineno, err);
    goto done;
  }
  if (H != m->cfg.H || W != m->cfg.W) {
    fprintf(stderr, "gtmsm predict: line %ld: frame is %dx%d, the model takes %dx%d\n", lineno, W, H,
            m->cfg.W, m->cfg.H);
    goto done;
  }
  image_float_from_u8(frame, pix, (size_t)H * W * C);
  *action = a;
  rc = 0;
done:
  free(png);
  free(pix);
  json_decref(j);
  return rc;
}

int cmd_predict(int argc, char **argv) {
  const char *model_path = NULL, *episode_path = NULL, *actions_arg = NULL, *out = NULL, *mode_s = "mean";
  int memorize = -1, ndjson = 0;
  uint64_t seed = 0;
  opt_def defs[] = {
      {"model", OPT_STRING, &model_path, 1, 0, "model file (.gtm)"},
      {"episode", OPT_STRING, &episode_path, 1, 0, "NDJSON observations (gtmsm gen output; - for stdin)"},
      {"memorize", OPT_INT, &memorize, -1, 1e9, "observations to memorize (-1: all)"},
      {"actions", OPT_STRING, &actions_arg, 1, 0, "comma-separated actions to predict (default: the rest of the episode)"},
      {"mode", OPT_STRING, &mode_s, 1, 0, "mean | sample"},
      {"seed", OPT_U64, &seed, 1, 0, "seed of sample mode"},
      {"out", OPT_STRING, &out, 1, 0, "strip PNG of true and predicted frames"},
      {"ndjson", OPT_FLAG, &ndjson, 1, 0, "print the predicted frames as NDJSON"},
      {NULL, 0, NULL, 0, 0, NULL},
  };
  int prc = opts_parse("predict", "Predict frames offline from an episode file.", defs, argc, argv);
  if (prc) return prc == 1 ? 0 : 2;
  if (!model_path || !episode_path) {
    fprintf(stderr, "gtmsm predict: --model and --episode are required\n");
    return 2;
  }
  gtmsm_predict_mode mode = strcmp(mode_s, "sample") == 0 ? GTMSM_PREDICT_SAMPLE : GTMSM_PREDICT_MEAN;
  if (mode == GTMSM_PREDICT_MEAN && strcmp(mode_s, "mean") != 0) {
    fprintf(stderr, "gtmsm predict: --mode must be mean or sample\n");
    return 2;
  }
  int rc = 1;
  char err[512];
  gtmsm_model m;
  if (gtmsm_model_load(&m, model_path, err, sizeof err)) {
    fprintf(stderr, "gtmsm predict: %s\n", err);
    return 1;
  }
  openblas_set_num_threads(1);
  const int D = gtmsm_config_D(&m.cfg), S = m.cfg.S;
  episode ep = {0};
  gtmsm_memory *mem = NULL;
  float *frame = malloc(sizeof(float) * (size_t)D), *pred = NULL, *states = NULL;
  int *pa = NULL, np = 0;
  char *line = NULL;
  size_t cap = 0;
  FILE *f = strcmp(episode_path, "-") == 0 ? stdin : fopen(episode_path, "r");
  if (!f) {
    fprintf(stderr, "gtmsm predict: cannot open %s\n", episode_path);
    goto done;
  }
  long lineno = 0;
  ssize_t got;
  while ((got = getline(&line, &cap, f)) > 0) {
    lineno++;
    if (got <= 1) continue;
    int a;
    if (parse_line(&m, line, lineno, &a, frame) || episode_push(&ep, a, frame, D)) goto done;
  }
  if (ep.n == 0) {
    fprintf(stderr, "gtmsm predict: %s holds no observations\n", episode_path);
    goto done;
  }
  int T = memorize < 0 || memorize > ep.n ? ep.n : memorize;
  if (actions_arg) {
    char *copy = strdup(actions_arg), *save = NULL;
    pa = malloc(sizeof(int) * (strlen(actions_arg) + 1));
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      int a = gtmsm_action_index(&m, tok);
      if (a < 0) {
        fprintf(stderr, "gtmsm predict: unknown action '%s' (the model's: ", tok);
        for (int i = 0; i < m.cfg.A; i++) fprintf(stderr, "%s%s", i ? ", " : "", m.cfg.action_names[i]);
        fprintf(stderr, ")\n");
        free(copy);
        goto done;
      }
      pa[np++] = a;
    }
    free(copy);
  } else {
    np = ep.n - T;
    pa = malloc(sizeof(int) * (size_t)(np > 0 ? np : 1));
    memcpy(pa, ep.actions + T, sizeof(int) * (size_t)np);
  }
  if (np <= 0) {
    fprintf(stderr, "gtmsm predict: nothing to predict: give --actions or --memorize below %d\n", ep.n);
    goto done;
  }
  mem = gtmsm_memory_new(&m);
  pred = malloc(sizeof(float) * (size_t)np * D);
  states = malloc(sizeof(float) * (size_t)np * S);
  if (!mem || !pred || !states || gtmsm_observe(&m, mem, ep.actions, ep.frames, T, err, sizeof err) ||
      gtmsm_predict(&m, mem, pa, np, mode, seed, pred, states, err, sizeof err)) {
    fprintf(stderr, "gtmsm predict: %s\n", err);
    goto done;
  }
  fprintf(stderr, "memorized %d observations, predicted %d frames\n", T, np);
  if (out) {
    int have_truth = !actions_arg && np > 0;
    const float *rows[2] = {have_truth ? ep.frames + (size_t)T * D : pred, pred};
    const char *labels[2] = {"true", "predicted"};
    int nrows = have_truth ? 2 : 1;
    if (figures_strip(out, have_truth ? rows : rows + 1, have_truth ? labels : labels + 1, nrows, np,
                      m.cfg.H, m.cfg.W, m.cfg.C, NULL, err, sizeof err)) {
      fprintf(stderr, "gtmsm predict: %s\n", err);
      goto done;
    }
  }
  if (ndjson) {
    uint8_t *u8 = malloc((size_t)D);
    for (int i = 0; i < np; i++) {
      uint8_t *png = NULL;
      size_t len;
      char *b64 = NULL;
      image_u8_from_float(u8, pred + (size_t)i * D, (size_t)D, NULL, 0);
      if (pngio_encode_fast(&png, &len, u8, m.cfg.H, m.cfg.W, m.cfg.C, err, sizeof err) || /* as gtmsmd replies */
          base64_encode(&b64, NULL, png, len, err, sizeof err)) {
        fprintf(stderr, "gtmsm predict: %s\n", err);
        free(png);
        free(u8);
        goto done;
      }
      json_t *st = json_array();
      for (int k = 0; k < S; k++) json_array_append_new(st, json_real(states[(size_t)i * S + k]));
      json_t *j = json_pack("{s:i, s:s, s:s, s:o}", "index", i, "action", m.cfg.action_names[pa[i]], "png", b64,
                            "state", st);
      char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
      printf("%s\n", s);
      free(s);
      json_decref(j);
      free(b64);
      free(png);
    }
    free(u8);
  }
  rc = 0;
done:
  if (f && f != stdin) fclose(f);
  free(line);
  free(frame);
  free(ep.actions);
  free(ep.frames);
  free(pa);
  free(pred);
  free(states);
  gtmsm_memory_free(mem);
  gtmsm_model_free(&m);
  return rc;
}
