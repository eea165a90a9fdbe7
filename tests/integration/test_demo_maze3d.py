#!/usr/bin/env python3
"""The demo endpoint for maze3d models over HTTP, on a real daemon with a real
SQLite file: POST /v1/demo/episodes with a maze3d model, and POST
/v1/demo/episodes/step (the true frames after the viewer's key presses).

The model is a tiny untrained maze3d rotate model trained here in a fraction
of a second (the architecture of models/train_maze3d_rotate.sh, so the tests
never skip); models/maze3d_rotate.gtm is served too when it exists.

Checks here: an episode is exactly `gtmsm gen --env maze3d --scenario rotate`
(frames byte for byte, actions, truth), with the model's episode length by
default, its map a PNG of the stated size, deterministic; it can be memorized
and predicted from as it is (3-D states); a continuation is deterministic,
extends itself (a longer action list extends a shorter one, `first` only
leaves frames out), continues gen exactly when it keeps the explorer's own
turn, and comes back to the episode's last frame after a turn and its
opposite or a full circle; every bad input gets its problem+json status and
slug, keys, overload; and every (path, method, status) that openapi.yaml
lists for /v1/demo/episodes/step is exercised, and every status seen on the
demo paths is listed there."""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import (GTMSM, SRC, Daemon, RawStream, check, episode, finish, is_problem,  # noqa: E402
                                 ndjson, openapi_statuses, train_model)
from test_demo import png_rgb  # noqa: E402

STEP = "/v1/demo/episodes/step"
PATHS = (STEP, "/v1/demo/episodes")
SPEC_ALL = {x for x in openapi_statuses() if x[0] in PATHS}
COVER = {x for x in SPEC_ALL if x[0] == STEP}
SEEN = set()
SHIPPED = os.path.join(SRC, "models", "maze3d_rotate.gtm")
MAX_ACTIONS = 64


class Recorder(Daemon):
    def request(self, method, path, body=None, headers=None, conn=None):
        s, h, b = super().request(method, path, body, headers, conn)
        if path in PATHS:
            SEEN.add((path, method, s))
        return s, h, b


def train_maze3d(path):
    """A tiny untrained maze3d rotate model (32x32x3, the 8 actions + none, state 3)."""
    out = os.path.dirname(path)
    os.makedirs(out, exist_ok=True)
    subprocess.run([GTMSM, "train", "--env", "maze3d", "--scenario", "rotate", "--episode", "80",
                    "--memorize", "33", "--predict", "16", "--vae", "conv", "--latent", "64",
                    "--channels", "8", "--transition", "rot3d", "--keymap", "periodic", "--prior", "mlp",
                    "--prior-hidden", "32", "--k", "4", "--still", "0", "--wallfree", "0",
                    "--curriculum", "0", "--batch", "1", "--threads", "1", "--steps", "2",
                    "--out", out + "/run-maze3d", "--model-out", path], check=True, capture_output=True)
    return path


def gen(seed, steps, scenario="rotate"):
    out = subprocess.run([GTMSM, "gen", "--env", "maze3d", "--scenario", scenario, "--seed", str(seed),
                          "--steps", str(steps)], check=True, capture_output=True)
    return [json.loads(l) for l in out.stdout.decode().splitlines()]


def same(obs, lines):
    """Equal observations: frames (the base64 of the PNG bytes), actions, t and truth."""
    return len(obs) == len(lines) and all(o == l for o, l in zip(obs, lines))


def demo(d, body):
    return d.json("POST", "/v1/demo/episodes", body)


def step(d, body):
    return d.json("POST", STEP, body)


def raw(d, method, path, headers, body=b""):
    """A request with hand-written headers (a Content-Length we never send)."""
    sock = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    hdr = f"{method} {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(hdr.encode() + b"\r\n" + body)
    rs = RawStream.__new__(RawStream)
    rs.sock = sock
    s, h, j = rs.read()
    SEEN.add((path, method, s))
    return s, h, j


# ---- episodes ---------------------------------------------------------------

def test_models(d):
    s, h, j = d.json("GET", "/v1/models/maze3d")
    check(s == 200 and j["environment"] == "maze3d" and j["training"]["scenario"] == "rotate"
          and j["state_size"] == 3 and (j["frame_width"], j["frame_height"]) == (32, 32)
          and j["actions"][-1] == "none" and len(j["actions"]) == 9,
          "the fixture is a maze3d rotate model: 32x32 frames, 9 actions, state size 3")


