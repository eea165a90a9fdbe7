#!/usr/bin/env python3
"""gtmsmd durability and concurrency on a real daemon and a real SQLite file:
a restart keeps sessions and gives byte-identical predictions (also with an
empty cache so every request reloads the session from SQLite, and after
export/import into another replica's database); kill -9 in
the middle of an NDJSON stream loses no acknowledged observation and leaves a
consistent database (PRAGMA integrity_check, rows = steps); a client that
vanishes mid-stream leaves its complete lines committed and nothing locked;
SIGTERM stops accepting, lets an in-flight stream finish and exits 0; concurrent clients on
many sessions, and many clients predicting on one session while it is fed."""
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import (Daemon, RawStream, check, episode, finish, ndjson,  # noqa: E402
                                 png_size, train_model)

REQS = [
    ({"actions": ["left", "left", "up", "right", "down", "stay"] * 8}, {"Accept": "image/png"}),
    ({"actions": [0, 1, 2, 3, 4, 0, 1, 2], "mode": "sample", "seed": 9}, {"Accept": "image/png"}),
    ({"actions": ["up"] * 20}, {"Accept": "application/json"}),
    ({"actions": ["down"] * 5, "mode": "sample", "seed": 3}, {"Accept": "application/x-ndjson"}),
]


def predictions(d, sid):
    out = []
    for body, headers in REQS:
        s, h, b = d.request("POST", f"/v1/sessions/{sid}/predictions", body, headers)
        out.append((s, b))
    return out


def db_state(db, sid):
    """(integrity, steps column, observation rows, max t + 1) read with sqlite3."""
    con = sqlite3.connect(db)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        row = con.execute("SELECT sid, steps FROM sessions WHERE id = ?", (sid,)).fetchone()
        n, top = con.execute("SELECT count(*), coalesce(max(t) + 1, 0) FROM observations WHERE sid = ?",
                             (row[0],)).fetchone()
        return ok, row[1], n, top
    finally:
        con.close()


def test_restart(tmp, models):
    db = tmp + "/restart.db"
    ep = episode(5, 300)
    d = Daemon(models, db)
    d.json("PUT", "/v1/sessions/r1", {"model": "imagenav"})
    for i in range(0, 300, 37):  # uneven requests
        s, h, j = d.json("POST", "/v1/sessions/r1/observations", ndjson(ep[i:i + 37]),
                         {"Content-Type": "application/x-ndjson"})
    check(s == 200 and j["steps"] == 300, "300 observations in uneven requests")
    before = predictions(d, "r1")
    check(all(s == 200 for s, _ in before), "predictions before the restart")
    s, h, dump = d.json("GET", "/v1/sessions/r1/export")
    frames = dump.get("frames") or dump.get("observations") or []
    check(s == 200 and [f.get("t") for f in frames] == list(range(300)),
          "export holds all 300 frames in order (read in pages of 256)")
    check(d.stop() == 0, "SIGTERM: exit 0")
    ok, steps, rows, top = db_state(db, "r1")
    check(ok == "ok" and steps == rows == top == 300, "after a clean stop: 300 rows, steps 300, integrity ok")

    for args, what in [([], "with the defaults"), (["--threads", "1"], "with one thread"),
                       (["--cache-bytes", "0"], "with an empty cache (every request reloads)")]:
        d = Daemon(models, db, *args)
        s, h, j = d.json("GET", "/v1/sessions/r1")
        check(s == 200 and j["steps"] == 300 and j["memory_entries"] == 300, f"restart {what}: the session is back")
        after = predictions(d, "r1")
        check(after == before, f"restart {what}: byte-identical predictions (PNG, JSON, NDJSON)")
        if "--cache-bytes" in args:
            again = predictions(d, "r1")
            check(again == before, "cold reload twice: still identical")
            s, h, text = d.request("GET", "/metrics")
            loads = [l for l in text.decode().splitlines() if l.startswith("gtmsm_session_loads_total")]
            check(loads and int(loads[0].split()[1]) >= 8, "every request reloaded the cold session")
        check(d.stop() == 0, f"restart {what}: exit 0")

    # another replica: import the dump into a fresh database
    d = Daemon(models, tmp + "/replica.db")
    s, h, j = d.json("POST", "/v1/sessions/import", dump)
    check(s == 201, "import on another replica")
    check(predictions(d, "r1") == before, "the imported session predicts byte-identical frames")
    more = [dict(o, t=o["t"] + 300) for o in episode(6, 10)]
    s, h, j = d.json("POST", "/v1/sessions/r1/observations", ndjson(more),
                     {"Content-Type": "application/x-ndjson"})
    check(s == 200 and j["steps"] == 310, "the imported session keeps going from t=300")
    check(d.stop() == 0, "replica: exit 0")


