#!/usr/bin/env python3
"""Fault campaign, finding 5: stop signals during the graceful stop.

With an NDJSON stream in flight, gtmsmd gets SIGTERM, then SIGTERM and SIGINT
again while it waits for the stream. Before the fix the second signal landed
on an OpenBLAS thread (started before main could block anything) and its
default action killed the process: the stream was cut and the WAL left
unchecked. Now: the process stays up, new connections are refused, the
stream finishes with 200 and every line committed, the exit code is 0, the
WAL is checkpointed (empty) and the log says the extra signals were ignored.
A daemon started again on the database serves the session."""
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import Recorder, RawStream, check, episode, finish, model_dir, ndjson, serves  # noqa: E402


def alive(d):
    return d.proc.poll() is None


def main():
    with tempfile.TemporaryDirectory() as tmp:
        models = model_dir(tmp)
        db = tmp + "/sig.db"
        ep = episode(5, 12)
        d = Recorder(models, db, "--shutdown-grace", "20")
        d.json("PUT", "/v1/sessions/sig", {"model": "imagenav"})
        stream = RawStream(d.port, "/v1/sessions/sig/observations")
        stream.send(ndjson(ep[:6]))
        time.sleep(0.3)
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        check(alive(d), "first SIGTERM: still running while the stream is in flight")
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        check(alive(d), "a second SIGTERM during the graceful stop does not kill gtmsmd")
        d.proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        check(alive(d), "nor does a SIGINT after it")
        try:
            socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        check(refused, "new connections are refused while stopping")
        try:
            stream.send(ndjson(ep[6:12]))
            s, h, j = stream.finish()
        except OSError as e:
            s, h, j = 0, {}, {"error": str(e)}
        check(s == 200 and j == {"accepted": 12, "duplicates": 0, "steps": 12},
              f"the in-flight stream finishes: 200, 12 accepted (got {s} {j})")
        try:
            code = d.proc.wait(15)
        except Exception:  # noqa: BLE001
            d.proc.kill()
            code = d.proc.wait()
        d.logf.close()
        check(code == 0, f"exit code 0 after three stop signals (got {code})")
        wal = db + "-wal"
        check(not os.path.exists(wal) or os.path.getsize(wal) == 0,
              "the WAL is checkpointed at exit (empty or gone)")
        warned = [l for l in d.lines() if l.get("event") == "shutdown" and "ignored" in l.get("msg", "")]
        check(len(warned) == 1 and warned[0].get("signals") == 3, "the log says 2 later signals were ignored")
        check(any(l.get("event") == "stopped" and l.get("exit") == 0 for l in d.lines()), "'stopped' logged")
        con = sqlite3.connect(db)
        check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check ok")
        check(con.execute("SELECT steps FROM sessions WHERE id = 'sig'").fetchone()[0] == 12, "12 steps stored")
        con.close()
        d = Recorder(models, db)
        s, h, j = d.json("GET", "/v1/sessions/sig")
        check(s == 200 and j["steps"] == 12, "a restarted daemon serves the session with 12 steps")
        serves(d, "the restart")
        check(d.stop() == 0, "a plain SIGTERM still stops it with exit 0")
    finish("test_signals")


if __name__ == "__main__":
    main()
