#!/usr/bin/env python3
"""gtmsmd serving 3-D models beside the 2-D one (a real daemon, real port,
real SQLite file): the rotating agent (models/maze3d_rotate.gtm when shipped,
else a tiny model of the same architecture trained here) and the walking
agent (models/maze3d_walk.gtm when shipped, else a tiny one), whose transition
carries its own state (the velocity Delta).

Checks: GET /v1/models/{name} tells the parts, scenario, 32x32 RGB frames,
the 9 action names (the 8 Labyrinth actions and "none") and state 3; a maze3d
episode from `gtmsm gen` is accepted; predictions are 32x32 PNGs with 3-D
states; and for both models the predictions are byte-identical after a
restart and after export/import under another id, which for the walker means
Delta is persisted with the session, exported and imported bit for bit. With
the shipped walker: after 150 observed steps of a held-out walk episode its
predictions of the next 30 frames (the episode's own actions) are at least
3 dB closer to the true frames than those of a session with an empty memory."""
import base64
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import GTMSM, SRC, Daemon, check, finish, png_size  # noqa: E402
from test_demo import png_rgb  # noqa: E402

ARCH = ["--env", "maze3d", "--vae", "conv", "--latent", "8", "--channels", "4", "--keymap", "periodic",
        "--prior", "mlp", "--prior-hidden", "16", "--k", "4", "--still", "0", "--wallfree", "0",
        "--curriculum", "0", "--batch", "1", "--threads", "1", "--steps", "2"]
ACTIONS = ["forward", "backward", "strafe_left", "strafe_right", "turn_left", "turn_right",
           "forward_turn_left", "forward_turn_right", "none"]


def train(tmp, name, scenario, transition, memorize, predict, episode):
    path = f"{tmp}/models/{name}.gtm"
    subprocess.run([GTMSM, "train", *ARCH, "--scenario", scenario, "--transition", transition,
                    "--memorize", str(memorize), "--predict", str(predict), "--episode", str(episode),
                    "--out", f"{tmp}/run_{name}", "--model-out", path], check=True, capture_output=True)
    return path


def gen(scenario, seed, steps):
    return subprocess.run([GTMSM, "gen", "--env", "maze3d", "--scenario", scenario, "--seed", str(seed),
                           "--steps", str(steps)], check=True, capture_output=True).stdout


def psnr(a, b):
    """PSNR (dB, frames in [0, 1]) of two equal byte strings of pixels."""
    mse = sum((x - y) ** 2 for x, y in zip(a, b)) / len(a) / 255.0 ** 2
    return 99.0 if mse == 0 else -10 * math.log10(mse)


def strip_frames(png, n):
    """The n 32x32 frames of a prediction strip, each as RGB bytes."""
    _, _, rows = png_rgb(png)
    return [b"".join(r[96 * k:96 * (k + 1)] for r in rows) for k in range(n)]


def predict(d, sid, actions, accept="image/png"):
    return d.request("POST", f"/v1/sessions/{sid}/predictions", {"actions": actions}, {"Accept": accept})