def test_kill9(tmp, models):
    db = tmp + "/kill.db"
    ep = episode(8, 400)
    d = Daemon(models, db)
    d.json("PUT", "/v1/sessions/k", {"model": "imagenav"})
    acked = 0
    for i in range(0, 120, 20):
        s, h, j = d.json("POST", "/v1/sessions/k/observations", ndjson(ep[i:i + 20]),
                         {"Content-Type": "application/x-ndjson"})
        if s == 200:
            acked = j["steps"]
    check(acked == 120, "120 observations acknowledged")
    rs = RawStream(d.port, "/v1/sessions/k/observations")
    sent = 120
    for i in range(120, 330, 7):
        rs.send(ndjson(ep[i:i + 7]))
        sent = min(i + 7, 330)
        time.sleep(0.005)
    time.sleep(0.3)  # let the daemon commit what it has read
    rs.send(ndjson(ep[330:335])[:200])  # a half line in flight
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.logf.close()
    rs.close()
    ok, steps, rows, top = db_state(db, "k")
    check(ok == "ok", "after kill -9: PRAGMA integrity_check is ok")
    check(steps == rows == top, f"after kill -9: consistent (steps {steps}, {rows} rows, t 0..{top - 1})")
    check(acked <= steps <= sent, f"after kill -9: every acknowledged observation is there ({acked} <= {steps} <= {sent})")

    d = Daemon(models, db)
    s, h, j = d.json("GET", "/v1/sessions/k")
    check(s == 200 and j["steps"] == steps, "restart after kill -9: the session has the committed steps")
    s, h, j = d.json("POST", "/v1/sessions/k/observations", ndjson(ep[:400]), {"Content-Type": "application/x-ndjson"})
    check(s == 200 and j == {"accepted": 400 - steps, "duplicates": steps, "steps": 400},
          "re-sending the whole episode: the stored ones are exact duplicates, the rest is new")
    s, h, strip = d.request("POST", "/v1/sessions/k/predictions", {"actions": [0] * 10}, {"Accept": "image/png"})
    check(s == 200 and png_size(strip) == (80, 8), "predictions after recovery")
    check(d.stop() == 0, "exit 0")
    # the recovered session predicts like one that never crashed
    ref = Daemon(models, tmp + "/kill-ref.db")
    ref.json("PUT", "/v1/sessions/k", {"model": "imagenav"})
    ref.json("POST", "/v1/sessions/k/observations", ndjson(ep[:400]), {"Content-Type": "application/x-ndjson"})
    s, h, strip_ref = ref.request("POST", "/v1/sessions/k/predictions", {"actions": [0] * 10}, {"Accept": "image/png"})
    check(strip_ref == strip, "the recovered session predicts exactly like an uninterrupted one")
    ref.stop()


def test_client_gone(tmp, models):
    """A client that vanishes mid-stream: what was committed stays, nothing stays locked."""
    d = Daemon(models, tmp + "/gone.db")
    ep = episode(12, 80)
    d.json("PUT", "/v1/sessions/g", {"model": "imagenav"})
    rs = RawStream(d.port, "/v1/sessions/g/observations")
    rs.send(ndjson(ep[:40]) + ndjson(ep[40:41])[:100])  # 40 lines and a half
    time.sleep(0.3)
    rs.close()
    time.sleep(0.2)
    s, h, j = d.json("GET", "/v1/sessions/g")
    check(s == 200 and j["steps"] == 40, f"a vanished client: its 40 complete lines are committed ({j and j['steps']})")
    s, h, j = d.json("POST", "/v1/sessions/g/observations", ndjson(ep), {"Content-Type": "application/x-ndjson"})
    check(s == 200 and j == {"accepted": 40, "duplicates": 40, "steps": 80}, "the session is not left locked")
    aborted = [l for l in d.lines() if l.get("event") == "access" and l.get("complete") is False]
    check(len(aborted) == 1 and aborted[0]["status"] == 499, "the access log marks the aborted request (499)")
    check(d.stop() == 0, "exit 0")


