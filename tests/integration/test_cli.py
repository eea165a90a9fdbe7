#!/usr/bin/env python3
"""The gtmsm CLI end to end: gen (both environments, NDJSON shape, real PNG
frames, determinism, previews), train (bit-identical across thread counts,
--resume continues exactly, also after SIGINT / SIGTERM; --out made with its
parents), eval (JSON summary keys, determinism, figures), training and
evaluation on recorded episodes (--episodes) and their errors, landmark
inference with obstacles (train, resume, eval, the loss going down), and usage
errors (exit 2) in every subcommand."""
import base64
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(os.path.join(os.environ.get("GTMSM_BIN", "build"), "tools", "gtmsm"))
SRC = os.path.abspath(os.environ.get("GTMSM_SRC", "."))
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


LANDMARK_TRAIN = ["--env", "imagenav", "--obstacles", "10", "--landmarks", "--disp-weight", "1",
                  "--trans-std", "0.3", "--wallfree", "0", "--curriculum", "0", "--batch", "4", "--memorize", "64",
                  "--predict", "16", "--hidden", "64", "--log-every", "20"]


def test_landmarks(tmp):
    """Appendix D: a landmark model trains with obstacles, its loss goes down,
    --resume continues it exactly, and eval reports the usual JSON."""
    run("train", "--out", f"{tmp}/l1", "--steps", "80", "--threads", "2", "--model-out", f"{tmp}/l1.gtm",
        *LANDMARK_TRAIN)
    run("train", "--out", f"{tmp}/l2", "--steps", "40", "--threads", "1", "--model-out", f"{tmp}/l2.gtm",
        *LANDMARK_TRAIN)
    r = run("train", "--out", f"{tmp}/l2", "--steps", "80", "--resume", "--model-out", f"{tmp}/l2.gtm")
    check(b"landmarks: kl_s" in r.stderr, "landmark terms logged")
    check(sha(f"{tmp}/l1.gtm") == sha(f"{tmp}/l2.gtm"), "landmarks: 40 + 40 resumed steps equal 80 straight")
    rows = [l.split(",") for l in open(f"{tmp}/l1/train.csv").read().splitlines()]
    check(rows[0][-2:] == ["kl_s", "displacement"], "train.csv has the landmark columns")
    loss = [float(r[1]) for r in rows[1:]]
    first, last = sum(loss[:10]) / 10, sum(loss[-10:]) / 10
    check(last < first, f"landmarks: the loss goes down ({first:.1f} -> {last:.1f})")
    meta = open(f"{tmp}/l1.gtm", "rb").read()
    check(b'"inference": "landmark"' in meta, "the model file says landmark inference")
    args = ["eval", "--model", f"{tmp}/l1.gtm", "--env", "imagenav", "--obstacles", "10", "--episodes", "4",
            "--memorize", "64", "--predict", "40", "--json"]
    e1 = run(*args).stdout
    e2 = run(*args, "--threads", "1").stdout
    check(e1 == e2, "landmark eval is deterministic and thread-independent")
    j = json.loads(e1)
    for k in ("model", "oracle", "no_memory"):
        check({"all", "visited", "steps_200_256"} <= set(j["psnr"][k]), f"landmark eval: psnr keys of {k}")
    check(set(j["position_error"]) == {"mean", "final"}, "landmark eval: position error keys")
    check(j["obstacles"] == 10 and j["obstacles_in_prediction"] is False and j["random_start"] is False,
          "eval JSON names its environment (obstacles, random start)")
    j = json.loads(run(*args, "--obstacles-in-prediction", "--random-start").stdout)
    check(j["obstacles_in_prediction"] is True and j["random_start"] is True,
          "--obstacles-in-prediction and --random-start in the JSON")

    # --init: an actions-only model gains landmark inference, --freeze keeps its VAE and transition
    base = [a for a in LANDMARK_TRAIN if a not in ("--landmarks",)]
    run("train", "--out", f"{tmp}/b0", "--steps", "20", "--model-out", f"{tmp}/b0.gtm", *base)
    r = run("train", "--out", f"{tmp}/b1", "--steps", "20", "--model-out", f"{tmp}/b1.gtm", "--init", f"{tmp}/b0.gtm",
            "--freeze", "vae,transition", *LANDMARK_TRAIN)
    check(b"20 of 28 tensors; as initialised: lm.w1, lm.b1, lm.w2, lm.b2, lm.vw, lm.vb, lm.fail, lm.lv" in r.stderr,
          "--init copies the 20 tensors of the same name and says which are new")
    meta = open(f"{tmp}/b1.gtm", "rb").read()
    check(f'"init": "{tmp}/b0.gtm"'.encode() in meta and b'"freeze": 3' in meta, "the model file records --init and --freeze")
    ev = ["eval", "--env", "imagenav", "--episodes", "3", "--memorize", "64", "--predict", "16", "--json"]
    e0, e1 = (json.loads(run(*ev, "--model", f"{tmp}/{m}.gtm").stdout)["psnr"] for m in ("b0", "b1"))
    check(e0["oracle"] == e1["oracle"] and e0["no_memory"] == e1["no_memory"],
          "--freeze vae: the reconstructions and the prior mean are the base model's to the bit")
    fails(["train", "--out", f"{tmp}/b2", "--init", f"{tmp}/b0.gtm", "--hidden", "32", "--steps", "1"], 2,
          "has 12288 floats, this model's 6144", "--init of another architecture exits 2")
    fails(["train", "--out", f"{tmp}/b3", "--freeze", "vae,wings", "--steps", "1"], 2, "--freeze vae,wings: roles are",
          "--freeze with an unknown role exits 2")
    for extra in (["--episodes", "x.ndjson"], ["--from-db", "x.db"], ["--init", f"{tmp}/b0.gtm"], ["--freeze", "vae"]):
        fails(["train", "--out", f"{tmp}/b1", "--resume", *extra], 2, "--resume continues with the checkpoint's data",
              f"--resume with {extra[0]} exits 2 (it would be ignored)")


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

    # recorded maze3d episodes: train on them, evaluate with the rotate protocol
    recs = []
    for seed in (2, 3):
        recs.append(f"{tmp}/maze{seed}.ndjson")
        with open(recs[-1], "wb") as f:
            f.write(run("gen", "--env", "maze3d", "--scenario", "rotate", "--seed", str(seed), "--steps", "90").stdout)
    run("train", "--out", f"{tmp}/mr", "--steps", "2", "--model-out", f"{tmp}/mr.gtm", *MAZE3D_TRAIN,
        "--episodes", *recs)
    j = json.loads(run("eval", "--model", f"{tmp}/mr.gtm", "--env", "maze3d", "--episodes", *recs, "--memorize", "33",
                       "--predict", "47", "--json", "--out", f"{tmp}/mreval").stdout)
    check(j["episodes"] == 2 and j["truth"] is True and j["psnr"]["nearest_view"]["seen"] == 60.0
          and j["heading_error_deg"]["mean"] is not None, "maze3d recordings: the rotate protocol with truth")
    for f in ("psnr.csv", "psnr.png", "strip_0.png", "heading.png"):
        check(os.path.exists(f"{tmp}/mreval/{f}"), f"maze3d recordings: eval wrote {f}")
    with open(f"{tmp}/maze_nt.ndjson", "w") as f:
        for line in open(recs[0]):
            o = json.loads(line)
            del o["truth"]
            f.write(json.dumps(o) + "\n")
    j = json.loads(run("eval", "--model", f"{tmp}/mr.gtm", "--env", "maze3d", "--episodes", f"{tmp}/maze_nt.ndjson",
                       "--memorize", "33", "--predict", "47", "--json").stdout)
    check(j["truth"] is False and j["psnr"]["nearest_view"]["all"] is None and j["psnr"]["model"]["all"] is not None
          and j["psnr"]["last_frame"]["all"] is not None and j["heading_error_deg"]["mean"] is None
          and j["position_error"]["final"] is None, "maze3d recordings without truth: no pose metrics")
    walk = [a if a != "rot3d" else "walk3d" for a in MAZE3D_TRAIN]
    run("train", "--out", f"{tmp}/mw", "--steps", "1", *walk, "--disp-weight", "1", "--episodes", *recs)
    r = subprocess.run([BIN, "train", "--out", f"{tmp}/mw2", "--steps", "1", *walk, "--disp-weight", "1",
                        "--episodes", f"{tmp}/maze_nt.ndjson"], capture_output=True)
    check(r.returncode == 2 and b"--disp-weight needs the displacement truth" in r.stderr,
          "walk3d --disp-weight: recordings without the displacement truth refused")
    r = subprocess.run([BIN, "train", "--out", f"{tmp}/mw3", "--steps", "1", *MAZE3D_TRAIN[2:], "--episodes", recs[0]],
                       capture_output=True)
    check(r.returncode == 1 and b"unknown action 'none'" in r.stderr and b"--env maze3d" in r.stderr,
          "maze3d recordings under --env imagenav: the action and the fix named")


