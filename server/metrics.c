/* Counters and fixed-bucket histograms with C11 atomics; text rendering (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/blas_core.h"

#define N_STATUS 600
static const double BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS ((int)(sizeof BUCKETS / sizeof BUCKETS[0]))

/* Group sizes of the observation COMMITs (requests per transaction). */
static const int GROUP_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define N_GROUP_BUCKETS ((int)(sizeof GROUP_BUCKETS / sizeof GROUP_BUCKETS[0]))

typedef struct {
  atomic_ullong bucket[N_BUCKETS + 1]; /* the last is +Inf */
  atomic_ullong count;
  atomic_ullong sum_ns;
} histogram;

struct metrics {
  int n_routes;
  const char *(*name)(int route); /* label of a route index */
  atomic_ullong *status;  /* (n_routes, N_STATUS) */
  histogram *latency;     /* (n_routes) */
  histogram commit;
  atomic_ullong group[N_GROUP_BUCKETS + 1]; /* COMMITs by requests covered; the last is +Inf */
  atomic_ullong group_count, group_sum;
  atomic_ullong observations, duplicates, predicted;
};

metrics *metrics_new(int n_routes, const char *(*name)(int route)) {
  metrics *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->n_routes = n_routes;
  m->name = name;
  m->status = calloc((size_t)n_routes * N_STATUS, sizeof *m->status);
  m->latency = calloc((size_t)n_routes, sizeof *m->latency);
  if (!m->status || !m->latency) {
    metrics_free(m);
    return NULL;
  }
  return m;
}

void metrics_free(metrics *m) {
  if (!m) return;
  free(m->status);
  free(m->latency);
  free(m);
}

static void hist_add(histogram *h, double seconds) {
  int b = 0;
  while (b < N_BUCKETS && seconds > BUCKETS[b]) b++;
  atomic_fetch_add(&h->bucket[b], 1);
  atomic_fetch_add(&h->count, 1);
  atomic_fetch_add(&h->sum_ns, (unsigned long long)(seconds * 1e9));
}

void metrics_request(metrics *m, int route, int status, double seconds) {
  if (route < 0 || route >= m->n_routes) return;
  if (status < 0 || status >= N_STATUS) status = 0;
  atomic_fetch_add(&m->status[(size_t)route * N_STATUS + (size_t)status], 1);
  hist_add(&m->latency[route], seconds);
}

void metrics_observations(metrics *m, long long accepted, long long duplicates) {
  atomic_fetch_add(&m->observations, (unsigned long long)accepted);
  atomic_fetch_add(&m->duplicates, (unsigned long long)duplicates);
}

void metrics_frames_predicted(metrics *m, long long n) {
  atomic_fetch_add(&m->predicted, (unsigned long long)n);
}

void metrics_commit(metrics *m, double seconds, int group) {
  hist_add(&m->commit, seconds);
  int b = 0;
  while (b < N_GROUP_BUCKETS && group > GROUP_BUCKETS[b]) b++;
  atomic_fetch_add(&m->group[b], 1);
  atomic_fetch_add(&m->group_count, 1);
  atomic_fetch_add(&m->group_sum, (unsigned long long)(group > 0 ? group : 0));
}

typedef struct {
  char *buf;
  size_t len, cap;
  int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
  if (t->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = 1;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap * 2 + (size_t)n;
    char *b = realloc(t->buf, cap);
    if (!b) {
      t->failed = 1;
      return;
    }
    t->buf = b;
    t->cap = cap;
  }
}

static void put_hist(text *t, const char *name, const char *labels, const histogram *h) {
  unsigned long long cum = 0;
  for (int b = 0; b <= N_BUCKETS; b++) {
    cum += atomic_load(&h->bucket[b]);
    if (b < N_BUCKETS)
      put(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "", BUCKETS[b], cum);
    else
      put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "", cum);
  }
  const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
  put(t, "%s_sum%s%s%s %.9f\n", name, open, labels, close, (double)atomic_load(&h->sum_ns) * 1e-9);
  put(t, "%s_count%s%s%s %llu\n", name, open, labels, close, atomic_load(&h->count));
}

