#!/usr/bin/env python3
"""The web viewer's side of gtmsmd over HTTP, on a real daemon with a real
SQLite file: the page and its files at / and /web/{file}, and the demo
endpoint (GET /v1/demo/worlds, POST /v1/demo/episodes).

Checks here: a demo episode is exactly `gtmsm gen` (procedural and photo
worlds, byte for byte) and deterministic; its world PNG cropped at the true
positions gives its frames (what the page does to show true frames); it can
be memorized as it is, and the observations' reply gives the states the
memory stores (what the page draws as the learned trajectory), which for a
model without landmarks are the predictions of the same actions; every bad
input gets its problem+json status and slug; keys, overload, a daemon
without photo worlds; the page is the embedded copy of clients/web with
ETag/304 and a CSP; and every (path, method, status) that openapi.yaml lists
for these paths is exercised."""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import (GTMSM, SRC, Daemon, openapi_statuses, RawStream, check, episode, finish,  # noqa: E402
                                 is_problem, ndjson, png_size, train_model)

import base64  # noqa: E402

WORLDS = os.path.join(SRC, "data", "worlds", "test")
WEB = os.path.join(SRC, "clients", "web")
PATHS = ("/", "/web/{file}", "/v1/demo/worlds", "/v1/demo/episodes")


# ---- openapi.yaml coverage of the viewer's paths ----------------------------

SPEC = {x for x in openapi_statuses() if x[0] in PATHS}
SEEN = set()


def template(path):
    path = path.split("?")[0]
    if path.startswith("/web/"):
        return "/web/{file}"
    return path


class Recorder(Daemon):
    def request(self, method, path, body=None, headers=None, conn=None):
        s, h, b = super().request(method, path, body, headers, conn)
        if template(path) in PATHS:
            SEEN.add((template(path), method, s))
        return s, h, b


def raw(d, method, path, headers, body=b""):
    """A request with hand-written headers (a Content-Length we never send)."""
    sock = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    hdr = f"{method} {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(hdr.encode() + b"\r\n" + body)
    rs = RawStream.__new__(RawStream)
    rs.sock = sock
    s, h, j = rs.read()
    SEEN.add((template(path), method, s))
    return s, h, j


# ---- PNG decoding (8-bit RGB, non-interlaced: what the daemon writes) ------