def fails(args, code, needle, what):
    """Runs gtmsm with args; checks the exit code and that stderr holds needle."""
    r = subprocess.run([BIN, *args], capture_output=True)
    check(r.returncode == code and needle.encode() in r.stderr,
          f"{what} (exit {r.returncode}, want {code}: {r.stderr.decode(errors='replace').strip()[:200]})")
    return r


def test_usage(tmp):
    """Usage errors exit 2 in every subcommand: an unknown option, a missing value."""
    for cmd in ("gen", "train", "eval", "predict"):
        fails([cmd, "--bogus"], 2, "unknown option '--bogus'", f"{cmd}: unknown option exits 2")
        fails([cmd, "--seed"], 2, "--seed needs a value", f"{cmd}: missing value exits 2")
        fails([cmd, "--seed", "x"], 2, "not a valid", f"{cmd}: bad value exits 2")
    fails(["eval"], 2, "--model is required", "eval: missing --model exits 2")
    fails(["predict", "--model", "m.gtm"], 2, "are required", "predict: missing --episode exits 2")
    fails(["train", "--episodes"], 2, "needs at least one value", "train: --episodes without a file exits 2")
    fails(["train", "--session", "a", "--out", f"{tmp}/u"], 2, "--session and --db-model need --from-db",
          "train: --session without --from-db exits 2")
    fails(["train", "--out", f"{tmp}/u", "--vae", "rnn"], 2, "--vae must be", "train: bad --vae exits 2")
    fails(["train", "--out", f"{tmp}/u", "--env", "mars"], 2, "--env must be", "train: bad --env exits 2")
    for cmd, more in (("gen", []), ("train", ["--out", f"{tmp}/u"]), ("eval", ["--model", "m.gtm"])):
        fails([cmd, "--env", "maze3d", "--scenario", "moon", *more], 2, "unknown --scenario 'moon'",
              f"{cmd}: unknown --scenario exits 2")
    fails(["nothing"], 2, "unknown command", "unknown subcommand exits 2")


