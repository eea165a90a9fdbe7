#!/usr/bin/env python3
"""gtmsmd's HTTP API against proto/openapi.yaml, on a real daemon with a real
SQLite file: the whole flow with `gtmsm gen` episodes (NDJSON streamed in
chunks, JSON, single PNGs; predictions as JSON, PNG film strip and NDJSON;
export and import), a bad-input table that must get the right 4xx as
problem+json while the daemon keeps serving, the limits (body size checked
while streaming, frames per request, memory entries, actions), API keys,
overload, and at the end a check that every (path, method, status) listed in
openapi.yaml was seen (but 500 and 507, which tests/fault provokes)."""
import json
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import (SRC, Daemon, openapi_doc, openapi_statuses, RawStream, b64, check, episode, finish,  # noqa: E402
                                 is_problem, ndjson, png_bytes, png_size, train_model)

# ---- coverage of openapi.yaml ---------------------------------------------



def counts(j):
    """An observations reply without its states."""
    return {k: v for k, v in j.items() if k != "states"}

def validate_spec():
    """The spec parses as OpenAPI 3.1 and passes openapi-spec-validator when installed."""
    doc = openapi_doc()
    if not doc:
        print("skip: PyYAML not installed, spec not validated")
        return
    check(doc.get("openapi", "").startswith("3.1"), "openapi.yaml parses as OpenAPI 3.1")
    try:
        from openapi_spec_validator import validate
        validate(doc)
        check(True, "openapi.yaml passes openapi-spec-validator")
    except ImportError:
        print("skip: openapi-spec-validator not installed")
    except Exception as e:  # noqa: BLE001
        check(False, f"openapi.yaml is not valid OpenAPI: {str(e)[:500]}")


validate_spec()

# The web viewer's paths are exercised, and checked against openapi.yaml the
# same way, by test_demo.py (and test_demo_maze3d.py).
VIEWER_PATHS = {"/", "/web/{file}", "/v1/demo/worlds", "/v1/demo/episodes", "/v1/demo/episodes/step"}
# The model servers' conventions (the contract served, Open Inference Protocol
# metadata) are exercised and checked the same way by test_server_conventions.py; listing and
# rebuilding sessions (and model versions side by side) on both stores by test_server_sessions.py.
CONVENTION_PATHS = {"/openapi.yaml", "/v2", "/v2/models/{name}", "/v2/models/{name}/ready",
                    "/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready"}
SESSIONS_OPS = {("/v1/sessions", "GET"), ("/v1/sessions/{id}/rebuild", "POST")}
SPEC = {x for x in openapi_statuses()
        if x[0] not in VIEWER_PATHS | CONVENTION_PATHS and (x[0], x[1]) not in SESSIONS_OPS}
# Statuses that need a fault to happen (a full disk, a damaged database) are
# exercised by the fault label (tests/fault/test_storage.py), which
# checks them against openapi.yaml the same way.
FAULT_ONLY = {500, 507}
SEEN = set()
TEMPLATES = sorted({p for p, _, _ in SPEC}, key=lambda p: p.count("{"))  # literal paths first


def template(method, path):
    path = path.split("?")[0]
    for t in TEMPLATES:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path) and (t, method) in {(p, m) for p, m, _ in SPEC}:
            return t
    return path


class Recorder(Daemon):
    def request(self, method, path, body=None, headers=None, conn=None):
        s, h, b = super().request(method, path, body, headers, conn)
        SEEN.add((template(method, path), method, s))
        return s, h, b


def raw(d, method, path, headers, body=b""):
    """A request with hand-written headers (e.g. a Content-Length we never send)."""
    rs = RawStream.__new__(RawStream)
    import socket
    rs.sock = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    hdr = f"{method} {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    rs.sock.sendall(hdr.encode() + b"\r\n" + body)
    s, h, j = rs.read()
    SEEN.add((template(method, path), method, s))
    return s, h, j


def stream(d, path, chunks, ctype="application/x-ndjson", headers=None):
    rs = RawStream(d.port, path, ctype, headers)
    for c in chunks:
        try:
            rs.send(c)
        except OSError:
            break
    s, h, j = rs.finish()
    SEEN.add((template("POST", path), "POST", s))
    return s, h, j


