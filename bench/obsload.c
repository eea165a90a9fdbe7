/* A lean load generator for durable observations (bench_server.py
 * --loadgen obsload): N keep-alive connections from one thread on epoll, the
 * same requests as wrk with bench/bench_server_observe.lua (connection i
 * appends to session PREFIX-i, one NDJSON line per request, t counting up,
 * frames round robin from a `gtmsm gen` file). wrk runs one thread per
 * connection there (its Lua state is per thread, and a session's t must
 * advance in order), and on a 2-CPU machine its 64 threads cost more CPU per
 * request than a third of the daemon's; this client spends a few
 * microseconds of its own, so the rows show more of the daemon. It is a
 * bench tool, not a test, and not a general HTTP client: it understands the
 * daemon's replies (a status line, a Content-Length body) and nothing else.
 *
 *   obsload --port P --clients N --seconds S --prefix ID --frames FILE
 *
 * prints one JSON line: requests completed inside the S seconds, their rate,
 * p50 / p99 latency, non-2xx replies, connection errors, and this process's
 * CPU per request. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int fd;
  long long t;        /* the session's next step (advanced by a 200) */
  long long frame;    /* the next frame's index */
  char req[8192];     /* the request being sent */
  size_t req_len, sent;
  char resp[8192];    /* the reply being read */
  size_t resp_len;
  double t0;          /* when the request's first byte was sent */
} conn;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The frame file's lines with their leading {"t":N cut off (the request puts
 * its own t in front). Returns the count, or -1 with a message. */
static long load_frames(const char *path, char ***out) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "obsload: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  char **v = NULL, *line = NULL;
  size_t cap = 0;
  long n = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if (strncmp(line, "{\"t\":", 5) != 0) continue;
    if (len > 7000) { /* a request must fit conn.req with its head */
      fprintf(stderr, "obsload: %s: a line of %zd bytes (at most 7000)\n", path, len);
      for (long i = 0; i < n; i++) free(v[i]);
      free(v);
      free(line);
      fclose(f);
      return -1;
    }
    const char *rest = line + 5 + strspn(line + 5, "0123456789");
    char **nv = realloc(v, (size_t)(n + 1) * sizeof *v);
    char *copy = strdup(rest);
    if (!nv || !copy) {
      free(copy);
      if (nv) v = nv;
      for (long i = 0; i < n; i++) free(v[i]);
      free(v);
      free(line);
      fclose(f);
      fprintf(stderr, "obsload: out of memory\n");
      return -1;
    }
    v = nv;
    v[n++] = copy;
  }
  free(line);
  fclose(f);
  if (n == 0) {
    free(v);
    fprintf(stderr, "obsload: %s has no {\"t\":...} lines\n", path);
    return -1;
  }
  *out = v;
  return n;
}

static int open_conn(conn *c, const struct sockaddr_in *addr, int ep) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) != 0 && errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
  return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void build_request(conn *c, int id, const char *prefix, char **frames, long nframes) {
  char body[8000];
  const int blen = snprintf(body, sizeof body, "{\"t\":%lld%s\n", c->t, frames[c->frame % nframes]);
  c->req_len = (size_t)snprintf(c->req, sizeof c->req,
                                "POST /v1/sessions/%s-%d/observations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s",
                                prefix, id, blen, body);
  c->sent = 0;
  c->resp_len = 0;
}

/* Sends what the socket takes. Returns 0, or -1 on an error. */
static int pump_send(conn *c) {
  while (c->sent < c->req_len) {
    ssize_t k = send(c->fd, c->req + c->sent, c->req_len - c->sent, MSG_NOSIGNAL);
    if (k < 0) return errno == EAGAIN ? 0 : -1;
    c->sent += (size_t)k;
  }
  return 0;
}

/* Reads what has arrived. Returns the status of a complete reply (its body
 * in too), 0 when more is due, -1 on an error or a reply it cannot read. */