def test_episodes(d):
    s, h, j = demo(d, {"model": "maze3d"})
    check(s == 200 and j["environment"] == "maze3d" and j["scenario"] == "rotate" and j["seed"] == 1
          and j["steps"] == 80 and j["frame"] == {"width": 32, "height": 32},
          "defaults: the model's scenario (rotate), seed 1, its training episode length (80)")
    check(same(j["observations"], gen(1, 80)),
          "it is `gtmsm gen --env maze3d --scenario rotate --seed 1 --steps 80`: frames byte for byte, actions, truth")
    obs = j["observations"]
    check(obs[0]["action"] == "none" and len({o["action"] for o in obs[1:]}) == 1
          and obs[1]["action"] in ("turn_left", "turn_right"),
          f"the rotating agent: the no-op, then one turn ({obs[1]['action']}) throughout")
    check(j["start"] == {k: obs[0]["truth"][k] for k in ("x", "y", "heading")}, "start is step 0's pose")
    m = j["map"]
    w, hh, rows = png_rgb(base64.b64decode(m["png"]))
    check((w, hh) == (m["width"], m["height"]) == (m["grid_width"] * 16, m["grid_height"] * 16)
          and m["cell_px"] == 16, f"the map is a {w}x{hh} RGB PNG, 16 px a cell")
    x, y = obs[-1]["truth"]["x"], obs[-1]["truth"]["y"]
    px, py = int(x * 16), int((m["grid_height"] - y) * 16)
    check(rows[py][3 * px:3 * px + 3] == bytes([255, 220, 0]),
          f"the agent is drawn (yellow) at its pose: map pixel ({px}, {py}) from (x, y) = ({x:.2f}, {y:.2f})")
    f = png_rgb(base64.b64decode(obs[5]["frame"]))
    check(f[:2] == (32, 32), "frames are 32x32 RGB PNGs")

    s2, h2, b2 = d.request("POST", "/v1/demo/episodes", {"model": "maze3d"})
    check(s2 == 200 and json.loads(b2) == j, "the same request gives the same episode")
    s, h, k = demo(d, {"model": "maze3d", "seed": 5, "steps": 33})
    check(s == 200 and same(k["observations"], gen(5, 33)), "seed 5, 33 steps: gtmsm gen --seed 5 --steps 33")
    check(k["map"]["png"] != j["map"]["png"] and k["observations"][0]["frame"] != obs[0]["frame"],
          "another seed, another maze")
    s, h, k = demo(d, {"model": "maze3d", "steps": 1, "seed": 2, "extra": 1})
    check(s == 200 and len(k["observations"]) == 1 and k["observations"][0]["action"] == "none",
          "1 step (the no-op); unknown keys are ignored")
    s, h, k = demo(d, {"model": "maze3d", "steps": 300, "seed": 4})
    check(s == 200 and same(k["observations"], gen(4, 300)), "300 steps (more than two turns): gen too")


def test_shipped(tmp):
    if not os.path.exists(SHIPPED):
        print(f"skip: {SHIPPED} is not there yet; the fixture model covers the same paths")
        return
    dirn = tmp + "/shipped"
    os.makedirs(dirn, exist_ok=True)
    shutil.copy(SHIPPED, dirn + "/maze3d_rotate.gtm")
    d = Recorder(dirn, tmp + "/shipped.db")
    s, h, mj = d.json("GET", "/v1/models/maze3d_rotate")
    T = mj["training"]["episode"]
    s, h, j = demo(d, {"model": "maze3d_rotate", "seed": 11})
    check(s == 200 and j["steps"] == T and same(j["observations"], gen(11, T, mj["training"]["scenario"])),
          f"models/maze3d_rotate.gtm: its demo episode is gtmsm gen ({T} steps)")
    s, h, k = step(d, {"model": "maze3d_rotate", "seed": 11, "actions": ["turn_left", "turn_right"]})
    check(s == 200 and k["observations"][1]["frame"] == j["observations"][-1]["frame"],
          "and a turn and its opposite come back to its last frame")
    check(d.stop() == 0, "stops cleanly")


