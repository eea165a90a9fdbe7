#!/usr/bin/env python3
"""Group commit on a real daemon and a real SQLite file (synchronous full):
- 32 clients, each on its own session, send single-observation requests at
  once; every one is acknowledged, and afterwards the file holds every row in
  order (rows = steps = max t + 1, the actions as sent), and /metrics shows
  COMMITs that covered several requests;
- in the same burst some clients send bad requests (a gap, a content
  mismatch, a malformed line: 409/409/400 with expected_t where it applies)
  and exact re-sends (200, counted as duplicates): they get their own
  answers and every other request of the burst still succeeds;
- kill -9 in the middle of such a burst: every acknowledged observation is in
  the file and each session's rows are 0 .. steps - 1."""
import os
import signal
import sqlite3
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import Daemon, check, episode, finish, ndjson, train_model  # noqa: E402

NDJSON = {"Content-Type": "application/x-ndjson"}
ACTIONS = ["right", "left", "up", "down", "stay"]  # imagenav's actions by index (core/sim/imagenav.c)


def rows_of(db, sid):
    """(steps, [(t, action)] in order of t) of session sid, read with sqlite3."""
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT sid, steps FROM sessions WHERE id = ?", (sid,)).fetchone()
        obs = con.execute("SELECT t, action FROM observations WHERE sid = ? ORDER BY t", (row[0],)).fetchall()
        return row[1], obs
    finally:
        con.close()


def metric(d, name):
    s, h, b = d.request("GET", "/metrics")
    for line in b.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_burst(tmp, models):
    db = tmp + "/burst.db"
    d = Daemon(models, db, "--threads", "40", "--max-inflight", "1024")
    n_clients, steps = 32, 16
    eps = {i: episode(300 + i, steps) for i in range(n_clients)}
    bad_clients = {3, 11, 20}
    answers, errors = {}, []
    start = threading.Barrier(n_clients)

    def client(i):
        sid = f"b{i}"
        got = []
        try:
            s, h, j = d.json("PUT", f"/v1/sessions/{sid}", {"model": "imagenav"})
            assert s == 201, (s, j)
            start.wait()
            for t in range(steps):
                if i in bad_clients and t in (4, 9, 13):
                    o = dict(eps[i][t - 1])
                    if t == 4:  # a gap
                        o = dict(eps[i][t], t=t + 3)
                    elif t == 9:  # t - 1 again with another action: a content mismatch
                        o["action"] = "up" if o["action"] != "up" else "down"
                    s, h, j = d.json("POST", f"/v1/sessions/{sid}/observations",
                                     ndjson([o]) if t != 13 else b'{"t": 13, "action": \n', NDJSON)
                    got.append((t, s, j.get("expected_t"), j.get("type", "")))
                    # an exact re-send of t - 1: a duplicate, acknowledged
                    s, h, j = d.json("POST", f"/v1/sessions/{sid}/observations", ndjson([eps[i][t - 1]]), NDJSON)
                    assert s == 200 and j["duplicates"] == 1 and j["accepted"] == 0 and j["steps"] == t, (s, j)
                s, h, j = d.json("POST", f"/v1/sessions/{sid}/observations", ndjson([eps[i][t]]), NDJSON)
                assert s == 200 and j == {"accepted": 1, "duplicates": 0, "steps": t + 1}, (t, s, j)
            answers[i] = got
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, f"{n_clients} clients x {steps} single-observation requests all acknowledged"
          + ("" if not errors else ": " + "; ".join(errors[:3])))
    want = [(4, 409, 4, "urn:gtmsm:problem:gap"), (9, 409, 9, "urn:gtmsm:problem:content-mismatch"),
            (13, 400, None, "urn:gtmsm:problem:malformed-ndjson")]
    bad = {i: answers.get(i) for i in bad_clients if answers.get(i) != want}
    check(not bad, f"bad requests in the burst got their own answers (409 gap, 409 mismatch, 400): {bad or answers.get(3)}")
    commits = metric(d, "gtmsm_sqlite_commit_group_size_count")
    covered = metric(d, "gtmsm_sqlite_commit_group_size_sum")
    check(covered == n_clients * steps and commits < covered,
          f"{covered:.0f} requests committed in {commits:.0f} COMMITs (group commit at work)")
    batches = metric(d, "gtmsm_encoder_batches_total")
    frames = metric(d, "gtmsm_encoder_batch_frames_total")
    # imagenav's inference encoder takes each frame at once (the shared encoder's batches are the
    # conv VAE's: core's test_shared_encoding)
    check(frames == 0 and batches == 0,
          f"their frames encoded each at once, none through the shared encoder ({batches:.0f} batches, "
          f"{frames:.0f} frames)")
    check(d.stop() == 0, "exit 0")
    wrong = []
    for i in range(n_clients):
        n, obs = rows_of(db, f"b{i}")
        sent = [(o["t"], o["action"]) for o in eps[i]]
        names = ACTIONS
        stored = [(t, names[a]) if a < len(names) else (t, a) for t, a in obs]
        if n != steps or [t for t, _ in obs] != list(range(steps)) or stored != sent:
            wrong.append((i, n, len(obs)))
    check(not wrong, f"the file holds every session's {steps} rows in order with the actions sent {wrong[:3]}")
    con = sqlite3.connect(db)
    check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check ok")
    con.close()


def test_kill9_burst(tmp, models):
    db = tmp + "/kill.db"
    d = Daemon(models, db, "--threads", "24", "--max-inflight", "1024")
    n_clients = 16
    eps = {i: episode(500 + i, 400) for i in range(n_clients)}
    acked = {i: -1 for i in range(n_clients)}
    for i in range(n_clients):
        d.json("PUT", f"/v1/sessions/k{i}", {"model": "imagenav"})
    stop = threading.Event()

    def client(i):
        for t in range(400):
            if stop.is_set():
                return
            try:
                s, h, j = d.json("POST", f"/v1/sessions/k{i}/observations", ndjson([eps[i][t]]), NDJSON)
            except Exception:  # noqa: BLE001  the daemon died under us
                return
            if s != 200:
                return
            acked[i] = t

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    while min(acked.values()) < 20:
        threading.Event().wait(0.02)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(30)
    stop.set()
    for t in threads:
        t.join()
    lost = []
    for i in range(n_clients):
        n, obs = rows_of(db, f"k{i}")
        if [t for t, _ in obs] != list(range(n)) or n <= acked[i]:
            lost.append((i, acked[i], n, len(obs)))
    check(not lost, f"kill -9 in a burst of {n_clients} clients: every acknowledged observation stored, "
          f"rows = steps ({sum(acked.values()) + n_clients} acknowledged) {lost[:3]}")
    con = sqlite3.connect(db)
    check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check ok after kill -9")
    con.close()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        models = tmp + "/models"
        train_model(models + "/imagenav.gtm")
        test_burst(tmp, models)
        test_kill9_burst(tmp, models)
    finish("test_server_groupcommit")


if __name__ == "__main__":
    main()
