/* Counters and fixed-bucket histograms with C11 atomics; text rendering (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/api.h"
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

/* The method label: a fixed list, anything else is "other". */
static const char *const METHODS[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
                                      "other"};
#define N_METHODS ((int)(sizeof METHODS / sizeof METHODS[0]))

/* Request series live in open-addressing tables (linear probing) keyed by
 * their labels packed into 64 bits (0: a free slot), claimed with a
 * compare-and-swap and never freed, so request threads count without a
 * lock. Their sizes bound the series: a few routes concern a model, each
 * sees a handful of statuses, so even 100 models stay far below. */
#define COUNTERS_MAX 8192 /* (route, method, model, status) */
#define HISTS_MAX 2048    /* (route, method, model) */

typedef struct {
  atomic_ullong key;
  atomic_ullong n;
} counter;

typedef struct {
  atomic_ullong key;
  histogram h;
} keyed_histogram;

struct metrics {
  int n_routes, n_models;
  const char *(*name)(int route); /* label of a route index */
  const char *(*model_name)(const void *cls, int i);
  const void *cls;
  counter *requests;              /* (COUNTERS_MAX) */
  keyed_histogram *latency;       /* (HISTS_MAX) */
  atomic_ullong dropped;          /* requests not counted: a table was full */
  histogram commit;
  atomic_ullong group[N_GROUP_BUCKETS + 1]; /* COMMITs by requests covered; the last is +Inf */
  atomic_ullong group_count, group_sum;
  atomic_ullong observations, duplicates, predicted;
};

metrics *metrics_new(int n_routes, const char *(*name)(int route), int n_models,
                     const char *(*model_name)(const void *cls, int i), const void *cls) {
  if (n_routes < 0 || n_routes > 255 || n_models < 0 || n_models > 65534 ||
      (n_models > 0 && !model_name))
    return NULL;
  metrics *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->n_routes = n_routes;
  m->n_models = n_models;
  m->name = name;
  m->model_name = model_name;
  m->cls = cls;
  m->requests = calloc(COUNTERS_MAX, sizeof *m->requests);
  m->latency = calloc(HISTS_MAX, sizeof *m->latency);
  if (!m->requests || !m->latency) {
    metrics_free(m);
    return NULL;
  }
  return m;
}

