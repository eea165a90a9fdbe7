#!/usr/bin/env python3
"""gtmsmd against the conventions of model servers (issue 13: Triton,
TorchServe, KServe / Open Inference Protocol, TF Serving), on a real daemon
with a real SQLite file:
  - HEAD on every GET path of openapi.yaml: GET's status and headers
    (Content-Length included), no body; Allow lists HEAD;
  - GET /openapi.yaml: the file in the source tree, application/yaml, open
    without a key, ETag / 304;
  - Open Inference Protocol metadata: /v2, /v2/models/{name}[/versions/{v}]
    [/ready] with the protocol's fields, 404 problem+json (with "error") for
    an unknown model or version, 400 for a bad name, 401 without a key, 503
    overloaded;
  - /metrics: requests and latencies by route, method and model, model
    labels only from loaded models (never from the request), build info;
  - numbers in JSON in their shortest form (0.1, not 0.10000000000000001) in
    every body, NDJSON line and log line;
  - one daemon per database: a second gtmsmd on the same file exits 1 naming
    the file and the first one's PID; after the first stops (or is killed)
    the file can be served again.
At the end, every (path, method, status) that openapi.yaml lists for these
paths was seen, and nothing else."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import (GTMSMD, SRC, Daemon, RawStream, check, episode, finish, is_problem,  # noqa: E402
                                 ndjson, openapi_statuses, train_model)

PATHS = {"/openapi.yaml", "/v2", "/v2/models/{name}", "/v2/models/{name}/ready",
         "/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready"}
SPEC = {x for x in openapi_statuses() if x[0] in PATHS}
ALL_GETS = sorted({p for p, m, _ in openapi_statuses() if m == "GET"})
SEEN = set()


def template(path):
    path = path.split("?")[0]
    for t in sorted(PATHS, key=lambda p: -p.count("/")):
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path):
            return t
    return path


class Recorder(Daemon):
    def request(self, method, path, body=None, headers=None, conn=None):
        s, h, b = super().request(method, path, body, headers, conn)
        if method == "GET":
            SEEN.add((template(path), method, s))
        return s, h, b

# A %.17g artefact: 15+ significant digits ending in a run of 0s or 9s and
# one noise digit, as jansson's default printing of 0.1 gives.
NOISE = re.compile(rb"\d\.?\d*(0{6,}|9{6,})\d(?![\d])")


def numbers(raw):
    """Every number token outside strings in JSON text (bytes)."""
    out, in_str, i = [], False, 0
    while i < len(raw):
        c = raw[i:i + 1]
        if in_str:
            if c == b"\\":
                i += 1
            elif c == b'"':
                in_str = False
        elif c == b'"':
            in_str = True
        elif c in b"-0123456789":
            m = re.match(rb"-?[0-9][0-9.eE+-]*", raw[i:])
            out.append(m.group(0))
            i += len(m.group(0))
            continue
        i += 1
    return out


def shortest(tok):
    """The token is the shortest form that reads back as its double (or an integer)."""
    if not re.search(rb"[.eE]", tok):
        return True
    v = float(tok)
    s = tok.decode()
    digits = len(re.sub(r"e.*|[-.]", "", s.lower()).strip("0")) or 1  # significant digits
    return all(float("%.*g" % (p, v)) != v for p in range(1, digits))


def test_numbers(d, model_dir):
    s, h, raw = d.request("GET", "/v1/models/imagenav")
    m = json.loads(raw)
    check(s == 200 and not NOISE.search(raw), "model description: no %.17g noise in the numbers")
    toks = numbers(raw)
    check(toks and all(shortest(t) for t in toks), f"model description: every number shortest ({len(toks)})")
    # The training options as the trainer wrote them into the model file's card.
    check(m["training"].get("kl_start") == 1.0 and b'"kl_start":1.0' in raw, "integral reals keep '.0'")
    s, h, j = d.json("POST", "/v1/sessions", {"model": "imagenav"})
    sid = j["id"]
    ep = episode(3, 40)
    s, h, j = d.json("POST", f"/v1/sessions/{sid}/observations", ndjson(ep), {"Content-Type": "application/x-ndjson"})
    check(s == 200, "observations accepted")
    s, h, raw = d.request("POST", f"/v1/sessions/{sid}/predictions", {"actions": ["right", "up", "left"]})
    p = json.loads(raw)
    states = [v for f in p["frames"] for v in f["state"]]
    toks = [t for t in numbers(raw)]
    check(s == 200 and states and all(len(re.sub(r"e.*|[-.]", "", repr(v)).lstrip("0")) <= 9 for v in states),
          f"prediction states: at most 9 digits (float32): {states[:4]}")
    check(not NOISE.search(raw) and all(shortest(t) for t in toks), "prediction JSON: every number shortest")
    s, h, raw = d.request("POST", f"/v1/sessions/{sid}/predictions", {"actions": ["right", "up"]},
                          {"Accept": "application/x-ndjson"})
    check(s == 200 and raw.count(b"\n") == 2 and all(shortest(t) for t in numbers(raw)),
          "prediction NDJSON: every number shortest")
    s, h, raw = d.request("GET", f"/v1/sessions/{sid}/export")
    check(s == 200 and all(shortest(t) for t in numbers(raw)), "export: every number shortest")
    # The export reads back: the float32 state survives the round trip.
    dump = json.loads(raw)
    d.request("DELETE", f"/v1/sessions/{sid}")
    s, h, j = d.json("POST", "/v1/sessions/import", dump)
    s2, h2, raw2 = d.request("GET", f"/v1/sessions/{sid}/export")
    check(s == 201 and json.loads(raw2)["state"] == dump["state"], "import of the export: the same state")
    logs = open(d.log_path, "rb").read()
    check(all(shortest(t) for line in logs.splitlines() if line.startswith(b"{") for t in numbers(line)),
          "log lines: every number shortest")
    return sid


# ---- HEAD -----------------------------------------------------------------

SKIP_HEADERS = {"date", "x-request-id"}


def test_head(d, sid, version):
    subst = {"{name}": "imagenav", "{id}": sid, "{file}": "viewer.js", "{version}": version}
    for t in ALL_GETS:
        path = t
        for k, v in subst.items():
            path = path.replace(k, v)
        s1, h1, b1 = d.request("GET", path)
        s2, h2, b2 = d.request("HEAD", path)
        g = {k: v for k, v in h1.items() if k not in SKIP_HEADERS}
        hd = {k: v for k, v in h2.items() if k not in SKIP_HEADERS}
        if t == "/metrics":  # the body changes between two scrapes: its length too
            g.pop("content-length", None)
            ok = "content-length" in hd
            hd.pop("content-length", None)
        else:
            ok = g.get("content-length") == str(len(b1))
        check(ok and s1 == s2 and g == hd and b2 == b"", f"HEAD {path}: GET's status {s1} and headers, no body"
              + ("" if g == hd else f" (GET {g} HEAD {hd})"))
    # error statuses too, from the same table
    for path, status in [("/v1/models/nope", 404), ("/v1/sessions/bad%20id", 400), ("/nowhere", 404)]:
        s1, h1, b1 = d.request("GET", path)
        s2, h2, b2 = d.request("HEAD", path)
        check(s1 == s2 == status and h2.get("content-length") == str(len(b1)) and b2 == b""
              and h2.get("content-type") == "application/problem+json", f"HEAD {path}: {status} like GET, no body")
    s, h, b = d.request("HEAD", "/v1/demo/episodes")
    check(s == 405 and h.get("allow") == "POST" and b == b"", "HEAD on a POST-only path: 405 Allow POST")
    s, h, b = d.request("DELETE", "/v2/health/live")
    check(s == 405 and h.get("allow") == "GET, HEAD", "Allow lists HEAD after GET")
    s, h, b = d.request("PATCH", f"/v1/sessions/{sid}")
    check(s == 405 and h.get("allow") == "PUT, GET, HEAD, DELETE", f"Allow on a session: {h.get('allow')}")
    # HEAD of a session is a read: it changes nothing
    s, h, j = d.json("GET", f"/v1/sessions/{sid}")
    d.request("HEAD", f"/v1/sessions/{sid}/export")
    s2, h2, j2 = d.json("GET", f"/v1/sessions/{sid}")
    check(j == j2, "HEAD changes nothing")


# ---- the contract ----------------------------------------------------------

def test_openapi(d):
    with open(os.path.join(SRC, "proto", "openapi.yaml"), "rb") as f:
        want = f.read()
    s, h, b = d.request("GET", "/openapi.yaml")
    check(s == 200 and b == want and h.get("content-type") == "application/yaml" and h.get("etag"),
          "GET /openapi.yaml: the file of the source tree, application/yaml, with an ETag")
    s, h, b = d.request("GET", "/openapi.yaml", headers={"If-None-Match": h.get("etag", "")})
    check(s == 304 and b == b"", "GET /openapi.yaml with If-None-Match: 304")
    try:
        import yaml
        check(yaml.safe_load(want)["paths"].get("/openapi.yaml") is not None, "the served contract lists itself")
    except ImportError:
        print("skip: PyYAML not installed")


# ---- Open Inference Protocol metadata -----------------------------------------

def test_oip(d, version):
    s, h, j = d.json("GET", "/v2")
    check(s == 200 and j.get("name") == "gtmsmd" and isinstance(j.get("version"), str) and j["version"]
          and j.get("extensions") == [], f"GET /v2: name, version, extensions: {j}")
    s, h, m = d.json("GET", "/v2/models/imagenav")
    check(s == 200 and m.get("name") == "imagenav" and m.get("versions") == [version]
          and m.get("platform") == "gtmsm_gtm", f"GET /v2/models/imagenav: name, versions, platform: {m}")
    ins = {t["name"]: t for t in m.get("inputs", [])}
    outs = {t["name"]: t for t in m.get("outputs", [])}
    check(ins.get("frames") == {"name": "frames", "datatype": "UINT8", "shape": [-1, 8, 8, 3]}
          and ins.get("actions") == {"name": "actions", "datatype": "BYTES", "shape": [-1]},
          f"inputs: frames UINT8 [-1, H, W, C], actions BYTES [-1]: {m.get('inputs')}")
    check(outs.get("predicted_frames") == {"name": "predicted_frames", "datatype": "UINT8", "shape": [-1, 8, 8, 3]}
          and outs.get("states") == {"name": "states", "datatype": "FP32", "shape": [-1, 2]},
          f"outputs: predicted_frames, states: {m.get('outputs')}")
    s, h, j = d.json("GET", f"/v2/models/imagenav/versions/{version}")
    check(s == 200 and j == m, "the version's metadata is the model's")
    for path in ("/v2/models/imagenav/ready", f"/v2/models/imagenav/versions/{version}/ready"):
        s, h, j = d.json("GET", path)
        check(s == 200 and j == {"name": "imagenav", "ready": True}, f"GET {path}: ready")
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/imagenav/versions/0000",
                 "/v2/models/imagenav/versions/0000/ready", f"/v2/models/nope/versions/{version}"):
        s, h, j = d.json("GET", path)
        check(s == 404 and is_problem(h, j, 404, "model-not-found") and isinstance(j.get("error"), str),
              f"GET {path}: 404 problem+json with an error member")
    for path in ("/v2/models/bad%21name", "/v2/models/" + "x" * 65 + "/ready", "/v2/models/a.b/versions/x",
                 "/v2/models/a.b/versions/x/ready"):
        s, h, j = d.json("GET", path)
        check(s == 400 and is_problem(h, j, 400, "bad-id"), f"GET {path}: 400 bad-id")
    s, h, j = d.json("GET", "/v2/models/imagenav/versions/%00%22" + "v" * 300)
    check(s == 404 and is_problem(h, j, 404, "model-not-found") and len(j["detail"]) <= 500,
          "a long, percent-encoded version: 404, its text cut in the detail")
    check(d.json("GET", "/v2/health/live")[0] == 200, "still live")


def test_oip_auth_and_overload(tmp, model_dir):
    keys = tmp + "/keys"
    with open(keys, "w") as f:
        f.write("k-one\n")
    d = Recorder(model_dir, tmp + "/auth.db", "--api-keys", keys)
    for path in ("/v2", "/v2/models/imagenav", "/v2/models/imagenav/ready",
                 "/v2/models/imagenav/versions/x", "/v2/models/imagenav/versions/x/ready"):
        s, h, j = d.json("GET", path)
        check(s == 401 and is_problem(h, j, 401, "unauthorized"), f"GET {path} without a key: 401")
    s, h, b = d.request("GET", "/openapi.yaml")
    check(s == 200 and b.startswith(b"openapi:"), "/openapi.yaml is open without a key")
    s, h, b = d.request("HEAD", "/v1/models")
    check(s == 401 and b == b"", "HEAD needs the key where GET does")
    s, h, j = d.json("GET", "/v2", headers={"Authorization": "Bearer k-one"})
    check(s == 200, "GET /v2 with the key: 200")
    d.stop()
    d = Recorder(model_dir, tmp + "/busy.db", "--max-inflight", "1")
    d.json("PUT", "/v1/sessions/held", {"model": "imagenav"})
    # The held request counts once the daemon has its head; it is itself refused when it comes
    # before the previous request's completion callback has run (the client may see that reply
    # first). So: hold one, wait up to 2 s for the limit to show, and start again if it was refused.
    for _ in range(5):
        held = RawStream(d.port, "/v1/sessions/held/observations")
        held.send(ndjson(episode(5, 1)))
        deadline = time.time() + 2
        while d.json("GET", "/v2")[0] != 503 and time.time() < deadline:
            time.sleep(0.05)
        if time.time() < deadline:
            break
        held.sock.close()
        time.sleep(0.2)
    for path in ("/v2", "/v2/models/imagenav", "/v2/models/imagenav/ready", "/v2/models/imagenav/versions/x",
                 "/v2/models/imagenav/versions/x/ready"):
        s, h, j = d.json("GET", path)
        check(s == 503 and is_problem(h, j, 503, "overloaded"), f"GET {path} over --max-inflight: 503")
    held.finish()
    d.stop()


# ---- metrics ------------------------------------------------------------------

def test_metrics(d, sid):
    d.request("GET", "/v1/models/imagenav")
    d.request("HEAD", "/v1/models/imagenav")
    d.request("GET", "/v1/models/attacker-chosen-name")
    d.request("PUT", "/v1/sessions/m1", {"model": "attacker-model"})
    s, h, b = d.request("GET", "/metrics")
    t = b.decode()
    check('gtmsm_build_info{version="' in t, "gtmsm_build_info kept")
    want = ['gtmsm_http_requests_total{route="model_get",method="GET",model="imagenav",status="200"}',
            'gtmsm_http_requests_total{route="model_get",method="HEAD",model="imagenav",status="200"}',
            'gtmsm_http_requests_total{route="model_get",method="GET",status="404"}',
            'gtmsm_http_requests_total{route="observations",method="POST",model="imagenav",status="200"}',
            'gtmsm_http_requests_total{route="predictions",method="POST",model="imagenav",status="200"}',
            'gtmsm_http_requests_total{route="unmatched",method="PATCH",status="405"}',
            'gtmsm_http_request_duration_seconds_count{route="predictions",method="POST",model="imagenav"}',
            'gtmsm_http_request_duration_seconds_bucket{route="model_get",method="HEAD",model="imagenav",le="+Inf"}']
    for w in want:
        check(w in t, f"metrics: {w}")
    models = set(re.findall(r'model="([^"]*)"', t))
    check(models == {"imagenav"}, f"model labels only from loaded models: {models}")
    # a method outside the fixed list is "other", never the request's text
    import socket
    c = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    c.sendall(b"BREW /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while c.recv(65536):
        pass
    c.close()
    t = d.request("GET", "/metrics")[2].decode()
    methods = set(re.findall(r'method="([^"]*)"', t))
    check("BREW" not in t and methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "other"},
          f"method labels from a fixed list: {sorted(methods)}")
    check("gtmsm_metrics_series_dropped_total 0" in t, "no series dropped")


# ---- one daemon per database ----------------------------------------------------

def test_one_daemon_per_db(tmp, model_dir):
    db = tmp + "/one.db"
    first = Daemon(model_dir, db)
    first.json("PUT", "/v1/sessions/kept", {"model": "imagenav"})
    p = subprocess.run([GTMSMD, "--models", model_dir, "--db", db, "--listen", "127.0.0.1:0"],
                       capture_output=True, timeout=60)
    err = p.stderr.decode()
    check(p.returncode == 1 and db in err and f"pid {first.proc.pid}" in err and db + ".lock" in err
          and '"listening"' not in err,
          f"a second daemon on the database: exit 1 naming the file and the holder's pid (exit {p.returncode})") \
        or print(err[-1000:], file=sys.stderr)
    s, h, j = first.json("GET", "/v1/sessions/kept")
    check(s == 200, "the first daemon serves on")
    first.proc.send_signal(signal.SIGKILL)  # a crash: the kernel drops the lock
    first.proc.wait()
    first.logf.close()
    second = Daemon(model_dir, db)
    s, h, j = second.json("GET", "/v1/sessions/kept")
    check(s == 200, "after the first one died: a new daemon takes the database")
    check(second.stop() == 0, "stops cleanly")
    third = Daemon(model_dir, db)
    check(third.stop() == 0, "after a clean stop: the database can be taken again")
    other = Daemon(model_dir, tmp + "/other.db")
    check(other.json("GET", "/v2/health/ready")[0] == 200, "another database beside it: no conflict")
    other.stop()
    # a database in a folder not made yet, like the default data/gtmsm.db (the log is beside it)
    with open(tmp + "/fresh.log", "wb") as log:
        p = subprocess.Popen([GTMSMD, "--models", model_dir, "--db", tmp + "/new-folder/gtmsm.db", "--listen",
                              "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=log)
        ready = False
        for _ in range(200):
            if b'"event":"ready"' in open(tmp + "/fresh.log", "rb").read() or p.poll() is not None:
                ready = p.poll() is None
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        code = p.wait(30)
    check(ready and code == 0 and os.path.exists(tmp + "/new-folder/gtmsm.db.lock"),
          "a database in a folder not made yet: the folder is made, the lock taken, the daemon ready")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tmp + "/models"
        train_model(model_dir + "/imagenav.gtm")
        d = Recorder(model_dir, tmp + "/conv.db")
        sid = test_numbers(d, model_dir)
        version = d.json("GET", "/v1/models/imagenav")[2]["version"]
        test_head(d, sid, version)
        test_openapi(d)
        test_oip(d, version)
        d.request("PATCH", f"/v1/sessions/{sid}")
        test_metrics(d, sid)
        check(d.stop() == 0, "SIGTERM: exit 0")
        test_oip_auth_and_overload(tmp, model_dir)
        test_one_daemon_per_db(tmp, model_dir)
        missing = sorted(SPEC - SEEN)
        for m in missing:
            print("  not exercised:", m, file=sys.stderr)
        check(not missing, f"every (path, method, status) of openapi.yaml for these paths exercised ({len(SPEC)})")
        extra = sorted(x for x in SEEN - SPEC if x[0] in PATHS and x[2] != 405)
        for x in extra:
            print("  not in openapi.yaml:", x, file=sys.stderr)
        check(not extra, "every status seen on these paths is in openapi.yaml")
    finish("test_server_conventions")


if __name__ == "__main__":
    main()