static int pump_recv(conn *c) {
  for (;;) {
    if (c->resp_len >= sizeof c->resp - 1) return -1;
    ssize_t k = recv(c->fd, c->resp + c->resp_len, sizeof c->resp - 1 - c->resp_len, 0);
    if (k == 0) return -1;
    if (k < 0) {
      if (errno != EAGAIN) return -1;
      break;
    }
    c->resp_len += (size_t)k;
  }
  c->resp[c->resp_len] = '\0';
  const char *end = strstr(c->resp, "\r\n\r\n");
  if (!end) return 0;
  int status = 0;
  if (sscanf(c->resp, "HTTP/1.%*d %d", &status) != 1) return -1;
  long clen = -1;
  for (const char *p = strstr(c->resp, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n"))
    if (strncasecmp(p + 2, "Content-Length:", 15) == 0) clen = strtol(p + 17, NULL, 10);
  if (clen < 0) return -1;
  const size_t have = c->resp_len - (size_t)(end + 4 - c->resp);
  if (have < (size_t)clen) return 0;
  if (have > (size_t)clen) return -1; /* one request in flight: nothing may follow */
  return status;
}

int main(int argc, char **argv) {
  int port = 0, clients = 1;
  double seconds = 1;
  const char *prefix = "obs", *frames_path = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--prefix")) prefix = argv[i + 1];
    else if (!strcmp(argv[i], "--frames")) frames_path = argv[i + 1];
    else {
      fprintf(stderr, "obsload: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (port <= 0 || port > 65535 || clients < 1 || clients > 4096 || !(seconds > 0) || !frames_path) {
    fprintf(stderr, "usage: obsload --port P --clients N (1-4096) --seconds S --prefix ID --frames FILE\n");
    return 2;
  }
  char **frames = NULL;
  const long nframes = load_frames(frames_path, &frames);
  if (nframes < 0) return 1;
  int rc = 1, ep = -1;
  conn *cs = calloc((size_t)clients, sizeof *cs);
  size_t lat_cap = 1 << 16, nlat = 0;
  double *lat = malloc(lat_cap * sizeof *lat);
  if (!cs || !lat) {
    fprintf(stderr, "obsload: out of memory\n");
    goto done;
  }
  for (int i = 0; i < clients; i++) cs[i].fd = -1;
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  struct rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  const double start = now_s(), deadline = start + seconds;
  long long errors = 0, non2xx = 0;
  for (int i = 0; i < clients; i++) {
    if (ep < 0 || open_conn(&cs[i], &addr, ep) != 0) {
      fprintf(stderr, "obsload: cannot connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
      goto done;
    }
    build_request(&cs[i], i, prefix, frames, nframes);
    cs[i].t0 = now_s();
  }
  int live = clients;
  struct epoll_event evs[256];
  while (live > 0) {
    const int n = epoll_wait(ep, evs, 256, 100);
    if (n < 0 && errno != EINTR) break;
    for (int k = 0; k < n; k++) {
      conn *c = evs[k].data.ptr;
      const int id = (int)(c - cs);
      if (c->fd < 0) continue;
      int st = 0;
      if (pump_send(c) != 0 || (evs[k].events & (EPOLLERR | EPOLLHUP)) != 0) st = -1;
      else if (c->sent == c->req_len) st = pump_recv(c);
      if (st == 0) continue;
      const double t1 = now_s();
      if (st < 0) errors++;
      else if (t1 <= deadline) {
        if (st / 100 != 2) non2xx++;
        if (nlat == lat_cap) {
          double *nl = realloc(lat, 2 * lat_cap * sizeof *lat);
          if (!nl) {
            fprintf(stderr, "obsload: out of memory\n");
            goto done;
          }
          lat = nl;
          lat_cap *= 2;
        }
        lat[nlat++] = t1 - c->t0;
      }
      if (st == 200) {
        c->t++;
        c->frame++;
      }
      if (st < 0 || t1 > deadline) { /* stop this connection */
        close(c->fd);
        c->fd = -1;
        live--;
        if (st < 0 && t1 <= deadline) fprintf(stderr, "obsload: connection %d failed\n", id);
        continue;
      }
      build_request(c, id, prefix, frames, nframes);
      c->t0 = t1;
      (void)pump_send(c); /* a failure shows as the socket's next event, counted there */
    }
    if (now_s() > deadline + 30) break; /* a reply that never comes */
  }
  struct rusage ru1;
  getrusage(RUSAGE_SELF, &ru1);
  const double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                     1e-6 * (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                     (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                     1e-6 * (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
  qsort(lat, nlat, sizeof *lat, cmp_double);
  const double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] : 0;
  printf("{\"requests\":%zu,\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"non2xx\":%lld,"
         "\"errors\":%lld,\"cpu_us_per_request\":%.1f}\n",
         nlat, (double)nlat / seconds, 1e3 * p50, 1e3 * p99, non2xx, errors,
         nlat ? 1e6 * cpu / (double)nlat : 0);
  rc = errors ? 1 : 0;
done:
  if (cs)
    for (int i = 0; i < clients; i++)
      if (cs[i].fd >= 0) close(cs[i].fd);
  if (ep >= 0) close(ep);
  for (long i = 0; i < nframes; i++) free(frames[i]);
  free(frames);
  free(cs);
  free(lat);
  return rc;
}