def test_memorize(d):
    """The viewer's flow: the episode into a session, then predictions with 3-D states."""
    s, h, ep = demo(d, {"model": "maze3d", "seed": 3})
    s, h, j = d.json("PUT", "/v1/sessions/viewer-maze", {"model": "maze3d"})
    check(s == 201, "a viewer session on the maze3d model")
    s, h, b = d.request("POST", "/v1/sessions/viewer-maze/observations", ndjson(ep["observations"]),
                        {"Content-Type": "application/x-ndjson"})
    check(s == 200 and json.loads(b)["steps"] == 80, "the 80 observations as NDJSON, as they are (truth ignored)")
    s, h, p = d.json("POST", "/v1/sessions/viewer-maze/predictions", {"actions": ["turn_left", "turn_left"]})
    check(s == 200 and len(p["frames"]) == 2 and all(len(f["state"]) == 3 for f in p["frames"])
          and png_rgb(base64.b64decode(p["frames"][1]["png"]))[:2] == (32, 32),
          "predictions: 32x32 frames and 3-D states (s3 the learned heading)")
    s, h, t = step(d, {"model": "maze3d", "seed": 3, "actions": ["turn_left", "turn_left"]})
    check(s == 200 and [o["t"] for o in t["observations"]] == [80, 81],
          "the step endpoint answers the same action list with true frames for t 80, 81")
    d.json("DELETE", "/v1/sessions/viewer-maze")


# ---- continuations ------------------------------------------------------------

def test_step(d):
    s, h, ep = demo(d, {"model": "maze3d", "seed": 7})
    obs = ep["observations"]
    turn = obs[1]["action"]
    back = "turn_right" if turn == "turn_left" else "turn_left"
    acts = ["turn_left", "turn_right", "forward", "forward", "strafe_left", "backward", "forward_turn_left",
            "forward_turn_right", "turn_right", "none"]
    s, h, b = d.request("POST", STEP, {"model": "maze3d", "seed": 7, "actions": acts})
    j = json.loads(b)
    check(s == 200 and j["environment"] == "maze3d" and j["scenario"] == "rotate" and j["steps"] == 80
          and j["actions"] == len(acts) and j["first"] == 0
          and [o["t"] for o in j["observations"]] == list(range(80, 90))
          and [o["action"] for o in j["observations"]] == acts,
          "10 actions after the episode: observations t 80..89 with those actions")
    s2, h2, b2 = d.request("POST", STEP, {"model": "maze3d", "seed": 7, "actions": acts})
    check(s2 == 200 and b2 == b, "the same request gives the same reply, byte for byte")
    tr = [o["truth"] for o in j["observations"]]
    last = obs[-1]["truth"]
    check(tr[1]["x"] == last["x"] and tr[1]["y"] == last["y"] and abs(tr[1]["heading"] - last["heading"]) < 1e-9
          and j["observations"][1]["frame"] == obs[-1]["frame"],
          "turn left, turn right: the episode's last pose and frame again (it goes on from its last state)")
    check(tr[2]["d_forward"] > 0 and tr[3]["d_forward"] > tr[2]["d_forward"] and tr[3]["vx"] ** 2 + tr[3]["vy"] ** 2 > 0,
          f"forward moves and speeds up ({tr[2]['d_forward']:.3f}, then {tr[3]['d_forward']:.3f}: velocity carries over)")
    for n in (1, 4, 10):
        s, h, k = step(d, {"model": "maze3d", "seed": 7, "actions": acts[:n]})
        check(s == 200 and k["observations"] == j["observations"][:n],
              f"the first {n} action(s) alone: a prefix of the longer continuation")
    s, h, k = step(d, {"model": "maze3d", "seed": 7, "actions": acts, "first": 9})
    check(s == 200 and k["first"] == 9 and k["observations"] == j["observations"][9:],
          "first 9: only the last observation, the same")
    s, h, k = step(d, {"model": "maze3d", "seed": 7, "actions": acts, "first": 4})
    check(s == 200 and k["observations"] == j["observations"][4:], "first 4: observations 4..9")

    # the explorer of rotate keeps turning one way: continuing with its turn is gen with more steps
    s, h, k = step(d, {"model": "maze3d", "seed": 7, "actions": [turn] * 12})
    check(s == 200 and same(k["observations"], gen(7, 92)[80:]),
          f"12 more {turn}s: frames 80..91 of `gtmsm gen --seed 7 --steps 92`, byte for byte")
    s, h, k = step(d, {"model": "maze3d", "seed": 7, "actions": [back] * 40, "first": 39})
    check(s == 200 and k["observations"][0]["frame"] == obs[-1]["frame"],
          f"40 {back}s (a full circle): the last frame again")
    s, h, k = step(d, {"model": "maze3d", "seed": 7, "steps": 33, "actions": [turn] * 3})
    check(s == 200 and same(k["observations"], gen(7, 36)[33:]), "an episode of 33 steps continued: gen's 33..35")
    s, h, k = step(d, {"model": "maze3d", "seed": 8, "actions": acts})
    check(s == 200 and k["observations"][0]["frame"] != j["observations"][0]["frame"], "another seed, another maze")
    s, h, k = step(d, {"model": "maze3d", "seed": 7, "actions": ["forward"] * MAX_ACTIONS, "first": MAX_ACTIONS - 1})
    check(s == 200 and len(k["observations"]) == 1 and k["observations"][0]["t"] == 80 + MAX_ACTIONS - 1,
          f"{MAX_ACTIONS} actions, the --max-actions limit, are fine")


