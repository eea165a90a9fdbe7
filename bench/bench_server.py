#!/usr/bin/env python3
"""Benchmarks of gtmsmd on loopback, printed as Markdown tables (docs/SERVER.md):

1. N-step predictions (default 256, one PNG film strip per request) per
   second with p50/p99 latency at 1, 8 and 64 concurrent clients (wrk with
   bench/bench_server_predict.lua), over K sessions that each observed N steps;
2. durable observations per second (wrk with bench/bench_server_observe.lua):
   NDJSON requests of 1, 16 and 256 observations, 1 and 8 clients, with
   --synchronous full (every acknowledged commit fsynced) and normal;
3. RAM per hot session: the daemon's RSS growth per session loaded, against the
   cache's own accounting (gtmsm_session_cache_bytes), at two memory sizes;
4. group commit: durable single-observation requests (synchronous full) at 1,
   8 and 64 clients, with --group-commit 1 (a COMMIT per request, as before
   group commit) and the default in the same run, printed as ratios to the
   1-client rate. --only group-commit runs this section alone (seconds);
   with --fsync-delay-ms D it runs again on a slower disk: every fsync of
   the daemon D ms longer (bench/fsync_delay_shim.c, LD_PRELOAD);
5. 3-D prediction (a maze3d model, --maze3d-model): 150-step predictions
   (frames/s, p50/p99) at 1 and 8 clients over sessions that each observed
   150 steps of a walk episode, and one predicted frame (the interactive
   case) at 1 client, each against the conv decoder's GEMMs alone for as many
   frames (bench_predict3d --gemm-json, in the same run). --only maze3d runs
   this section alone.

6. --store postgresql (this section alone): the same daemon on SQLite and on
   a throwaway PostgreSQL (tests/lib/pglib.py) in the same run: N-step
   predictions/s and durable observations/s (16 per request, synchronous
   full) at 1, 8 and 64 clients; then the failover cost with session leases:
   two daemons on the PostgreSQL, a session served by the first, the first
   killed with SIGKILL (or stopped with SIGTERM), the time until a request for
   that session succeeds on the second, at --lease-ttl-ms 1000 and 5000.

7. --only predict (this section alone): N-step image/png predictions at 1
   and 8 clients, three runs, each row on a daemon with its default helper
   threads and on one with --helpers 0 in turn, with the daemon's own p50
   from its access log.

8. --only migrate (this section alone): gtmsmd's start on a version-4
   SQLite database of --migrate-rows observations (default 1,000,000), the
   time migration 5 takes to copy them into arrival order.

9. --only coldload (this section alone): 64 obsload clients write their
   sessions at once for --seconds, then after a restart each session's
   first prediction (loading it from the store) and second are timed, with
   the kernel's page cache warm and, as root, dropped.

10. --only profile (this section alone): perf record of gtmsmd while 64
   obsload clients post one observation per request for --seconds: its
   samples by shared object and the top symbols.

Usage: bench/bench_server.py [--bin build] [--model FILE.gtm] [--seconds 5]
       [--sessions 64] [--steps 256] [--json OUT] [--only group-commit|maze3d|predict|allocs|migrate|coldload|profile]
       [--maze3d-model FILE.gtm] [--store postgresql] [--fsync-delay-ms D] [--gc-threads N]
       [--loadgen wrk|obsload]
Without --model it uses models/imagenav.gtm, or trains a one-update model of
the default architecture (the weights do not change the cost)."""
import argparse
import http.client
import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, **kw)