def chunks_of(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


# ---- the flow ---------------------------------------------------------------

def test_flow(d):
    s, h, j = d.json("GET", "/v2/health/live")
    check(s == 200 and j["status"] == "live", "live")
    s, h, j = d.json("GET", "/v2/health/ready")
    check(s == 200 and j == {"status": "ready", "models": 2}, "ready with two models")
    s, h, j = d.json("GET", "/v1/models")
    names = [m["name"] for m in j["models"]]
    check(s == 200 and names == ["imagenav", "other"], "models listed by name")
    s, h, m = d.json("GET", "/v1/models/imagenav")
    check(s == 200 and m["frame_width"] == 8 and m["frame_height"] == 8 and m["frame_channels"] == 3
          and m["actions"] == ["right", "left", "up", "down", "stay"] and m["state_size"] == 2
          and m["memory_k"] >= 1 and len(m["version"]) == 16 and m["environment"] == "imagenav"
          and isinstance(m["training"], dict), "model description (shape, actions, sizes, training)")
    check(m["parts"] == {"vae": "fc", "transition": "gated2d", "keymap": "identity", "prior": "mixture"}
          and m["scenario"] is None, f"model parts: {m.get('parts')}")
    version = m["version"]

    s, h, j = d.json("POST", "/v1/sessions", {"model": "imagenav"})
    check(s == 201 and h.get("location") == "/v1/sessions/" + j["id"] and j["steps"] == 0
          and j["model_version"] == version and j["memory_entries"] == 0, "POST /v1/sessions: 201 + Location")
    s, h, j = d.json("PUT", "/v1/sessions/walker-1", {"model": "imagenav"})
    check(s == 201 and h.get("location") == "/v1/sessions/walker-1", "PUT creates with the client id")
    s, h, j2 = d.json("PUT", "/v1/sessions/walker-1", {"model": "imagenav"})
    check(s == 200 and j2["id"] == "walker-1" and j2["created_at"] == j["created_at"], "PUT again: 200, same session")
    s, h, j = d.json("PUT", "/v1/sessions/walker-1", {"model": "other"})
    check(s == 409 and is_problem(h, j, 409, "model-mismatch"), "PUT with another model: 409")

    ep = episode(11, 300)
    body = ndjson(ep[:200])
    s, h, j = stream(d, "/v1/sessions/walker-1/observations?states=true", chunks_of(body, 997))
    check(s == 200 and counts(j) == {"accepted": 200, "duplicates": 0, "steps": 200} and len(j["states"]) == 200
          and j["states"][0] == [0, 0], "NDJSON streamed in 997-byte chunks: 200 accepted, with ?states=true their 200 "
          "states (the first at the origin)")
    s, h, j = d.json("POST", "/v1/sessions/walker-1/observations", ndjson(ep[150:250]),
                     {"Content-Type": "application/x-ndjson"})
    check(s == 200 and j == {"accepted": 50, "duplicates": 50, "steps": 250},
          "overlapping retry: 50 duplicates, 50 new (no states unless asked)")
    s, h, j = d.json("POST", "/v1/sessions/walker-1/observations", {"observations": ep[250:290]})
    check(s == 200 and j == {"accepted": 40, "duplicates": 0, "steps": 290}, "JSON observations")
    o = ep[290]
    s, h, j = d.json("POST", f"/v1/sessions/walker-1/observations?t=290&action={o['action']}",
                     base64_decode(o["frame"]), {"Content-Type": "image/png"})
    check(s == 200 and j["steps"] == 291, "image/png observation with ?t=&action=")
    s, h, j = d.json("POST", "/v1/sessions/walker-1/observations?t=291&action=1",
                     base64_decode(ep[291]["frame"]), {"Content-Type": "image/png"})
    check(s == 200 and j["steps"] == 292, "image/png observation with an action index")
    s, h, j = d.json("POST", "/v1/sessions/walker-1/observations?states=maybe", ndjson(ep[292:]),
                     {"Content-Type": "application/x-ndjson"})
    check(s == 400 and j["type"].endswith("invalid-request") and "states=maybe" in j["detail"],
          f"?states=maybe: 400 ({j.get('detail')})")
    rest = [dict(x, action=["right", "left", "up", "down", "stay"].index(x["action"])) for x in ep[292:]]
    s, h, j = d.json("POST", "/v1/sessions/walker-1/observations", ndjson(rest),
                     {"Content-Type": "application/x-ndjson"})
    check(s == 200 and j["steps"] == 300, "actions by index in NDJSON")
    s, h, j = d.json("GET", "/v1/sessions/walker-1")
    check(s == 200 and j["steps"] == 300 and j["memory_entries"] == 300 and j["model"] == "imagenav",
          "GET session: 300 steps, 300 memory entries")

    req = {"actions": ["left", "up", "right", "down", "stay", "left", "left", "up"], "mode": "mean", "seed": 0}
    s, h, pj = d.json("POST", "/v1/sessions/walker-1/predictions", req)
    check(s == 200 and len(pj["frames"]) == 8 and pj["steps"] == 300 and h.get("x-frame-count") == "8",
          "predictions as JSON (the default)")
    f0 = pj["frames"][0]
    check(f0["index"] == 0 and f0["action"] == "left" and len(f0["state"]) == 2
          and png_size(base64_decode(f0["png"])) == (8, 8), "a predicted frame: index, action, 8x8 PNG, state")
    s, h, strip = d.request("POST", "/v1/sessions/walker-1/predictions", req, {"Accept": "image/png"})
    check(s == 200 and h.get("content-type") == "image/png" and png_size(strip) == (64, 8)
          and h.get("x-frame-count") == "8" and h.get("x-frame-width") == "8",
          "predictions as a PNG film strip (64x8, X-Frame-Count 8)")
    s, h, nd = d.request("POST", "/v1/sessions/walker-1/predictions", req,
                         {"Accept": "application/x-ndjson"})
    lines = [json.loads(l) for l in nd.decode().splitlines()]
    check(s == 200 and h.get("transfer-encoding") == "chunked" and len(lines) == 8
          and [l["png"] for l in lines] == [f["png"] for f in pj["frames"]],
          "predictions as streamed NDJSON, the same frames")
    s, h, again = d.request("POST", "/v1/sessions/walker-1/predictions", req, {"Accept": "image/png"})
    check(again == strip, "the same request gives byte-identical PNGs")
    smp = dict(req, mode="sample", seed=42)
    a = d.json("POST", "/v1/sessions/walker-1/predictions", smp)[2]
    b = d.json("POST", "/v1/sessions/walker-1/predictions", smp)[2]
    c = d.json("POST", "/v1/sessions/walker-1/predictions", dict(smp, seed=43))[2]
    check(a == b and a != c, "sample mode: same seed same frames, another seed other frames")
    s, h, j = d.json("GET", "/v1/sessions/walker-1")
    check(j["steps"] == 300, "predictions do not change the session")
    many = {"actions": [i % 5 for i in range(1024)]}
    s, h, strip = d.request("POST", "/v1/sessions/walker-1/predictions", many, {"Accept": "image/png"})
    check(s == 200 and png_size(strip) == (8192, 8), "1024 actions (the default limit) in one strip")

    # export / import
    s, h, dump = d.json("GET", "/v1/sessions/walker-1/export")
    check(s == 200 and dump["format"] == "gtmsm-session" and dump["steps"] == 300
          and len(dump["observations"]) == 300 and dump["model_version"] == version
          and len(dump["state"]) == 2 and dump["memory"], "export: a portable dump")
    check([o["t"] for o in dump["observations"]] == list(range(300))
          and dump["observations"][5]["action"] == ep[5]["action"], "export: frames in order with actions")
    s, h, j = d.json("POST", "/v1/sessions/import?id=walker-copy", dump)
    check(s == 201 and h.get("location") == "/v1/sessions/walker-copy" and j["steps"] == 300,
          "import under another id: 201")
    s, h, copy = d.request("POST", "/v1/sessions/walker-copy/predictions", req, {"Accept": "image/png"})
    s2, h2, orig = d.request("POST", "/v1/sessions/walker-1/predictions", req, {"Accept": "image/png"})
    check(s == 200 and copy == orig, "the imported session predicts byte-identical frames")
    s, h, j = d.json("POST", "/v1/sessions/import", dump)
    check(s == 409 and is_problem(h, j, 409, "session-exists"), "import over an existing id: 409")
    s, h, j = d.json("POST", "/v1/sessions/import", dict(dump, id="ghost", model="nope"))
    check(s == 404 and is_problem(h, j, 404, "model-not-found"), "import for an unknown model: 404")
    s, h, j = d.json("POST", "/v1/sessions/import", dict(dump, id="ghost", memory="@@@@"))
    check(s == 400 and is_problem(h, j, 400, "bad-base64"), "import with bad base64 memory: 400")
    s, h, j = d.json("POST", "/v1/sessions/import", dict(dump, id="ghost", memory="AAAA"))
    check(s == 422 and is_problem(h, j, 422, "bad-dump"), "import with a memory that does not parse: 422")
    s, h, j = d.json("POST", "/v1/sessions/import", dict(dump, id="ghost", steps=299))
    check(s == 422 and is_problem(h, j, 422, "bad-dump"), "import with inconsistent steps: 422")
    s, h, j = d.json("POST", "/v1/sessions/import", {"format": "zip"})
    check(s == 400 and is_problem(h, j, 400, "invalid-request"), "import of something else: 400")
    s, h, j = d.json("POST", "/v1/sessions/import", dict(dump, id="bad id"))
    check(s == 400 and is_problem(h, j, 400, "bad-id"), "import with a bad id: 400")
    s, h, j = d.json("POST", "/v1/sessions/import", json.dumps(dump).encode(), {"Content-Type": "text/plain"})
    check(s == 415 and is_problem(h, j, 415), "import as text/plain: 415")
    s, h, j = d.json("GET", "/v1/sessions/ghost")
    check(s == 404, "failed imports leave nothing behind")

    s, h, b = d.request("DELETE", "/v1/sessions/walker-copy")
    check(s == 204 and b == b"", "DELETE: 204")
    s, h, j = d.json("GET", "/v1/sessions/walker-copy")
    check(s == 404 and is_problem(h, j, 404, "session-not-found"), "GET after DELETE: 404")
    s, h, j = d.json("DELETE", "/v1/sessions/walker-copy")
    check(s == 404 and is_problem(h, j, 404, "session-not-found"), "DELETE again: 404")
    s, h, text = d.request("GET", "/metrics")
    t = text.decode()
    check(s == 200 and h.get("content-type", "").startswith("text/plain")
          and 'gtmsm_http_requests_total{route="observations",method="POST",model="imagenav",status="200"}' in t
          and "gtmsm_http_request_duration_seconds_bucket" in t and "gtmsm_observations_total 300" in t
          and "gtmsm_sqlite_commit_duration_seconds_count" in t and "gtmsm_sessions_stored" in t
          and "gtmsm_frames_predicted_total" in t and "gtmsm_sessions_hot" in t, "Prometheus metrics")
    info = re.search(r'^gtmsm_build_info\{version="([^"]+)",blas_core="([A-Za-z0-9_]+)"\} 1$', t, re.M)
    check(info is not None, "gtmsm_build_info with version and blas_core")
    return req, strip


def base64_decode(s):
    import base64
    return base64.b64decode(s)


# ---- the bad-input table -----------------------------------------------------

def test_bad_inputs(d):
    ep = episode(21, 8)
    s, h, j = d.json("PUT", "/v1/sessions/bad", {"model": "imagenav"})
    s, h, j = d.json("POST", "/v1/sessions/bad/observations", ndjson(ep[:5]), {"Content-Type": "application/x-ndjson"})
    check(s == 200 and j["steps"] == 5, "bad-input table: a session with 5 steps")
    good = png_bytes(8, 8, 3)
    nd = {"Content-Type": "application/x-ndjson"}
    js = {"Content-Type": "application/json"}
    png = {"Content-Type": "image/png"}
    obs = "/v1/sessions/bad/observations"
    pred = "/v1/sessions/bad/predictions"

    def line(**kw):
        o = {"t": 5, "action": "left", "frame": b64(good)}
        o.update(kw)
        return (json.dumps(o) + "\n").encode()

    table = [
        ("truncated PNG", "POST", obs, nd, line(frame=b64(good[:40])), 400, "bad-png"),
        ("PNG cut before IHDR", "POST", obs, nd, line(frame=b64(good[:12])), 400, "bad-png"),
        ("not a PNG", "POST", obs, nd, line(frame=b64(b"GIF89a hello")), 400, "bad-png"),
        ("wrong frame size", "POST", obs, nd, line(frame=b64(png_bytes(16, 16, 3))), 422, "frame-shape"),
        ("wrong channels (gray)", "POST", obs, nd, line(frame=b64(png_bytes(8, 8, 1))), 422, "frame-shape"),
        ("wrong channels (RGBA)", "POST", obs, nd, line(frame=b64(png_bytes(8, 8, 4))), 422, "frame-shape"),
        ("bad base64", "POST", obs, nd, line(frame="@@@@"), 400, "bad-base64"),
        ("base64 with a newline escape", "POST", obs, nd, line(frame=b64(good)[:8] + "\n" + b64(good)[8:]), 400, "bad-base64"),
        ("unknown action", "POST", obs, nd, line(action="jump"), 422, "unknown-action"),
        ("action index out of range", "POST", obs, nd, line(action=9), 422, "unknown-action"),
        ("gap", "POST", obs, nd, line(t=7), 409, "gap"),
        ("other content at a stored t", "POST", obs, nd, line(t=2), 409, "content-mismatch"),
        ("t as a string", "POST", obs, nd, line(t="5"), 400, "invalid-request"),
        ("negative t", "POST", obs, nd, line(t=-1), 400, "invalid-request"),
        ("fractional t", "POST", obs, nd, line(t=5.5), 400, "invalid-request"),
        ("frame as a number", "POST", obs, nd, line(frame=5), 400, "invalid-request"),
        ("action as a list", "POST", obs, nd, line(action=["left"]), 400, "invalid-request"),
        ("missing frame", "POST", obs, nd, b'{"t": 5, "action": "left"}\n', 400, "invalid-request"),
        ("a line that is an array", "POST", obs, nd, b"[1, 2]\n", 400, "invalid-request"),
        ("a line that is not JSON", "POST", obs, nd, b"{\"t\": 5,\n", 400, "malformed-ndjson"),
        ("duplicate keys", "POST", obs, nd, b'{"t": 5, "t": 6, "action": 0, "frame": ""}\n', 400, "malformed-ndjson"),
        ("binary garbage", "POST", obs, nd, bytes(range(256)) + b"\n", 400, "malformed-ndjson"),
        ("JSON body not JSON", "POST", obs, js, b"{nope", 400, "malformed-json"),
        ("JSON body without observations", "POST", obs, js, b'{"observations": 5}', 400, "invalid-request"),
        ("text/plain", "POST", obs, {"Content-Type": "text/plain"}, line(), 415, "unsupported-media-type"),
        ("no Content-Type", "POST", obs, {}, line(), 415, "unsupported-media-type"),
        ("PNG body without t", "POST", obs + "?action=left", png, good, 400, "invalid-request"),
        ("PNG body with t=abc", "POST", obs + "?t=abc&action=left", png, good, 400, "invalid-request"),
        ("PNG body, unknown action", "POST", obs + "?t=5&action=fly", png, good, 422, "unknown-action"),
        ("PNG body truncated", "POST", obs + "?t=5&action=left", png, good[:-20], 400, "bad-png"),
        ("PNG body of the wrong size", "POST", obs + "?t=5&action=left", png, png_bytes(9, 8, 3), 422, "frame-shape"),
        ("bad session id", "POST", "/v1/sessions/bad!id/observations", nd, line(), 400, "bad-id"),
        ("session id too long", "GET", "/v1/sessions/" + "a" * 65, {}, None, 400, "bad-id"),
        ("session id with a space", "GET", "/v1/sessions/a%20b", {}, None, 400, "bad-id"),
        ("bad id on delete", "DELETE", "/v1/sessions/bad.id", {}, None, 400, "bad-id"),
        ("bad id on export", "GET", "/v1/sessions/b@d/export", {}, None, 400, "bad-id"),
        ("bad model name", "GET", "/v1/models/no$such", {}, None, 400, "bad-id"),
        ("unknown model", "GET", "/v1/models/nosuch", {}, None, 404, "model-not-found"),
        ("unknown session", "POST", "/v1/sessions/nosuch/observations", nd, line(), 404, "session-not-found"),
        ("unknown session (predict)", "POST", "/v1/sessions/nosuch/predictions", js, b'{"actions": [0]}', 404, "session-not-found"),
        ("unknown session (export)", "GET", "/v1/sessions/nosuch/export", {}, None, 404, "session-not-found"),
        ("predict: actions not a list", "POST", pred, js, b'{"actions": "left"}', 400, "invalid-request"),
        ("predict: no actions", "POST", pred, js, b'{"actions": []}', 422, "too-many-actions"),
        ("predict: too many actions", "POST", pred, js, json.dumps({"actions": [0] * 1025}).encode(), 422, "too-many-actions"),
        ("predict: unknown action", "POST", pred, js, b'{"actions": ["left", "jump"]}', 422, "unknown-action"),
        ("predict: bad mode", "POST", pred, js, b'{"actions": [0], "mode": "best"}', 400, "invalid-request"),
        ("predict: negative seed", "POST", pred, js, b'{"actions": [0], "seed": -1}', 400, "invalid-request"),
        ("predict: seed as a string", "POST", pred, js, b'{"actions": [0], "seed": "1"}', 400, "invalid-request"),
        ("predict: not JSON", "POST", pred, js, b"actions=left", 400, "malformed-json"),
        ("predict: text/plain", "POST", pred, {"Content-Type": "text/plain"}, b'{"actions": [0]}', 415, "unsupported-media-type"),
        ("predict: Accept refuses every format", "POST", pred, {**js, "Accept": "image/png;q=0, */*;q=0"}, b'{"actions": [0]}', 406, "not-acceptable"),
        ("predict: Accept of another type only", "POST", pred, {**js, "Accept": "text/html"}, b'{"actions": [0]}', 406, "not-acceptable"),
        ("create: model not a string", "POST", "/v1/sessions", js, b'{"model": 5}', 400, "invalid-request"),
        ("create: empty object", "POST", "/v1/sessions", js, b"{}", 400, "invalid-request"),
        ("create: not JSON", "POST", "/v1/sessions", js, b"model=imagenav", 400, "malformed-json"),
        ("create: unknown model", "POST", "/v1/sessions", js, b'{"model": "nope"}', 404, "model-not-found"),
        ("create: form-encoded", "POST", "/v1/sessions", {"Content-Type": "application/x-www-form-urlencoded"}, b"model=imagenav", 415, "unsupported-media-type"),
        ("put: id with an escaped slash", "PUT", "/v1/sessions/no%2Fslash", js, b'{"model": "imagenav"}', 400, "bad-id"),
        ("put: percent-encoded id", "PUT", "/v1/sessions/walker%2D1", js, b'{"model": "imagenav"}', 400, "bad-id"),
        ("put: id with a dot", "PUT", "/v1/sessions/a.b", js, b'{"model": "imagenav"}', 400, "bad-id"),
        ("put: unknown model", "PUT", "/v1/sessions/newone", js, b'{"model": "nope"}', 404, "model-not-found"),
        ("put: bad JSON", "PUT", "/v1/sessions/newone", js, b"[", 400, "malformed-json"),
        ("put: text/plain", "PUT", "/v1/sessions/newone", {"Content-Type": "text/plain"}, b'{"model": "imagenav"}', 415, "unsupported-media-type"),
        ("unknown path", "GET", "/v1/nothing", {}, None, 404, "not-found"),
        ("method not allowed", "DELETE", "/v1/models", {}, None, 405, "method-not-allowed"),
    ]
    for name, method, path, headers, body, status, slug in table:
        s, h, j = d.json(method, path, body, headers)
        ok = s == status and is_problem(h, j, status, slug) and j.get("request_id") == h.get("x-request-id")
        check(ok, f"bad input: {name} -> {status} {slug}" + ("" if ok else f" (got {s} {j})"))
        s2, _, _ = d.json("GET", "/v2/health/live")
        if s2 != 200:
            check(False, f"the daemon still serves after: {name}")
            return
    check(True, "the daemon kept serving through the whole table")
    s, h, j = d.json("GET", "/v1/sessions/bad")
    check(j["steps"] == 5, "no bad request changed the session (5 steps)")
    s, h, j = d.json("DELETE", "/v1/models")
    check(s == 405 and h.get("allow") == "GET, HEAD", "405 names the allowed methods")
    s, h, j = d.json("POST", obs, ndjson(ep[5:7]) + b"{broken\n" + ndjson(ep[7:8]), nd)
    check(s == 400 and j.get("accepted") == 2 and j.get("steps") == 7 and "line 3" in j["detail"],
          "a bad line after good ones: 400 naming line 3, the 2 before it committed")
    s, h, j = d.json("POST", obs, line(t=9), nd)
    check(s == 409 and j.get("expected_t") == 7 and "next t is 7" in j["detail"],
          "a gap says the expected next t")
    s, h, j = raw(d, "POST", obs, {"Content-Type": "application/x-ndjson", "Content-Length": "1000000000000"})
    check(s == 413 and is_problem(h, j, 413, "body-too-large") and j.get("limit") == 64 * 1024 * 1024,
          "a Content-Length over the limit: 413 before reading the body")
    for path in ["/v1/sessions", "/v1/sessions/import", "/v1/sessions/bad/predictions"]:
        s, h, j = raw(d, "POST", path, {"Content-Type": "application/json", "Content-Length": "99999999999"})
        check(s == 413 and is_problem(h, j, 413, "body-too-large"), f"413 on {path}")
    s, h, j = d.json("GET", "/v2/health/live")
    check(s == 200, "still serving after the 413s")


# ---- limits, auth, overload -------------------------------------------------

def test_limits(tmp, model_dir):
    d = Recorder(model_dir, tmp + "/limits.db", "--max-body", "65536", "--max-frames", "10",
                 "--max-entries", "25", "--max-actions", "16")
    ep = episode(31, 40)
    d.json("PUT", "/v1/sessions/lim", {"model": "imagenav"})
    padded = [dict(o, pad="x" * 10000) for o in ep[:9]]
    s, h, j = stream(d, "/v1/sessions/lim/observations", chunks_of(ndjson(padded), 4096))
    committed = d.json("GET", "/v1/sessions/lim")[2]["steps"]
    check(s == 413 and is_problem(h, j, 413, "body-too-large") and j.get("limit") == 65536
          and 0 < j.get("accepted", 0) <= 6 and j["steps"] == committed,
          f"a stream over --max-body: 413 while streaming, {committed} lines before it committed")
    s, h, j = d.json("GET", "/v2/health/live")
    check(s == 200, "serving after the streamed 413")
    s, h, j = d.json("POST", "/v1/sessions/lim/observations", ndjson(ep[committed:committed + 12]),
                     {"Content-Type": "application/x-ndjson"})
    check(s == 422 and is_problem(h, j, 422, "too-many-frames") and j["accepted"] == 10 and j["limit"] == 10,
          "more than --max-frames in one request: 422 after committing 10")
    steps = j["steps"]
    while steps < 25:
        s, h, j = d.json("POST", "/v1/sessions/lim/observations", {"observations": ep[steps:steps + 5]})
        steps = j["steps"]
    s, h, j = d.json("POST", "/v1/sessions/lim/observations", {"observations": ep[25:27]})
    check(s == 422 and is_problem(h, j, 422, "memory-full") and j["steps"] == 25 and j["limit"] == 25,
          "past --max-entries: 422 memory-full")
    s, h, j = d.json("POST", "/v1/sessions/lim/predictions", {"actions": [0] * 17})
    check(s == 422 and j.get("limit") == 16, "--max-actions 16: 17 actions are 422")
    check(d.stop() == 0, "limits daemon stops cleanly")


def test_auth(tmp, model_dir):
    keys = tmp + "/keys"
    with open(keys, "w") as f:
        f.write("# service keys\nsecret-one\n\n  secret-two  \n")
    d = Recorder(model_dir, tmp + "/auth.db", "--api-keys", keys)
    good = {"Authorization": "Bearer secret-two"}
    for method, path, body in [("GET", "/metrics", None), ("GET", "/v1/models", None),
                               ("GET", "/v1/models/imagenav", None),
                               ("POST", "/v1/sessions", {"model": "imagenav"}),
                               ("PUT", "/v1/sessions/k", {"model": "imagenav"}),
                               ("GET", "/v1/sessions/k", None), ("DELETE", "/v1/sessions/k", None),
                               ("POST", "/v1/sessions/k/observations", {"observations": []}),
                               ("POST", "/v1/sessions/k/predictions", {"actions": [0]}),
                               ("GET", "/v1/sessions/k/export", None),
                               ("POST", "/v1/sessions/import", {})]:
        s, h, j = d.json(method, path, body)
        check(s == 401 and is_problem(h, j, 401, "unauthorized") and h.get("www-authenticate", "").startswith("Bearer"),
              f"no key: 401 on {method} {path}")
    s, h, j = d.json("GET", "/v1/models", headers={"Authorization": "Bearer secret-three"})
    check(s == 401, "an unknown key: 401")
    s, h, j = d.json("GET", "/v1/models", headers={"Authorization": "Bearer secret-on"})
    check(s == 401, "a prefix of a key: 401")
    s, h, j = d.json("GET", "/v1/models", headers={"Authorization": "Basic secret-one"})
    check(s == 401, "another scheme: 401")
    s, h, j = d.json("GET", "/v1/models", headers=good)
    check(s == 200, "a valid key: 200")
    s, h, j = d.json("GET", "/v1/models", headers={"Authorization": "Bearer secret-one"})
    check(s == 200, "the other key: 200")
    for p in ["/v2/health/live", "/v2/health/ready"]:
        check(d.json("GET", p)[0] == 200, f"{p} stays open without a key")
    check(d.stop() == 0, "auth daemon stops cleanly")


def test_overload(tmp, model_dir):
    import time
    ep = episode(41, 4)
    d = Recorder(model_dir, tmp + "/busy.db")  # set-up without limits
    d.json("PUT", "/v1/sessions/one", {"model": "imagenav"})
    d.json("PUT", "/v1/sessions/two", {"model": "imagenav"})
    d.json("POST", "/v1/sessions/two/observations", {"observations": ep[:2]})
    d.stop()
    # one request in flight is the limit: a stream held open takes it
    d = Recorder(model_dir, tmp + "/busy.db", "--max-inflight", "1")
    time.sleep(0.1)
    held = RawStream(d.port, "/v1/sessions/one/observations")
    held.send(ndjson(ep[:1]))
    time.sleep(0.2)
    for method, path, body in [("GET", "/metrics", None), ("GET", "/v1/models", None),
                               ("GET", "/v1/models/imagenav", None),
                               ("POST", "/v1/sessions", {"model": "imagenav"}),
                               ("PUT", "/v1/sessions/two", {"model": "imagenav"}),
                               ("GET", "/v1/sessions/two", None), ("DELETE", "/v1/sessions/two", None),
                               ("POST", "/v1/sessions/two/observations", {"observations": ep[2:3]}),
                               ("POST", "/v1/sessions/two/predictions", {"actions": [0]}),
                               ("GET", "/v1/sessions/two/export", None),
                               ("POST", "/v1/sessions/import", {})]:
        s, h, j = d.json(method, path, body)
        check(s == 503 and is_problem(h, j, 503, "overloaded") and h.get("retry-after") == "1",
              f"over --max-inflight: 503 + Retry-After on {method} {path}")
    check(d.json("GET", "/v2/health/live")[0] == 200, "health stays answered under overload")
    s, h, j = held.finish()
    check(s == 200 and j["steps"] == 1, "the held stream completes")
    d.stop()
    # every cache slot held: the other session cannot come in
    d = Recorder(model_dir, tmp + "/busy.db", "--max-sessions", "1")
    held = RawStream(d.port, "/v1/sessions/one/observations")
    held.send(ndjson(ep[1:2]))
    time.sleep(0.2)
    for method, path, body in [("POST", "/v1/sessions/two/observations", {"observations": ep[2:3]}),
                               ("POST", "/v1/sessions/two/predictions", {"actions": [0]})]:
        s, h, j = d.json(method, path, body)
        check(s == 503 and is_problem(h, j, 503, "overloaded") and "max-sessions" in j["detail"],
              f"every session slot held: 503 on {method} {path}")
    s, h, j = held.finish()
    check(s == 200 and j["steps"] == 2, "the stream holding the slot completes")
    for _ in range(50):  # the slot is freed when the held request completes, just after its reply
        s, h, j = d.json("POST", "/v1/sessions/two/predictions", {"actions": [0]})
        if s == 200:
            break
        time.sleep(0.02)
    check(s == 200, "once released, the other session loads (evicting the idle one)")
    check(d.stop() == 0, "stops cleanly")


def test_model_version(tmp, db):
    """The same DB served with a different imagenav.gtm: old sessions are 409."""
    other = tmp + "/models-v2"
    train_model(other + "/imagenav.gtm", seed=7, steps=3)
    d = Recorder(other, db)
    s, h, j = d.json("GET", "/v1/sessions/walker-1")
    check(s == 200 and j["steps"] == 300, "a session of another model version still reads")
    for method, path, body in [("POST", "/v1/sessions/walker-1/predictions", {"actions": [0]}),
                               ("POST", "/v1/sessions/walker-1/observations", {"observations": []}),
                               ("GET", "/v1/sessions/walker-1/export", None)]:
        s, h, j = d.json(method, path, body)
        check(s == 409 and is_problem(h, j, 409, "model-version") and h.get("x-model-version"),
              f"model version changed: 409 on {method} {path}")
    s, h, j = d.json("PUT", "/v1/sessions/walker-1", {"model": "imagenav"})
    check(s == 409 and is_problem(h, j, 409, "model-mismatch"), "PUT with the new version: 409")
    check(d.stop() == 0, "stops cleanly")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tmp + "/models"
        train_model(model_dir + "/imagenav.gtm")
        shutil.copy(model_dir + "/imagenav.gtm", model_dir + "/other.gtm")
        with open(model_dir + "/bad-file.gtm", "wb") as f:
            f.write(b"GTMSMMDL garbage")
        d = Recorder(model_dir, tmp + "/api.db")
        check(any(l.get("level") == "error" and "bad-file" in l.get("file", "") for l in d.lines()),
              "a broken model file is logged and skipped")
        test_flow(d)
        test_bad_inputs(d)
        check(d.stop() == 0, "SIGTERM: exit 0")
        test_limits(tmp, model_dir)
        test_auth(tmp, model_dir)
        test_overload(tmp, model_dir)
        test_model_version(tmp, tmp + "/api.db")
        e = Recorder(tmp + "/empty", tmp + "/empty.db")
        s, h, j = e.json("GET", "/v2/health/ready")
        check(s == 503 and is_problem(h, j, 503, "not-ready"), "no models: ready is 503")
        e.stop()
        missing = sorted(x for x in SPEC - SEEN if x[2] not in FAULT_ONLY)
        for m in missing:
            print("  not exercised:", m, file=sys.stderr)
        check(not missing, f"every (path, method, status) of openapi.yaml exercised ({len(SPEC)} of them)")
        extra = sorted(x for x in SEEN - SPEC if x[2] != 405 and x[0] in TEMPLATES)
        for x in extra:
            print("  not in openapi.yaml:", x, file=sys.stderr)
        check(not extra, "every status the tests saw is in openapi.yaml")
    finish("test_server_api")


if __name__ == "__main__":
    main()
