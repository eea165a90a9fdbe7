#!/usr/bin/env python3
"""Fault campaign, findings 4, 6, 10 and 13: bad databases at start, and a
disk that fills up or turns read-only while serving.

At start (each must be a clear error, and the daemon serve again on a good
database afterwards):
  - a database left behind by a crash (-wal and -shm present) on a read-only
    mount (as root; chmod as another user): exit 1 naming it read-only,
    instead of starting ready and answering 500 to every write;
  - PRAGMA user_version -1 and 99: exit 1 naming the version, file untouched;
  - a version-4 database on a disk without room for migration 5's copy (a
    tmpfs, as root): exit 1 naming the migration, the file still version 4
    with every row; with the room back it migrates and serves;
  - a session whose state is NULL although it has steps: 500 corrupt-session
    on that session only (predictions, observations, export), others serve.
While serving (each skipped with a message where it cannot be set up):
  - disk full, on an 8 MiB tmpfs: 507 insufficient-storage with Retry-After
    on every kind of write, reads still 200, ready 503, and back to 200 by
    itself once space returns;
  - the database files made read-only (immutable) under the daemon: 503
    storage-unavailable with Retry-After, ready 503, and back by itself when
    they are writable again.
Every 500 and 507 that openapi.yaml lists is seen here."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import (GTMSMD, SEEN, SPEC, Recorder, check, check_spec, episode, finish, is_problem,  # noqa: E402
                      model_dir, serves)


def run_start(models, db, timeout=15):
    """Starts gtmsmd on db expecting it to exit: (exit code or None if it kept running, log text)."""
    p = subprocess.Popen([GTMSMD, "--models", models, "--db", db, "--listen", "127.0.0.1:0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate()
        return None, err.decode(errors="replace")


def mount(*args):
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def umount(path):
    subprocess.run(["umount", path], capture_output=True)


def small_disk(tmp, name, what):
    """An 8 MiB tmpfs at tmp/name (as root): its path, or None after saying why `what` is skipped."""
    mnt = f"{tmp}/{name}"
    os.makedirs(mnt)
    if os.geteuid() != 0 or not mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt):
        print(f"skip: {what}: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
        return None
    return mnt


def fill(d, sid, ep, t0):
    """Sends observations in batches of 100 until one is refused: (reply, steps before it)."""
    t = t0
    while t < len(ep):
        s, h, j = d.json("POST", f"/v1/sessions/{sid}/observations", {"observations": ep[t:t + 100]})
        if s != 200:
            return (s, h, j), t
        t = j["steps"]
    return (200, {}, {}), t


def test_read_only_after_crash(models, tmp):
    src = tmp + "/rodb"
    os.makedirs(src)
    ep = episode(3, 10)
    d = Recorder(models, src + "/g.db")
    d.json("PUT", "/v1/sessions/ro", {"model": "imagenav"})
    s, h, j = d.json("POST", "/v1/sessions/ro/observations", {"observations": ep})
    d.proc.send_signal(signal.SIGKILL)  # a crash: -wal and -shm stay behind
    d.proc.wait()
    d.logf.close()
    check(s == 200 and os.path.exists(src + "/g.db-wal"), "a crashed daemon left its WAL behind")
    view, db, undo = tmp + "/roview", None, None
    if os.geteuid() == 0:
        os.makedirs(view)
        if mount("--bind", src, view) and mount("-o", "remount,bind,ro", view):
            db, undo = view + "/g.db", lambda: umount(view)
        else:
            umount(view)
            print("skip: read-only database at start: cannot make a read-only bind mount here")
    else:
        for f in os.listdir(src):
            os.chmod(os.path.join(src, f), 0o444)
        os.chmod(src, 0o555)
        db = src + "/g.db"

        def undo():
            os.chmod(src, 0o755)
            for f in os.listdir(src):
                os.chmod(os.path.join(src, f), 0o644)
    if db:
        code, log = run_start(models, db)
        undo()
        check(code == 1 and "read-only" in log and '"ready"' not in log,
              f"a read-only database after a crash: exit 1 naming it read-only (exit {code})")
    d = Recorder(models, src + "/g.db")
    s, h, j = d.json("GET", "/v1/sessions/ro")
    check(s == 200 and j["steps"] == 10, "writable again: the daemon starts and the session has its 10 steps")
    serves(d, "the read-only start")
    check(d.stop() == 0, "stops cleanly")


def test_schema_versions(models, tmp):
    good = tmp + "/v.db"
    d = Recorder(models, good)
    d.json("PUT", "/v1/sessions/v", {"model": "imagenav"})
    check(d.stop() == 0, "a good database")
    for v, words in [(-1, "-1"), (99, "newer")]:
        db = f"{tmp}/v{v}.db"
        shutil.copy(good, db)
        con = sqlite3.connect(db)
        con.execute(f"PRAGMA user_version = {v}")
        con.commit()
        con.close()
        code, log = run_start(models, db)
        con = sqlite3.connect(db)
        after = con.execute("PRAGMA user_version").fetchone()[0]
        con.close()
        check(code == 1 and words in log and str(v) in log, f"user_version {v}: exit 1 naming it (exit {code})")
        check(after == v, f"user_version {v}: the file is left as it was ({after})")
    d = Recorder(models, good)
    check(d.json("GET", "/v1/sessions/v")[0] == 200, "the good database still serves")
    check(d.stop() == 0, "stops cleanly")


# Version 4's observations (clustered by (sid, t)), to turn a database back into one.
V4_LAYOUT = """DROP INDEX observations_sid_t;
ALTER TABLE observations RENAME TO observations_v5;
CREATE TABLE observations (sid INTEGER NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,
  t INTEGER NOT NULL, action INTEGER NOT NULL, frame BLOB NOT NULL, entry BLOB,
  PRIMARY KEY (sid, t)) WITHOUT ROWID;
