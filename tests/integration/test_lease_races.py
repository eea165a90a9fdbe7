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
  lease check and a commit) are logged and were retried, never kept."""
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
        for i in range(0, N, 4):
            r = c.observe("race", ep[i:i + 4], window=4, chunk=2, start_t=i)
            with lock:
                out["acks"].append(r.steps)
                out["retries"] += r.retries
        out["done"] += 1
    except Exception as e:  # noqa: BLE001
        out["errors"].append(repr(e))
    finally:
        c.close()


def main():
    if not pglib.available():
        check(False, "PostgreSQL server binaries are missing: run scripts/setup.sh (postgresql-15)")
        finish("test_lease_races")
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, pglib.Postgres() as pg:
        models = tmp + "/models"
        train_model(models + "/imagenav.gtm")
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