def png_rgb(b):
    """(width, height, rows of RGB bytes) of an 8-bit RGB PNG."""
    w, h = png_size(b)
    pos, idat = 8, b""
    while pos < len(b):
        n, kind = struct.unpack(">I4s", b[pos:pos + 8])
        if kind == b"IHDR":
            assert b[pos + 16:pos + 18] == b"\x08\x02" and b[pos + 20] == 0, "not 8-bit RGB non-interlaced"
        if kind == b"IDAT":
            idat += b[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw_ = zlib.decompress(idat)
    stride, rows, prev = 3 * w, [], bytearray(3 * w)
    for y in range(h):
        f, line = raw_[y * (stride + 1)], bytearray(raw_[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            c = prev[i - 3] if i >= 3 else 0
            up = prev[i]
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + up) & 255
            elif f == 3:
                line[i] = (line[i] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c
                pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def crop(rows, col, row):
    """The 8x8 view at grid cell (col, row): corner (3 col, 3 row)."""
    x0, y0 = 3 * col, 3 * row
    return [r[3 * x0:3 * (x0 + 8)] for r in rows[y0:y0 + 8]]


def gen(seed, steps, images=None, obstacles=0):
    args = [GTMSM, "gen", "--env", "imagenav", "--seed", str(seed), "--steps", str(steps)]
    if images:
        args += ["--images", images]
    if obstacles:
        args += ["--obstacles", str(obstacles)]
    out = subprocess.run(args, check=True, capture_output=True)
    return [json.loads(l) for l in out.stdout.decode().splitlines()], out.stderr.decode()


def demo(d, body, headers=None):
    return d.json("POST", "/v1/demo/episodes", body, headers)


# ---- the page -------------------------------------------------------------

def test_page(d):
    s, h, b = d.request("GET", "/")
    index = open(os.path.join(WEB, "index.html"), "rb").read()
    check(s == 200 and h.get("content-type") == "text/html; charset=utf-8" and b == index,
          "GET / is clients/web/index.html, embedded")
    check("default-src 'none'" in h.get("content-security-policy", "") and h.get("x-content-type-options") == "nosniff",
          "the page has a Content-Security-Policy and nosniff")
    check(b"web/viewer.js" in b and b"web/viewer.css" in b, "the page loads web/viewer.js and web/viewer.css (relative)")
    etag = h.get("etag", "")
    check(re.fullmatch(r'"[0-9a-f]{20}"', etag) is not None and h.get("cache-control") == "no-cache",
          f"a strong ETag ({etag}) and Cache-Control: no-cache")
    s, h, b = d.request("GET", "/", headers={"If-None-Match": etag})
    check(s == 304 and b == b"" and h.get("etag") == etag, "If-None-Match with the ETag: 304, no body")
    s, h, b = d.request("GET", "/", headers={"If-None-Match": '"0000", W/' + etag})
    check(s == 304, "If-None-Match with a list and a weak tag: 304")
    s, h, b = d.request("GET", "/", headers={"If-None-Match": '"other"'})
    check(s == 200 and b == index, "another ETag: 200 with the page")
    for name, ctype in [("viewer.js", "text/javascript; charset=utf-8"), ("viewer.css", "text/css; charset=utf-8")]:
        s, h, b = d.request("GET", "/web/" + name)
        check(s == 200 and h.get("content-type") == ctype and b == open(os.path.join(WEB, name), "rb").read(),
              f"GET /web/{name}: {ctype}, the file of clients/web")
        s, h, b = d.request("GET", "/web/" + name, headers={"If-None-Match": h.get("etag", "")})
        check(s == 304, f"GET /web/{name} revalidates: 304")
    for path in ["/web/nope.js", "/web/index.htm", "/web/..%2Fserver%2Fmain.c"]:
        s, h, j = d.json("GET", path)
        check(s == 404 and is_problem(h, j, 404, "not-found"), f"GET {path}: 404 not-found")
    for path in ["/web/", "/web", "/index.html", "/web/a/b"]:
        s, h, j = d.json("GET", path)
        check(s == 404 and is_problem(h, j, 404, "not-found"), f"GET {path}: 404 (no such route)")
    s, h, j = d.json("POST", "/", {})
    check(s == 405 and h.get("allow") == "GET, HEAD", "POST /: 405 Allow GET")


# ---- the demo endpoint ----------------------------------------------------

def test_worlds(d):
    s, h, j = d.json("GET", "/v1/demo/worlds")
    names = sorted(f[:-4] for f in os.listdir(WORLDS) if f.endswith(".png"))
    check(s == 200 and j["worlds"] == ["procedural", "photo"] and j["world_size"] == 32
          and j["grid"] == {"cells": 9, "stride": 3, "view": 8}, "GET /v1/demo/worlds: kinds, size and grid")
    check([p["name"] for p in j["photos"]] == names and [p["index"] for p in j["photos"]] == list(range(len(names))),
          f"the {len(names)} bundled photo worlds, in name order, indexed")
    s, h, j = d.json("POST", "/v1/demo/worlds", {})
    check(s == 405 and h.get("allow") == "GET, HEAD", "POST /v1/demo/worlds: 405 Allow GET")


def same_episode(obs, lines):
    return len(obs) == len(lines) and all(
        o["t"] == l["t"] and o["action"] == l["action"] and o["frame"] == l["frame"] and o["truth"] == l["truth"]
        for o, l in zip(obs, lines))


def test_episodes(d):
    s, h, j = demo(d, {"model": "imagenav", "world": "procedural", "seed": 5, "steps": 64})
    lines, _ = gen(5, 64)
    check(s == 200 and j["model"] == "imagenav" and j["environment"] == "imagenav" and j["steps"] == 64,
          "a procedural demo episode: 200")
    check(same_episode(j["observations"], lines), "it is `gtmsm gen --seed 5 --steps 64`, byte for byte")
    check(j["world"]["kind"] == "procedural" and j["world"]["seed"] == 5 and j["world"]["photo"] is None
          and j["world"]["name"] is None, "the world says procedural, seed 5")
    check(j["grid"] == {"cells": 9, "stride": 3, "view": 8, "start": {"col": 4, "row": 4}, "obstacles": []},
          "the grid: 9x9 cells, stride 3, 8x8 views, start at the centre")
    w, hh, rows = png_rgb(base64.b64decode(j["world"]["png"]))
    check((w, hh) == (32, 32), "the world is a 32x32 RGB PNG")
    frames_ok = all(crop(rows, o["truth"]["col"], o["truth"]["row"]) == png_rgb(base64.b64decode(o["frame"]))[2]
                    for o in j["observations"])
    check(frames_ok, "the world cropped at each true position is that step's frame (the page's true frames)")
    s2, h2, b2 = d.request("POST", "/v1/demo/episodes", {"model": "imagenav", "world": "procedural", "seed": 5, "steps": 64})
    check(s2 == 200 and json.loads(b2) == j, "the same request gives the same episode")

    s, h, j = demo(d, {"model": "imagenav"})
    lines, _ = gen(1, 256)
    check(s == 200 and j["steps"] == 256 and j["world"]["kind"] == "procedural" and j["world"]["seed"] == 1
          and same_episode(j["observations"], lines), "defaults: procedural, seed 1, 256 steps")

    s, h, j = demo(d, {"model": "imagenav", "world": "photo", "seed": 7, "steps": 40})
    lines, err = gen(7, 40, WORLDS)
    picked = re.search(r"world: .*/(\S+)\.png", err).group(1)
    check(s == 200 and j["world"]["kind"] == "photo" and j["world"]["name"] == picked
          and same_episode(j["observations"], lines),
          f"a photo demo picks the world by seed as `gtmsm gen --images` does ({picked}), byte for byte")
    idx = j["world"]["photo"]
    for photo in [idx, picked, picked + ".png"]:
        s, h, k = demo(d, {"model": "imagenav", "world": "photo", "seed": 7, "steps": 40, "photo": photo})
        check(s == 200 and k == j, f"the same photo world by \"photo\": {json.dumps(photo)}")
    s, h, k = demo(d, {"model": "imagenav", "world": "photo", "seed": 7, "steps": 40, "photo": (idx + 1) % 43})
    check(s == 200 and k["world"]["photo"] == (idx + 1) % 43 and k["world"]["png"] != j["world"]["png"],
          "another photo index, another world")
    s, h, j = demo(d, {"model": "imagenav", "steps": 4096, "seed": 2})
    check(s == 200 and len(j["observations"]) == 4096, "4096 steps, the limit, are fine")
    s, h, j = demo(d, {"model": "imagenav", "steps": 1, "seed": 2, "extra": [1, 2]})
    check(s == 200 and len(j["observations"]) == 1 and j["observations"][0]["action"] == "stay",
          "1 step (the no-op); unknown keys are ignored")
    s, h, j = d.json("GET", "/v1/demo/episodes")
    check(s == 405 and h.get("allow") == "POST", "GET /v1/demo/episodes: 405 Allow POST")


def test_memorize(d):
    """The page's flow: PUT a session, send each batch as NDJSON, draw the states of the reply."""
    s, h, ep = demo(d, {"model": "imagenav", "world": "photo", "photo": 3, "seed": 11, "steps": 48})
    obs = ep["observations"]
    s, h, j = d.json("PUT", "/v1/sessions/viewer-test", {"model": "imagenav"})
    check(s == 201, "a viewer session")
    states = []
    for t0 in range(0, 48, 16):
        batch = obs[t0:t0 + 16]
        acts = [o["action"] for o in (batch[1:] if t0 == 0 else batch)]
        s, h, p = d.json("POST", "/v1/sessions/viewer-test/predictions", {"actions": acts})
        got = [f["state"] for f in p["frames"]]
        states += ([[0.0, 0.0]] if t0 == 0 else []) + got
        s, h, b = d.request("POST", "/v1/sessions/viewer-test/observations?states=true", ndjson(batch),
                            {"Content-Type": "application/x-ndjson"})
        check(s == 200 and json.loads(b)["steps"] == t0 + 16, f"observations {t0}..{t0 + 15} as NDJSON (truth ignored)")
        check(json.loads(b)["states"] == states[t0:], f"observations {t0}..{t0 + 15}: the reply's states are the "
              "predicted ones (from actions alone)")
        s, h, x = d.json("GET", "/v1/sessions/viewer-test/export")
        check(x["state"] == states[-1], f"the session's state after step {t0 + 15} is the last predicted state")
    check(len(states) == 48, "48 states of the learned trajectory")
    s, h, p = d.json("POST", "/v1/sessions/viewer-test/predictions", {"actions": ["left", "up", "stay"]})
    s2, h2, p2 = d.json("POST", "/v1/sessions/viewer-test/predictions", {"actions": ["left", "up", "stay", "right"]})
    check(s == 200 and s2 == 200 and p2["frames"][:3] == p["frames"],
          "driving: predictions of a longer action list extend the shorter one (the session does not change)")
    s, h, j = d.json("GET", "/v1/sessions/viewer-test")
    check(j["steps"] == 48 and j["memory_entries"] == 48, "the session still has 48 steps")
    d.json("DELETE", "/v1/sessions/viewer-test")


MOVES = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1), "stay": (0, 0)}


def test_obstacles(d):
    """A demo with obstacles is `gtmsm gen --obstacles`, lists its cells, and
    every failed move is one into an obstacle or off the grid."""
    s, h, j = demo(d, {"model": "imagenav", "seed": 5, "steps": 200, "obstacles": 8})
    check(s == 200 and same_episode(j["observations"], gen(5, 200, obstacles=8)[0]),
          "a demo with 8 obstacles is `gtmsm gen --seed 5 --steps 200 --obstacles 8`, byte for byte")
    cells = {(c["col"], c["row"]) for c in j["grid"]["obstacles"]}
    start = (j["grid"]["start"]["col"], j["grid"]["start"]["row"])
    check(len(cells) == 8 and len(j["grid"]["obstacles"]) == 8 and start not in cells
          and all(0 <= c < 9 and 0 <= r < 9 for c, r in cells), f"8 distinct obstacle cells, not the start: {sorted(cells)}")
    obs, blocked_moves, ok = j["observations"], 0, True
    for a, b in zip(obs, obs[1:]):
        p, q = (a["truth"]["col"], a["truth"]["row"]), (b["truth"]["col"], b["truth"]["row"])
        dc, dr = MOVES[b["action"]]
        target = (p[0] + dc, p[1] + dr)
        inside = 0 <= target[0] < 9 and 0 <= target[1] < 9
        expect = target if inside and target not in cells else p
        ok &= q == expect and q not in cells
        blocked_moves += inside and target in cells
    check(ok and blocked_moves > 0, f"the truth follows the rules: {blocked_moves} moves into obstacles do not move")
    s, h, j0 = demo(d, {"model": "imagenav", "seed": 5, "steps": 16})
    check(s == 200 and j0["grid"]["obstacles"] == [], "no obstacles unless asked")


def test_bad_inputs(d):
    js = {"Content-Type": "application/json"}
    cases = [
        ("not JSON", b"{", js, 400, "malformed-json"),
        ("an array", b"[]", js, 400, "invalid-request"),
        ("no model", b'{"world": "procedural"}', js, 400, "invalid-request"),
        ("model not a string", b'{"model": 3}', js, 400, "invalid-request"),
        ("a bad model name", b'{"model": "a/b"}', js, 400, "invalid-request"),
        ("an unknown world", b'{"model": "imagenav", "world": "maze"}', js, 400, "invalid-request"),
        ("world not a string", b'{"model": "imagenav", "world": 1}', js, 400, "invalid-request"),
        ("a negative seed", b'{"model": "imagenav", "seed": -1}', js, 400, "invalid-request"),
        ("a seed as text", b'{"model": "imagenav", "seed": "7"}', js, 400, "invalid-request"),
        ("a fractional seed", b'{"model": "imagenav", "seed": 1.5}', js, 400, "invalid-request"),
        ("0 steps", b'{"model": "imagenav", "steps": 0}', js, 400, "invalid-request"),
        ("steps as text", b'{"model": "imagenav", "steps": "many"}', js, 400, "invalid-request"),
        ("a photo with a procedural world", b'{"model": "imagenav", "photo": 1}', js, 400, "invalid-request"),
        ("a negative photo", b'{"model": "imagenav", "world": "photo", "photo": -1}', js, 400, "invalid-request"),
        ("a photo object", b'{"model": "imagenav", "world": "photo", "photo": {}}', js, 400, "invalid-request"),
        ("an empty photo name", b'{"model": "imagenav", "world": "photo", "photo": ""}', js, 400, "invalid-request"),
        ("negative obstacles", b'{"model": "imagenav", "obstacles": -1}', js, 400, "invalid-request"),
        ("81 obstacles", b'{"model": "imagenav", "obstacles": 81}', js, 400, "invalid-request"),
        ("obstacles as text", b'{"model": "imagenav", "obstacles": "3"}', js, 400, "invalid-request"),
        ("fractional obstacles", b'{"model": "imagenav", "obstacles": 2.5}', js, 400, "invalid-request"),
        ("duplicate keys", b'{"model": "imagenav", "model": "maze"}', js, 400, "malformed-json"),
        ("an unknown model", b'{"model": "nosuch"}', js, 404, "model-not-found"),
        ("an unknown photo index", b'{"model": "imagenav", "world": "photo", "photo": 43}', js, 404, "world-not-found"),
        ("an unknown photo name", b'{"model": "imagenav", "world": "photo", "photo": "nope"}', js, 404, "world-not-found"),
        ("too many steps", b'{"model": "imagenav", "steps": 4097}', js, 422, "too-many-frames"),
        ("a model of another environment", b'{"model": "maze"}', js, 422, "unsupported-environment"),
        ("text/plain", b'{"model": "imagenav"}', {"Content-Type": "text/plain"}, 415, "unsupported-media-type"),
        ("NDJSON", b'{"model": "imagenav"}\n', {"Content-Type": "application/x-ndjson"}, 415, "unsupported-media-type"),
    ]
    for what, body, headers, status, slug in cases:
        s, h, b = d.request("POST", "/v1/demo/episodes", body, headers)
        try:
            j = json.loads(b)
        except ValueError:
            j = None
        check(s == status and is_problem(h, j, status, slug) and j.get("instance") == "/v1/demo/episodes"
              and j.get("request_id") == h.get("x-request-id"),
              f"{what}: {status} {slug} ({(j or {}).get('detail', b[:80])})")
    s, h, j = demo(d, {"model": "imagenav", "steps": 5000})
    check(j.get("limit") == 4096, "too-many-frames carries the limit 4096")
    s, h, j = raw(d, "POST", "/v1/demo/episodes", {"Content-Type": "application/json", "Content-Length": "99999999999"})
    check(s == 413 and is_problem(h, j, 413, "body-too-large"), "a Content-Length over --max-body: 413 before the body")
    s, h, j = demo(d, {"model": "imagenav", "seed": 3, "steps": 8})
    check(s == 200, "the daemon still serves demos after the bad inputs")


def test_no_worlds(tmp, model_dir):
    d = Recorder(model_dir, tmp + "/noworlds.db", "--demo-worlds", tmp + "/no-such-folder")
    warned = [l for l in d.lines() if l.get("event") == "demo" and l.get("level") == "warn"]
    check(len(warned) == 1 and "procedural" in warned[0].get("msg", ""), "a missing worlds folder is logged as a warning")
    s, h, j = d.json("GET", "/v2/health/ready")
    check(s == 200, "and the daemon is ready anyway")
    s, h, j = d.json("GET", "/v1/demo/worlds")
    check(s == 200 and j["worlds"] == ["procedural"] and j["photos"] == [], "no photo worlds listed")
    s, h, j = demo(d, {"model": "imagenav", "world": "photo"})
    check(s == 404 and is_problem(h, j, 404, "world-not-found") and "--demo-worlds" in j["detail"],
          "a photo demo: 404 world-not-found naming --demo-worlds")
    s, h, j = demo(d, {"model": "imagenav", "seed": 9, "steps": 16})
    check(s == 200 and same_episode(j["observations"], gen(9, 16)[0]), "procedural demos still work")
    check(d.stop() == 0, "stops cleanly")


def test_auth(tmp, model_dir):
    keys = tmp + "/keys"
    with open(keys, "w") as f:
        f.write("viewer-key\n")
    d = Recorder(model_dir, tmp + "/auth.db", "--api-keys", keys)
    for method, path, body in [("GET", "/v1/demo/worlds", None), ("POST", "/v1/demo/episodes", {"model": "imagenav"})]:
        s, h, j = d.json(method, path, body)
        check(s == 401 and is_problem(h, j, 401, "unauthorized"), f"no key: 401 on {method} {path}")
        s, h, j = d.json(method, path, body, {"Authorization": "Bearer viewer-key"})
        check(s == 200, f"with the key: 200 on {method} {path}")
    for path in ["/", "/web/viewer.js", "/web/viewer.css"]:
        s, h, b = d.request("GET", path)
        check(s == 200, f"GET {path} stays open without a key (the page asks for one)")
    check(d.stop() == 0, "stops cleanly")


def test_overload(tmp, model_dir):
    ep = episode(41, 2)
    d = Recorder(model_dir, tmp + "/busy.db")
    d.json("PUT", "/v1/sessions/one", {"model": "imagenav"})
    d.stop()
    d = Recorder(model_dir, tmp + "/busy.db", "--max-inflight", "1")
    time.sleep(0.1)
    held = RawStream(d.port, "/v1/sessions/one/observations")
    held.send(ndjson(ep[:1]))
    time.sleep(0.2)
    for method, path, body in [("GET", "/v1/demo/worlds", None), ("POST", "/v1/demo/episodes", {"model": "imagenav"})]:
        s, h, j = d.json(method, path, body)
        check(s == 503 and is_problem(h, j, 503, "overloaded") and h.get("retry-after") == "1",
              f"over --max-inflight: 503 + Retry-After on {method} {path}")
    s, h, b = d.request("GET", "/")
    check(s == 200, "the page is still served under overload")
    s, h, j = held.finish()
    check(s == 200, "the held stream completes")
    check(d.stop() == 0, "stops cleanly")


def test_metrics(d):
    s, h, b = d.request("GET", "/metrics")
    text = b.decode()
    for route in ["web_index", "web_asset", "demo_worlds", "demo_episode"]:
        check(f'route="{route}"' in text, f"/metrics counts route {route}")


def maze_model(src, dst):
    """A copy of src whose metadata says it was trained on maze3d (the parameters are untouched)."""
    b = open(src, "rb").read()
    n = struct.unpack("<I", b[12:16])[0]
    meta = json.loads(b[16:16 + n])
    meta["environment"] = "maze3d"
    m = json.dumps(meta).encode()
    open(dst, "wb").write(b[:12] + struct.pack("<I", len(m)) + m + b[16 + n:])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tmp + "/models"
        train_model(model_dir + "/imagenav.gtm")
        maze_model(model_dir + "/imagenav.gtm", model_dir + "/maze.gtm")
        d = Recorder(model_dir, tmp + "/demo.db", "--demo-worlds", WORLDS)
        s, h, j = d.json("GET", "/v1/models")
        check(s == 200 and [m["name"] for m in j["models"]] == ["imagenav", "maze"]
              and j["models"][1]["environment"] == "maze3d", "two models, one of them 'maze3d'")
        loaded = [l for l in d.lines() if l.get("event") == "demo" and l.get("level") == "info"]
        check(loaded and loaded[0].get("photo_worlds") == 43, "the daemon loaded the 43 photo worlds")
        test_page(d)
        test_worlds(d)
        test_episodes(d)
        test_obstacles(d)
        test_memorize(d)
        test_bad_inputs(d)
        test_metrics(d)
        check(d.stop() == 0, "SIGTERM: exit 0")
        test_no_worlds(tmp, model_dir)
        test_auth(tmp, model_dir)
        test_overload(tmp, model_dir)
        missing = sorted(SPEC - SEEN)
        for m in missing:
            print("  not exercised:", m, file=sys.stderr)
        check(SPEC and not missing, f"every (path, method, status) of openapi.yaml for {', '.join(PATHS)} "
              f"exercised ({len(SPEC)} of them)")
        extra = sorted(x for x in SEEN - SPEC if x[2] != 405)
        for x in extra:
            print("  not in openapi.yaml:", x, file=sys.stderr)
        check(not extra, "every status the tests saw on these paths is in openapi.yaml")
    finish("test_demo")


if __name__ == "__main__":
    main()
