#!/usr/bin/env python3
"""Lease races: two gtmsmd replicas on one PostgreSQL (tests/lib/pglib.py),
one session, four clients (two on each replica, the Python client with its
normal retries) sending the same episode at once in small requests, while
the replicas are paused in turn (SIGSTOP longer than the lease TTL, then
SIGCONT) so that the lease moves under requests in flight and a paused
replica wakes up holding a copy it no longer owns:
- no gap, no duplicate: rows t = 0 .. N - 1 once each, steps = N;
- no lost acknowledgement: after every pause, every acknowledged step is in
  the database; every acknowledgement is at most N;
- the stored content is the episode's: re-sending it is N exact duplicates;
- both replicas then predict the same bytes as one daemon given the episode;
- the lease moved (epoch > 1); fenced appends (if a pause landed between a
  lease check and a commit) are logged and were retried, never kept;
- and deterministically: a replica whose lease lapsed behind its back (the
  row expired with psql, another replica took it over and wrote) appends
  once more from its stale copy: 503 session-leased-elsewhere, nothing kept,
  its copy dropped; once the other's lease lapses it reloads and goes on.
  (A read in that window would still be answered from the copy: reads rely
  on the lease's time bound, writes on the epoch; docs/DEPLOY.md.)"""
import os
import random
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import pglib  # noqa: E402
from test_server_startup import SRC, Daemon, check, episode, finish, train_model  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "clients", "python"))
import gtmsm_client as gc  # noqa: E402

N = 120
TTL_MS = 400
SEED = 3
PRED = {"actions": ["left", "up", "right", "down", "stay", "up"]}


def db_state(pg):
    out = pg.sql("race", "SELECT s.steps, count(o.t), count(DISTINCT o.t), coalesce(max(o.t) + 1, 0) "
                         "FROM sessions s LEFT JOIN observations o ON o.sid = s.sid WHERE s.id = 'race' "
                         "GROUP BY s.steps")
    return tuple(int(x) for x in out.split("|")) if out else (0, 0, 0, 0)


def client(port, ep, out, lock):
    c = gc.Client(f"http://127.0.0.1:{port}", retries=400, backoff=0.05, max_backoff=0.5, timeout=30)
    try:
        for _ in range(2):  # the second pass: all duplicates, still under the lease
            for i in range(0, N, 4):
                r = c.observe("race", ep[i:i + 4], window=4, chunk=2, start_t=i)
                with lock:
                    out["acks"].append(r.steps)
                    out["retries"] += r.retries
                time.sleep(0.03)
        out["done"] += 1
    except Exception as e:  # noqa: BLE001
        out["errors"].append(repr(e))
    finally:
        c.close()


def test_fence(pg, tmp, models, url):
    """A replica that lost the lease without knowing it (its lease expired
    behind its back: a pause, a slow clock) writes once more: the fence
    refuses it, nothing is kept, the replica drops its copy and reloads."""
    args = ["--store", url, "--lease-ttl-ms", "10000"]
    a = Daemon(models, tmp + "/fa.unused.db", *args, "--served-by", "fa")
    b = Daemon(models, tmp + "/fb.unused.db", *args, "--served-by", "fb")
    ep = episode(22, 30)
    ndj = {"Content-Type": "application/x-ndjson"}
    body = lambda lo, hi: "".join(__import__("json").dumps(o) + "\n" for o in ep[lo:hi]).encode()  # noqa: E731
    a.json("PUT", "/v1/sessions/fence", {"model": "imagenav"})
    s, h, j = a.json("POST", "/v1/sessions/fence/observations", body(0, 10), ndj)
    check(s == 200 and j["steps"] == 10, "fence: a holds the lease and stores t 0..9")
    expire = ("UPDATE session_leases SET expires_at = clock_timestamp() - interval '1 second' "
              "WHERE sid = (SELECT sid FROM sessions WHERE id = 'fence')")
    pg.sql("fencedb", expire)  # a's lease lapses; a still trusts it for 7.5 s
    s, h, j = b.json("POST", "/v1/sessions/fence/observations", body(10, 20), ndj)
    check(s == 200 and j == {"accepted": 10, "duplicates": 0, "steps": 20},
          f"fence: b takes the lapsed lease over, reloads at t=10 and stores t 10..19 ({s} {j})")
    s, h, j = a.json("POST", "/v1/sessions/fence/observations", body(10, 25), ndj)
    check(s == 503 and j["type"].endswith("session-leased-elsewhere") and h.get("retry-after"),
          f"fence: a's append from its stale copy (t=10 again) is refused: 503 session-leased-elsewhere ({s} {j})")
    check(any("append fenced" in str(l.get("msg", "")) for l in a.lines()), "fence: a logged the fenced append")
    rows = pg.sql("fencedb", "SELECT s.steps, count(o.t) FROM sessions s JOIN observations o ON o.sid = s.sid "
                             "WHERE s.id = 'fence' GROUP BY s.steps")
    check(rows == "20|20", f"fence: nothing of a's append was kept (steps|rows {rows})")
    s, h, j = a.json("GET", "/v1/sessions/fence")
    check(s == 503 and j["type"].endswith("session-leased-elsewhere"),
          f"fence: a dropped its copy and does not answer while b holds the lease ({s})")
    pg.sql("fencedb", expire)
    s, h, j = a.json("POST", "/v1/sessions/fence/observations", body(10, 25), ndj)
    check(s == 200 and j == {"accepted": 5, "duplicates": 10, "steps": 25},
          f"fence: once b's lease lapsed a takes it, reloads (t 10..19 are b's, exact duplicates) and goes on ({s} {j})")
    check(a.stop() == 0 and b.stop() == 0, "fence: both exit 0")


