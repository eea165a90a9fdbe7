#!/usr/bin/env python3
"""gtmsmd on PostgreSQL (--store postgresql://...), a real daemon on a real port
and a throwaway PostgreSQL server (tests/lib/pglib.py):
- sessions created, observations streamed (uneven requests and a chunked
  NDJSON stream), predictions; a restart (also with an empty cache, so every
  request reloads from the database) gives byte-identical PNG, JSON and NDJSON;
  the schema is at version 5 in gtmsm_schema, rows = steps;
- the same session and actions give the same bytes on an SQLite daemon;
  export from the PostgreSQL daemon, import into an SQLite daemon, export
  again, import into a second PostgreSQL database, export: all three exports
  byte-identical, and the imported sessions predict the same bytes;
- kill -9 in the middle of an NDJSON stream loses no acknowledged observation
  (acknowledged <= rows = steps <= sent), and the restarted daemon (a new
  lease owner) goes on once the dead one's lease lapsed;
- the PostgreSQL server stopped under a running daemon: writes get 503
  storage-unavailable (reads too: the server is gone) and ready says 503; the
  server back, the daemon reconnects by itself and writes resume;
- a password in the URL never reaches the log; an unreachable server at start
  exits 1 with a message; --store with a non-URL exits 2."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import pglib  # noqa: E402
from test_server_startup import (GTMSMD, Daemon, RawStream, check, episode, finish, ndjson,  # noqa: E402
                                 train_model)

REQS = [
    ({"actions": ["left", "left", "up", "right", "down", "stay"] * 8}, {"Accept": "image/png"}),
    ({"actions": [0, 1, 2, 3, 4, 0, 1, 2], "mode": "sample", "seed": 9}, {"Accept": "image/png"}),
    ({"actions": ["up"] * 20}, {"Accept": "application/json"}),
    ({"actions": ["down"] * 5, "mode": "sample", "seed": 3}, {"Accept": "application/x-ndjson"}),
]
NDJ = {"Content-Type": "application/x-ndjson"}


def predictions(d, sid):
    out = []
    for body, headers in REQS:
        s, h, b = d.request("POST", f"/v1/sessions/{sid}/predictions", body, headers)
        out.append((s, b))
    return out


def pg_daemon(models, tmp, url, name, *args):
    """A daemon on url; --db points at a file that must never be created."""
    return Daemon(models, os.path.join(tmp, name + ".unused.db"), "--store", url, *args)


def pg_state(pg, db, sid):
    """(steps column, observation rows, max t + 1) read with psql."""
    out = pg.sql(db, "SELECT s.steps, count(o.t), coalesce(max(o.t) + 1, 0) FROM sessions s "
                     f"LEFT JOIN observations o ON o.sid = s.sid WHERE s.id = '{sid}' GROUP BY s.steps")
    return tuple(int(x) for x in out.split("|"))


def feed(d, sid, ep):
    """ep's observations in uneven requests, then the tail as one chunked stream."""
    for i in range(0, 200, 37):
        s, h, j = d.json("POST", f"/v1/sessions/{sid}/observations", ndjson(ep[i:min(i + 37, 200)]), NDJ)
    rs = RawStream(d.port, f"/v1/sessions/{sid}/observations")
    for i in range(200, len(ep), 9):
        rs.send(ndjson(ep[i:i + 9]))
    return rs.finish()