INSERT INTO observations SELECT sid, t, action, frame, entry FROM observations_v5;
DROP TABLE observations_v5;
PRAGMA user_version = 4;"""


def test_migration_full_disk(models, tmp):
    mnt = small_disk(tmp, "migrate", "a migration on a full disk")
    if not mnt:
        return
    try:
        src = tmp + "/m4.db"
        ep = episode(6, 3000)
        d = Recorder(models, src)
        d.json("PUT", "/v1/sessions/m", {"model": "imagenav"})
        for t in range(0, len(ep), 1000):
            d.json("POST", "/v1/sessions/m/observations", {"observations": ep[t:t + 1000]})
        s, h, before = d.json("POST", "/v1/sessions/m/predictions", {"actions": ["left", "up"] * 8})
        check(d.stop() == 0 and s == 200, f"a database with 3000 observations ({s})")
        con = sqlite3.connect(src)
        con.executescript(V4_LAYOUT)
        con.close()
        db = mnt + "/m.db"
        shutil.copy(src, db)
        st = os.statvfs(mnt)
        with open(mnt + "/filler", "wb") as f:  # room for the file once more, not for the copy and its WAL
            f.write(b"\0" * (st.f_bavail * st.f_frsize - os.path.getsize(db)))
        code, log = run_start(models, db)
        con = sqlite3.connect(db)
        v = con.execute("PRAGMA user_version").fetchone()[0]
        n = con.execute("SELECT count(*) FROM observations").fetchone()[0]
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        con.close()
        check(code == 1 and "migrating the schema from version 4 to 5" in log and "full" in log,
              f"no room for migration 5: exit 1 naming the migration and the full disk (exit {code})")
        check(v == 4 and n == 3000 and ok == "ok", f"the file is still version 4 with its 3000 rows ({v}, {n}, {ok})")
        os.remove(mnt + "/filler")
        d = Recorder(models, db)
        s, h, after = d.json("POST", "/v1/sessions/m/predictions", {"actions": ["left", "up"] * 8})
        check(s == 200 and after == before, f"with the room back it migrates and predicts the same ({s})")
        check(d.stop() == 0, "stops cleanly")
        con = sqlite3.connect(db)
        check(con.execute("PRAGMA user_version").fetchone()[0] == 5, "version 5 after it")
        con.close()
    finally:
        umount(mnt)


def test_null_state(models, tmp):
    db = tmp + "/null.db"
    ep = episode(4, 12)
    d = Recorder(models, db)
    for sid in ("broken", "fine", "holed"):
        d.json("PUT", f"/v1/sessions/{sid}", {"model": "imagenav"})
        d.json("POST", f"/v1/sessions/{sid}/observations", {"observations": ep[:8]})
    check(d.stop() == 0, "three sessions with 8 steps")
    con = sqlite3.connect(db)
    con.execute("UPDATE sessions SET state = NULL WHERE id = 'broken'")
    con.execute("DELETE FROM observations WHERE t = 3 AND sid = (SELECT sid FROM sessions WHERE id = 'holed')")
    con.commit()
    con.close()
    d = Recorder(models, db)
    for method, path, body in [("POST", "/v1/sessions/broken/predictions", {"actions": [0, 1]}),
                               ("POST", "/v1/sessions/broken/observations", {"observations": ep[8:9]}),
                               ("GET", "/v1/sessions/broken/export", None)]:
        s, h, j = d.json(method, path, body)
        check(s == 500 and is_problem(h, j, 500, "corrupt-session") and "state" in j["detail"]
              and "broken" in j["detail"], f"NULL state with 8 steps: {method} {path} -> 500 corrupt-session "
              f"({s} {j.get('detail') if j else ''})")
    s, h, j = d.json("GET", "/v1/sessions/broken")
    check(s == 200 and j["steps"] == 8, "its metadata still reads")
    s, h, j = d.json("POST", "/v1/sessions/fine/predictions", {"actions": [0, 1]})
    check(s == 200 and len(j["frames"]) == 2, "the other session predicts")
    check(d.json("GET", "/v2/health/ready")[0] == 200, "and the daemon stays ready")
    s, h, j = d.json("POST", "/v1/sessions/holed/rebuild", {})
    check(s == 500 and is_problem(h, j, 500, "corrupt-session") and "t=4" in j["detail"],
          f"an observation row missing: rebuild -> 500 corrupt-session ({s} {j.get('detail') if j else ''})")
    s, h, j = d.json("POST", "/v1/sessions/broken/rebuild", {})
    check(s == 200 and j["steps"] == 8, f"a NULL state is rebuilt from the stored frames ({s})")
    s, h, j = d.json("POST", "/v1/sessions/broken/predictions", {"actions": [0, 1]})
    check(s == 200 and j == d.json("POST", "/v1/sessions/fine/predictions", {"actions": [0, 1]})[2],
          "and then predicts exactly like its undamaged twin")
    serves(d, "a damaged session")
    check(d.stop() == 0, "stops cleanly")


RAN = set()  # the parts that could be set up here


def test_full_disk(models, tmp):
    mnt = small_disk(tmp, "full", "disk full at run time")
    if not mnt:
        return
    RAN.add("full")
    try:
        ep = episode(5, 3000)
        d = Recorder(models, mnt + "/g.db")
        d.json("PUT", "/v1/sessions/f", {"model": "imagenav"})
        d.json("POST", "/v1/sessions/f/observations", {"observations": ep[:10]})
        s, h, dump = d.json("GET", "/v1/sessions/f/export")
        st = os.statvfs(mnt)
        with open(mnt + "/filler", "wb") as f:  # leave 300 KiB: under the 1 MiB to resume
            f.write(b"\0" * (st.f_bavail * st.f_frsize - 300 * 1024))
        (s, h, j), steps = fill(d, "f", ep, 10)
        check(s == 507 and is_problem(h, j, 507, "insufficient-storage") and h.get("retry-after")
              and j.get("steps") == steps, f"disk full: observations -> 507 with Retry-After and the "
              f"committed steps ({s} {j})")
        for method, path, body in [("POST", "/v1/sessions/f/observations", {"observations": ep[steps:steps + 1]}),
                                   ("PUT", "/v1/sessions/g", {"model": "imagenav"}),
                                   ("POST", "/v1/sessions", {"model": "imagenav"}),
                                   ("DELETE", "/v1/sessions/f", None),
                                   ("POST", "/v1/sessions/f/rebuild", {}),
                                   ("POST", "/v1/sessions/import?id=copy", dump)]:
            s, h, j = d.json(method, path, body)
            check(s == 507 and is_problem(h, j, 507, "insufficient-storage") and h.get("retry-after"),
                  f"disk full: {method} {path} -> 507 with Retry-After ({s})")
        s, h, j = d.json("GET", "/v1/sessions/f")
        check(s == 200 and j["steps"] == steps, "disk full: reads go on (GET the session)")
        s, h, j = d.json("POST", "/v1/sessions/f/predictions", {"actions": [0, 1]})
        check(s == 200, "disk full: predictions go on")
        s, h, j = d.json("GET", "/v2/health/ready")
        check(s == 503 and is_problem(h, j, 503, "not-ready") and "full" in j["detail"],
              f"disk full: ready says 503 ({s} {j.get('detail') if j else ''})")
        s, h, text = d.request("GET", "/metrics")
        check("gtmsm_ready 0" in text.decode(), "disk full: gtmsm_ready 0")
        os.remove(mnt + "/filler")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 and d.json("GET", "/v2/health/ready")[0] != 200:
            time.sleep(0.2)
        check(d.json("GET", "/v2/health/ready")[0] == 200, f"space back: ready again by itself within "
              f"{time.monotonic() - t0:.1f} s")
        s, h, j = d.json("POST", "/v1/sessions/f/observations", {"observations": ep[steps:steps + 20]})
        check(s == 200 and j["steps"] == steps + 20, f"space back: observations resume at t={steps}")
        check(d.json("PUT", "/v1/sessions/g", {"model": "imagenav"})[0] == 201, "space back: PUT creates")

        serves(d, "a full disk")
        check(d.stop() == 0, "stops cleanly")
        con = sqlite3.connect(mnt + "/g.db")
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM observations o JOIN sessions s ON o.sid = s.sid "
                           "WHERE s.id = 'f'").fetchone()[0]
        con.close()
        check(ok == "ok" and rows == steps + 20, f"integrity_check {ok}, {rows} rows = steps {steps + 20}")
    finally:
        umount(mnt)


def chattr(flag, *paths):
    return subprocess.run(["chattr", flag, *paths], capture_output=True).returncode == 0


def test_read_only_at_run_time(models, tmp):
    """The database files turn read-only under a running daemon. A mount cannot
    be remounted read-only while files on it are open for writing, so the files
    are made immutable (chattr +i): writes through the open descriptors then
    fail as on a read-only disk, and chattr -i gives them back."""
    base = tmp + "/rt"
    os.makedirs(base)
    ep = episode(6, 40)
    d = Recorder(models, base + "/g.db")
    d.json("PUT", "/v1/sessions/r", {"model": "imagenav"})
    d.json("POST", "/v1/sessions/r/observations", {"observations": ep[:10]})
    # The database and its WAL; not the -shm, which SQLite maps into memory
    # (a store into an immutable mapping is a SIGBUS, not an error), nor the
    # log next to them.
    files = [base + "/g.db", base + "/g.db-wal", base]
    if not chattr("+i", *files):
        chattr("-i", *files)
        print("skip: read-only at run time: chattr +i is not possible here (needs root and an "
              "ext2/3/4, xfs or btrfs folder)")
        check(d.stop() == 0, "stops cleanly")
        return
    try:
        s, h, j = d.json("POST", "/v1/sessions/r/observations", {"observations": ep[10:20]})
        s2, h2, j2 = d.json("PUT", "/v1/sessions/h", {"model": "imagenav"})
        check(s == 503 and is_problem(h, j, 503, "storage-unavailable") and h.get("retry-after") and
              j.get("steps") == 10 and s2 == 503 and is_problem(h2, j2, 503, "storage-unavailable"),
              f"read-only at run time: writes -> 503 storage-unavailable with Retry-After ({s} {s2})")
        check(d.json("GET", "/v1/sessions/r")[0] == 200, "read-only at run time: reads go on")
        s, h, j = d.json("GET", "/v2/health/ready")
        check(s == 503 and is_problem(h, j, 503, "not-ready"), f"read-only at run time: ready says 503 ({s})")
    finally:
        chattr("-i", *files)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5 and d.json("GET", "/v2/health/ready")[0] != 200:
        time.sleep(0.2)
    check(d.json("GET", "/v2/health/ready")[0] == 200, f"writable again: ready by itself within "
          f"{time.monotonic() - t0:.1f} s")
    s, h, j = d.json("POST", "/v1/sessions/r/observations", {"observations": ep[10:20]})
    check(s == 200 and j["steps"] == 20, f"writable again: observations resume at t=10 ({s} {j})")
    serves(d, "a read-only database at run time")
    check(d.stop() == 0, "stops cleanly")
    con = sqlite3.connect(base + "/g.db")
    check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check ok")
    con.close()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        models = model_dir(tmp)
        test_read_only_after_crash(models, tmp)
        test_schema_versions(models, tmp)
        test_migration_full_disk(models, tmp)
        test_null_state(models, tmp)
        test_full_disk(models, tmp)
        test_read_only_at_run_time(models, tmp)
    faults = {x for x in SPEC if x[2] == 500 or (x[2] == 507 and "full" in RAN)}
    missing = sorted(faults - SEEN)
    for m in missing:
        print("  not exercised:", m, file=sys.stderr)
    check(not missing, f"every 500{' and 507' if 'full' in RAN else ''} of openapi.yaml exercised "
          f"({len(faults)})")
    check_spec()
    finish("test_storage")


if __name__ == "__main__":
    main()