def test_bad_inputs(d):
    js = {"Content-Type": "application/json"}
    many = json.dumps({"model": "maze3d", "actions": ["forward"] * (MAX_ACTIONS + 1)}).encode()
    cases = [
        ("episode: a world", "/v1/demo/episodes", b'{"model": "maze3d", "world": "procedural"}', js, 400, "invalid-request"),
        ("episode: obstacles", "/v1/demo/episodes", b'{"model": "maze3d", "obstacles": 3}', js, 400, "invalid-request"),
        ("episode: a photo", "/v1/demo/episodes", b'{"model": "maze3d", "world": "photo", "photo": 1}', js, 400,
         "invalid-request"),
        ("episode: too many steps", "/v1/demo/episodes", b'{"model": "maze3d", "steps": 4097}', js, 422, "too-many-frames"),
        ("episode: a maze3d label on an imagenav model", "/v1/demo/episodes", b'{"model": "fake3d"}', js, 422,
         "unsupported-environment"),
        ("not JSON", STEP, b"{", js, 400, "malformed-json"),
        ("an array", STEP, b"[]", js, 400, "invalid-request"),
        ("no model", STEP, b'{"actions": ["forward"]}', js, 400, "invalid-request"),
        ("a bad model name", STEP, b'{"model": "a/b", "actions": ["forward"]}', js, 400, "invalid-request"),
        ("no actions", STEP, b'{"model": "maze3d"}', js, 400, "invalid-request"),
        ("actions not an array", STEP, b'{"model": "maze3d", "actions": "forward"}', js, 400, "invalid-request"),
        ("an action index", STEP, b'{"model": "maze3d", "actions": [0]}', js, 400, "invalid-request"),
        ("an action object", STEP, b'{"model": "maze3d", "actions": [{}]}', js, 400, "invalid-request"),
        ("first too far", STEP, b'{"model": "maze3d", "actions": ["forward"], "first": 1}', js, 400, "invalid-request"),
        ("a negative first", STEP, b'{"model": "maze3d", "actions": ["forward"], "first": -1}', js, 400,
         "invalid-request"),
        ("first as text", STEP, b'{"model": "maze3d", "actions": ["forward"], "first": "0"}', js, 400, "invalid-request"),
        ("a negative seed", STEP, b'{"model": "maze3d", "actions": ["forward"], "seed": -1}', js, 400, "invalid-request"),
        ("0 steps", STEP, b'{"model": "maze3d", "actions": ["forward"], "steps": 0}', js, 400, "invalid-request"),
        ("a world", STEP, b'{"model": "maze3d", "actions": ["forward"], "world": "procedural"}', js, 400,
         "invalid-request"),
        ("duplicate keys", STEP, b'{"model": "maze3d", "model": "x", "actions": ["forward"]}', js, 400, "malformed-json"),
        ("an unknown model", STEP, b'{"model": "nosuch", "actions": ["forward"]}', js, 404, "model-not-found"),
        ("an empty action list", STEP, b'{"model": "maze3d", "actions": []}', js, 422, "too-many-actions"),
        (f"{MAX_ACTIONS + 1} actions", STEP, many, js, 422, "too-many-actions"),
        ("an unknown action", STEP, b'{"model": "maze3d", "actions": ["forward", "jump"]}', js, 422, "unknown-action"),
        ("an imagenav action", STEP, b'{"model": "maze3d", "actions": ["up"]}', js, 422, "unknown-action"),
        ("too many steps", STEP, b'{"model": "maze3d", "actions": ["forward"], "steps": 4097}', js, 422,
         "too-many-frames"),
        ("an imagenav model", STEP, b'{"model": "imagenav", "actions": ["forward"]}', js, 422, "unsupported-environment"),
        ("a maze3d label on an imagenav model", STEP, b'{"model": "fake3d", "actions": ["forward"]}', js, 422,
         "unsupported-environment"),
        ("text/plain", STEP, b'{"model": "maze3d", "actions": ["forward"]}', {"Content-Type": "text/plain"}, 415,
         "unsupported-media-type"),
    ]
    for what, path, body, headers, status, slug in cases:
        s, h, b = d.request("POST", path, body, headers)
        try:
            j = json.loads(b)
        except ValueError:
            j = None
        check(s == status and is_problem(h, j, status, slug) and j.get("instance") == path
              and j.get("request_id") == h.get("x-request-id"),
              f"{what}: {status} {slug} ({(j or {}).get('detail', b[:80])})")
    s, h, j = d.json("POST", STEP, json.loads(many))
    check(j.get("limit") == MAX_ACTIONS, f"too-many-actions carries the limit {MAX_ACTIONS}")
    s, h, j = raw(d, "POST", STEP, {"Content-Type": "application/json", "Content-Length": "99999999999"})
    check(s == 413 and is_problem(h, j, 413, "body-too-large"), "a Content-Length over --max-body: 413 before the body")
    s, h, j = d.json("GET", STEP)
    check(s == 405 and h.get("allow") == "POST", "GET /v1/demo/episodes/step: 405 Allow POST")
    s, h, j = step(d, {"model": "maze3d", "actions": ["turn_left"]})
    check(s == 200, "the daemon still serves continuations after the bad inputs")