def test_restart_and_export(pg, tmp, models):
    url = pg.create_db("restart")
    ep = episode(5, 300)
    d = pg_daemon(models, tmp, url, "restart")
    check(any(l.get("backend") == "postgresql" and l.get("schema") == 5 for l in d.lines()),
          "the daemon logs the postgresql backend at schema 5")
    for sid in ("r1", "r2"):
        s, h, j = d.json("PUT", f"/v1/sessions/{sid}", {"model": "imagenav"})
        check(s == 201, f"create {sid} on postgresql")
    s, h, j = feed(d, "r1", ep)
    check(s == 200 and j["steps"] == 300, f"300 observations in uneven requests and a stream ({s} {j})")
    s, h, j = d.json("POST", "/v1/sessions/r2/observations", ndjson(episode(6, 50)), NDJ)
    check(s == 200 and j["steps"] == 50, "a second session")
    s, h, j = d.json("POST", "/v1/sessions/r1/observations", ndjson(ep[250:300]), NDJ)
    check(s == 200 and j == {"accepted": 0, "duplicates": 50, "steps": 300}, f"re-sent: exact duplicates ({j})")
    bad = [dict(ep[299], frame=ep[0]["frame"])]
    s, h, j = d.json("POST", "/v1/sessions/r1/observations", ndjson(bad), NDJ)
    check(s == 409, f"a different observation at a stored t: 409 as on SQLite ({s})")
    before = predictions(d, "r1")
    check(all(s == 200 for s, _ in before), "predictions on postgresql")
    s, h, export_pg = d.request("GET", "/v1/sessions/r1/export")
    check(s == 200 and len(export_pg) > 1000, "export from postgresql")
    check(d.stop() == 0, "SIGTERM: exit 0")
    check(pg_state(pg, "restart", "r1") == (300, 300, 300), "after a clean stop: 300 rows, steps 300")
    check(pg.sql("restart", "SELECT version FROM gtmsm_schema") == "5", "gtmsm_schema at version 5")
    check(not os.path.exists(os.path.join(tmp, "restart.unused.db")), "no SQLite file was made")

    for args, what in [([], "with the defaults"), (["--cache-bytes", "0"], "with an empty cache (every request reloads)")]:
        d = pg_daemon(models, tmp, url, "restart", *args)
        s, h, j = d.json("GET", "/v1/sessions/r1")
        check(s == 200 and j["steps"] == 300 and j["memory_entries"] == 300, f"restart {what}: the session is back")
        check(predictions(d, "r1") == before, f"restart {what}: byte-identical predictions (PNG, JSON, NDJSON)")
        check(d.stop() == 0, f"restart {what}: exit 0")

    # the same session and actions on SQLite: the same bytes
    sq = Daemon(models, tmp + "/same.db")
    sq.json("PUT", "/v1/sessions/r1", {"model": "imagenav"})
    s, h, j = feed(sq, "r1", ep)
    check(s == 200 and j["steps"] == 300, "the same observations on sqlite")
    check(predictions(sq, "r1") == before, "sqlite and postgresql predict the same bytes for the same session")
    check(sq.stop() == 0, "sqlite: exit 0")

    # export/import across backends: byte-identical exports
    sq = Daemon(models, tmp + "/import.db")
    s, h, j = sq.request("POST", "/v1/sessions/import", export_pg, {"Content-Type": "application/json"})
    check(s == 201, f"the postgresql export imports into sqlite ({s})")
    s, h, export_sq = sq.request("GET", "/v1/sessions/r1/export")
    check(s == 200 and export_sq == export_pg, "the sqlite export is byte-identical to the postgresql one")
    check(predictions(sq, "r1") == before, "imported into sqlite: the same predictions")
    own = json.loads(export_pg)
    own["ttl_seconds"] = 600  # a session with its own TTL (schema 4) moves byte-identically too
    s, h, j = sq.request("POST", "/v1/sessions/import?id=t1", json.dumps(own).encode(),
                         {"Content-Type": "application/json"})
    check(s == 201, f"a dump with ttl_seconds 600 imports into sqlite ({s})")
    s, h, export_ttl_sq = sq.request("GET", "/v1/sessions/t1/export")
    check(s == 200 and json.loads(export_ttl_sq).get("ttl_seconds") == 600, "its sqlite export keeps ttl_seconds 600")
    check(sq.stop() == 0, "sqlite import: exit 0")
    url2 = pg.create_db("import")
    d = pg_daemon(models, tmp, url2, "import")
    s, h, j = d.request("POST", "/v1/sessions/import", export_sq, {"Content-Type": "application/json"})
    check(s == 201, f"the sqlite export imports into postgresql ({s})")
    s, h, j = d.request("POST", "/v1/sessions/import", export_sq, {"Content-Type": "application/json"})
    check(s == 409, f"importing it twice: 409 ({s})")
    s, h, export_back = d.request("GET", "/v1/sessions/r1/export")
    check(s == 200 and export_back == export_pg, "and back into postgresql: byte-identical export")
    check(predictions(d, "r1") == before, "imported into postgresql: the same predictions")
    s, h, j = d.request("POST", "/v1/sessions/import", export_ttl_sq, {"Content-Type": "application/json"})
    s2, h, export_ttl_pg = d.request("GET", "/v1/sessions/t1/export")
    check(s == 201 and s2 == 200 and export_ttl_pg == export_ttl_sq,
          f"with its own TTL: the postgresql export is byte-identical to the sqlite one ({s} {s2})")
    check(d.request("DELETE", "/v1/sessions/t1")[0] in (200, 204), "delete t1")
    more = [dict(o, t=o["t"] + 300) for o in episode(6, 10)]
    s, h, j = d.json("POST", "/v1/sessions/r1/observations", ndjson(more), NDJ)
    check(s == 200 and j["steps"] == 310, "the imported session keeps going from t=300")
    s, h, b = d.request("DELETE", "/v1/sessions/r1")
    check(s in (200, 204) and d.json("GET", "/v1/sessions/r1")[0] == 404, f"delete on postgresql ({s})")
    check(pg.sql("import", "SELECT count(*) FROM observations") == "0", "its observations are gone")
    check(d.stop() == 0, "postgresql import: exit 0")


