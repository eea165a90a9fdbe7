#!/usr/bin/env python3
"""The gtmsm CLI end to end: gen (both environments, NDJSON shape, real PNG
frames, determinism, previews), train (bit-identical across thread counts,
--resume continues exactly), eval (JSON summary keys, determinism, figures)."""
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

BIN = os.path.join(os.environ.get("GTMSM_BIN", "build"), "tools", "gtmsm")
SRC = os.environ.get("GTMSM_SRC", ".")
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr)
    else:
        print("ok:", what)


def run(*args, **kw):
    return subprocess.run([BIN, *args], capture_output=True, check=True, **kw)


def png_shape(b):
    """(width, height, colour type) from a PNG's IHDR, checking the signature."""
    assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h, depth, ctype = struct.unpack(">IIBB", b[16:26])
    return w, h, depth, ctype


def test_gen(tmp):
    out = run("gen", "--env", "imagenav", "--seed", "4", "--steps", "40",
              "--preview", f"{tmp}/nav.png").stdout
    lines = out.decode().splitlines()
    check(len(lines) == 40, "imagenav: 40 lines")
    obs = [json.loads(l) for l in lines]
    check([o["t"] for o in obs] == list(range(40)), "t counts from 0")
    check(obs[0]["action"] == "stay", "first action is the no-op")
    check(all(o["action"] in ("right", "left", "up", "down", "stay") for o in obs), "action names")
    check(all(png_shape(base64.b64decode(o["frame"])) == (8, 8, 8, 2) for o in obs), "8x8 RGB PNG frames")
    check(all(set(o["truth"]) == {"col", "row", "seen_before"} for o in obs), "truth keys")
    check(obs[0]["truth"]["col"] == 4 and obs[0]["truth"]["row"] == 4, "starts at the centre")
    again = run("gen", "--env", "imagenav", "--seed", "4", "--steps", "40").stdout
    check(again == out, "same seed, same bytes")
    other = run("gen", "--env", "imagenav", "--seed", "5", "--steps", "40").stdout
    check(other != out, "other seed, other bytes")
    check(png_shape(open(f"{tmp}/nav.png", "rb").read())[:2] > (0, 0), "imagenav preview written")
    photos = run("gen", "--env", "imagenav", "--images", f"{SRC}/data/worlds/test", "--world", "0",
                 "--steps", "5").stdout.decode().splitlines()
    check(len(photos) == 5, "imagenav on a bundled photo world")

    out = run("gen", "--env", "maze3d", "--scenario", "rotate", "--seed", "2", "--steps", "81",
              "--preview", f"{tmp}/maze.png").stdout
    obs = [json.loads(l) for l in out.decode().splitlines()]
    check(obs[0]["action"] == "none", "maze3d first action is none")
    check(all(png_shape(base64.b64decode(o["frame"])) == (32, 32, 8, 2) for o in obs), "32x32 maze frames")
    check(obs[40]["frame"] == obs[80]["frame"], "rotate: the frame repeats after one turn (40 steps)")
    check({"x", "y", "heading", "d_forward", "d_left", "d_heading"} <= set(obs[1]["truth"]), "pose truth")
    big = run("gen", "--env", "maze3d", "--scenario", "walk", "--size", "64", "--steps", "3").stdout
    check(png_shape(base64.b64decode(json.loads(big.splitlines()[0])["frame"]))[:2] == (64, 64), "64x64 frames")

    # maze3d with the bundled texture set: the same maze, other looks
    maze = ["gen", "--env", "maze3d", "--scenario", "multiroom", "--seed", "3", "--steps", "30"]
    tex = run(*maze, "--textures", f"{SRC}/data/textures", "--preview", f"{tmp}/maze_tex.png")
    tobs = [json.loads(l) for l in tex.stdout.decode().splitlines()]
    pobs = [json.loads(l) for l in run(*maze).stdout.decode().splitlines()]
    check(len(tobs) == 30 and all(png_shape(base64.b64decode(o["frame"])) == (32, 32, 8, 2) for o in tobs),
          "textured maze3d: 30 lines of 32x32 RGB PNG frames")
    check([(o["action"], o["truth"]) for o in tobs] == [(o["action"], o["truth"]) for o in pobs],
          "textures change only the looks: same actions and truths as the procedural maze")
    check(all(a["frame"] != b["frame"] for a, b in zip(tobs, pobs)), "every textured frame differs from the procedural one")
    check(run(*maze, "--textures", f"{SRC}/data/textures").stdout == tex.stdout, "textured: same seed, same bytes")
    check(b"textures: " in tex.stderr and b" images)" in tex.stderr, "textured: the set is announced on stderr")
    check(png_shape(open(f"{tmp}/maze_tex.png", "rb").read())[:2] > (0, 0), "textured preview written")
    os.mkdir(f"{tmp}/no_png")
    bad = subprocess.run([BIN, *maze, "--textures", f"{tmp}/no_png"], capture_output=True)
    check(bad.returncode == 1 and b"no .png files" in bad.stderr and not bad.stdout,
          "a texture folder without PNGs is refused with a message")
    bad = subprocess.run([BIN, "gen", "--env", "imagenav", "--textures", f"{SRC}/data/textures"], capture_output=True)
    check(bad.returncode == 2 and b"maze3d option" in bad.stderr, "--textures with imagenav is refused")
    bad = subprocess.run([BIN, "gen", "--env", "nowhere"], capture_output=True)
    check(bad.returncode == 2 and b"unknown --env" in bad.stderr, "unknown env refused with a message")