def main():
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(f"{tmp}/models")
        shipped = os.path.join(SRC, "models", "maze3d_rotate.gtm")
        if os.path.exists(shipped):
            shutil.copy(shipped, f"{tmp}/models/maze3d_rotate.gtm")
            print("using the shipped models/maze3d_rotate.gtm")
        else:
            train(tmp, "maze3d_rotate", "rotate", "rot3d", 33, 16, 80)
            print("models/maze3d_rotate.gtm not shipped yet: a tiny model of its architecture")
        shipped_walk = os.path.join(SRC, "models", "maze3d_walk.gtm")
        if os.path.exists(shipped_walk):
            shutil.copy(shipped_walk, f"{tmp}/models/walker.gtm")
            print("using the shipped models/maze3d_walk.gtm as the walker")
        else:
            train(tmp, "walker", "walk", "walk3d", 40, 8, 60)
            print("models/maze3d_walk.gtm not shipped yet: a tiny walker")
        shutil.copy(os.path.join(SRC, "models", "imagenav.gtm"), f"{tmp}/models/imagenav.gtm")
        db = f"{tmp}/g.db"
        d = Daemon(f"{tmp}/models", db)
        s, _, models = d.json("GET", "/v1/models")
        names = sorted(m["name"] for m in models["models"])
        check(s == 200 and names == ["imagenav", "maze3d_rotate", "walker"], f"three models served: {names}")
        s, _, m = d.json("GET", "/v1/models/maze3d_rotate")
        check(s == 200 and m["frame_width"] == 32 and m["frame_height"] == 32 and m["frame_channels"] == 3
              and m["actions"] == ACTIONS and m["state_size"] == 3 and m["environment"] == "maze3d"
              and m["scenario"] == "rotate" and m["memory_k"] == 4, "rotate model description")
        check(m["parts"] == {"vae": "conv", "transition": "rot3d", "keymap": "periodic", "prior": "mlp"},
              f"rotate parts: {m['parts']}")
        s, _, w = d.json("GET", "/v1/models/walker")
        check(s == 200 and w["parts"]["transition"] == "walk3d" and w["scenario"] == "walk", "walker description")

        runs = {"maze3d_rotate": ("rotate", ["turn_left"] * 12 + ["turn_right"] * 3, 33),
                "walker": ("walk", ["forward", "forward_turn_left", "forward", "strafe_left", "turn_right"] * 3, 40)}
        before = {}
        for model, (scenario, acts, n) in runs.items():
            sid = f"s-{model}"
            s, _, _ = d.json("PUT", f"/v1/sessions/{sid}", {"model": model})
            check(s == 201, f"{model}: session created")
            ep = gen(scenario, 5, n)
            s, _, b = d.request("POST", f"/v1/sessions/{sid}/observations", ep,
                                {"Content-Type": "application/x-ndjson"})
            check(s == 200 and json.loads(b)["steps"] == n, f"{model}: {n} observations of a {scenario} episode")
            s, h, png = predict(d, sid, acts)
            check(s == 200 and h["content-type"] == "image/png" and png_size(png) == (32 * len(acts), 32),
                  f"{model}: a strip of {len(acts)} 32x32 predictions")
            s, _, j = d.json("POST", f"/v1/sessions/{sid}/predictions", {"actions": acts[:2]},
                             {"Accept": "application/json"})
            check(s == 200 and len(j["frames"][0]["state"]) == 3, f"{model}: 3-D states in JSON predictions")
            before[model] = png
            s, _, dump = d.json("GET", f"/v1/sessions/{sid}/export")
            check(s == 200 and len(dump["state"]) == 3, f"{model}: export")
            if model == "walker":
                check(len(dump.get("transition_state", [])) == 3 and any(dump["transition_state"]),
                      "walker: the export carries Delta")
            else:
                check("transition_state" not in dump, "rotate: no transition state")
            s, _, _ = d.json("POST", f"/v1/sessions/import?id=copy-{model}", dump)
            check(s == 201, f"{model}: imported under another id")
            s, _, png2 = predict(d, f"copy-{model}", acts)
            check(png2 == png, f"{model}: the imported copy predicts the same bytes")
        if os.path.exists(shipped_walk):
            # quality of the shipped walker through the daemon, against an empty memory
            lines = gen("walk", 4242, 180).splitlines()
            acts = [json.loads(x)["action"] for x in lines[150:]]
            true = [png_rgb(base64.b64decode(json.loads(x)["frame"]))[2] for x in lines[150:]]
            true = [b"".join(rows) for rows in true]
            for sid, obs in (("q-walk", b"\n".join(lines[:150]) + b"\n"), ("q-empty", None)):
                s, _, _ = d.json("PUT", f"/v1/sessions/{sid}", {"model": "walker"})
                if obs:
                    s, _, _ = d.request("POST", f"/v1/sessions/{sid}/observations", obs,
                                        {"Content-Type": "application/x-ndjson"})
            got = {}
            for sid in ("q-walk", "q-empty"):
                s, _, png = predict(d, sid, acts)
                got[sid] = sum(psnr(p, t) for p, t in zip(strip_frames(png, len(acts)), true)) / len(acts)
            check(got["q-walk"] >= got["q-empty"] + 3,
                  f"shipped walker: 30 predicted frames at {got['q-walk']:.2f} dB, empty memory {got['q-empty']:.2f} dB")
        check(d.stop() == 0, "graceful stop")
        d = Daemon(f"{tmp}/models", db)
        for model, (scenario, acts, n) in runs.items():
            s, _, png = predict(d, f"s-{model}", acts)
            check(s == 200 and png == before[model], f"{model}: same bytes after a restart")
            s, _, png = predict(d, f"copy-{model}", acts)
            check(s == 200 and png == before[model], f"{model}: the copy, same bytes after a restart")
        check(d.stop() == 0, "graceful stop")
    finish("test_server_maze3d")


if __name__ == "__main__":
    main()