def test_kill9(pg, tmp, models):
    url = pg.create_db("kill")
    ep = episode(8, 400)
    d = pg_daemon(models, tmp, url, "kill", "--lease-ttl-ms", "1000")
    d.json("PUT", "/v1/sessions/k", {"model": "imagenav"})
    acked = 0
    for i in range(0, 120, 20):
        s, h, j = d.json("POST", "/v1/sessions/k/observations", ndjson(ep[i:i + 20]), NDJ)
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
    steps, rows, top = pg_state(pg, "kill", "k")
    check(steps == rows == top, f"after kill -9: consistent (steps {steps}, {rows} rows, t 0..{top - 1})")
    check(acked <= steps <= sent, f"after kill -9: every acknowledged observation is there ({acked} <= {steps} <= {sent})")
    # The restarted daemon is another lease owner: the dead one's lease on k
    # lapses first (503 session-leased-elsewhere with Retry-After meanwhile).
    t0 = time.monotonic()
    d = pg_daemon(models, tmp, url, "kill", "--lease-ttl-ms", "1000")
    s, h, j = d.json("GET", "/v1/sessions/k")
    check(s == 200 or (s == 503 and j["type"].endswith("session-leased-elsewhere") and h.get("retry-after")),
          f"restart after kill -9: the session answers, or 503 session-leased-elsewhere while the dead "
          f"owner's lease lasts ({s})")
    s = wait_status(d, "GET", "/v1/sessions/k", 200, 10)
    s, h, j = d.json("GET", "/v1/sessions/k")
    check(s == 200 and j["steps"] == steps, f"restart after kill -9: the session has the committed steps "
          f"({time.monotonic() - t0:.1f} s after the restart began)")
    s, h, j = d.json("POST", "/v1/sessions/k/observations", ndjson(ep[:400]), NDJ)
    check(s == 200 and j == {"accepted": 400 - steps, "duplicates": steps, "steps": 400},
          "re-sending the whole episode: the stored ones are exact duplicates, the rest is new")
    check(d.stop() == 0, "exit 0")


def wait_status(d, method, path, want, seconds, body=None):
    t0 = time.monotonic()
    s = None
    while time.monotonic() - t0 < seconds:
        s = d.json(method, path, body)[0]
        if s == want:
            break
        time.sleep(0.2)
    return s