TRAIN = ["--batch", "3", "--memorize", "24", "--predict", "8", "--hidden", "16", "--latent", "4",
         "--gate-hidden", "8", "--curriculum", "4", "--memorize-start", "12", "--log-every", "2",
         "--worlds", f"{SRC}/data/worlds/train"]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_train_eval(tmp):
    run("train", "--out", f"{tmp}/a", "--steps", "6", "--threads", "1", "--model-out", f"{tmp}/a.gtm", *TRAIN)
    run("train", "--out", f"{tmp}/b", "--steps", "6", "--threads", "2", "--model-out", f"{tmp}/b.gtm", *TRAIN)
    check(sha(f"{tmp}/a.gtm") == sha(f"{tmp}/b.gtm"), "training is bit-identical for 1 and 2 threads")
    run("train", "--out", f"{tmp}/c", "--steps", "3", "--model-out", f"{tmp}/c.gtm", *TRAIN)
    r = run("train", "--out", f"{tmp}/c", "--steps", "6", "--resume", "--model-out", f"{tmp}/c.gtm")
    check(b"resuming" in r.stderr, "resume announced")
    check(sha(f"{tmp}/c.gtm") == sha(f"{tmp}/a.gtm"), "3 + 3 resumed steps equal 6 straight")
    check(b"steps/s" in r.stderr and b"ETA" in r.stderr, "progress line with rate and ETA")
    rows = open(f"{tmp}/c/train.csv").read().splitlines()
    check(len(rows) == 7 and rows[0].startswith("step,loss"), "train.csv has a header and 6 rows")

    args = ["eval", "--model", f"{tmp}/a.gtm", "--env", "imagenav", "--images", f"{SRC}/data/worlds/test",
            "--episodes", "4", "--seed", "9", "--memorize", "64", "--predict", "40", "--json"]
    e1 = run(*args, "--out", f"{tmp}/eval").stdout
    e2 = run(*args, "--threads", "1").stdout
    check(e1 == e2, "eval is deterministic and thread-independent")
    j = json.loads(e1)
    check(j["episodes"] == 4 and j["memorize"] == 64 and j["predict"] == 40, "eval header")
    for k in ("model", "oracle", "no_memory"):
        check(set(j["psnr"][k]) == {"all", "steps_1_32", "steps_200_256", "visited", "unvisited",
                                    "visited_200_256"}, f"psnr keys of {k}")
        check(j["psnr"][k]["steps_200_256"] is None, f"{k}: steps 200-256 are null when predicting 40")
    check(set(j["position_error"]) == {"mean", "final"}, "position error keys")
    csv = open(f"{tmp}/eval/psnr.csv").read().splitlines()
    check(len(csv) == 41 and csv[0] == "step,model,oracle,no_memory,visited_share", "psnr.csv")
    check(png_shape(open(f"{tmp}/eval/psnr.png", "rb").read())[:2] == (640, 360), "psnr plot PNG")
    check(os.path.exists(f"{tmp}/eval/strip_0.png"), "strip written")
    # offline prediction from an episode file
    ep = run("gen", "--env", "imagenav", "--seed", "3", "--steps", "40").stdout
    with open(f"{tmp}/ep.ndjson", "wb") as f:
        f.write(ep)
    p = run("predict", "--model", f"{tmp}/a.gtm", "--episode", f"{tmp}/ep.ndjson", "--memorize", "30",
            "--out", f"{tmp}/pred.png", "--ndjson").stdout.decode().splitlines()
    check(len(p) == 10, "predict: one line per remaining action")
    first = json.loads(p[0])
    check(first["action"] == json.loads(ep.splitlines()[30])["action"] and len(first["state"]) == 2,
          "predict: actions of the episode, 2-D state")
    check(png_shape(base64.b64decode(first["png"])) == (8, 8, 8, 2), "predict: PNG frames")
    check(os.path.exists(f"{tmp}/pred.png"), "predict: strip written")
    p2 = run("predict", "--model", f"{tmp}/a.gtm", "--episode", f"{tmp}/ep.ndjson", "--actions",
             "left,left,up", "--ndjson").stdout.decode().splitlines()
    check([json.loads(l)["action"] for l in p2] == ["left", "left", "up"], "predict --actions")
    again = run("predict", "--model", f"{tmp}/a.gtm", "--episode", f"{tmp}/ep.ndjson", "--actions",
                "left,left,up", "--ndjson").stdout.decode().splitlines()
    check(again == p2, "predict is deterministic")
    bad = subprocess.run([BIN, "predict", "--model", f"{tmp}/a.gtm", "--episode", f"{tmp}/ep.ndjson",
                          "--actions", "jump"], capture_output=True)
    check(bad.returncode == 1 and b"unknown action 'jump'" in bad.stderr, "predict: unknown action refused")
    bad = subprocess.run([BIN, "eval", "--model", f"{tmp}/nope.gtm"], capture_output=True)
    check(bad.returncode == 1 and b"cannot open" in bad.stderr, "missing model: clear message")


