#!/usr/bin/env python3
"""Three gtmsmd replicas behind HAProxy on one PostgreSQL (session leases,
docs/DEPLOY.md), 16 clients streaming observations and predicting through the
Python client's normal retry path, while one replica is killed with SIGKILL
at 5 seeded random moments and restarted each time:
- every client finishes (no error left after its retries);
- after each kill, no acknowledged observation is missing from the database
  (its steps >= every client's acknowledged steps, rows t = 0 .. steps - 1);
- 0 forks: one row per session, rows = steps = 96 at the end, no gap, no
  duplicate t;
- every prediction (after each request of each client) is byte-identical to
  the same sessions on one SQLite daemon without faults;
- the leases lapsed and moved (epochs > 1 where a session changed replica),
  and the replicas still running exit 0 on SIGTERM and release their leases."""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import failoverlib as fl  # noqa: E402
from failoverlib import check, finish  # noqa: E402
import pglib  # noqa: E402

SEED = 14
TTL_MS = 1500


def db_state(pg, db):
    """{id: (steps, rows, distinct t, max t + 1)} read with psql."""
    out = pg.sql(db, "SELECT s.id, s.steps, count(o.t), count(DISTINCT o.t), coalesce(max(o.t) + 1, 0) "
                     "FROM sessions s LEFT JOIN observations o ON o.sid = s.sid GROUP BY s.id, s.steps")
    res = {}
    for line in out.splitlines():
        f = line.split("|")
        res[f[0]] = tuple(int(x) for x in f[1:])
    return res


def main():
    if not pglib.available():
        check(False, "PostgreSQL server binaries are missing: run scripts/setup.sh (postgresql-15)")
        finish("test_failover_postgres")
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, pglib.Postgres() as pg:
        models = tmp + "/models"
        fl.train_model(models + "/imagenav.gtm")
        url = pg.create_db("failover")
        eps = fl.episodes()
        ids = [f"walker-{i}" for i in range(fl.N_CLIENTS)]
        ref = fl.reference(tmp, models, eps, ids)
        check(all(o.get("done") for o in ref), "the single-node reference run finished")

        cl = fl.Cluster(tmp, models, lambda name: ["--store", url, "--db", f"{tmp}/{name}.unused.db"],
                        ["--lease-ttl-ms", str(TTL_MS)])
        lost = []
        outs = [{"preds": {}} for _ in ids]

        def on_dead(victim):
            # every acknowledged observation is in the database, whatever died
            acked = {sid: o.get("acked", 0) for sid, o in zip(ids, outs)}
            st = db_state(pg, "failover")
            for sid, a in acked.items():
                steps, rows, distinct, top = st.get(sid, (0, 0, 0, 0))
                if steps < a or not steps == rows == distinct == top:
                    lost.append((victim, sid, a, st.get(sid)))

        t0 = time.monotonic()
        klog, during = fl.run_clients(cl, eps, ids, SEED, outs, 5, on_dead)
        fl.check_run(klog, during, ids, outs, t0)
        check(not lost, f"after every kill, every acknowledged observation is in the database {lost[:3]}")
        st = db_state(pg, "failover")
        bad = [(sid, st.get(sid)) for sid in ids if st.get(sid) != (fl.STEPS,) * 4]
        check(not bad and len(st) == fl.N_CLIENTS,
              f"0 forks: one row per session, {fl.STEPS} rows = steps, no gap, no duplicate {bad[:3]}")
        diff = fl.compare_predictions(ids, outs, ref)
        check(not diff, f"every prediction byte-identical to the single-node run ({sum(len(o['preds']) for o in outs)} "
              f"strips) {diff[:3]}")
        epochs = pg.sql("failover", "SELECT max(epoch), count(*) FILTER (WHERE epoch > 1) FROM session_leases")
        print("  lease epochs: max, sessions moved at least once:", epochs, flush=True)
        mx, moved = (int(x) for x in epochs.split("|"))
        check(moved > 0, f"leases moved between replicas ({moved} sessions, max epoch {mx})")
        codes = cl.close()
        check(all(c == 0 for c in codes.values()), f"the replicas exit 0 on SIGTERM {codes}")
        live = pg.sql("failover", "SELECT count(*) FROM session_leases WHERE expires_at > clock_timestamp()")
        check(live == "0", f"and release their leases on the way out ({live} still live)")
        fl.check_logs(tmp, cl.names)
    print(f"  total {time.monotonic() - t_start:.1f} s")
    finish("test_failover_postgres")


if __name__ == "__main__":
    main()