def test_server_outage(pg, tmp, models):
    url = pg.create_db("outage")
    ep = episode(3, 40)
    d = pg_daemon(models, tmp, url, "outage")
    d.json("PUT", "/v1/sessions/o", {"model": "imagenav"})
    s, h, j = d.json("POST", "/v1/sessions/o/observations", {"observations": ep[:10]})
    check(s == 200 and j["steps"] == 10, "10 observations before the outage")
    pg.stop()
    s, h, j = d.json("POST", "/v1/sessions/o/observations", {"observations": ep[10:20]})
    check(s == 503 and j and "storage-unavailable" in j.get("type", "") and h.get("retry-after"),
          f"server stopped: an observation gets 503 storage-unavailable with Retry-After ({s} {j})")
    s, h, j = d.json("PUT", "/v1/sessions/p", {"model": "imagenav"})
    check(s == 503, f"server stopped: a new session gets 503 ({s})")
    s, h, j = d.json("GET", "/v2/health/ready")
    check(s == 503, f"server stopped: ready says 503 ({s})")
    check(d.json("GET", "/v2/health/live")[0] == 200, "the daemon itself stays live")
    pg.start()
    t0 = time.monotonic()
    s = wait_status(d, "GET", "/v2/health/ready", 200, 10)
    check(s == 200, f"server back: ready by itself within {time.monotonic() - t0:.1f} s")
    s, h, j = d.json("POST", "/v1/sessions/o/observations", {"observations": ep[10:20]})
    check(s == 200 and j["steps"] == 20, f"server back: observations resume at t=10 ({s} {j})")
    check(pg_state(pg, "outage", "o") == (20, 20, 20), "20 rows, steps 20")
    check(d.stop() == 0, "exit 0 after the outage")


def test_startup(pg, tmp, models):
    url = pg.create_db("secret")
    with_password = url.replace("postgresql:///", "postgresql://gtmsm:hunter2@/")
    d = pg_daemon(models, tmp, with_password, "secret")
    s, h, j = d.json("PUT", "/v1/sessions/x", {"model": "imagenav"})
    check(s == 201, "a URL with a password works")
    check(d.stop() == 0, "exit 0")
    text = d.log_text()
    check("hunter2" not in text and "gtmsm:***@" in text, "the password is not in the log (shown as ***)")
    p = subprocess.run([GTMSMD, "--models", models, "--store",
                        f"postgresql:///x?host={tmp}/no-server-here&user=gtmsm", "--listen", "127.0.0.1:0"],
                       capture_output=True, timeout=60)
    check(p.returncode == 1 and b"cannot connect" in p.stderr, f"an unreachable server at start: exit 1 ({p.returncode})")
    p = subprocess.run([GTMSMD, "--models", models, "--store", tmp + "/x.db", "--listen", "127.0.0.1:0"],
                       capture_output=True, timeout=60)
    check(p.returncode == 2 and b"postgresql://" in p.stderr, f"--store with a file path: exit 2 ({p.returncode})")
    p = subprocess.run([GTMSMD, "--help"], capture_output=True, timeout=60)
    check(b"--store" in p.stdout and b"GTMSM_STORE" in p.stdout, "--help lists --store and GTMSM_STORE")


def main():
    if not pglib.available():
        check(False, "PostgreSQL server binaries are missing: run scripts/setup.sh (postgresql-15)")
        finish("test_server_postgres")
    with tempfile.TemporaryDirectory() as tmp, pglib.Postgres() as pg:
        models = tmp + "/models"
        train_model(models + "/imagenav.gtm")
        test_startup(pg, tmp, models)
        test_restart_and_export(pg, tmp, models)
        test_kill9(pg, tmp, models)
        test_server_outage(pg, tmp, models)
    finish("test_server_postgres")


if __name__ == "__main__":
    main()