def test_out_parents(tmp):
    """The README's training command on a fresh clone: no runs/ folder yet."""
    cwd = f"{tmp}/fresh"
    os.mkdir(cwd)
    subprocess.run([BIN, "train", "--out", "runs/imagenav", "--worlds", f"{SRC}/data/worlds/train",
                    "--model-out", "runs/imagenav/imagenav.gtm", "--steps", "2", *TRAIN], cwd=cwd,
                   capture_output=True, check=True)
    check(os.path.exists(f"{cwd}/runs/imagenav/imagenav.gtm") and os.path.exists(f"{cwd}/runs/imagenav/train.csv"),
          "train --out runs/imagenav creates runs/ and the run folder")
    subprocess.run([BIN, "train", "--out", "a/b/c", "--model-out", "m/n/x.gtm", "--steps", "1", *TRAIN], cwd=cwd,
                   capture_output=True, check=True)
    check(os.path.exists(f"{cwd}/a/b/c/checkpoint.bin") and os.path.exists(f"{cwd}/m/n/x.gtm"),
          "--out and --model-out folders are created with their parents")
    open(f"{cwd}/file", "w").close()
    fails(["train", "--out", f"{cwd}/file/run", "--steps", "1", *TRAIN], 1, "cannot create folder",
          "an --out under a file: a clear error")