def test_auth(tmp, model_dir):
    keys = tmp + "/keys"
    with open(keys, "w") as f:
        f.write("viewer-key\n")
    d = Recorder(model_dir, tmp + "/auth.db", "--api-keys", keys)
    body = {"model": "maze3d", "actions": ["turn_left"]}
    s, h, j = step(d, body)
    check(s == 401 and is_problem(h, j, 401, "unauthorized"), f"no key: 401 on POST {STEP}")
    s, h, j = d.json("POST", STEP, body, {"Authorization": "Bearer viewer-key"})
    check(s == 200, f"with the key: 200 on POST {STEP}")
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
    s, h, j = step(d, {"model": "maze3d", "actions": ["turn_left"]})
    check(s == 503 and is_problem(h, j, 503, "overloaded") and h.get("retry-after") == "1",
          f"over --max-inflight: 503 + Retry-After on POST {STEP}")
    s, h, j = held.finish()
    check(s == 200, "the held stream completes")
    check(d.stop() == 0, "stops cleanly")


def test_metrics(d):
    s, h, b = d.request("GET", "/metrics")
    check('route="demo_step"' in b.decode(), "/metrics counts route demo_step")


def relabel(src, dst, env):
    """A copy of model file src whose metadata says it was trained on env."""
    import struct
    b = open(src, "rb").read()
    n = struct.unpack("<I", b[12:16])[0]
    meta = json.loads(b[16:16 + n])
    meta["environment"] = env
    m = json.dumps(meta).encode()
    open(dst, "wb").write(b[:12] + struct.pack("<I", len(m)) + m + b[16 + n:])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tmp + "/models"
        train_maze3d(model_dir + "/maze3d.gtm")
        train_model(model_dir + "/imagenav.gtm")
        relabel(model_dir + "/imagenav.gtm", model_dir + "/fake3d.gtm", "maze3d")
        d = Recorder(model_dir, tmp + "/demo.db", "--max-actions", str(MAX_ACTIONS))
        test_models(d)
        test_episodes(d)
        test_memorize(d)
        test_step(d)
        test_bad_inputs(d)
        test_metrics(d)
        check(d.stop() == 0, "SIGTERM: exit 0")
        test_auth(tmp, model_dir)
        test_overload(tmp, model_dir)
        test_shipped(tmp)
        missing = sorted(COVER - SEEN)
        for m in missing:
            print("  not exercised:", m, file=sys.stderr)
        check(COVER and not missing, f"every (path, method, status) of openapi.yaml for {STEP} exercised "
              f"({len(COVER)} of them)")
        extra = sorted(x for x in SEEN - SPEC_ALL if x[2] != 405)
        for x in extra:
            print("  not in openapi.yaml:", x, file=sys.stderr)
        check(not extra, f"every status the tests saw on {', '.join(PATHS)} is in openapi.yaml")
    finish("test_demo_maze3d")


if __name__ == "__main__":
    main()
