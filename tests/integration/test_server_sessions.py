#!/usr/bin/env python3
"""The sessions and models gtmsmd manages (issue 13), on a real daemon on a real port, on SQLite
and on a throwaway PostgreSQL server (tests/lib/pglib.py):
- GET /v1/sessions: pages in creation order with opaque next_page_token (none on the last
  page), items exactly GET /v1/sessions/{id}, the model filter, every bad limit / token / model
  a 400 problem+json; the Python client's list_sessions() walks the same pages;
- model versions side by side: models/imagenav.gtm replaced by another version and SIGHUP, the
  old version keeps serving its sessions (no 409), new sessions get the newest, or the version
  they ask for; GET /v1/models/{name} lists the versions newest first; a restart with the old
  file in models/imagenav/ serves both again, with byte-identical predictions;
- POST /v1/sessions/{id}/rebuild: onto the new version it predicts exactly like a session fed
  the same observations on that version from the start, back onto the old one exactly as
  before; observations sent while a rebuild runs are all kept and the result is the same as
  without the race; bad bodies and versions are 4xx;
- SIGHUP under load: predictions running during several reloads all succeed with the same
  bytes; a removed file stays loaded while the daemon runs;
- the same session and actions give the same bytes on both stores;
- --session-ttl: sessions nobody writes for the TTL are deleted by the background sweep (404,
  gone from the list, gtmsm_sessions_expired_total), one written meanwhile stays, predictions
  of another session run undisturbed during sweeps; expires_at = updated_at + TTL;
- a session's own "ttl_seconds" (PUT and POST /v1/sessions): 1..315360000 expires by its own
  TTL, 0 never (also under --session-ttl), null or absent the daemon's; expires_at and the
  listing follow it; bad values 400, a PUT of an existing session with another TTL 409; export
  (format_version 2) and import carry it, a version 1 dump imports with the daemon's default;
  without --session-ttl the sweeper still deletes sessions with their own TTL;
- keys (401), a body over --max-body (413), a version of another frame size (422), the
  PostgreSQL server gone (503);
- every (path, method, status) of openapi.yaml for the two new routes is exercised (but 500
  and 507, which need a damaged database or a full disk: tests/fault/test_storage.py)."""
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(os.environ.get("GTMSM_SRC", "."), "clients", "python"))
import subprocess  # noqa: E402

import pglib  # noqa: E402
from test_server_startup import GTMSM, Daemon, check, episode, finish, ndjson, openapi_statuses, train_model  # noqa: E402

FAULT_ONLY = {500, 507}

NDJ = {"Content-Type": "application/x-ndjson"}
PATHS = {("/v1/sessions", "GET"), ("/v1/sessions/{id}/rebuild", "POST")}
SPEC = {x for x in openapi_statuses() if (x[0], x[1]) in PATHS}
SEEN = set()
PRED = [({"actions": ["left", "up", "right", "down", "stay"] * 6}, {"Accept": "image/png"}),
        ({"actions": [0, 1, 2, 3] * 4, "mode": "sample", "seed": 5}, {"Accept": "application/json"})]


def seen(method, path, status):
    p = path.split("?")[0]
    t = "/v1/sessions/{id}/rebuild" if re.fullmatch(r"/v1/sessions/[^/]+/rebuild", p) else p
    if (t, method) in PATHS:
        SEEN.add((t, method, status))


def call(d, method, path, body=None, headers=None):
    s, h, j = d.json(method, path, body, headers)
    seen(method, path, s)
    return s, h, j


def raw(d, method, path, body=None, headers=None):
    s, h, b = d.request(method, path, body, headers)
    seen(method, path, s)
    return s, h, b


def problem(h, j, status, slug):
    return (h.get("content-type", "").startswith("application/problem+json") and j and j.get("status") == status
            and j.get("type") == "urn:gtmsm:problem:" + slug and j.get("detail"))


def predictions(d, sid):
    return [raw(d, "POST", f"/v1/sessions/{sid}/predictions", b, h)[::2] for b, h in PRED]


def feed(d, sid, obs):
    s, h, j = d.json("POST", f"/v1/sessions/{sid}/observations", ndjson(obs), NDJ)
    return s, j


class Store:
    """Where a daemon keeps its sessions: an SQLite file or a PostgreSQL database."""

    def __init__(self, kind, tmp, pg=None):
        self.kind, self.tmp, self.pg, self.n = kind, tmp, pg, 0

    def fresh(self, tag):
        self.n += 1
        if self.kind == "sqlite":
            return ["--db", f"{self.tmp}/{tag}{self.n}.db"], f"{self.tmp}/{tag}{self.n}.db"
        url = self.pg.create_db(f"{tag}{self.n}")
        return ["--store", url], f"{self.tmp}/{tag}{self.n}.unused.db"

    def daemon(self, models, target, *args):
        args_db, db = target
        extra = args_db if self.kind != "sqlite" else []
        return Daemon(models, db, *extra, *args)


