/* Request metrics (server/metrics.c): series labelled by route, method and
 * model render in label order with their counts; an unknown method counts as
 * "other" and a model index outside the registry as no model, so no label
 * value comes from outside the fixed lists; 4 threads counting the same and
 * different series lose nothing; past the tables' size requests are counted
 * as dropped instead of growing memory; gtmsm_build_info stays. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "testlib.h"

static const char *const ROUTE_NAMES[] = {"model_get", "predictions", "unmatched"};
static const char *route_name(int r) { return ROUTE_NAMES[r]; }
static const char *model_name(const void *cls, int i) { return ((const char *const *)cls)[i]; }
static const char *const MODELS[] = {"imagenav", "maze3d_rotate"};

static char *render(metrics *m) {
  metrics_gauges g = {0};
  size_t len = 0;
  return metrics_render(m, &g, &len);
}

static void *count_many(void *p) {
  metrics *m = p;
  for (int i = 0; i < 10000; i++) {
    metrics_request(m, 1, "POST", i % 2, 200, 0.001);
    metrics_request(m, 0, "GET", -1, 404, 0.0001);
  }
  return NULL;
}

int main(void) {
  metrics *m = metrics_new(3, route_name, 2, model_name, MODELS);
  CHECK(m != NULL, "metrics_new");
  if (!m) return test_finish("test_metrics");
  metrics_request(m, 0, "GET", 0, 200, 0.002);
  metrics_request(m, 0, "HEAD", 0, 200, 0.002);
  metrics_request(m, 2, "BREW", -1, 405, 0.001);
  metrics_request(m, 0, "GET", 7, 404, 0.001);  /* not a model index: no model label */
  metrics_request(m, 0, NULL, -1, 499, 0.001);  /* closed before the request line */
  char *t = render(m);
  const char *want[] = {
      "gtmsm_build_info{version=\"",
      "gtmsm_http_requests_total{route=\"model_get\",method=\"GET\",model=\"imagenav\",status=\"200\"} 1\n",
      "gtmsm_http_requests_total{route=\"model_get\",method=\"HEAD\",model=\"imagenav\",status=\"200\"} 1\n",
      "gtmsm_http_requests_total{route=\"model_get\",method=\"GET\",status=\"404\"} 1\n",
      "gtmsm_http_requests_total{route=\"model_get\",method=\"other\",status=\"499\"} 1\n",
      "gtmsm_http_requests_total{route=\"unmatched\",method=\"other\",status=\"405\"} 1\n",
      "gtmsm_http_request_duration_seconds_bucket{route=\"model_get\",method=\"GET\",model=\"imagenav\",le=\"0.0025\"} 1\n",
      "gtmsm_http_request_duration_seconds_count{route=\"model_get\",method=\"HEAD\",model=\"imagenav\"} 1\n",
      "gtmsm_metrics_series_dropped_total 0\n"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    CHECK(t && strstr(t, want[i]), "rendered text has: %s", want[i]);
  CHECK(t && !strstr(t, "BREW"), "no method from the request");
  /* label order: GET before HEAD within a route, model_get before unmatched */
  CHECK(t && strstr(t, "method=\"GET\",model=\"imagenav\",status=\"200\"") <
                 strstr(t, "method=\"HEAD\",model=\"imagenav\",status=\"200\"") &&
            strstr(t, "route=\"model_get\"") < strstr(t, "route=\"unmatched\""),
        "series in label order");
  free(t);

  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, count_many, m);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  t = render(m);
  CHECK(t && strstr(t, "{route=\"predictions\",method=\"POST\",model=\"imagenav\",status=\"200\"} 20000\n") &&
            strstr(t, "{route=\"predictions\",method=\"POST\",model=\"maze3d_rotate\",status=\"200\"} 20000\n") &&
            strstr(t, "{route=\"model_get\",method=\"GET\",status=\"404\"} 40001\n") &&
            strstr(t, "_count{route=\"predictions\",method=\"POST\",model=\"maze3d_rotate\"} 20000\n"),
        "4 threads: every request counted once");
  free(t);
  metrics_free(m);

  /* many label sets (a registry of 60000 models, every status): bounded tables, the rest dropped */
  static const char *many[60000];
  for (int i = 0; i < 60000; i++) many[i] = "m";
  m = metrics_new(3, route_name, 60000, model_name, many);
  for (int i = 0; i < 60000; i++) metrics_request(m, 1, "POST", i, 200 + i % 300, 0.001);
  t = render(m);
  const char *d = t ? strstr(t, "\ngtmsm_metrics_series_dropped_total ") : NULL;
  long long dropped = d ? atoll(d + strlen("\ngtmsm_metrics_series_dropped_total ")) : -1;
  CHECK(dropped > 50000 && dropped < 60000, "past the tables' size requests are dropped: %lld", dropped);
  free(t);
  metrics_free(m);
  CHECK(metrics_new(3, route_name, 2, NULL, NULL) == NULL, "models without a name function: refused");
  return test_finish("test_metrics");
}