void metrics_free(metrics *m) {
  if (!m) return;
  free(m->requests);
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

/* Labels packed: route (8 bits), method (4), model + 1 (16), status (10), plus 1. */
static unsigned long long pack(int route, int method, int model, int status) {
  return ((((unsigned long long)route << 4 | (unsigned)method) << 16 | (unsigned)(model + 1)) << 10 |
          (unsigned)status) + 1;
}
static void unpack(unsigned long long key, int *route, int *method, int *model, int *status) {
  key--;
  *status = (int)(key & 1023);
  *model = (int)((key >> 10) & 0xffff) - 1;
  *method = (int)((key >> 26) & 15);
  *route = (int)(key >> 30);
}

/* Probes per lookup before a label set counts as dropped: the tables stay
 * far from full, so a lookup takes one or two; the cap bounds a full one. */
#define PROBES_MAX 64

/* Whether slot k holds key, claiming it when free. */
static int claim(atomic_ullong *k, unsigned long long key) {
  unsigned long long cur = atomic_load(k);
  if (cur == 0) {
    unsigned long long expected = 0;
    if (atomic_compare_exchange_strong(k, &expected, key)) return 1;
    cur = expected; /* another thread claimed it first: maybe for the same key */
  }
  return cur == key;
}

/* The first slot to probe for key in a table of cap (a power of two) slots. */
static size_t home(unsigned long long key, size_t cap) {
  return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & (cap - 1);
}

/* The slot of key in the counters (or the histograms), claimed when new; -1
 * when PROBES_MAX slots from its home are taken by others. */
static long counter_slot(metrics *m, unsigned long long key) {
  for (size_t p = 0, i = home(key, COUNTERS_MAX); p < PROBES_MAX; p++, i = (i + 1) & (COUNTERS_MAX - 1))
    if (claim(&m->requests[i].key, key)) return (long)i;
  return -1;
}
static long hist_slot(metrics *m, unsigned long long key) {
  for (size_t p = 0, i = home(key, HISTS_MAX); p < PROBES_MAX; p++, i = (i + 1) & (HISTS_MAX - 1))
    if (claim(&m->latency[i].key, key)) return (long)i;
  return -1;
}

void metrics_request(metrics *m, int route, const char *method, int model, int status,
                     double seconds) {
  if (route < 0 || route >= m->n_routes) return;
  if (status < 0 || status >= N_STATUS) status = 0;
  if (model < -1 || model >= m->n_models) model = -1;
  int meth = N_METHODS - 1;
  for (int i = 0; method && i < N_METHODS - 1; i++)
    if (strcmp(method, METHODS[i]) == 0) meth = i;
  long c = counter_slot(m, pack(route, meth, model, status));
  long h = hist_slot(m, pack(route, meth, model, 0));
  if (c >= 0) atomic_fetch_add(&m->requests[c].n, 1);
  if (h >= 0) hist_add(&m->latency[h].h, seconds);
  if (c < 0 || h < 0) atomic_fetch_add(&m->dropped, 1);
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

typedef struct {
  unsigned long long key;
  size_t slot;
} series;

static int by_key(const void *a, const void *b) {
  const unsigned long long x = ((const series *)a)->key, y = ((const series *)b)->key;
  return x < y ? -1 : x > y;
}

/* The label set of a series: route, method, model (when there is one) and,
 * for counters (with_status), the status. */
static void labels_of(const metrics *m, unsigned long long key, int with_status, char *out,
                      size_t outlen) {
  int route, meth, model, status;
  unpack(key, &route, &meth, &model, &status);
  int n = snprintf(out, outlen, "route=\"%s\",method=\"%s\"", m->name(route), METHODS[meth]);
  if (model >= 0 && n >= 0 && (size_t)n < outlen)
    n += snprintf(out + n, outlen - (size_t)n, ",model=\"%s\"", m->model_name(m->cls, model));
  if (with_status && n >= 0 && (size_t)n < outlen)
    snprintf(out + n, outlen - (size_t)n, ",status=\"%d\"", status);
}

/* The request counters and latency histograms, in label order (route index,
 * method, model, status). */
static void render_requests(text *t, const metrics *m) {
  series *v = malloc(sizeof *v * (COUNTERS_MAX > HISTS_MAX ? COUNTERS_MAX : HISTS_MAX));
  if (!v) {
    t->failed = 1;
    return;
  }
  char labels[256];
  put(t, "# HELP gtmsm_http_requests_total HTTP requests by route, method, model (when the "
         "request concerns one) and status.\n# TYPE gtmsm_http_requests_total counter\n");
  size_t n = 0;
  for (size_t i = 0; i < COUNTERS_MAX; i++) {
    const unsigned long long k = atomic_load(&m->requests[i].key);
    if (k) v[n++] = (series){k, i};
  }
  qsort(v, n, sizeof *v, by_key);
  for (size_t i = 0; i < n; i++) {
    labels_of(m, v[i].key, 1, labels, sizeof labels);
    put(t, "gtmsm_http_requests_total{%s} %llu\n", labels, atomic_load(&m->requests[v[i].slot].n));
  }
  put(t, "# HELP gtmsm_http_request_duration_seconds Request latency by route, method and model, "
         "first byte in to last byte out.\n# TYPE gtmsm_http_request_duration_seconds histogram\n");
  n = 0;
  for (size_t i = 0; i < HISTS_MAX; i++) {
    const unsigned long long k = atomic_load(&m->latency[i].key);
    if (k) v[n++] = (series){k, i};
  }
  qsort(v, n, sizeof *v, by_key);
  for (size_t i = 0; i < n; i++) {
    labels_of(m, v[i].key, 0, labels, sizeof labels);
    put_hist(t, "gtmsm_http_request_duration_seconds", labels, &m->latency[v[i].slot].h);
  }
  put(t, "# HELP gtmsm_metrics_series_dropped_total Requests not counted above: the table of "
         "label sets was full.\n# TYPE gtmsm_metrics_series_dropped_total counter\n"
         "gtmsm_metrics_series_dropped_total %llu\n", atomic_load(&m->dropped));
  free(v);
}

char *metrics_render(metrics *m, const metrics_gauges *g, size_t *len) {
  text t = {malloc(16384), 0, 16384, 0};
  if (!t.buf) return NULL;
  put(&t, "# HELP gtmsm_build_info The version and the OpenBLAS kernel set (core) in use.\n"
          "# TYPE gtmsm_build_info gauge\ngtmsm_build_info{version=\"%s\",blas_core=\"%s\"} 1\n",
      GTMSM_VERSION, blas_core_name());
  render_requests(&t, m);
  put(&t, "# HELP gtmsm_sqlite_commit_duration_seconds Duration of the store's COMMITs of observations (SQLite or PostgreSQL; the name is kept).\n"
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
  long long enc_batches, enc_frames;
  gtmsm_shared_encode_stats(&enc_batches, &enc_frames);
  put(&t, "# HELP gtmsm_encoder_batches_total Encoder blocks run for one-observation requests (shared "
          "between concurrent requests; models whose encoder takes each frame on its own, the 2-D ones, "
          "run none).\n# TYPE gtmsm_encoder_batches_total counter\n"
          "gtmsm_encoder_batches_total %lld\n"
          "# HELP gtmsm_encoder_batch_frames_total Frames those blocks encoded: / batches is the mean "
          "batch.\n# TYPE gtmsm_encoder_batch_frames_total counter\ngtmsm_encoder_batch_frames_total %lld\n",
      enc_batches, enc_frames);
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
          "# HELP gtmsm_sessions_stored Sessions in the store.\n"
          "# TYPE gtmsm_sessions_stored gauge\ngtmsm_sessions_stored %lld\n"
          "# HELP gtmsm_session_cache_bytes Bytes of session memory accounted in the cache.\n"
          "# TYPE gtmsm_session_cache_bytes gauge\ngtmsm_session_cache_bytes %lld\n"
          "# HELP gtmsm_session_loads_total Cold sessions loaded from the store.\n"
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