# ---- listing -------------------------------------------------------------------------------

def test_list(st, models):
    what = st.kind
    d = st.daemon(models, st.fresh("list"))
    s, h, j = call(d, "GET", "/v1/sessions")
    check(s == 200 and j == {"sessions": []}, f"{what}: no sessions: an empty list, no token ({j})")
    ids = [f"s{i:02d}" for i in range(11)]
    for i, sid in enumerate(ids):
        s, h, j = d.json("PUT", f"/v1/sessions/{sid}", {"model": "other" if i % 3 == 0 else "imagenav"})
        check(s == 201, f"{what}: create {sid}")
    feed(d, "s01", episode(3, 12))
    d.json("DELETE", "/v1/sessions/s04")
    ids.remove("s04")
    got, token, pages = [], None, 0
    while True:
        s, h, j = call(d, "GET", "/v1/sessions?limit=4" + (f"&page_token={token}" if token else ""))
        if not check(s == 200, f"{what}: a page ({s} {j})"):
            break
        pages += 1
        got += j["sessions"]
        check(len(j["sessions"]) <= 4, f"{what}: at most limit items")
        token = j.get("next_page_token")
        if not token or pages > 5:
            break
        check(re.fullmatch(r"[A-Za-z0-9_-]+", token), f"{what}: the token is base64url ({token})")
    check([x["id"] for x in got] == ids and pages == 3, f"{what}: 10 sessions in 3 pages in creation order, the "
          f"deleted one skipped ({[x['id'] for x in got]})")
    ok = True
    for x in got:
        s, h, one = d.json("GET", f"/v1/sessions/{x['id']}")
        ok &= s == 200 and one == x
    check(ok, f"{what}: every item is exactly GET /v1/sessions/{{id}}")
    check(any(x["id"] == "s01" and x["steps"] == 12 and x["memory_entries"] == 12 for x in got), f"{what}: steps listed")
    s, h, j = call(d, "GET", "/v1/sessions?limit=10")
    check(s == 200 and len(j["sessions"]) == 10 and "next_page_token" not in j,
          f"{what}: a page that ends exactly at the last session has no token")
    s, h, j = call(d, "GET", "/v1/sessions")
    check(s == 200 and len(j["sessions"]) == 10 and "next_page_token" not in j, f"{what}: default limit (50)")
    s, h, j = call(d, "GET", "/v1/sessions?model=other&limit=2")
    t2 = j.get("next_page_token")
    s2, h2, j2 = call(d, "GET", f"/v1/sessions?model=other&limit=2&page_token={t2}")
    check(s == 200 and s2 == 200 and [x["id"] for x in j["sessions"] + j2["sessions"]] == ["s00", "s03", "s06", "s09"]
          and "next_page_token" not in j2, f"{what}: filtered by model, paged")
    s, h, j = call(d, "GET", "/v1/sessions?model=nosuch")
    check(s == 200 and j == {"sessions": []}, f"{what}: an unknown model lists nothing")
    for q, slug, word in [("limit=0", "invalid-request", "limit"), ("limit=501", "invalid-request", "1..500"),
                          ("limit=abc", "invalid-request", "limit"), ("limit=-1", "invalid-request", "limit"),
                          ("limit=", "invalid-request", "limit"), ("limit=2x", "invalid-request", "limit"),
                          ("page_token=garbage!", "invalid-request", "page_token"),
                          ("page_token=czE6MDo", "invalid-request", "page_token"),
                          (f"page_token={t2}", "invalid-request", "model filter"),
                          (f"model=imagenav&page_token={t2}", "invalid-request", "model filter"),
                          ("model=a%20b", "bad-id", "percent"), ("model=" + "x" * 65, "bad-id", "model name")]:
        s, h, j = call(d, "GET", "/v1/sessions?" + q)
        check(s == 400 and problem(h, j, 400, slug) and word in j["detail"], f"{what}: ?{q}: 400 {slug} ({s} {j})")
    from gtmsm_client import Client
    with Client(f"http://127.0.0.1:{d.port}") as c:
        check([x["id"] for x in c.list_sessions(page_size=3)] == ids, f"{what}: Client.list_sessions() pages through all")
        check([x["id"] for x in c.list_sessions(model="other")] == ["s00", "s03", "s06", "s09"],
              f"{what}: Client.list_sessions(model=)")
    check(d.json("GET", "/v2/health/live")[0] == 200 and d.stop() == 0, f"{what}: still live, exit 0")


# ---- versions, rebuild, reload ---------------------------------------------------------

