#!/usr/bin/env python3
"""Three gtmsmd replicas behind HAProxy, each on its own SQLite file (no
shared store), 16 clients streaming observations and predicting through the
Python client's normal retry path while one replica is killed with SIGKILL at
5 seeded random moments and restarted on its own file each time:
- every client finishes: the dead replica's sessions are 503 (HAProxy's own,
  then owner-unavailable from the ring's next replica, which learns from the
  X-Gtmsm-Ring header that a replica is down), retried; a 404 would have
  ended the client with NotFound;
- 0 forks: every session is in exactly one replica's file, with rows = steps
  = 96, t = 0 .. 95;
- every prediction byte-identical to the same sessions on one daemon;
- one replica killed once more and held down until HAProxy marks it DOWN:
  each of its sessions is 503 owner-unavailable with Retry-After (GET,
  prediction), a PUT of one of its ids creates nothing; back on its file,
  every session predicts byte-identically again."""
import os
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402
import failoverlib as fl  # noqa: E402
from failoverlib import check, finish  # noqa: E402

SEED = 15


def stored(tmp, names):
    """{id: [(replica, steps, rows, distinct t, max t + 1)]} over every replica's file."""
    out = {}
    for n in names:
        con = sqlite3.connect(f"file:{tmp}/{n}/gtmsm.db?mode=ro", uri=True)
        for row in con.execute("SELECT s.id, s.steps, count(o.t), count(DISTINCT o.t), coalesce(max(o.t) + 1, 0) "
                               "FROM sessions s LEFT JOIN observations o ON o.sid = s.sid GROUP BY s.sid"):
            out.setdefault(row[0], []).append((n, *row[1:]))
        con.close()
    return out


def main():
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        models = tmp + "/models"
        fl.train_model(models + "/imagenav.gtm")
        eps = fl.episodes()
        ids = [f"walker-{i}" for i in range(fl.N_CLIENTS)]
        ref = fl.reference(tmp, models, eps, ids)
        check(all(o.get("done") for o in ref), "the single-node reference run finished")
        cl = fl.Cluster(tmp, models, lambda name: ["--db", f"{tmp}/{name}/gtmsm.db"])
        outs = [{"preds": {}} for _ in ids]
        t0 = time.monotonic()
        klog, during = fl.run_clients(cl, eps, ids, SEED, outs, 5)
        fl.check_run(klog, during, ids, outs, t0, what=" (no 404)")
        st = stored(tmp, cl.names)
        bad = [(sid, st.get(sid)) for sid in ids if len(st.get(sid, [])) != 1 or st[sid][0][1:] != (fl.STEPS,) * 4]
        check(not bad and len(st) == fl.N_CLIENTS,
              f"0 forks: each session in exactly one replica's file, {fl.STEPS} rows = steps {bad[:3]}")
        diff = fl.compare_predictions(ids, outs, ref)
        check(not diff, f"every prediction byte-identical to the single-node run {diff[:3]}")

        # One replica held down: its sessions are 503, never 404, never created elsewhere.
        lb = cl.lb_port
        owner = {sid: st[sid][0][0] for sid in ids if sid in st}
        victim = max(cl.names, key=lambda n: sum(o == n for o in owner.values()))
        mine = [sid for sid in ids if owner.get(sid) == victim]
        final = {sid: r["preds"][fl.STEPS] for sid, r in zip(ids, ref)}
        cl.kill9(victim)
        states = ["DOWN" if n == victim else "UP" for n in cl.names]
        check(deploylib.wait_states(cl.stats_port, states), f"haproxy marks {victim} DOWN")
        bad = []
        for sid in mine:
            for method, path, body in (("GET", f"/v1/sessions/{sid}", None),
                                       ("POST", f"/v1/sessions/{sid}/predictions", {"actions": fl.PRED})):
                s, h, b = deploylib.request(lb, method, path, body)
                if s != 503 or b"owner-unavailable" not in b or not h.get("retry-after"):
                    bad.append((sid, method, s, h.get("x-served-by"), b[:100]))
        check(mine and not bad, f"{victim} down: each of its {len(mine)} sessions is 503 owner-unavailable "
              f"with Retry-After (GET, prediction) {bad[:3]}")
        s, h, b = deploylib.request(lb, "PUT", f"/v1/sessions/{mine[0]}", {"model": fl.MODEL})
        check(s == 503 and b"owner-unavailable" in b, f"a PUT of one of its ids is 503, not a fork ({s})")
        st2 = stored(tmp, [n for n in cl.names if n != victim])
        check(not any(sid in st2 for sid in mine), "none of its sessions exists on another replica")
        cl.start(victim)
        check(deploylib.wait_states(cl.stats_port, ["UP"] * 3), f"{victim} back on its file and UP")
        c = fl.gc.Client(f"http://127.0.0.1:{lb}", retries=20, backoff=0.1, max_backoff=1.0)
        bad = [sid for sid in ids if c.predict_strip(sid, fl.PRED).png != final[sid]]
        check(not bad, f"every session predicts byte-identically again {bad[:3]}")
        c.close()
        codes = cl.close()
        check(all(v == 0 for v in codes.values()), f"the replicas exit 0 on SIGTERM {codes}")
        fl.check_logs(tmp, cl.names)
    print(f"  total {time.monotonic() - t_start:.1f} s")
    finish("test_failover_sqlite")


if __name__ == "__main__":
    main()