char *metrics_render(metrics *m, const metrics_gauges *g, size_t *len) {
  text t = {malloc(16384), 0, 16384, 0};
  if (!t.buf) return NULL;
  put(&t, "# HELP gtmsm_build_info The version and the OpenBLAS kernel set (core) in use.\n"
          "# TYPE gtmsm_build_info gauge\ngtmsm_build_info{version=\"%s\",blas_core=\"%s\"} 1\n",
      GTMSM_VERSION, blas_core_name());
  put(&t, "# HELP gtmsm_http_requests_total HTTP requests by route and status.\n"
          "# TYPE gtmsm_http_requests_total counter\n");
  for (int r = 0; r < m->n_routes; r++)
    for (int s = 0; s < N_STATUS; s++) {
      unsigned long long v = atomic_load(&m->status[(size_t)r * N_STATUS + (size_t)s]);
      if (v) put(&t, "gtmsm_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", m->name(r), s, v);
    }
  put(&t, "# HELP gtmsm_http_request_duration_seconds Request latency by route, first byte in to "
          "last byte out.\n# TYPE gtmsm_http_request_duration_seconds histogram\n");
  for (int r = 0; r < m->n_routes; r++) {
    if (!atomic_load(&m->latency[r].count)) continue;
    char labels[96];
    snprintf(labels, sizeof labels, "route=\"%s\"", m->name(r));
    put_hist(&t, "gtmsm_http_request_duration_seconds", labels, &m->latency[r]);
  }
  put(&t, "# HELP gtmsm_sqlite_commit_duration_seconds Duration of SQLite COMMITs of observations.\n"
          "# TYPE gtmsm_sqlite_commit_duration_seconds histogram\n");
  put_hist(&t, "gtmsm_sqlite_commit_duration_seconds", "", &m->commit);
  put(&t, "# HELP gtmsm_sqlite_commit_group_size Observation requests covered by one COMMIT "
          "(group commit).\n# TYPE gtmsm_sqlite_commit_group_size histogram\n");
  unsigned long long cum = 0;
  for (int b = 0; b < N_GROUP_BUCKETS; b++) {
    cum += atomic_load(&m->group[b]);
    put(&t, "gtmsm_sqlite_commit_group_size_bucket{le=\"%d\"} %llu\n", GROUP_BUCKETS[b], cum);
  }
  cum += atomic_load(&m->group[N_GROUP_BUCKETS]);
  put(&t, "gtmsm_sqlite_commit_group_size_bucket{le=\"+Inf\"} %llu\n"
          "gtmsm_sqlite_commit_group_size_sum %llu\ngtmsm_sqlite_commit_group_size_count %llu\n",
      cum, atomic_load(&m->group_sum), atomic_load(&m->group_count));
  put(&t, "# HELP gtmsm_observations_total Observations committed.\n"
          "# TYPE gtmsm_observations_total counter\ngtmsm_observations_total %llu\n"
          "# HELP gtmsm_observation_duplicates_total Re-sent observations that matched the stored ones.\n"
          "# TYPE gtmsm_observation_duplicates_total counter\ngtmsm_observation_duplicates_total %llu\n"
          "# HELP gtmsm_frames_predicted_total Frames predicted.\n"
          "# TYPE gtmsm_frames_predicted_total counter\ngtmsm_frames_predicted_total %llu\n",
      atomic_load(&m->observations), atomic_load(&m->duplicates), atomic_load(&m->predicted));
  put(&t, "# HELP gtmsm_sessions_hot Sessions with their memory in RAM.\n"
          "# TYPE gtmsm_sessions_hot gauge\ngtmsm_sessions_hot %lld\n"
          "# HELP gtmsm_sessions_cached Sessions in the cache, hot or cold.\n"
          "# TYPE gtmsm_sessions_cached gauge\ngtmsm_sessions_cached %lld\n"
          "# HELP gtmsm_sessions_stored Sessions in SQLite.\n"
          "# TYPE gtmsm_sessions_stored gauge\ngtmsm_sessions_stored %lld\n"
          "# HELP gtmsm_session_cache_bytes Bytes of session memory accounted in the cache.\n"
          "# TYPE gtmsm_session_cache_bytes gauge\ngtmsm_session_cache_bytes %lld\n"
          "# HELP gtmsm_session_loads_total Cold sessions loaded from SQLite.\n"
          "# TYPE gtmsm_session_loads_total counter\ngtmsm_session_loads_total %lld\n"
          "# HELP gtmsm_session_evictions_total Hot sessions evicted from the cache.\n"
          "# TYPE gtmsm_session_evictions_total counter\ngtmsm_session_evictions_total %lld\n"
          "# HELP gtmsm_sessions_expired_total Sessions deleted by the idle expiry (--session-ttl).\n"
          "# TYPE gtmsm_sessions_expired_total counter\ngtmsm_sessions_expired_total %lld\n"
          "# HELP gtmsm_requests_in_flight Requests being processed.\n"
          "# TYPE gtmsm_requests_in_flight gauge\ngtmsm_requests_in_flight %lld\n"
          "# HELP gtmsm_models_loaded Model versions loaded (every version of every name).\n"
          "# TYPE gtmsm_models_loaded gauge\ngtmsm_models_loaded %lld\n"
          "# HELP gtmsm_ready 1 when ready to serve.\n# TYPE gtmsm_ready gauge\ngtmsm_ready %d\n",
      g->sessions_hot, g->sessions_cached, g->sessions_stored, g->cache_bytes, g->session_loads,
      g->session_evictions, g->sessions_expired, g->inflight, g->models, g->ready);
  put(&t, "# HELP gtmsm_uploads_in_flight Requests in flight whose body is an upload (chunked or "
          "over 64 KiB).\n# TYPE gtmsm_uploads_in_flight gauge\ngtmsm_uploads_in_flight %lld\n"
          "# HELP gtmsm_connections Open connections.\n"
          "# TYPE gtmsm_connections gauge\ngtmsm_connections %lld\n"
          "# HELP gtmsm_connections_refused_total New connections refused at --max-connections.\n"
          "# TYPE gtmsm_connections_refused_total counter\ngtmsm_connections_refused_total %lld\n"
          "# HELP gtmsm_connections_cut_total Connections cut by gtmsmd, by reason.\n"
          "# TYPE gtmsm_connections_cut_total counter\n"
          "gtmsm_connections_cut_total{reason=\"evicted\"} %lld\n"
          "gtmsm_connections_cut_total{reason=\"header_timeout\"} %lld\n"
          "gtmsm_connections_cut_total{reason=\"body_timeout\"} %lld\n",
      g->uploads, g->connections, g->conns_refused, g->conns_evicted, g->conns_head_timeouts,
      g->conns_body_timeouts);
  if (t.failed) {
    free(t.buf);
    return NULL;
  }
  *len = t.len;
  return t.buf;
}