def versions_of(d):
    s, h, j = d.json("GET", "/v1/models/imagenav")
    return [v["version"] for v in j.get("versions", [])] if s == 200 else None


def test_versions(st, tmp, v1, v2, ep):
    what = st.kind
    models = f"{tmp}/models-{what}"
    shutil.rmtree(models, ignore_errors=True)
    os.makedirs(models)
    shutil.copy(v1, models + "/imagenav.gtm")
    os.utime(models + "/imagenav.gtm", (1_700_000_000, 1_700_000_000))
    target = st.fresh("versions")
    d = st.daemon(models, target)
    h1 = d.json("GET", "/v1/models/imagenav")[2]["version"]
    check(versions_of(d) == [h1], f"{what}: one version listed")
    d.json("PUT", "/v1/sessions/a", {"model": "imagenav"})
    s, j = feed(d, "a", ep[:150])
    check(s == 200 and j["steps"] == 150, f"{what}: session a on version 1")
    before = predictions(d, "a")
    check(all(s == 200 for s, _ in before), f"{what}: predictions on version 1")

    # replace the file (a newer mtime) and SIGHUP, with predictions running meanwhile
    stop, results = threading.Event(), []

    def loop():
        while not stop.is_set():
            results.append(predictions(d, "a")[0])
    th = threading.Thread(target=loop)
    th.start()
    time.sleep(0.2)
    shutil.copy(v2, models + "/imagenav.gtm.tmp")
    os.utime(models + "/imagenav.gtm.tmp", (1_700_000_100, 1_700_000_100))
    os.rename(models + "/imagenav.gtm.tmp", models + "/imagenav.gtm")
    for _ in range(3):
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
    deadline = time.time() + 20
    while time.time() < deadline and len(versions_of(d) or []) < 2:
        time.sleep(0.1)
    time.sleep(0.2)
    stop.set()
    th.join()
    check(len(results) > 3 and all(r == before[0] for r in results),
          f"{what}: {len(results)} predictions during 3 SIGHUPs: every one 200 with the same bytes")
    vs = versions_of(d)
    h2 = d.json("GET", "/v1/models/imagenav")[2]["version"]
    check(vs == [h2, h1] and h2 != h1, f"{what}: after SIGHUP both versions, the replacement first ({vs})")
    check(any(l.get("msg") == "models folder reloaded (SIGHUP)" and l.get("added") == 1 for l in d.lines()),
          f"{what}: the reload is logged with the versions it added")
    s, h, j = d.json("GET", "/v1/models")
    check(s == 200 and [m["name"] for m in j["models"]] == ["imagenav"] and j["models"][0]["version"] == h2
          and [v["version"] for v in j["models"][0]["versions"]] == [h2, h1], f"{what}: GET /v1/models: newest + versions")
    check(predictions(d, "a") == before, f"{what}: session a stays on version 1 after the replacement (no 409)")
    s, j = feed(d, "a", ep[150:200])
    check(s == 200 and j["steps"] == 200, f"{what}: and keeps observing on version 1")
    before = predictions(d, "a")
    s, h, j = d.json("PUT", "/v1/sessions/b", {"model": "imagenav"})
    check(s == 201 and j["model_version"] == h2, f"{what}: a new session gets the newest version")
    s, h, j = d.json("PUT", "/v1/sessions/c", {"model": "imagenav", "model_version": h1})
    check(s == 201 and j["model_version"] == h1, f"{what}: or the version it asks for")
    s, h, j = d.json("POST", "/v1/sessions", {"model": "imagenav", "model_version": h1})
    check(s == 201 and j["model_version"] == h1, f"{what}: POST /v1/sessions with a version")
    s, h, j = d.json("PUT", "/v1/sessions/c", {"model": "imagenav", "model_version": h1})
    check(s == 200, f"{what}: PUT again with its version: 200")
    s, h, j = d.json("PUT", "/v1/sessions/c", {"model": "imagenav"})
    check(s == 409 and problem(h, j, 409, "model-mismatch"), f"{what}: PUT again without it (the newest): 409")
    s, h, j = d.json("PUT", "/v1/sessions/x", {"model": "imagenav", "model_version": "0123456789abcdef"})
    check(s == 404 and problem(h, j, 404, "model-not-found") and "no version" in j["detail"],
          f"{what}: an unknown version: 404 ({j})")
    s, h, j = d.json("PUT", "/v1/sessions/x", {"model": "imagenav", "model_version": "XYZ"})
    check(s == 400 and problem(h, j, 400, "invalid-request"), f"{what}: a malformed version: 400")
    # the reference: the same 200 observations on version 2 from the start
    d.json("PUT", "/v1/sessions/ref2", {"model": "imagenav", "model_version": h2})
    feed(d, "ref2", ep[:200])
    ref2 = predictions(d, "ref2")
    check(ref2 != before, f"{what}: version 2 predicts other frames")

    # rebuild a: onto version 2 (the newest: an empty body), then back
    s, h, j = call(d, "POST", "/v1/sessions/a/rebuild", b"", {"Content-Type": "application/json"})
    check(s == 200 and j["model_version"] == h2 and j["steps"] == 200 and j["memory_entries"] == 200,
          f"{what}: rebuild onto the newest: 200 with the new version ({s} {j})")
    check(predictions(d, "a") == ref2, f"{what}: rebuilt: exactly the predictions of a session made on version 2")
    s, h, j = call(d, "POST", "/v1/sessions/a/rebuild", {"model_version": h1})
    check(s == 200 and j["model_version"] == h1, f"{what}: rebuild back onto version 1")
    check(predictions(d, "a") == before, f"{what}: back on version 1: the original predictions")
    for body, status, slug in [({"model_version": "0123456789abcdef"}, 404, "model-not-found"),
                               ({"model_version": "nothex"}, 400, "invalid-request"),
                               ({"model_version": 7}, 400, "invalid-request"), ([1], 400, "invalid-request"),
                               (b"{", 400, "malformed-json")]:
        s, h, j = call(d, "POST", "/v1/sessions/a/rebuild", body, {"Content-Type": "application/json"})
        check(s == status and problem(h, j, status, slug), f"{what}: rebuild with {body!r}: {status} {slug} ({s} {j})")
    s, h, j = call(d, "POST", "/v1/sessions/a/rebuild", b"{}", {"Content-Type": "text/plain"})
    check(s == 415 and problem(h, j, 415, "unsupported-media-type"), f"{what}: rebuild as text/plain: 415")
    s, h, j = call(d, "POST", "/v1/sessions/nosuch/rebuild", {})
    check(s == 404 and problem(h, j, 404, "session-not-found"), f"{what}: rebuild of an unknown session: 404")
    s, h, j = call(d, "POST", "/v1/sessions/a%2Fb/rebuild", {})
    check(s == 400 and problem(h, j, 400, "bad-id"), f"{what}: rebuild of a bad id: 400")
    check(predictions(d, "a") == before, f"{what}: the refused rebuilds changed nothing")

    # observations racing a rebuild: each lands before (rebuilt too) or waits and lands after
    d.json("PUT", "/v1/sessions/race", {"model": "imagenav", "model_version": h1})
    feed(d, "race", ep[:200])
    out = {}

    def rebuild():
        out["rebuild"] = call(d, "POST", "/v1/sessions/race/rebuild", {"model_version": h2})[0]

    def observe():
        codes = []
        for i in range(200, 260, 10):
            codes.append(feed(d, "race", ep[i:i + 10])[0])
        out["observe"] = codes
    ts = [threading.Thread(target=rebuild), threading.Thread(target=observe)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    s, h, j = d.json("GET", "/v1/sessions/race")
    check(out["rebuild"] == 200 and out["observe"] == [200] * 6 and j["steps"] == 260 and j["model_version"] == h2,
          f"{what}: a rebuild racing 6 observation requests: all 200, 260 steps on version 2 ({out})")
    d.json("PUT", "/v1/sessions/ref3", {"model": "imagenav", "model_version": h2})
    feed(d, "ref3", ep[:260])
    check(predictions(d, "race") == predictions(d, "ref3"),
          f"{what}: and the same memory as 260 observations on version 2 from the start")
    check(d.stop() == 0, f"{what}: exit 0")

    # restart: the old file kept in models/imagenav/, both served again
    os.makedirs(models + "/imagenav")
    shutil.copy(v1, models + "/imagenav/old.gtm")
    os.utime(models + "/imagenav/old.gtm", (1_700_000_000, 1_700_000_000))
    d = st.daemon(models, target)
    check(versions_of(d) == [h2, h1], f"{what}: restart with models/imagenav/old.gtm: both versions, newest first")
    check(predictions(d, "a") == before, f"{what}: after a restart: session a on version 1, byte-identical")
    check(predictions(d, "ref2") == ref2, f"{what}: and ref2 on version 2, byte-identical")
    # a removed file stays loaded while the daemon runs
    os.remove(models + "/imagenav/old.gtm")
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    check(predictions(d, "a") == before and versions_of(d) == [h2, h1],
          f"{what}: its file removed and SIGHUP: version 1 stays loaded and serving")
    check(d.stop() == 0, f"{what}: exit 0")
    # without the old file: a's version is gone, so 409 until rebuilt
    d = st.daemon(models, target)
    s, h, j = d.json("POST", "/v1/sessions/a/predictions", PRED[0][0])
    check(s == 409 and problem(h, j, 409, "model-version") and "rebuild" in j["detail"],
          f"{what}: restarted without version 1: 409 model-version naming the rebuild")
    s, h, j = call(d, "POST", "/v1/sessions/a/rebuild", {})
    check(s == 200 and j["model_version"] == h2 and predictions(d, "a") == ref2,
          f"{what}: rebuilt onto the loaded version, it serves again")
    from gtmsm_client import Client
    with Client(f"http://127.0.0.1:{d.port}") as c:
        j = c.rebuild("c")
        check(j["model_version"] == h2, f"{what}: Client.rebuild()")
        j = c.create_session("imagenav", "viaclient", model_version=h2)
        check(j["model_version"] == h2, f"{what}: Client.create_session(model_version=)")
    check(d.stop() == 0, f"{what}: exit 0")
    return before, ref2


def test_expiry(st, models, ep):
    what = st.kind
    d = st.daemon(models, st.fresh("expiry"), "--session-ttl", "2")
    for sid in ("keep", "drop", "busy"):
        d.json("PUT", f"/v1/sessions/{sid}", {"model": "imagenav"})
    feed(d, "busy", ep[:50])
    s, h, j = d.json("GET", "/v1/sessions/drop")
    check(s == 200 and "expires_at" in j, f"{what}: --session-ttl: the session object has expires_at ({j})")
    if "expires_at" in j:
        from datetime import datetime
        def t(x):
            return datetime.strptime(x, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        check(abs(t(j["expires_at"]) - t(j["updated_at"]) - 2.0) < 1e-3, f"{what}: expires_at = updated_at + 2 s")
    s, h, j = call(d, "GET", "/v1/sessions")
    check(s == 200 and all("expires_at" in x for x in j["sessions"]), f"{what}: listed with expires_at too")
    busy = predictions(d, "busy")
    t0, ok, n = time.time(), True, 0
    while time.time() - t0 < 4.5:  # keep writes one observation every 0.5 s; drop is idle
        s1, j1 = feed(d, "keep", ep[n:n + 1])
        n += 1
        ok &= s1 == 200 and (time.time() - t0 > 1.5 or predictions(d, "busy") == busy)
        time.sleep(0.4)
    check(ok, f"{what}: writes (and, within its TTL, predictions of another session) went on during the sweeps")
    s, h, j = d.json("GET", "/v1/sessions/drop")
    check(s == 404 and problem(h, j, 404, "session-not-found"), f"{what}: idle past the TTL: deleted ({s})")
    s, h, j = d.json("GET", "/v1/sessions/keep")
    check(s == 200 and j["steps"] == n, f"{what}: written within the TTL: kept with its {n} steps")
    s, h, j = d.json("GET", "/v1/sessions/busy")
    check(s == 404, f"{what}: predictions alone do not keep a session (only writes do)")
    s, h, body = d.request("GET", "/metrics")
    check(b"gtmsm_sessions_expired_total 2" in body, f"{what}: gtmsm_sessions_expired_total 2")
    check(sum(1 for l in d.lines() if l.get("event") == "session_expired" and l.get("id")) == 2,
          f"{what}: each expiry logged")
    s, h, j = call(d, "GET", "/v1/sessions")
    check(s == 200 and [x["id"] for x in j["sessions"]] == ["keep"], f"{what}: the list shows what is left")
    check(d.stop() == 0, f"{what}: exit 0")
    d = st.daemon(models, st.fresh("noexpiry"))
    d.json("PUT", "/v1/sessions/x", {"model": "imagenav"})
    s, h, j = d.json("GET", "/v1/sessions/x")
    check(s == 200 and "expires_at" not in j, f"{what}: without --session-ttl: no expires_at")
    check(d.stop() == 0, f"{what}: exit 0")


def ts(x):
    from datetime import datetime, timezone
    return datetime.strptime(x, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def ttl_of(j):
    """expires_at - updated_at in seconds, or None without expires_at."""
    return round(ts(j["expires_at"]) - ts(j["updated_at"]), 3) if "expires_at" in j else None


def test_own_ttl(st, models):
    what = st.kind + " ttl_seconds"
    d = st.daemon(models, st.fresh("ownttl"), "--session-ttl", "3")
    t0 = time.time()
    made = {}
    for sid, body in (("short", {"ttl_seconds": 1}), ("forever", {"ttl_seconds": 0}), ("dflt", {}),
                      ("nul", {"ttl_seconds": None}), ("long", {"ttl_seconds": 10})):
        s, h, j = d.json("PUT", f"/v1/sessions/{sid}", {"model": "imagenav", **body})
        made[sid] = j
        check(s == 201, f"{what}: PUT {sid} {body}: 201 ({s} {j})")
    check(made["short"].get("ttl_seconds") == 1 and ttl_of(made["short"]) == 1.0,
          f"{what}: its own 1 s: ttl_seconds 1, expires_at = updated_at + 1 s ({made['short']})")
    check(made["forever"].get("ttl_seconds") == 0 and "expires_at" not in made["forever"],
          f"{what}: 0: never expires, no expires_at even under --session-ttl ({made['forever']})")
    check("ttl_seconds" not in made["dflt"] and ttl_of(made["dflt"]) == 3.0 and ttl_of(made["nul"]) == 3.0,
          f"{what}: absent or null: the daemon's 3 s ({made['dflt']}, {made['nul']})")
    s, h, j = d.json("POST", "/v1/sessions", {"model": "imagenav", "ttl_seconds": 10})
    posted = j.get("id")
    check(s == 201 and j.get("ttl_seconds") == 10 and ttl_of(j) == 10.0, f"{what}: POST with 10 s ({s} {j})")
    s, h, j = d.json("GET", "/v1/sessions/long")
    check(s == 200 and j.get("ttl_seconds") == 10 and ttl_of(j) == 10.0, f"{what}: GET shows its own TTL ({j})")
    from gtmsm_client import Client
    with Client(f"http://127.0.0.1:{d.port}") as c:
        j = c.create_session("imagenav", "viaclient", ttl_seconds=10)
        check(j.get("ttl_seconds") == 10, f"{what}: Client.create_session(ttl_seconds=10)")
    for bad in (-1, 1.5, "5", True, 315360001, [1]):
        for method, path in (("PUT", "/v1/sessions/badttl"), ("POST", "/v1/sessions")):
            s, h, j = d.json(method, path, {"model": "imagenav", "ttl_seconds": bad})
            check(s == 400 and problem(h, j, 400, "invalid-request") and "ttl_seconds" in j["detail"]
                  and "315360000" in j["detail"], f"{what}: {method} ttl_seconds {bad!r}: 400 saying what is expected "
                  f"({s} {j})")
    s, h, j = d.json("GET", "/v1/sessions/badttl")
    check(s == 404, f"{what}: nothing created by a bad TTL")
    s, h, j = d.json("PUT", "/v1/sessions/short", {"model": "imagenav", "ttl_seconds": 7})
    check(s == 409 and problem(h, j, 409, "ttl-mismatch"), f"{what}: PUT again with another TTL: 409 ({s} {j})")
    s, h, j = d.json("PUT", "/v1/sessions/short", {"model": "imagenav", "ttl_seconds": 1})
    check(s == 200 and j.get("ttl_seconds") == 1, f"{what}: PUT again with the same TTL: 200 ({s})")
    s, h, j = d.json("PUT", "/v1/sessions/long", {"model": "imagenav"})
    check(s == 200 and j.get("ttl_seconds") == 10, f"{what}: PUT again without one: 200, keeps its own ({s} {j})")
    s, h, j = call(d, "GET", "/v1/sessions")
    items = {x["id"]: x for x in j.get("sessions", [])}
    check(s == 200 and ttl_of(items["short"]) == 1.0 and "expires_at" not in items["forever"] and
          ttl_of(items["dflt"]) == 3.0 and ttl_of(items["long"]) == 10.0 and items["long"].get("ttl_seconds") == 10,
          f"{what}: listed items carry each session's own expires_at")
    # export / import carry it; a version 1 dump (without it) takes the daemon's default
    s, h, dump_long = d.json("GET", "/v1/sessions/long/export")
    check(s == 200 and dump_long.get("format_version") == 2 and dump_long.get("ttl_seconds") == 10,
          f"{what}: the export has format_version 2 and ttl_seconds 10")
    s, h, dump_dflt = d.json("GET", "/v1/sessions/dflt/export")
    check(s == 200 and "ttl_seconds" in dump_dflt and dump_dflt["ttl_seconds"] is None,
          f"{what}: the default one exports ttl_seconds null")
    s, h, dump_never = d.json("GET", "/v1/sessions/forever/export")
    check(s == 200 and dump_never.get("ttl_seconds") == 0, f"{what}: the never one exports ttl_seconds 0")
    s, h, j = d.json("POST", "/v1/sessions/import?id=long2", dump_long)
    check(s == 201 and j.get("ttl_seconds") == 10 and ttl_of(j) == 10.0, f"{what}: imported with its 10 s ({s} {j})")
    s, h, j = d.json("POST", "/v1/sessions/import?id=never2", dump_never)
    check(s == 201 and j.get("ttl_seconds") == 0 and "expires_at" not in j, f"{what}: imported never to expire")
    v1 = {k: v for k, v in dump_long.items() if k != "ttl_seconds"}
    v1["format_version"] = 1
    s, h, j = d.json("POST", "/v1/sessions/import?id=old1", v1)
    check(s == 201 and "ttl_seconds" not in j and ttl_of(j) == 3.0,
          f"{what}: a version 1 dump imports with the daemon's default ({s} {j})")
    s, h, j = d.json("POST", "/v1/sessions/import?id=badimp", {**dump_long, "ttl_seconds": -5})
    check(s == 400 and problem(h, j, 400, "invalid-request") and "ttl_seconds" in j["detail"],
          f"{what}: an import with a bad ttl_seconds: 400 ({s})")
    s, h, j = d.json("POST", "/v1/sessions/import?id=v3", {**dump_long, "format_version": 3})
    check(s == 400, f"{what}: format_version 3 refused ({s})")
    # the sweep: short goes by its own 1 s; dflt, nul, old1 by the daemon's 3 s; the rest stay
    while time.time() - t0 < 2.6:
        time.sleep(0.1)
    s1 = d.json("GET", "/v1/sessions/short")[0]
    s2 = d.json("GET", "/v1/sessions/dflt")[0]
    check(s1 == 404 and s2 == 200, f"{what}: at 2.6 s its own 1 s expired it, the default 3 s not yet ({s1} {s2})")
    while time.time() - t0 < 5.5:
        time.sleep(0.1)
    gone = [x for x in ("dflt", "nul", "old1") if d.json("GET", f"/v1/sessions/{x}")[0] == 404]
    kept = [x for x in ("forever", "never2", "long", "long2", posted, "viaclient") if d.json("GET", f"/v1/sessions/{x}")[0] == 200]
    check(gone == ["dflt", "nul", "old1"], f"{what}: at 5.5 s the default ones went too ({gone})")
    check(len(kept) == 6, f"{what}: never and 10 s ones stay ({kept})")
    check(d.stop() == 0, f"{what}: exit 0")
    # no --session-ttl: the sweeper still runs for sessions with their own TTL
    d = st.daemon(models, st.fresh("ownttl_noglobal"))
    d.json("PUT", "/v1/sessions/own", {"model": "imagenav", "ttl_seconds": 1})
    s, h, j = d.json("PUT", "/v1/sessions/plain", {"model": "imagenav"})
    check(s == 201 and "expires_at" not in j, f"{what}: without --session-ttl a plain session has no expires_at")
    t0, s = time.time(), 200
    while time.time() - t0 < 8 and s == 200:  # its 1 s plus a sweep interval (at most 5 s)
        time.sleep(0.25)
        s = d.json("GET", "/v1/sessions/own")[0]
    check(s == 404 and time.time() - t0 < 7.5,
          f"{what}: without --session-ttl its own 1 s expired it ({time.time() - t0:.1f} s)")
    check(d.json("GET", "/v1/sessions/plain")[0] == 200, f"{what}: the plain one stays")
    check(d.stop() == 0, f"{what}: exit 0")


def train_maze3d(path):
    """A tiny untrained maze3d model (32x32x3 frames): a version no imagenav session fits."""
    out = os.path.dirname(path)
    os.makedirs(out, exist_ok=True)
    subprocess.run([GTMSM, "train", "--env", "maze3d", "--scenario", "rotate", "--episode", "80",
                    "--memorize", "33", "--predict", "16", "--vae", "conv", "--latent", "64",
                    "--channels", "8", "--transition", "rot3d", "--keymap", "periodic", "--prior", "mlp",
                    "--prior-hidden", "32", "--k", "4", "--still", "0", "--wallfree", "0",
                    "--curriculum", "0", "--batch", "1", "--threads", "1", "--steps", "2",
                    "--out", out + "/run-maze3d", "--model-out", path], check=True, capture_output=True)
    return path


def test_edges(tmp, v1, ep):
    """401 and 413 with keys and a small --max-body; 422 for a version of another frame size."""
    models = tmp + "/models-edges"
    os.makedirs(models + "/imagenav")
    shutil.copy(v1, models + "/imagenav.gtm")
    maze = train_maze3d(tmp + "/maze/m.gtm")
    shutil.copy(maze, models + "/imagenav/maze.gtm")
    os.utime(models + "/imagenav/maze.gtm", (1_600_000_000, 1_600_000_000))  # older: not the default
    with open(tmp + "/keys", "w") as f:
        f.write("k-123\n")
    d = Daemon(models, tmp + "/edges.db", "--api-keys", tmp + "/keys", "--max-body", "8k")
    key = {"Authorization": "Bearer k-123"}
    s, h, j = call(d, "GET", "/v1/sessions")
    check(s == 401 and problem(h, j, 401, "unauthorized"), "list without a key: 401")
    s, h, j = call(d, "POST", "/v1/sessions/e/rebuild", {})
    check(s == 401 and problem(h, j, 401, "unauthorized"), "rebuild without a key: 401")
    s, h, j = call(d, "GET", "/v1/sessions", None, key)
    check(s == 200, "list with the key: 200")
    d.json("PUT", "/v1/sessions/e", {"model": "imagenav"}, key)
    s, h, j = d.json("POST", "/v1/sessions/e/observations", {"observations": ep[:5]}, key)
    s, h, j = call(d, "POST", "/v1/sessions/e/rebuild", {"model_version": "0" * 16, "pad": "x" * 9000}, key)
    check(s == 413 and problem(h, j, 413, "body-too-large"), f"rebuild with a body over --max-body: 413 ({s})")
    s, h, m = d.json("GET", "/v1/models/imagenav", None, key)
    other = [v["version"] for v in m["versions"] if v["file"] == "maze.gtm"]
    check(len(other) == 1 and m["versions"][0]["file"] == "imagenav.gtm", "the older maze3d file is a second version")
    s, h, j = call(d, "POST", "/v1/sessions/e/rebuild", {"model_version": other[0] if other else "0"}, key)
    check(s == 422 and problem(h, j, 422, "incompatible-model") and "32x32x3" in j["detail"],
          f"rebuild onto a version of other frames: 422 incompatible-model ({s} {j})")
    s, h, j = d.json("GET", "/v1/sessions/e", None, key)
    check(s == 200 and j["model_version"] == m["version"] and j["steps"] == 5, "and the session is unchanged")
    check(d.stop() == 0, "exit 0")


def test_pg_outage(pg, tmp, models, ep):
    """The PostgreSQL server gone: list and rebuild answer 503, then work again."""
    url = pg.create_db("outage")
    d = Daemon(models, tmp + "/outage.unused.db", "--store", url)
    d.json("PUT", "/v1/sessions/o", {"model": "imagenav"})
    feed(d, "o", ep[:20])
    pg.stop()
    s, h, j = call(d, "GET", "/v1/sessions")
    check(s == 503 and problem(h, j, 503, "storage-unavailable") and h.get("retry-after"),
          f"server stopped: list 503 storage-unavailable ({s} {j})")
    s, h, j = call(d, "POST", "/v1/sessions/o/rebuild", {})
    check(s == 503 and problem(h, j, 503, "storage-unavailable"), f"server stopped: rebuild 503 ({s} {j})")
    pg.start()
    deadline = time.time() + 15
    while time.time() < deadline and d.json("GET", "/v2/health/ready")[0] != 200:
        time.sleep(0.2)
    s, h, j = call(d, "GET", "/v1/sessions")
    check(s == 200 and [x["id"] for x in j["sessions"]] == ["o"], f"server back: list works ({s})")
    s, h, j = call(d, "POST", "/v1/sessions/o/rebuild", {})
    check(s == 200 and j["steps"] == 20, f"server back: rebuild works ({s})")
    check(d.stop() == 0, "exit 0")


def main():
    if not pglib.available():
        check(False, "PostgreSQL server binaries are missing: run scripts/setup.sh (postgresql-15)")
        finish("test_server_sessions")
    with tempfile.TemporaryDirectory() as tmp, pglib.Postgres() as pg:
        v1 = train_model(tmp + "/v1/imagenav.gtm", seed=1)
        v2 = train_model(tmp + "/v2/imagenav.gtm", seed=7, steps=3)
        models = tmp + "/models"
        os.makedirs(models)
        shutil.copy(v1, models + "/imagenav.gtm")
        shutil.copy(v1, models + "/other.gtm")
        ep = episode(4, 260)
        results = {}
        for st in (Store("sqlite", tmp), Store("postgresql", tmp, pg)):
            test_list(st, models)
            test_expiry(st, models, ep)
            test_own_ttl(st, models)
            results[st.kind] = test_versions(st, tmp, v1, v2, ep)
        check(results["sqlite"] == results["postgresql"],
              "the same sessions, rebuilds and actions give the same bytes on SQLite and PostgreSQL")
        test_edges(tmp, v1, ep)
        test_pg_outage(pg, tmp, models, ep)
    missing = sorted(x for x in SPEC - SEEN if x[2] not in FAULT_ONLY)
    for m in missing:
        print("  not exercised:", m, file=sys.stderr)
    check(SPEC and not missing, f"every (path, method, status) of openapi.yaml for the new routes exercised ({len(SPEC)})")
    extra = sorted(SEEN - SPEC)
    for x in extra:
        print("  not in openapi.yaml:", x, file=sys.stderr)
    check(not extra, "every status the tests saw on the new routes is in openapi.yaml")
    finish("test_server_sessions")


if __name__ == "__main__":
    main()
