#!/usr/bin/env python3
"""gtmsmd serving the landmark model (paper appendix D) beside the 2-D
actions-only model (models/imagenav_landmark.gtm and models/imagenav.gtm), on
a real daemon, a real port and a real SQLite file.

Checks: GET /v1/models/{name} names the inference part; a demo episode with
obstacles is observed by both models, and the observations' replies carry
the states the memories stored: at a move into an obstacle the landmark
model's state stays where it was (the frame did not change: median under 5%
of a step, mean under 15%; its gain on an identical frame is about 0.8, so a
bump can leave a residual that the next revisit removes), while the
actions-only model's moves on by a whole step; its
corrected trajectory predicts the next frames of the episode at least 1 dB
better than the actions-only model's; predictions are byte-identical after
export/import under another id and after a restart (the reverse index is
rebuilt from the stored entries), and a session observed in two requests
stores the same states as one observed in one."""
import base64
import json
import math
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import SRC, Daemon, check, finish, ndjson  # noqa: E402
from test_demo import MOVES, png_rgb  # noqa: E402
from test_server_maze3d import psnr  # noqa: E402

SEEDS = (21, 22, 23)
MEMORIZE, PREDICT = 256, 64


def frames_of(strip_png, n):
    """The n 8x8 frames of a prediction strip, each as RGB bytes."""
    _, _, rows = png_rgb(strip_png)
    return [b"".join(r[24 * k:24 * (k + 1)] for r in rows) for k in range(n)]


def observe(d, sid, obs):
    s, _, b = d.request("POST", f"/v1/sessions/{sid}/observations?states=true", ndjson(obs),
                        {"Content-Type": "application/x-ndjson"})
    j = json.loads(b)
    check(s == 200 and j["accepted"] == len(obs) and len(j["states"]) == len(obs),
          f"{sid}: {len(obs)} observations, a state for each ({s})")
    return j["states"]


def predict(d, sid, actions):
    return d.request("POST", f"/v1/sessions/{sid}/predictions", {"actions": actions}, {"Accept": "image/png"})


def main():
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(f"{tmp}/models")
        shutil.copy(os.path.join(SRC, "models", "imagenav_landmark.gtm"), f"{tmp}/models/imagenav_landmark.gtm")
        shutil.copy(os.path.join(SRC, "models", "imagenav.gtm"), f"{tmp}/models/imagenav.gtm")
        db = f"{tmp}/g.db"
        d = Daemon(f"{tmp}/models", db)
        s, _, m = d.json("GET", "/v1/models/imagenav_landmark")
        check(s == 200 and m["parts"].get("inference") == "landmark", f"the landmark model's parts: {m.get('parts')}")
        s, _, m = d.json("GET", "/v1/models/imagenav")
        check(s == 200 and m["parts"].get("inference", "actions") == "actions", "the 2-D model infers from actions")

        gains, stays, moves, before, acts_of = [], [], [], {}, {}
        for seed in SEEDS:
            s, _, ep = d.json("POST", "/v1/demo/episodes", {"model": "imagenav_landmark", "seed": seed,
                                                            "steps": MEMORIZE + PREDICT, "obstacles": 8})
            check(s == 200 and len(ep["grid"]["obstacles"]) == 8, f"seed {seed}: a demo episode with 8 obstacles")
            cells = {(c["col"], c["row"]) for c in ep["grid"]["obstacles"]}
            obs, rest = ep["observations"][:MEMORIZE], ep["observations"][MEMORIZE:]
            acts_of[seed] = [o["action"] for o in rest]
            states = {}
            for model in ("imagenav_landmark", "imagenav"):
                sid = f"{model}-{seed}"
                s, _, _ = d.json("PUT", f"/v1/sessions/{sid}", {"model": model})
                states[model] = observe(d, sid, obs)
            # the moves into an obstacle: the frame did not change
            for t in range(1, MEMORIZE):
                p = (obs[t - 1]["truth"]["col"], obs[t - 1]["truth"]["row"])
                dc, dr = MOVES[obs[t]["action"]]
                if (p[0] + dc, p[1] + dr) not in cells:
                    continue
                for model, out in (("imagenav_landmark", stays), ("imagenav", moves)):
                    a, b = states[model][t - 1], states[model][t]
                    out.append(math.hypot(b[0] - a[0], b[1] - a[1]))
            truth = [b"".join(png_rgb(base64.b64decode(o["frame"]))[2]) for o in rest]
            score = {}
            for model in ("imagenav_landmark", "imagenav"):
                s, _, png = predict(d, f"{model}-{seed}", acts_of[seed])
                check(s == 200, f"{model}: {PREDICT} predictions")
                before[f"{model}-{seed}"] = png
                score[model] = sum(psnr(p, q) for p, q in zip(frames_of(png, PREDICT), truth)) / PREDICT
            gains.append(score["imagenav_landmark"] - score["imagenav"])
            print(f"seed {seed}: predicted frames {score['imagenav_landmark']:.2f} dB with landmarks, "
                  f"{score['imagenav']:.2f} dB from actions alone")
        step = sorted(moves)[len(moves) // 2] if moves else 0
        med, mean = (sorted(stays)[len(stays) // 2], sum(stays) / len(stays)) if stays else (1e9, 1e9)
        check(stays and med < 0.05 * step and mean < 0.15 * step,
              f"{len(stays)} moves into obstacles: the landmark model's state stays (median {med:.4f}, mean "
              f"{mean:.4f}, largest {max(stays or [0]):.3f}), the actions-only model's moves on (median {step:.3f})")
        mean_gain = sum(gains) / len(gains)
        check(mean_gain >= 1.0, f"landmarks predict the episodes' next {PREDICT} frames {mean_gain:.2f} dB better")

        # two requests store the same states as one
        one, first = f"imagenav_landmark-{SEEDS[0]}", SEEDS[0]
        s, _, ep = d.json("POST", "/v1/demo/episodes", {"model": "imagenav_landmark", "seed": first,
                                                        "steps": MEMORIZE, "obstacles": 8})
        d.json("PUT", "/v1/sessions/split", {"model": "imagenav_landmark"})
        observe(d, "split", ep["observations"][:100])
        observe(d, "split", ep["observations"][100:])
        s, _, png = predict(d, "split", acts_of[first])
        check(png == before[one], "observed in two requests: the same predictions as in one")
        # export / import
        s, _, dump = d.json("GET", f"/v1/sessions/{one}/export")
        s, _, _ = d.json("POST", "/v1/sessions/import?id=copy", dump)
        check(s == 201, "the landmark session imported under another id")
        s, _, png = predict(d, "copy", acts_of[first])
        check(png == before[one], "the imported copy predicts the same bytes")
        check(d.stop() == 0, "graceful stop")
        d = Daemon(f"{tmp}/models", db)
        for seed in SEEDS:
            for model in ("imagenav_landmark", "imagenav"):
                s, _, png = predict(d, f"{model}-{seed}", acts_of[seed])
                check(s == 200 and png == before[f"{model}-{seed}"], f"{model}-{seed}: same bytes after a restart")
        s, _, png = predict(d, "copy", acts_of[first])
        check(png == before[one], "the copy: same bytes after a restart")
        check(d.stop() == 0, "graceful stop")
    finish("test_server_landmark")


if __name__ == "__main__":
    main()
