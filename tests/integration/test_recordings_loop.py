#!/usr/bin/env python3
"""The loop of docs/TOUR.md end to end on a small model with a real gtmsmd on
a real port: record sessions through HTTP (a client streams observations),
train a few updates on them from the daemon's SQLite file (--from-db, read
while the daemon runs) and from the same episodes as NDJSON (--episodes),
evaluate on both, then load the new model into a daemon and predict.

Checks beside the loop: training from the database and from the NDJSON of the
same episodes gives the same model (same content hash); the database reader
refuses an unknown schema version, a file that is not a gtmsmd database, a
missing file or session (exit 2, the path in the message) and a gap in t
(session and t in the message); the daemon's predictions with the new model
equal `gtmsm predict` offline, byte for byte."""
import base64
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import GTMSM, Daemon, check, finish, ndjson, train_model  # noqa: E402

TRAIN = ["--batch", "3", "--memorize", "24", "--predict", "8", "--hidden", "16", "--latent", "4",
         "--gate-hidden", "8", "--curriculum", "4", "--log-every", "2", "--steps", "4", "--threads", "1"]


def gtmsm(*args, check_rc=True):
    r = subprocess.run([GTMSM, *args], capture_output=True)
    if check_rc and r.returncode != 0:
        raise RuntimeError("gtmsm %s failed (%d): %s" % (args[0], r.returncode, r.stderr.decode()))
    return r


def content_hash(path):
    """The "content_hash" of a .gtm's metadata (config and parameters, not provenance)."""
    b = open(path, "rb").read()
    assert b[:8] == b"GTMSMMDL"
    n = struct.unpack("<I", b[12:16])[0]
    return json.loads(b[16:16 + n])["content_hash"]