def test_sigterm_inflight(tmp, models):
    db = tmp + "/term.db"
    ep = episode(9, 60)
    d = Daemon(models, db, "--shutdown-grace", "20")
    d.json("PUT", "/v1/sessions/t", {"model": "imagenav"})
    rs = RawStream(d.port, "/v1/sessions/t/observations")
    rs.send(ndjson(ep[:30]))
    keep = [d.conn() for _ in range(3)]  # keep-alive connections opened before the signal
    for c in keep:
        d.request("GET", "/v2/health/live", conn=c)
    time.sleep(0.2)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    s, h, b = d.request("GET", "/v2/health/live", conn=keep[0])
    check(s == 200 and h.get("connection") == "close", "while stopping: live is 200 (and closes the connection)")
    s, h, b = d.request("GET", "/v2/health/ready", conn=keep[1])
    check(s == 503 and b"not-ready" in b, "while stopping: ready is 503 not-ready")
    s, h, b = d.request("GET", "/v1/sessions/t", conn=keep[2])
    check(s == 503 and b"shutting down" in b and "retry-after" in h, "while stopping: other requests get 503")
    for c in keep:
        c.close()
    refused = False
    try:
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
    except OSError:
        refused = True
    check(refused, "after SIGTERM: new connections are refused")
    check(d.proc.poll() is None, "after SIGTERM: still running while a request is in flight")
    rs.send(ndjson(ep[30:60]))
    s, h, j = rs.finish()
    check(s == 200 and j["steps"] == 60 and h.get("connection") == "close",
          "the in-flight stream finishes (200, 60 steps, Connection: close)")
    code = d.proc.wait(20)
    d.logf.close()
    check(code == 0, "then the daemon exits 0")
    ok, steps, rows, top = db_state(db, "t")
    check(ok == "ok" and steps == rows == 60, "SQLite closed cleanly with all 60 observations")
    check(not os.path.exists(db + "-wal") or os.path.getsize(db + "-wal") == 0, "the WAL was checkpointed on close")
    lines = [l for l in d.lines() if l.get("event") in ("shutdown", "stopped")]
    check(lines and lines[-1].get("event") == "stopped" and lines[-1].get("exit") == 0, "'stopped' logged")


def test_concurrency(tmp, models):
    d = Daemon(models, tmp + "/conc.db", "--threads", "4")
    n_clients = 16
    eps = {i: episode(100 + i, 120) for i in range(n_clients)}
    results, errors = {}, []

    def client(i):
        try:
            sid = f"c{i}"
            s, h, j = d.json("PUT", f"/v1/sessions/{sid}", {"model": "imagenav"})
            assert s == 201, (s, j)
            body = ndjson(eps[i])
            rs = RawStream(d.port, f"/v1/sessions/{sid}/observations")
            for k in range(0, len(body), 4000):  # streamed in chunks
                rs.send(body[k:k + 4000])
            s, h, j = rs.finish()
            assert s == 200 and j["steps"] == 120, (s, j)
            outs = [predictions(d, sid) for _ in range(2)]
            assert outs[0] == outs[1], "repeat differs"
            results[i] = outs[0]
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, f"{n_clients} concurrent clients on their own sessions ({time.time() - t0:.1f} s)"
          + ("" if not errors else ": " + "; ".join(errors[:3])))
    for i in (0, n_clients - 1):
        check(predictions(d, f"c{i}") == results.get(i), f"session c{i}: concurrent and sequential predictions agree")

    # many readers on one session while another session is being written
    ref = predictions(d, "c0")
    bad = []

    def reader():
        for _ in range(5):
            if predictions(d, "c0") != ref:
                bad.append(1)

    def writer():
        e = episode(999, 200)
        d.json("PUT", "/v1/sessions/w", {"model": "imagenav"})
        for k in range(0, 200, 10):
            s, h, j = d.json("POST", "/v1/sessions/w/observations", ndjson(e[k:k + 10]),
                             {"Content-Type": "application/x-ndjson"})
            if s != 200:
                bad.append(("w", s))

    ts = [threading.Thread(target=reader) for _ in range(8)] + [threading.Thread(target=writer)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not bad, "8 concurrent readers of one session agree while another session is fed")

    # readers and a writer on the same session: every prediction is of some committed prefix
    e = episode(777, 100)
    d.json("PUT", "/v1/sessions/rw", {"model": "imagenav"})
    codes = []

    def rw_writer():
        for k in range(0, 100, 5):
            codes.append(d.json("POST", "/v1/sessions/rw/observations", ndjson(e[k:k + 5]),
                                {"Content-Type": "application/x-ndjson"})[0])

    def rw_reader():
        for _ in range(10):
            codes.append(d.request("POST", "/v1/sessions/rw/predictions", {"actions": [0, 1, 2]},
                                   {"Accept": "image/png"})[0])

    ts = [threading.Thread(target=rw_writer)] + [threading.Thread(target=rw_reader) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    s, h, j = d.json("GET", "/v1/sessions/rw")
    check(all(c == 200 for c in codes) and j["steps"] == 100, "predicting while the same session is fed: all 200, 100 steps")
    check(d.stop() == 0, "exit 0 after the concurrency run")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        models = tmp + "/models"
        train_model(models + "/imagenav.gtm")
        test_restart(tmp, models)
        test_kill9(tmp, models)
        test_client_gone(tmp, models)
        test_sigterm_inflight(tmp, models)
        test_concurrency(tmp, models)
    finish("test_server_durability")


if __name__ == "__main__":
    main()