MAZE3D_TRAIN = ["--env", "maze3d", "--scenario", "rotate", "--episode", "80", "--memorize", "33",
                "--predict", "16", "--vae", "conv", "--latent", "8", "--channels", "4", "--transition", "rot3d",
                "--keymap", "periodic", "--prior", "mlp", "--prior-hidden", "16", "--k", "4", "--still", "0",
                "--wallfree", "0", "--curriculum", "0", "--batch", "2"]


def test_maze3d(tmp):
    """The rotating agent end to end on a tiny model: train (thread-independent, resumable), eval."""
    run("train", "--out", f"{tmp}/r1", "--steps", "4", "--threads", "1", "--model-out", f"{tmp}/r1.gtm", *MAZE3D_TRAIN)
    run("train", "--out", f"{tmp}/r2", "--steps", "2", "--threads", "2", "--model-out", f"{tmp}/r2.gtm", *MAZE3D_TRAIN)
    r = run("train", "--out", f"{tmp}/r2", "--steps", "4", "--resume", "--model-out", f"{tmp}/r2.gtm")
    check(b"maze3d rotate" in r.stderr or b"resuming" in r.stderr, "maze3d training resumed")
    check(sha(f"{tmp}/r1.gtm") == sha(f"{tmp}/r2.gtm"), "maze3d: 2 + 2 resumed steps on 2 threads equal 4 on 1")
    args = ["eval", "--model", f"{tmp}/r1.gtm", "--env", "maze3d", "--scenario", "rotate", "--episodes", "3",
            "--seed", "4", "--memorize", "33", "--predict", "47", "--json"]
    e1 = run(*args, "--out", f"{tmp}/reval").stdout
    e2 = run(*args, "--threads", "1").stdout
    check(e1 == e2, "maze3d eval is deterministic and thread-independent")
    j = json.loads(e1)
    check(j["env"] == "maze3d" and j["scenario"] == "rotate" and j["memorize"] == 33 and j["predict"] == 47,
          "maze3d eval header")
    for k in ("model", "reconstruction", "nearest_view", "last_frame", "no_memory"):
        check(set(j["psnr"][k]) == {"all", "seen", "unseen", "steps"} and len(j["psnr"][k]["steps"]) == 47,
              f"maze3d psnr keys of {k}")
    # a full turn is 40 steps: predicted steps 40-72 revisit memorized headings, and the
    # renderer quantises headings, so copying the nearest view is exact there
    check(j["psnr"]["nearest_view"]["seen"] == 60.0, "seen steps: the nearest view is the same frame")
    check(set(j["heading_error_deg"]) == {"mean", "final", "scale"}, "heading error keys")
    for f in ("psnr.csv", "psnr.png", "strip_0.png", "heading.png", "map_0.png"):
        check(os.path.exists(f"{tmp}/reval/{f}"), f"maze3d eval wrote {f}")
    with open(f"{tmp}/reval/map_0.png", "rb") as f:
        head = f.read(24)
    check(head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") >= 300,
          "the map figure is a PNG at least 300 pixels wide")
    tex = run(*args, "--textures", f"{SRC}/data/textures").stdout
    check(json.loads(tex)["textures"] == f"{SRC}/data/textures" and tex != e1, "maze3d eval on the bundled textures")


with tempfile.TemporaryDirectory() as tmp:
    test_gen(tmp)
    test_train_eval(tmp)
    test_maze3d(tmp)
print(f"test_cli: {failures} failure(s)")
sys.exit(1 if failures else 0)