def refused(args, code, needle, what):
    r = gtmsm(*args, check_rc=False)
    check(r.returncode == code and needle.encode() in r.stderr,
          f"{what} (exit {r.returncode}: {r.stderr.decode(errors='replace').strip()[:200]})")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(f"{tmp}/models")
        train_model(f"{tmp}/models/nav.gtm")
        train_model(f"{tmp}/models/other.gtm", seed=2)
        db = f"{tmp}/gtmsm.db"
        d = Daemon(f"{tmp}/models", db)
        # 1. record: two sessions, streamed as NDJSON the way a client does
        eps = {}
        for sid, seed, n in (("walk-a", 7, 120), ("walk-b", 8, 90)):
            out = gtmsm("gen", "--env", "imagenav", "--seed", str(seed), "--steps", str(n)).stdout
            path = f"{tmp}/{sid}.ndjson"
            open(path, "wb").write(out)
            eps[sid] = path
            s, _, _ = d.json("PUT", f"/v1/sessions/{sid}", {"model": "nav"})
            check(s == 201, f"{sid}: session created")
            lines = out.splitlines(keepends=True)
            for i in range(0, len(lines), 50):  # in several requests, as a client streams
                s, _, j = d.json("POST", f"/v1/sessions/{sid}/observations", b"".join(lines[i:i + 50]),
                                 {"Content-Type": "application/x-ndjson"})
                check(s == 200 and j["steps"] == min(i + 50, n), f"{sid}: observations {i}.. stored")
        s, _, _ = d.json("PUT", "/v1/sessions/empty", {"model": "nav"})  # never observed: skipped
        s, _, _ = d.json("PUT", "/v1/sessions/walk-z", {"model": "other"})  # another model's session
        s, _, _ = d.json("POST", "/v1/sessions/walk-z/observations",
                         gtmsm("gen", "--env", "imagenav", "--seed", "9", "--steps", "40").stdout,
                         {"Content-Type": "application/x-ndjson"})
        check(s == 200, "walk-z: a session of another model")

        # 2. train on the recordings, from the live daemon's database and from NDJSON
        r = gtmsm("train", "--out", f"{tmp}/run_db", "--from-db", db, "--session", "walk-a", "walk-b",
                  "--model-out", f"{tmp}/new_db.gtm", *TRAIN)
        check(b"windows of 2 recordings (210 steps of 8x8 frames" in r.stderr, "train --from-db: two sessions read")
        r = gtmsm("train", "--out", f"{tmp}/run_all", "--from-db", db, "--db-model", "nav",
                  "--model-out", f"{tmp}/new_all.gtm", *TRAIN)
        check(b"session empty has no observations: skipped" in r.stderr and b"windows of 2 recordings" in r.stderr,
              "train --from-db --db-model nav: every session of that model with observations, in id order")
        r = gtmsm("train", "--out", f"{tmp}/run_any", "--from-db", db, *TRAIN)
        check(b"windows of 3 recordings (250 steps" in r.stderr, "train --from-db: every session of any model")
        refused(["train", "--out", f"{tmp}/x", "--from-db", db, "--db-model", "nav", "--session", "walk-z", *TRAIN],
                1, "session walk-z was recorded with model 'other', not 'nav'", "--db-model: a listed session of another model")
        gtmsm("train", "--out", f"{tmp}/run_nd", "--episodes", eps["walk-a"], eps["walk-b"],
              "--model-out", f"{tmp}/new.gtm", *TRAIN)
        check(content_hash(f"{tmp}/new_db.gtm") == content_hash(f"{tmp}/new.gtm") ==
              content_hash(f"{tmp}/new_all.gtm"),
              "the same episodes from the database and from NDJSON train the same model")
        gtmsm("train", "--out", f"{tmp}/run_db", "--steps", "6", "--resume")
        s, _, j = d.json("POST", "/v1/sessions/walk-b/observations",
                         ndjson([json.loads(l) for l in gtmsm("gen", "--env", "imagenav", "--seed", "8", "--steps",
                                                               "95").stdout.splitlines()[90:]]),
                         {"Content-Type": "application/x-ndjson"})
        check(s == 200 and j["steps"] == 95, "the daemon kept writing while training read its file")
        r = gtmsm("train", "--out", f"{tmp}/run_db", "--steps", "8", "--resume")
        check(b"resuming" in r.stderr and b"210 steps" in r.stderr,
              "--resume reads the sessions as far as the run first read them")

        # 3. evaluate: recordings with truth (NDJSON) and without (the database keeps frames and actions)
        j = json.loads(gtmsm("eval", "--model", f"{tmp}/new.gtm", "--episodes", eps["walk-a"], eps["walk-b"],
                             "--memorize", "60", "--predict", "30", "--json", "--out", f"{tmp}/eval").stdout)
        check(j["episodes"] == 2 and j["truth"] and j["psnr"]["oracle"]["all"] is not None
              and j["position_error"]["final"] is not None, "eval --episodes: with truth, oracle and positions")
        check(all(os.path.exists(f"{tmp}/eval/{f}") for f in ("psnr.csv", "psnr.png", "strip_0.png")),
              "eval --episodes: figures")
        j = json.loads(gtmsm("eval", "--model", f"{tmp}/new.gtm", "--from-db", db, "--session", "walk-a",
                             "--memorize", "60", "--predict", "30", "--json").stdout)
        check(j["episodes"] == 1 and j["truth"] is False and j["psnr"]["model"]["all"] is not None
              and j["psnr"]["oracle"]["all"] is None and j["position_error"]["mean"] is None,
              "eval --from-db: model and no_memory, no truth metrics")
        d.stop()

        # 4. the database reader's refusals
        bad = f"{tmp}/v6.db"
        src = sqlite3.connect(db)
        dst = sqlite3.connect(bad)
        src.backup(dst)
        dst.execute("PRAGMA user_version = 6")
        dst.commit()
        dst.close()
        refused(["train", "--out", f"{tmp}/x", "--from-db", bad, *TRAIN], 1, "schema version 6 is not one",
                "an unknown schema version is refused")
        gap = f"{tmp}/gap.db"
        dst = sqlite3.connect(gap)
        src.backup(dst)
        dst.execute("DELETE FROM observations WHERE t = 5 AND sid = (SELECT sid FROM sessions WHERE id = 'walk-b')")
        dst.commit()
        dst.close()
        src.close()
        refused(["train", "--out", f"{tmp}/x", "--from-db", gap, *TRAIN], 1, "session walk-b t=6: a gap",
                "a gap in t names the session and t")
        other = f"{tmp}/other.db"
        c = sqlite3.connect(other)
        c.execute("CREATE TABLE t (x)")
        c.commit()
        c.close()
        refused(["train", "--out", f"{tmp}/x", "--from-db", other, *TRAIN], 1, "not a gtmsmd database",
                "another program's SQLite file is refused")
        refused(["train", "--out", f"{tmp}/x", "--from-db", f"{tmp}/none.db", *TRAIN], 2, f"{tmp}/none.db",
                "a missing database exits 2 with its path")
        refused(["train", "--out", f"{tmp}/x", "--from-db", db, "--session", "nobody", *TRAIN], 2,
                "no session 'nobody'", "a missing session exits 2")
        refused(["eval", "--model", f"{tmp}/new.gtm", "--from-db", db, "--session", "walk-b", "--memorize",
                 "90", "--predict", "30"], 2, "session walk-b holds 95 steps", "eval: a short session is named")

        # 5. serve the new model and predict with it
        shutil.copy(f"{tmp}/new.gtm", f"{tmp}/models/nav2.gtm")
        d = Daemon(f"{tmp}/models", db)
        s, _, m = d.json("GET", "/v1/models/nav2")
        check(s == 200 and m["version"] == content_hash(f"{tmp}/new.gtm"), "the new model is served")
        s, _, _ = d.json("PUT", "/v1/sessions/walk-c", {"model": "nav2"})
        lines = open(eps["walk-a"], "rb").read().splitlines(keepends=True)
        s2, _, _ = d.json("POST", "/v1/sessions/walk-c/observations", b"".join(lines[:100]),
                          {"Content-Type": "application/x-ndjson"})
        acts = [json.loads(l)["action"] for l in lines[100:110]]
        s3, _, p = d.json("POST", "/v1/sessions/walk-c/predictions", {"actions": acts})
        check(s == 201 and s2 == 200 and s3 == 200 and len(p["frames"]) == 10, "predictions from the new model")
        off = gtmsm("predict", "--model", f"{tmp}/new.gtm", "--episode", eps["walk-a"], "--memorize", "100",
                    "--actions", ",".join(acts), "--ndjson").stdout.decode().splitlines()
        check([f["png"] for f in p["frames"]] == [json.loads(l)["png"] for l in off],
              "the daemon's frames equal gtmsm predict's, byte for byte")
        check(all(base64.b64decode(f["png"])[:8] == b"\x89PNG\r\n\x1a\n" for f in p["frames"]), "PNG frames")
        d.stop()
    finish("test_recordings_loop")


if __name__ == "__main__":
    main()
