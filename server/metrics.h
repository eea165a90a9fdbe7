/* Prometheus metrics of gtmsmd: lock-free counters and histograms updated by
 * request threads, rendered as text exposition format 0.0.4 on /metrics.
 * Requests are counted by route, method, model (when the request concerns a
 * loaded model) and status, latencies by route, method and model; the model
 * and store counters are plain totals. Label values come from the routing
 * table, a fixed list of methods and the loaded models' names only, never
 * from request text, so the series are bounded (and held in fixed tables:
 * past their size, requests are counted in gtmsm_metrics_series_dropped_total). */
#ifndef GTMSMD_METRICS_H
#define GTMSMD_METRICS_H

#include <stddef.h>

typedef struct metrics metrics;

/* Values read at scrape time from other modules (gauges). */
typedef struct {
  long long sessions_hot, sessions_cached, sessions_stored, cache_bytes;
  long long session_loads, session_evictions, sessions_expired;
  long long inflight, models;
  int ready;
  long long uploads;                        /* requests in flight that are uploads */
  long long connections, conns_refused;     /* open now; refused at the limit */
  long long conns_evicted, conns_head_timeouts, conns_body_timeouts; /* cut, by reason */
} metrics_gauges;

/* A registry for n_routes routes labelled by name(route) (static strings)
 * and n_models models labelled by model_name(cls, i) (strings and cls
 * borrowed, outliving the registry; model_name may be NULL when n_models is
 * 0). NULL on OOM. */
metrics *metrics_new(int n_routes, const char *(*name)(int route), int n_models,
                     const char *(*model_name)(const void *cls, int i), const void *cls);
void metrics_free(metrics *m);

/* One finished request: route index (0..n_routes-1), method (borrowed; one
 * not in the fixed list counts as "other"), model index (-1: none), HTTP
 * status, seconds. */
void metrics_request(metrics *m, int route, const char *method, int model, int status,
                     double seconds);
void metrics_observations(metrics *m, long long accepted, long long duplicates);
void metrics_frames_predicted(metrics *m, long long n);
/* One COMMIT of observations: its duration and the requests (appends) it covered. */
void metrics_commit(metrics *m, double seconds, int group);

/* The exposition text as a new string (caller frees) of *len bytes. */
char *metrics_render(metrics *m, const metrics_gauges *g, size_t *len);

#endif