def main():
    if not pglib.available():
        check(False, "PostgreSQL server binaries are missing: run scripts/setup.sh (postgresql-15)")
        finish("test_lease_races")
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, pglib.Postgres() as pg:
        models = tmp + "/models"
        train_model(models + "/imagenav.gtm")
        test_fence(pg, tmp, models, pg.create_db("fencedb"))
        url = pg.create_db("race")
        ep = episode(21, N)
        single = Daemon(models, tmp + "/single.db")
        single.json("PUT", "/v1/sessions/race", {"model": "imagenav"})
        c = gc.Client(f"http://127.0.0.1:{single.port}")
        c.observe("race", ep)
        want = single.request("POST", "/v1/sessions/race/predictions", PRED, {"Accept": "image/png"})[2]
        c.close()
        check(single.stop() == 0, "the single-node reference")

        args = ["--store", url, "--lease-ttl-ms", str(TTL_MS)]
        a = Daemon(models, tmp + "/a.unused.db", *args, "--served-by", "a")
        b = Daemon(models, tmp + "/b.unused.db", *args, "--served-by", "b")
        s, h, j = a.json("PUT", "/v1/sessions/race", {"model": "imagenav"})
        check(s == 201, "the session created on a")
        out = {"acks": [], "retries": 0, "done": 0, "errors": []}
        lock = threading.Lock()
        threads = [threading.Thread(target=client, args=(d.port, ep, out, lock)) for d in (a, b, a, b)]
        for t in threads:
            t.start()
        rng = random.Random(SEED)
        lost = []
        pauses = 0
        while any(t.is_alive() for t in threads) and pauses < 6:
            time.sleep(rng.uniform(0.05, 0.4))
            d = rng.choice((a, b))
            os.kill(d.proc.pid, signal.SIGSTOP)
            time.sleep(rng.uniform(1.5, 2.5) * TTL_MS / 1000)  # the lease lapses meanwhile
            os.kill(d.proc.pid, signal.SIGCONT)
            pauses += 1
            with lock:
                acked = max(out["acks"], default=0)
            steps, rows, distinct, top = db_state(pg)
            if steps < acked or not steps == rows == distinct == top:
                lost.append((acked, steps, rows, distinct, top))
        for t in threads:
            t.join(120)
        print(f"  {pauses} pauses, {len(out['acks'])} acknowledgements, {out['retries']} retries, "
              f"{time.monotonic() - t_start:.1f} s", flush=True)
        check(pauses >= 3, f"the replicas were paused under the clients ({pauses} times)")
        check(out["done"] == 4 and not out["errors"], f"all four clients finished {out['errors'][:2]}")
        check(not lost, f"no acknowledged step missing after any pause, no gap, no duplicate {lost[:3]}")
        check(db_state(pg) == (N, N, N, N), f"rows t = 0 .. {N - 1} once each, steps {N} ({db_state(pg)})")
        check(all(0 < x <= N for x in out["acks"]), "every acknowledgement within 1..N")
        for d, name in ((a, "a"), (b, "b")):
            s = j = None
            for _ in range(100):  # the other replica's lease lapses first
                s, h, j = d.json("POST", "/v1/sessions/race/observations", {"observations": ep})
                if s != 503:
                    break
                time.sleep(0.1)
            check(s == 200 and j == {"accepted": 0, "duplicates": N, "steps": N},
                  f"{name}: re-sending the episode gives {N} exact duplicates ({s} {j})")
            s, h, got = d.request("POST", "/v1/sessions/race/predictions", PRED, {"Accept": "image/png"})
            check(s == 200 and got == want, f"{name}: predictions byte-identical to the single-node run")
        epoch = int(pg.sql("race", "SELECT epoch FROM session_leases"))
        check(epoch > 1, f"the lease moved between the replicas (epoch {epoch})")
        fenced = sum(1 for d in (a, b) for l in d.lines() if "append fenced" in str(l.get("msg", "")))
        print(f"  lease epoch {epoch}, fenced appends {fenced}", flush=True)
        check(a.stop() == 0 and b.stop() == 0, "both exit 0")
    finish("test_lease_races")


if __name__ == "__main__":
    main()