def test_interrupt(tmp):
    """SIGINT / SIGTERM during training write a checkpoint; --resume then ends where
    an uninterrupted run of the same total steps ends, byte for byte."""
    steps = "1500"
    args = ["--steps", steps, "--threads", "1", "--log-every", "1", *TRAIN]
    run("train", "--out", f"{tmp}/whole", "--model-out", f"{tmp}/whole.gtm", *args)
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        out = f"{tmp}/cut_{sig.name}"
        p = subprocess.Popen([BIN, "train", "--out", out, "--model-out", f"{out}.gtm", *args],
                             stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline:  # a few updates in, well before the end
            try:
                if len(open(f"{out}/train.csv").read().splitlines()) > 20:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        p.send_signal(sig)
        err = p.communicate(timeout=60)[1]
        at = [l for l in err.decode().splitlines() if "checkpoint written" in l]
        check(p.returncode == code and at, f"{sig.name}: exit {code} after writing a checkpoint ({p.returncode})")
        if not at:
            continue
        cut = int(at[0].split(" at step ")[1].split()[0])
        check(0 < cut < int(steps), f"{sig.name}: interrupted mid-run (step {cut} of {steps})")
        r = run("train", "--out", out, "--steps", steps, "--threads", "1", "--resume", "--model-out", f"{out}.gtm")
        check(f"at step {cut} of {steps}".encode() in r.stderr, f"{sig.name}: resumed where it stopped")
        check(sha(f"{out}/checkpoint.bin") == sha(f"{tmp}/whole/checkpoint.bin"),
              f"{sig.name}: interrupted + resumed checkpoint is byte-identical to the uninterrupted one")
        check(sha(f"{out}.gtm") == sha(f"{tmp}/whole.gtm"), f"{sig.name}: and so is the model file")
        rows = open(f"{out}/train.csv").read().splitlines()
        whole = open(f"{tmp}/whole/train.csv").read().splitlines()
        strip = lambda rs: [r.rsplit(",", 1)[0] for r in rs]  # all but the seconds column
        check(strip(rows) == strip(whole), f"{sig.name}: the same loss lines, none lost or repeated")


REC_TRAIN = ["--batch", "3", "--memorize", "24", "--predict", "8", "--hidden", "16", "--latent", "4",
             "--gate-hidden", "8", "--curriculum", "4", "--memorize-start", "12", "--log-every", "2"]


def test_recordings(tmp):
    """train / eval on recorded NDJSON episodes, as gen prints them."""
    d = f"{tmp}/rec"
    os.mkdir(d)
    eps = []
    for seed, n in ((7, 120), (8, 90), (9, 20)):
        with open(f"{d}/ep{seed}.ndjson", "wb") as f:
            f.write(run("gen", "--env", "imagenav", "--seed", str(seed), "--steps", str(n)).stdout)
        eps.append(f"{d}/ep{seed}.ndjson")
    a = run("train", "--out", f"{d}/a", "--episodes", *eps, "--steps", "6", "--threads", "1",
            "--model-out", f"{d}/a.gtm", *REC_TRAIN)
    check(b"windows of 3 recordings" in a.stderr and b"ep9.ndjson: 20 steps, shorter than a window" in a.stderr,
          "train --episodes: the recordings announced, the short one noted")
    run("train", "--out", f"{d}/b", "--episodes", *eps, "--steps", "6", "--threads", "2",
        "--model-out", f"{d}/b.gtm", *REC_TRAIN)
    check(sha(f"{d}/a.gtm") == sha(f"{d}/b.gtm"), "recordings: bit-identical for 1 and 2 threads")
    run("train", "--out", f"{d}/c", "--episodes", *eps, "--steps", "3", "--model-out", f"{d}/c.gtm", *REC_TRAIN)
    r = run("train", "--out", f"{d}/c", "--steps", "6", "--resume", "--model-out", f"{d}/c.gtm")
    check(sha(f"{d}/c.gtm") == sha(f"{d}/a.gtm"), "recordings: 3 + 3 resumed steps equal 6 straight")
    run("train", "--out", f"{d}/o", "--episodes", eps[1], "--steps", "6", "--threads", "1",
                "--model-out", f"{d}/o.gtm", *REC_TRAIN)
    check(sha(f"{d}/o.gtm") != sha(f"{d}/a.gtm"), "other recordings, another model")

    # many recordings: the checkpoint names them all, the model file (4 KiB of metadata) counts them
    many = []
    for i in range(60):
        many.append(f"{d}/{'long-recording-name-' * 4}{i:03d}.ndjson")
        os.symlink(eps[1], many[-1])
    run("train", "--out", f"{d}/many", "--episodes", *many, "--steps", "1", "--model-out", f"{d}/many.gtm",
        *REC_TRAIN)
    run("predict", "--model", f"{d}/many.gtm", "--episode", eps[1], "--memorize", "80")
    r = run("train", "--out", f"{d}/many", "--steps", "2", "--resume")
    check(b"windows of 60 recordings" in r.stderr, "60 recordings: the model file loads, --resume reads all 60")

    ev = ["eval", "--model", f"{d}/a.gtm", "--episodes", eps[0], eps[1], "--memorize", "60", "--predict", "30",
          "--json"]
    e1 = run(*ev, "--out", f"{d}/eval/deep").stdout
    e2 = run(*ev, "--threads", "1").stdout
    check(e1 == e2, "eval --episodes: deterministic and thread-independent")
    j = json.loads(e1)
    check(j["episodes"] == 2 and j["truth"] is True and j["recordings"] == eps[:2], "eval --episodes header")
    check(all(j["psnr"][k]["all"] is not None for k in ("model", "oracle", "no_memory")),
          "with truth: model, oracle and no_memory")
    check(j["position_error"]["mean"] is not None, "with truth: position error")
    for f in ("psnr.csv", "psnr.png", "strip_0.png", "strip_1.png"):
        check(os.path.exists(f"{d}/eval/deep/{f}"), f"eval --episodes wrote {f} (--out with parents)")
    # without truth: only what needs none
    with open(f"{d}/notruth.ndjson", "w") as f:
        for line in open(eps[0]):
            o = json.loads(line)
            del o["truth"]
            f.write(json.dumps(o) + "\n")
    j = json.loads(run("eval", "--model", f"{d}/a.gtm", "--episodes", f"{d}/notruth.ndjson", "--memorize", "60",
                       "--predict", "30", "--json").stdout)
    check(j["truth"] is False and j["psnr"]["model"]["all"] is not None and j["psnr"]["oracle"]["all"] is None
          and j["position_error"]["mean"] is None, "without truth: no oracle, no position metrics")
    # an integer count still means simulated episodes
    j = json.loads(run("eval", "--model", f"{d}/a.gtm", "--episodes", "2", "--memorize", "30", "--predict", "10",
                       "--json").stdout)
    check(j["episodes"] == 2 and "recordings" not in j, "eval --episodes 2: two simulated episodes")

    # bad recordings: the file and line in the message
    lines = open(eps[0]).read().splitlines()
    def bad(name, body, needle, what, code=1, cmd="train"):
        with open(f"{d}/{name}", "w") as f:
            f.write(body)
        args = ["train", "--out", f"{d}/bad", "--episodes", f"{d}/{name}", *REC_TRAIN] if cmd == "train" else \
            ["eval", "--model", f"{d}/a.gtm", "--episodes", f"{d}/{name}", "--memorize", "10", "--predict", "5"]
        fails(args, code, needle, what)
    bad("gap.ndjson", "\n".join(lines[:3] + lines[4:40]) + "\n", "gap.ndjson:4: t=4 after t=2: a gap", "a gap in t")
    bad("repeat.ndjson", "\n".join(lines[:3] + lines[2:40]) + "\n", "repeat.ndjson:4: t=2 after t=2: a repeat",
        "a repeated t")
    o = json.loads(lines[5]); o["action"] = "jump"
    bad("act.ndjson", "\n".join(lines[:5] + [json.dumps(o)] + lines[6:40]) + "\n",
        "act.ndjson:6: unknown action 'jump'", "an unknown action")
    o = json.loads(lines[5]); o["frame"] = "!!!notbase64"
    bad("b64.ndjson", "\n".join(lines[:5] + [json.dumps(o)]) + "\n", "b64.ndjson:6:", "bad base64")
    o = json.loads(lines[5]); o["frame"] = base64.b64encode(b"not a png at all").decode()
    bad("png.ndjson", "\n".join(lines[:5] + [json.dumps(o)]) + "\n", "png.ndjson:6:", "bad PNG")
    big = json.loads(run("gen", "--env", "maze3d", "--steps", "1").stdout)
    o = json.loads(lines[5]); o["frame"] = big["frame"]
    bad("mixed.ndjson", "\n".join(lines[:5] + [json.dumps(o)]) + "\n", "mixed.ndjson:6: frame is 32x32",
        "mixed frame sizes")
    bad("json.ndjson", "\n".join(lines[:2]) + "\n{oops\n", "json.ndjson:3: not JSON", "a line that is not JSON")
    bad("empty.ndjson", "", "empty.ndjson: no observations", "an empty recording")
    o = json.loads(lines[5]); del o["truth"]
    bad("half.ndjson", "\n".join(lines[:5] + [json.dumps(o)]) + "\n", "half.ndjson:6: truth missing here",
        "truth on some steps only")
    bad("gap2.ndjson", "\n".join(lines[:3] + lines[4:40]) + "\n", "gap2.ndjson:4: t=4 after t=2", "eval: a gap in t",
        cmd="eval")
    fails(["train", "--out", f"{d}/bad", "--episodes", eps[0], f"{d}/missing.ndjson", *REC_TRAIN], 2,
          f"{d}/missing.ndjson", "a missing recording exits 2 with its path")
    fails(["eval", "--model", f"{d}/a.gtm", "--episodes", f"{d}/missing.ndjson"], 2, f"{d}/missing.ndjson",
          "eval: a missing recording exits 2 with its path")
    os.mkdir(f"{d}/adir.ndjson")
    fails(["train", "--out", f"{d}/bad", "--episodes", f"{d}/adir.ndjson", *REC_TRAIN], 2, f"{d}/adir.ndjson",
          "an unreadable recording (a folder) exits 2 with its path")
    fails(["train", "--out", f"{d}/bad", "--episodes", eps[2], *REC_TRAIN], 2, "no recording holds",
          "recordings all shorter than a window: refused")
    fails(["eval", "--model", f"{d}/a.gtm", "--episodes", eps[0], "--memorize", "100", "--predict", "30"], 2,
          "holds 120 steps", "eval: a recording shorter than memorize + predict names the file")


with tempfile.TemporaryDirectory() as tmp:
    test_gen(tmp)
    test_train_eval(tmp)
    test_landmarks(tmp)
    test_maze3d(tmp)
    test_usage(tmp)
    test_out_parents(tmp)
    test_recordings(tmp)
    test_interrupt(tmp)
print(f"test_cli: {failures} failure(s)")
sys.exit(1 if failures else 0)