class Daemon:
    def __init__(self, gtmsmd, models, db, *args, env=None, start_seconds=10):
        self.log_path = db + ".log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([gtmsmd, "--models", models, "--db", db, "--listen", "127.0.0.1:0",
                                      "--max-inflight", "4096", *args],
                                     stderr=self.log, stdout=subprocess.DEVNULL,
                                     env={**os.environ, **env} if env else None)
        self.port = None
        for _ in range(int(start_seconds / 0.02)):
            with open(self.log_path, "rb") as f:
                for raw in f:
                    line = json.loads(raw)
                    if line.get("event") == "listening":
                        self.port = line["port"]
            if self.port:
                break
            time.sleep(0.02)
        if not self.port:
            raise SystemExit("gtmsmd did not start; see " + self.log_path)

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def metric(self, name):
        s, text = self.request("GET", "/metrics")
        for line in text.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def cpu_seconds(self):
        """User + system CPU time the daemon has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def disk_bytes(self):
        """Bytes the daemon has had written to storage so far (/proc's
        write_bytes: the WAL, its fsyncs' writeback and checkpoints)."""
        with open(f"/proc/{self.proc.pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def put_session(d, sid, model="imagenav"):
    s, b = d.request("PUT", f"/v1/sessions/{sid}", json.dumps({"model": model}),
                     {"Content-Type": "application/json"})
    assert s in (200, 201), (s, b)


def observe(d, sid, body):
    s, b = d.request("POST", f"/v1/sessions/{sid}/observations", body,
                     {"Content-Type": "application/x-ndjson"})
    assert s == 200, (s, b[:300])
    return json.loads(b)


def gen(gtmsm, seed, steps):
    return sh(gtmsm, "gen", "--env", "imagenav", "--seed", str(seed), "--steps", str(steps)).stdout


def ms(text):
    """wrk latency text (e.g. 812.00us, 1.20ms, 2.01s) in milliseconds."""
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v if unit == "ms" else v * 1000 if unit == "s" else v * 60000


def wrk(port, script, threads, conns, seconds, args):
    out = sh("wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency", "--timeout", "60s",
             "-s", script, f"http://127.0.0.1:{port}", "--", *map(str, args)).stdout.decode()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"]),
            "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errs.group(1) if errs else ""}


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def observe_load(loadgen, port, clients, seconds, prefix, frames):
    """clients connections each posting one observation per request to its
    own session "<prefix>-i" for `seconds`, with wrk (one thread per
    connection, bench_server_observe.lua) or, given the path of
    build/bench/obsload, with that (one thread on epoll). Adds client_cpu_us:
    the load generator's own CPU per completed request."""
    c0 = children_cpu()
    if loadgen == "wrk":
        r = wrk(port, os.path.join(HERE, "bench_server_observe.lua"), clients, clients, seconds, [prefix, 1, frames])
        n = r["rps"] * seconds
    else:
        out = sh(loadgen, "--port", str(port), "--clients", str(clients), "--seconds", str(seconds),
                 "--prefix", prefix, "--frames", frames).stdout.decode()
        r = json.loads(out)
        n = r["requests"]
    r["client_cpu_us"] = (children_cpu() - c0) * 1e6 / n if n > 0 else 0
    return r


def allocs(gtmsmd, gtmsm, models, tmp, obsload, clients=8, seconds=2):
    """Allocations per one-observation request: libc's malloc and calloc
    counted with perf uprobes (`perf probe`, root) in gtmsmd while obsload's
    clients post one observation per request (synchronous full, group commit
    on), divided by the requests. Probes this adds are removed after."""
    libc = next((p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6")
                 if os.path.exists(p)), None)
    if not libc or not shutil.which("perf"):
        raise SystemExit("--only allocs needs perf and libc at /lib/x86_64-linux-gnu")
    have = subprocess.run(["perf", "probe", "-l"], capture_output=True, text=True).stdout
    added = [f for f in ("malloc", "calloc") if f"probe_libc:{f}" not in have.split()]
    for f in added:
        sh("perf", "probe", "-q", "-x", libc, "-a", f)
    try:
        os.makedirs(tmp, exist_ok=True)
        frames = tmp + "/allocs-frames.ndjson"
        with open(frames, "wb") as f:
            f.write(gen(gtmsm, 5, 512))
        d = Daemon(gtmsmd, models, tmp + "/allocs.db", "--synchronous", "full")
        for i in range(clients):
            put_session(d, f"a-{i}")
            put_session(d, f"w-{i}")
        observe_load(obsload, d.port, clients, 1, "w", frames)
        pf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "probe_libc:malloc,probe_libc:calloc",
                               "-p", str(d.proc.pid)], stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        r = observe_load(obsload, d.port, clients, seconds, "a", frames)
        time.sleep(0.2)
        pf.send_signal(2)
        counts = {}
        for line in pf.communicate()[1].splitlines():
            f = line.split(",")
            if len(f) > 2 and f[2].startswith("probe_libc:"):
                counts[f[2].split(":")[1]] = float(f[0]) / r["requests"]
        d.stop()
        return {"clients": clients, "requests": r["requests"], **counts}
    finally:
        for f in added:
            subprocess.run(["perf", "probe", "-q", "-d", f"probe_libc:{f}"], capture_output=True)


def group_commit(gtmsmd, models, tmp, gtmsm, seconds, fsync_delay_ms=0, shim=None, threads=0, loadgen="wrk"):
    """Rows of the group-commit table: for each --group-commit setting, 1, 8
    and 64 clients of one observation per request, synchronous full, the
    daemon with that many --threads (0, the default: the daemon's own, 2 x
    CPUs; --gc-threads 64 for a build from before requests waited off their
    worker, when a worker waited for its COMMIT and --threads bounded the
    group). The
    1-client rate (fsync-bound, so it swings with the disk's other load) is
    measured before and after the others and averaged for the ratios (each
    row after one second of the same load on other sessions); a last
    row with synchronous off (no fsync at all, no grouping) is the ceiling
    the CPU sets. With fsync_delay_ms, every daemon runs with the fsync
    shim preloaded (bench/fsync_delay_shim.c: each fsync that much slower, a
    slower disk than this machine's)."""
    os.makedirs(tmp, exist_ok=True)
    env = None
    if fsync_delay_ms > 0:
        env = {"LD_PRELOAD": shim, "GTMSM_FSYNC_DELAY_US": str(int(fsync_delay_ms * 1000))}
    frames = tmp + "/gc-frames.ndjson"
    with open(frames, "wb") as f:
        f.write(gen(gtmsm, 5, 512))
    rows = []
    for sync, group in (("full", 1), ("full", 64), ("off", 1)):
        d = Daemon(gtmsmd, models, f"{tmp}/gc-{sync}-{group}.db", "--synchronous", sync,
                   *(["--threads", str(threads)] if threads > 0 else []),
                   "--group-commit", str(group), env=env)
        mine = []
        for k, clients in enumerate((1, 8, 64, 1) if sync == "full" else (64,)):
            prefix = f"g{k}"
            for i in range(clients):
                put_session(d, f"{prefix}-{i}")
                put_session(d, f"w{k}-{i}")
            # warm-up on other sessions (a fresh daemon's first seconds, its WAL still growing, are slower)
            observe_load(loadgen, d.port, clients, 1, f"w{k}", frames)
            c0, s0 = d.metric("gtmsm_sqlite_commit_group_size_count"), d.metric("gtmsm_sqlite_commit_group_size_sum")
            k0 = d.metric("gtmsm_sqlite_commit_duration_seconds_sum")
            e0, f0 = d.metric("gtmsm_encoder_batches_total") or 0, d.metric("gtmsm_encoder_batch_frames_total") or 0
            t0, w0 = d.cpu_seconds(), d.disk_bytes()
            r = observe_load(loadgen, d.port, clients, seconds, prefix, frames)
            t1, w1 = d.cpu_seconds(), d.disk_bytes()
            c1, s1 = d.metric("gtmsm_sqlite_commit_group_size_count"), d.metric("gtmsm_sqlite_commit_group_size_sum")
            k1 = d.metric("gtmsm_sqlite_commit_duration_seconds_sum")
            e1, f1 = d.metric("gtmsm_encoder_batches_total") or 0, d.metric("gtmsm_encoder_batch_frames_total") or 0
            r.update(sync=sync, group_commit=group, clients=clients, fsync_delay_ms=fsync_delay_ms, threads=threads,
                     loadgen="wrk" if loadgen == "wrk" else "obsload",
                     mean_group=(s1 - s0) / (c1 - c0) if c1 > c0 else 0,
                     commit_ms=1e3 * (k1 - k0) / (c1 - c0) if c1 > c0 else 0,
                     commit_busy=(k1 - k0) / seconds,
                     mean_encoder_batch=(f1 - f0) / (e1 - e0) if e1 > e0 else 0,
                     cpu_us=(t1 - t0) * 1e6 / (r["rps"] * seconds) if r["rps"] > 0 else 0,
                     disk_kib=(w1 - w0) / 1024 / (r["rps"] * seconds) if r["rps"] > 0 else 0)
            mine.append(r)
        ones = [r["rps"] for r in mine if r["clients"] == 1]
        base = sum(ones) / len(ones) if ones else rows[0]["base"]
        for r in mine:
            r.update(base=base, ratio=r["rps"] / base)
        rows += mine
        d.stop()
    return rows


V4_OBSERVATIONS = """CREATE TABLE sessions (sid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
  model TEXT NOT NULL, model_version TEXT NOT NULL, steps INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, state BLOB, ttl_s INTEGER);
CREATE TABLE observations (sid INTEGER NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,
  t INTEGER NOT NULL, action INTEGER NOT NULL, frame BLOB NOT NULL, entry BLOB,
  PRIMARY KEY (sid, t)) WITHOUT ROWID;
CREATE TABLE session_leases (sid INTEGER PRIMARY KEY REFERENCES sessions(sid) ON DELETE CASCADE,
  owner TEXT NOT NULL, epoch INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
PRAGMA journal_mode = WAL;"""


def migrate(gtmsmd, models, tmp, rows, sessions=64):
    """--only migrate: a version-4 SQLite database (the tables as version 4
    left them, docs/SERVER.md) with `rows` observations over `sessions`
    sessions (imagenav's 192-byte frames and 136-byte entries, written
    interleaved as group commits write them), then gtmsmd started on it: the
    seconds from its start to listening (migration 5 copies every row), the
    file sizes before and after, and the rows counted after."""
    db = tmp + "/v4.db"
    con = sqlite3.connect(db)
    con.executescript(V4_OBSERVATIONS)
    per = rows // sessions
    con.executemany("INSERT INTO sessions VALUES (?, ?, 'imagenav', 'v4', ?, 0, 0, ?, NULL)",
                    ((k + 1, f"m{k}", per, bytes(8)) for k in range(sessions)))
    frame, entry = bytes(range(192)), bytes(136)
    con.executemany("INSERT INTO observations VALUES (?, ?, ?, ?, ?)",
                    ((k + 1, t, t % 4, frame, entry) for t in range(per) for k in range(sessions)))
    con.execute("PRAGMA user_version = 4")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    before = os.path.getsize(db)
    t0 = time.time()
    d = Daemon(gtmsmd, models, db, start_seconds=3600)
    seconds = time.time() - t0
    running = os.path.getsize(db) + os.path.getsize(db + "-wal")
    d.stop()
    con = sqlite3.connect(db)
    n = con.execute("SELECT count(*) FROM observations").fetchone()[0]
    v = con.execute("PRAGMA user_version").fetchone()[0]
    free = con.execute("PRAGMA freelist_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    return {"rows": per * sessions, "sessions": sessions, "seconds": seconds, "db_bytes_before": before,
            "db_and_wal_bytes_running": running, "db_bytes_after": os.path.getsize(db), "free_bytes_after": free,
            "rows_after": n, "version_after": v}


def coldload(gtmsmd, gtmsm, models, tmp, obsload, seconds, clients=64):
    """--only coldload: `clients` obsload clients post one observation per
    request to their own sessions for `seconds` (their rows interleaved as
    group commits write them), then the daemon restarts and each session's
    first prediction (one action: the session loaded from the store, its
    memory rebuilt) and second are timed; as root, once more after dropping
    the kernel's page cache (a cold disk)."""
    frames = tmp + "/cold-frames.ndjson"
    with open(frames, "wb") as f:
        f.write(gen(gtmsm, 5, 512))
    db = tmp + "/cold.db"
    d = Daemon(gtmsmd, models, db, "--synchronous", "full")
    for i in range(clients):
        put_session(d, f"c-{i}")
    observe_load(obsload, d.port, clients, seconds, "c", frames)
    d.stop()
    body, hdr = json.dumps({"actions": ["left"]}), {"Content-Type": "application/json"}
    res = {"clients": clients, "sessions": clients}
    for cache in ("warm", "dropped"):
        if cache == "dropped":
            if os.geteuid() != 0:
                break
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        d = Daemon(gtmsmd, models, db)
        times = []
        for i in range(clients):
            for _ in range(2):
                t0 = time.perf_counter()
                st, _ = d.request("POST", f"/v1/sessions/c-{i}/predictions", body, hdr)
                times.append(time.perf_counter() - t0)
                assert st == 200, st
        res["steps"] = json.loads(d.request("GET", "/v1/sessions/c-0")[1])["steps"]
        d.stop()
        res[cache] = {"first_ms": 1e3 * sum(times[0::2]) / clients, "second_ms": 1e3 * sum(times[1::2]) / clients}
    return res


def profile(gtmsmd, gtmsm, models, tmp, obsload, seconds, clients=64):
    """--only profile: `perf record` of gtmsmd (synchronous full, group
    commit on) while `clients` obsload clients post one observation per
    request for `seconds`; the share of its samples by shared object and the
    top symbols, as perf report prints them."""
    if not shutil.which("perf"):
        raise SystemExit("--only profile needs perf")
    frames = tmp + "/prof-frames.ndjson"
    with open(frames, "wb") as f:
        f.write(gen(gtmsm, 5, 512))
    d = Daemon(gtmsmd, models, tmp + "/prof.db", "--synchronous", "full")
    for i in range(clients):
        put_session(d, f"w-{i}")
        put_session(d, f"p-{i}")
    observe_load(obsload, d.port, clients, 1, "w", frames)  # warm-up on other sessions
    data = tmp + "/perf.data"
    rec = subprocess.Popen(["perf", "record", "-q", "-g", "-p", str(d.proc.pid), "-o", data, "--", "sleep",
                            str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = observe_load(obsload, d.port, clients, seconds, "p", frames)
    rec.wait()
    d.stop()
    report = ["perf", "report", "-i", data, "--no-children", "-q", "-g", "none"]
    dso = sh(*report, "--sort", "dso").stdout.decode().split("\n")
    sym = sh(*report, "--sort", "sym").stdout.decode().split("\n")
    return {"clients": clients, "rps": r["rps"], "dso": [l.strip() for l in dso if l.strip()][:12],
            "sym": [l.strip() for l in sym if l.strip()][:30]}


def server_us(d, skip):
    """Median of the access log's server-side microseconds of the prediction
    requests after the first `skip` of them, and how many there were."""
    us = []
    with open(d.log_path, "rb") as f:
        for raw in f:
            line = json.loads(raw)
            if line.get("event") == "access" and line.get("route") == "predictions":
                us.append(line["us"])
    rest = sorted(us[skip:])
    return (rest[len(rest) // 2] if rest else 0), len(us)


def predict_helpers(gtmsmd, gtmsm, models, tmp, a, runs=3):
    """--only predict: N-step image/png predictions at 1 client, then at 8
    clients, over 8 sessions that each observed N steps; client p50/p99 (wrk)
    and the daemon's own p50 (the access log's us) per run. Two daemons with
    the same sessions take turns: one with its default helper threads
    (--helpers -1: a prediction decodes its blocks on an idle core too), one
    with --helpers 0 (each request on its own thread), the baseline."""
    daemons = []
    for helpers in ("-1", "0"):
        d = Daemon(gtmsmd, models, f"{tmp}/p1-h{helpers}.db", "--helpers", helpers)
        for i in range(8):
            put_session(d, f"p1-{i}")
            observe(d, f"p1-{i}", gen(gtmsm, 2000 + i, a.steps))
        daemons.append((helpers, d, [0]))
    rows = []
    for run in range(runs):
        for clients in (1, 8):
            for helpers, d, seen in daemons:
                r = wrk(d.port, os.path.join(HERE, "bench_server_predict.lua"), min(clients, 2), clients, a.seconds,
                        ["p1", 8, a.steps, "image/png"])
                us, seen[0] = server_us(d, seen[0])
                r.update(run=run + 1, clients=clients, helpers=helpers, server_p50_ms=us / 1000)
                rows.append(r)
    for _, d, _ in daemons:
        d.stop()
    return rows


def print_predict_helpers(rows, a):
    print(f"## {a.steps}-step predictions, image/png (wrk {a.seconds} s per row)\n")
    print("| run | clients | --helpers | predictions/s | p50 ms | p99 ms | daemon's own p50 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['run']} | {r['clients']} | {r['helpers']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['server_p50_ms']:.2f} |")
    print("\n(daemon's own: the median of the access log's `us` of the row's requests, parse to reply queued; "
          "--helpers -1 is the default, the CPUs less one)")


def store_compare(gtmsmd, gtmsm, models, tmp, a):
    """Section 6: SQLite against PostgreSQL, then the failover cost."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
    import pglib
    if not pglib.available():
        raise SystemExit("--store postgresql needs the PostgreSQL server binaries (scripts/setup.sh)")
    res = {"predict": [], "observe": [], "failover": []}
    frames = tmp + "/st-frames.ndjson"
    with open(frames, "wb") as f:
        f.write(gen(gtmsm, 3, 512))
    n = min(a.sessions, 16)
    eps = [gen(gtmsm, 2000 + i, a.steps) for i in range(n)]
    with pglib.Postgres() as pg:
        for backend in ("sqlite", "postgresql"):
            args = ["--threads", "64"]
            if backend == "postgresql":
                args += ["--store", pg.create_db("bench")]
            d = Daemon(gtmsmd, models, f"{tmp}/st-{backend}.db", *args)
            for i in range(n):
                put_session(d, f"st-{i}")
                observe(d, f"st-{i}", eps[i])
            for c in (1, 8, 64):
                r = wrk(d.port, os.path.join(HERE, "bench_server_predict.lua"), min(c, 2), c, a.seconds,
                        ["st", n, a.steps, "image/png"])
                r.update(store=backend, clients=c)
                res["predict"].append(r)
            for k, c in enumerate((1, 8, 64)):
                for i in range(c):
                    put_session(d, f"so{k}-{i}")
                r = wrk(d.port, os.path.join(HERE, "bench_server_observe.lua"), c, c, a.seconds,
                        [f"so{k}", 16, frames])
                r.update(store=backend, clients=c, obs_per_s=r["rps"] * 16)
                res["observe"].append(r)
            d.stop()
        one = json.dumps({"actions": [0, 1, 2]})
        hdr = {"Content-Type": "application/json"}
        for ttl in (1000, 5000):
            for how in ("SIGKILL", "SIGTERM"):
                url = pg.create_db(f"fo{ttl}{how.lower()}")
                x = Daemon(gtmsmd, models, f"{tmp}/fo-a.db", "--store", url, "--lease-ttl-ms", str(ttl))
                y = Daemon(gtmsmd, models, f"{tmp}/fo-b.db", "--store", url, "--lease-ttl-ms", str(ttl))
                put_session(x, "fo")
                observe(x, "fo", eps[0])
                assert x.request("POST", "/v1/sessions/fo/predictions", one, hdr)[0] == 200
                t0 = time.monotonic()
                if how == "SIGKILL":
                    x.proc.kill()
                else:
                    x.proc.terminate()
                x.proc.wait(60)
                x.log.close()
                tries = 0
                while True:
                    tries += 1
                    if y.request("POST", "/v1/sessions/fo/predictions", one, hdr)[0] == 200:
                        break
                    time.sleep(0.02)
                res["failover"].append({"ttl_ms": ttl, "how": how, "seconds": time.monotonic() - t0,
                                        "tries": tries})
                y.stop()
    return res


def print_store(res, a):
    print(f"## SQLite and PostgreSQL in the same run (wrk {a.seconds} s per row)\n")
    print(f"| store | clients | {a.steps}-step predictions/s | p50 ms | p99 ms | durable observations/s "
          "(16 per request) | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p, o in zip(res["predict"], res["observe"]):
        print(f"| {p['store']} | {p['clients']} | {p['rps']:.1f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | "
              f"{o['obs_per_s']:.0f} | {o['p50_ms']:.2f} | {o['p99_ms']:.2f} | {p['non2xx'] + o['non2xx']} |")
    print("\n## Failover with session leases: kill to the first success of that session on another replica\n")
    print("| --lease-ttl-ms | the first replica | seconds | requests tried |")
    print("|---:|---|---:|---:|")
    for r in res["failover"]:
        print(f"| {r['ttl_ms']} | {r['how']} | {r['seconds']:.2f} | {r['tries']} |")
    print("\n(SIGTERM releases the leases; after SIGKILL they lapse one TTL after the last commit. Behind "
          "HAProxy add its detection, about 2 s, which overlaps the lapse.)")


def maze3d(gtmsmd, gtmsm, bench_bin, model, tmp, seconds):
    """The 3-D prediction section: rows for 150-step predictions at 1 and 8
    clients and one-step predictions at 1 client, with the decoder's GEMM time
    for as many frames measured in the same run."""
    models = tmp + "/models3d"
    os.makedirs(models, exist_ok=True)
    shutil.copy(model, models + "/maze3d.gtm")
    gemm = json.loads(sh(os.path.join(bench_bin, "bench", "bench_predict3d"), model, "--gemm-json").stdout)
    d = Daemon(gtmsmd, models, tmp + "/maze3d.db")
    sessions = 8
    for i in range(sessions):
        put_session(d, f"m3-{i}", "maze3d")
        observe(d, f"m3-{i}", sh(gtmsm, "gen", "--env", "maze3d", "--scenario", "walk", "--seed", str(500 + i),
                                   "--steps", "150").stdout)
    script = os.path.join(HERE, "bench_server_predict.lua")
    rows = []
    for clients, steps in ((1, 150), (8, 150), (1, 1)):
        r = wrk(d.port, script, min(clients, 2), clients, seconds, ["m3", sessions, steps, "image/png"])
        r.update(clients=clients, steps=steps, gemm_ms=gemm["decoder_gemm_ms"][str(steps)])
        rows.append(r)
    d.stop()
    return {"model": model, "blas_core": gemm["blas_core"], "rows": rows}


def print_maze3d(res, seconds):
    print(f"## 3-D prediction ({res['model']}, 150 observed steps per session; wrk {seconds} s per row)\n")
    print("| clients | steps per request | predictions/s | frames/s | p50 ms | p99 ms | decoder GEMMs ms "
          "| p50 / GEMMs | non-2xx |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["rows"]:
        print(f"| {r['clients']} | {r['steps']} | {r['rps']:.1f} | {r['rps'] * r['steps']:.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['gemm_ms']:.2f} | {r['p50_ms'] / r['gemm_ms']:.2f} | {r['non2xx']} |")
    print("\n(decoder GEMMs: the conv decoder's linear layer over all the frames, its transposed conv and conv per "
          "image, as plain sgemm of the same shapes for as many frames, one thread, bench_predict3d --gemm-json in "
          "the same run; with 8 clients p50 includes the queue)")


def print_group_commit(rows, seconds):
    delay = rows[0].get("fsync_delay_ms", 0) if rows else 0
    disk = (f", every fsync {delay:g} ms slower (bench/fsync_delay_shim.c preloaded)" if delay else "")
    th = rows[0].get("threads", 0) if rows else 0
    th = f"--threads {th}" if th > 0 else "default --threads"
    tool = rows[0].get("loadgen", "wrk") if rows else "wrk"
    print(f"## Group commit: durable observations, 1 per request, {th} ({tool} {seconds} s per row){disk}\n")
    print("| synchronous | --group-commit | clients | observations/s | x 1 client | requests per COMMIT | "
          "COMMIT ms (time one is running) | frames per encoder batch | daemon CPU us per observation | "
          "client CPU us per observation | disk KiB per observation | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['sync']} | {r['group_commit']} | {r['clients']} | {r['rps']:.0f} | {r['ratio']:.1f}x | "
              f"{r['mean_group']:.1f} | {r['commit_ms']:.2f} ({100 * r['commit_busy']:.0f}%) | "
              f"{r['mean_encoder_batch']:.2f} | {r['cpu_us']:.0f} | {r.get('client_cpu_us', 0):.0f} | "
              f"{r.get('disk_kib', 0):.1f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | "
              f"{r['non2xx']} |")
    print("\n(x 1 client: against the mean of the two 1-client rows of the same daemon; the synchronous off "
          "row against the first daemon's; frames per encoder batch: one-observation requests encoded "
          "together, gtmsm_encoder_batch_frames_total / gtmsm_encoder_batches_total, 0 where none ran (imagenav encodes each "
          "frame at once) or for a daemon without them; "
          "COMMIT ms: the store's mean COMMIT (gtmsm_sqlite_commit_duration_seconds), and the share of the row's "
          "time a COMMIT was running; daemon CPU: its user + system time over the row's run, per observation "
          "acknowledged; client CPU: the load generator's, on the same cores; disk: what the daemon had written "
          "to storage over the row (/proc's write_bytes: WAL pages, checkpoints), per observation)")


def obsload_bin(a):
    path = os.path.join(a.bin, "bench", "obsload")
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing (cmake --build build)")
    return path


def write_section(a, results, key, section):
    """A section run alone: its results under key in --json (if given); the exit status."""
    if a.json:
        with open(a.json, "w") as f:
            json.dump({**results, key: section}, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.environ.get("GTMSM_BIN", os.path.join(ROOT, "build")))
    ap.add_argument("--model")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=64, help="at least 2")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--json")
    ap.add_argument("--only", choices=["group-commit", "maze3d", "predict", "allocs", "migrate", "coldload", "profile"],
                    help="run one section alone "
                    "(predict: N-step predictions at 1 and 8 clients, three runs, with and without helper "
                    "threads, with the daemon's own time; allocs: gtmsmd's mallocs per one-observation "
                    "request, with perf uprobes and build/bench/obsload; migrate: gtmsmd's start on a version-4 database "
                    "of --migrate-rows observations; coldload: the first prediction of sessions after a restart; profile: perf record of gtmsmd under "
                    "64 obsload clients)")
    ap.add_argument("--migrate-rows", type=int, default=1000000, help="migrate: observations in the database")
    ap.add_argument("--gc-threads", type=int, default=0, help="group commit: the daemon's --threads "
                    "(0, the default: its own, 2 x CPUs; 64 for builds before fe69615, whose groups "
                    "--threads bounded)")
    ap.add_argument("--loadgen", choices=["wrk", "obsload"], default="wrk",
                    help="group commit: the load generator (obsload: build/bench/obsload, one thread on epoll, "
                    "11-38 us of CPU per request on a 2-CPU VM where wrk's thread per connection spent 51-74)")
    ap.add_argument("--fsync-delay-ms", type=float, default=0,
                    help="group commit: also run the section with every fsync of the daemon this much slower "
                    "(an LD_PRELOAD shim, build/bench/libfsync_delay_shim.so), a disk slower than this one")
    ap.add_argument("--store", choices=["postgresql"], help="section 6 alone: SQLite against PostgreSQL "
                    "and the failover cost")
    ap.add_argument("--maze3d-model", help="maze3d model of section 5 (default models/maze3d_walk.gtm, "
                    "else models/maze3d_rotate.gtm)")
    a = ap.parse_args()
    gtmsmd = os.path.join(a.bin, "server", "gtmsmd")
    gtmsm = os.path.join(a.bin, "tools", "gtmsm")
    version = subprocess.run([gtmsmd, "--version"], capture_output=True, text=True).stdout
    core = re.search(r"^blas_core (.*)$", version, re.M)
    print(f"BLAS core: {core.group(1) if core else 'unknown'}\n", flush=True)
    results = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "seconds": a.seconds,
               "sessions": a.sessions, "steps": a.steps}
    with tempfile.TemporaryDirectory() as tmp:
        models = tmp + "/models"
        os.makedirs(models)
        model = a.model or os.path.join(ROOT, "models", "imagenav.gtm")
        if os.path.exists(model):
            shutil.copy(model, models + "/imagenav.gtm")
            results["model"] = model
        else:
            sh(gtmsm, "train", "--out", tmp + "/run", "--steps", "1", "--batch", "1", "--memorize", "32",
               "--predict", "8", "--model-out", models + "/imagenav.gtm")
            results["model"] = "default architecture, 1 update (gtmsm train --steps 1)"
        m3 = a.maze3d_model or next((p for p in (os.path.join(ROOT, "models", f"maze3d_{k}.gtm")
                                                  for k in ("walk", "rotate")) if os.path.exists(p)), None)
        if a.only == "maze3d":
            res = maze3d(gtmsmd, gtmsm, a.bin, m3, tmp, a.seconds)
            print_maze3d(res, a.seconds)
            return write_section(a, results, "maze3d", res)
        if a.only == "allocs":
            res = allocs(gtmsmd, gtmsm, models, tmp, obsload_bin(a))
            print(f"## Allocations per one-observation request ({res['clients']} obsload clients, "
                  f"{res['requests']} requests)\n")
            print(f"malloc {res.get('malloc', 0):.1f}, calloc {res.get('calloc', 0):.1f} per request")
            return write_section(a, results, "allocs", res)
        if a.only == "migrate":
            res = migrate(gtmsmd, models, tmp, a.migrate_rows)
            print(f"## Start on a version-4 database: {res['rows']} observations over {res['sessions']} sessions\n")
            print(f"{res['seconds']:.1f} s from start to listening ({res['rows'] / res['seconds']:.0f} observations/s); "
                  f"database {res['db_bytes_before'] / 2**20:.0f} MiB before, database + WAL "
                  f"{res['db_and_wal_bytes_running'] / 2**20:.0f} MiB once listening, database "
                  f"{res['db_bytes_after'] / 2**20:.0f} MiB after its stop ({res['free_bytes_after'] / 2**20:.0f} MiB "
                  f"of it free pages, for new rows); {res['rows_after']} rows at version {res['version_after']}")
            return write_section(a, results, "migrate", res)
        if a.only == "coldload":
            res = coldload(gtmsmd, gtmsm, models, tmp, obsload_bin(a), a.seconds)
            print(f"## A session's first prediction after a restart ({res['sessions']} sessions of ~{res['steps']} "
                  f"observations, written by {res['clients']} obsload clients at once)\n")
            print("| kernel page cache | first prediction ms (the session loaded) | second ms | load us per observation |")
            print("|---|---:|---:|---:|")
            for cache in ("warm", "dropped"):
                if cache in res:
                    r = res[cache]
                    print(f"| {cache} | {r['first_ms']:.2f} | {r['second_ms']:.2f} | "
                          f"{1e3 * (r['first_ms'] - r['second_ms']) / res['steps']:.2f} |")
            return write_section(a, results, "coldload", res)
        if a.only == "profile":
            res = profile(gtmsmd, gtmsm, models, tmp, obsload_bin(a), a.seconds)
            print(f"## gtmsmd's profile: {res['clients']} obsload clients, one observation per request "
                  f"({res['rps']:.0f}/s)\n")
            print("By shared object:\n\n```\n" + "\n".join(res["dso"]) + "\n```\n")
            print("By symbol:\n\n```\n" + "\n".join(res["sym"]) + "\n```")
            return write_section(a, results, "profile", res)
        if a.only == "predict":
            rows = predict_helpers(gtmsmd, gtmsm, models, tmp, a)
            print_predict_helpers(rows, a)
            return write_section(a, results, "predict_helpers", rows)
        if a.store == "postgresql":
            res = store_compare(gtmsmd, gtmsm, models, tmp, a)
            print_store(res, a)
            return write_section(a, results, "store", res)
        if a.only == "group-commit":
            loadgen = obsload_bin(a) if a.loadgen == "obsload" else "wrk"
            rows = group_commit(gtmsmd, models, tmp, gtmsm, a.seconds, threads=a.gc_threads, loadgen=loadgen)
            print_group_commit(rows, a.seconds)
            if a.fsync_delay_ms > 0:
                shim = os.path.join(a.bin, "bench", "libfsync_delay_shim.so")
                if not os.path.exists(shim):
                    raise SystemExit(f"--fsync-delay-ms needs {shim} (cmake --build build)")
                slow = group_commit(gtmsmd, models, tmp + "/slow", gtmsm, a.seconds, a.fsync_delay_ms, shim,
                                    a.gc_threads, loadgen)
                print()
                print_group_commit(slow, a.seconds)
                rows += slow
            return write_section(a, results, "group_commit", rows)
        d = Daemon(gtmsmd, models, tmp + "/bench.db")
        s, info = d.request("GET", "/v1/models/imagenav")
        info = json.loads(info)
        results["model_info"] = {k: info[k] for k in ("frame_width", "frame_height", "latent_size", "memory_k")}
        # sessions that each observed --steps steps (one NDJSON request each)
        eps = [gen(gtmsm, 1000 + i, a.steps) for i in range(a.sessions)]
        t0 = time.time()
        for i in range(a.sessions):
            put_session(d, f"bench-{i}")
            observe(d, f"bench-{i}", eps[i])
        results["bulk_observe_per_s"] = a.sessions * a.steps / (time.time() - t0)

        # predictions
        script = os.path.join(HERE, "bench_server_predict.lua")
        rows = []
        for c in (1, 8, 64):
            r = wrk(d.port, script, min(c, 2), c, a.seconds, ["bench", a.sessions, a.steps, "image/png"])
            r["clients"] = c
            r["accept"] = "image/png"
            rows.append(r)
        r = wrk(d.port, script, 2, 8, a.seconds, ["bench", a.sessions, a.steps, "application/json"])
        r["clients"] = 8
        r["accept"] = "application/json"
        rows.append(r)
        results["predict"] = rows

        # a big session: prediction cost against a large memory
        big_steps = 20000
        put_session(d, "big-0")
        t0 = time.time()
        observe(d, "big-0", gen(gtmsm, 7, big_steps))
        results["big_observe_s"] = time.time() - t0
        r = wrk(d.port, script, 1, 1, a.seconds, ["big", 1, a.steps, "image/png"])
        r["clients"] = 1
        r["accept"] = "image/png"
        r["memory"] = big_steps
        results["predict_big"] = r
        d.stop()

        # RAM per hot session: a fresh daemon on the same database, sessions
        # loaded from SQLite by a one-step prediction each (no large bodies)
        one = json.dumps({"actions": [0]})
        hdr = {"Content-Type": "application/json"}
        d = Daemon(gtmsmd, models, tmp + "/bench.db", "--threads", "1")
        # the first load also pays one-off costs (BLAS buffers, the thread's arena): baseline after it
        assert d.request("POST", "/v1/sessions/bench-0/predictions", one, hdr)[0] == 200
        rss0, cache0 = d.rss_kib(), d.metric("gtmsm_session_cache_bytes")
        for i in range(1, a.sessions):
            assert d.request("POST", f"/v1/sessions/bench-{i}/predictions", one, hdr)[0] == 200
        rss1, cache1 = d.rss_kib(), d.metric("gtmsm_session_cache_bytes")
        assert d.request("POST", "/v1/sessions/big-0/predictions", one, hdr)[0] == 200
        rss2, cache2 = d.rss_kib(), d.metric("gtmsm_session_cache_bytes")
        results["ram_small"] = {"sessions": a.sessions, "steps": a.steps,
                                "rss_kib_per_session": (rss1 - rss0) / (a.sessions - 1),
                                "cache_bytes_per_session": (cache1 - cache0) / (a.sessions - 1)}
        results["ram_big"] = {"steps": big_steps, "rss_kib": rss2 - rss1, "cache_bytes": cache2 - cache1}
        d.stop()

        # durable observations
        frames = tmp + "/frames.ndjson"
        with open(frames, "wb") as f:
            f.write(gen(gtmsm, 3, 512))
        script = os.path.join(HERE, "bench_server_observe.lua")
        obs = []
        for sync in ("full", "normal"):
            d = Daemon(gtmsmd, models, f"{tmp}/obs-{sync}.db", "--synchronous", sync)
            run = 0
            for clients in (1, 8):
                for batch in (1, 16, 256):
                    prefix = f"o{run}"
                    run += 1
                    for i in range(clients):
                        put_session(d, f"{prefix}-{i}")
                    r = wrk(d.port, script, clients, clients, a.seconds, [prefix, batch, frames])
                    r.update(sync=sync, clients=clients, batch=batch, obs_per_s=r["rps"] * batch)
                    obs.append(r)
            d.stop()
        results["observe"] = obs
        results["group_commit"] = group_commit(gtmsmd, models, tmp, gtmsm, a.seconds)
        if m3:
            results["maze3d"] = maze3d(gtmsmd, gtmsm, a.bin, m3, tmp, a.seconds)

    print(f"# gtmsmd benchmarks, {results['date']}, {results['cpus']} CPUs, model: {results['model']}")
    mi = results["model_info"]
    print(f"frames {mi['frame_width']}x{mi['frame_height']}, latent {mi['latent_size']}, k {mi['memory_k']}; "
          f"{a.sessions} sessions of {a.steps} observed steps; wrk {a.seconds} s per row\n")
    print(f"## {a.steps}-step predictions (one request = {a.steps} frames)\n")
    print("| clients | reply | predictions/s | frames/s | p50 ms | p99 ms | non-2xx |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in results["predict"]:
        print(f"| {r['clients']} | {r['accept']} | {r['rps']:.1f} | {r['rps'] * a.steps:.0f} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']} |")
    r = results["predict_big"]
    print(f"| 1 | image/png, memory of {r['memory']} entries | {r['rps']:.1f} | {r['rps'] * a.steps:.0f} | "
          f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']} |")
    print("\n## Durable observations (NDJSON, replies after COMMIT)\n")
    print("| synchronous | clients | observations/request | observations/s | requests/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results["observe"]:
        print(f"| {r['sync']} | {r['clients']} | {r['batch']} | {r['obs_per_s']:.0f} | {r['rps']:.1f} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']} |")
    print(f"\nBulk set-up: {results['bulk_observe_per_s']:.0f} observations/s "
          f"({a.sessions} NDJSON requests of {a.steps} lines, sequential).")
    print()
    print_group_commit(results["group_commit"], a.seconds)
    print("\n## RAM per hot session\n")
    print("| memory entries | RSS growth per session | cache accounting per session |")
    print("|---:|---:|---:|")
    rs = results["ram_small"]
    print(f"| {rs['steps']} | {rs['rss_kib_per_session']:.0f} KiB | {rs['cache_bytes_per_session'] / 1024:.0f} KiB |")
    rb = results["ram_big"]
    print(f"| {rb['steps']} | {rb['rss_kib']:.0f} KiB | {rb['cache_bytes'] / 1024:.0f} KiB |")
    print(f"\n(sessions loaded cold from SQLite into a fresh daemon; the {rb['steps']}-step session was observed "
          f"in one NDJSON request in {results['big_observe_s']:.1f} s)")
    if "maze3d" in results:
        print()
        print_maze3d(results["maze3d"], a.seconds)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
