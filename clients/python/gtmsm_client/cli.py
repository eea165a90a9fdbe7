"""python3 -m gtmsm_client: drive gtmsmd from the shell.

Exit codes: 0 done, 1 the daemon refused (its problem+json detail is printed), 2 bad usage or
a bad local file, 3 the daemon could not be reached.
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
from typing import Any, List, Optional

from . import __version__
from . import png as pngmod
from .client import DEFAULT_URL, Client
from .errors import GtmsmError, TransportError

PROG = ("python3 -m gtmsm_client" if os.path.basename(sys.argv[0]) in ("__main__.py", "-c", "")
        else os.path.basename(sys.argv[0]))


class UsageError(Exception):
    pass


def _dumps(obj: Any, indent: int = 0) -> str:
    """JSON indented by 2, with lists of plain values on one line."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(inner + _dumps(v, indent + 2) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, separators=(", ", ": "))


def _print_json(obj: Any) -> None:
    sys.stdout.write(_dumps(obj) + "\n")


def _client(a: argparse.Namespace) -> Client:
    key = a.api_key or os.environ.get("GTMSM_API_KEY")
    key_file = a.api_key_file or os.environ.get("GTMSM_API_KEY_FILE")
    if not key and key_file:
        try:
            with open(key_file) as f:
                keys = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
        except OSError as e:
            raise UsageError(f"cannot read the API key file: {e}") from e
        if not keys:
            raise UsageError(f"no key in {key_file}")
        key = keys[0]
    return Client(a.url, api_key=key, timeout=a.timeout, retries=a.retries)


def _model_name(c: Client, name: Optional[str]) -> str:
    if name:
        return name
    names = [m["name"] for m in c.models()]
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("the daemon serves no model")
    raise UsageError(f"the daemon serves several models ({', '.join(names)}): choose one with --model")


def _read_episode(path: str) -> List[dict]:
    try:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e
    out = []
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                o = json.loads(line)
            except ValueError as e:
                raise UsageError(f"{path}:{n}: not JSON ({e})") from e
            if not isinstance(o, dict) or not {"t", "action", "frame"} <= set(o):
                raise UsageError(f"{path}:{n}: expected {{\"t\", \"action\", \"frame\"}} "
                                 "(what `gtmsm gen` prints)")
            out.append(o)
    return out


# ---- commands ------------------------------------------------------------------------------

def cmd_health(c: Client, a: argparse.Namespace) -> int:
    ready = c.ready()
    _print_json({"url": c.base_url, "live": c.live(), "ready": ready})
    return 0 if ready else 1


def cmd_models(c: Client, a: argparse.Namespace) -> int:
    _print_json(c.model(a.name) if a.name else c.models())
    return 0


def cmd_session(c: Client, a: argparse.Namespace) -> int:
    if a.action == "create":
        s = c.create_session(_model_name(c, a.model), a.id, server_id=a.server_id)
        _print_json(s)
    elif a.action == "get":
        _print_json(c.session(a.id))
    else:
        c.delete_session(a.id)
        print(f"deleted {a.id}", file=sys.stderr)
    return 0


def cmd_observe(c: Client, a: argparse.Namespace) -> int:
    if a.file.lower().endswith(".png") or a.t is not None:
        if a.t is None or a.action is None:
            raise UsageError("a PNG frame needs --t and --action")
        _print_json(c.observe_png(a.session, a.t, a.action, a.file))
        return 0
    src: Any = sys.stdin.buffer if a.file == "-" else a.file
    if a.file != "-" and not os.path.isfile(a.file):
        raise UsageError(f"no such file: {a.file}")
    r = c.observe(a.session, src, chunk=a.chunk, start_t=a.start_t)
    _print_json({"accepted": r.accepted, "duplicates": r.duplicates, "steps": r.steps,
                 "requests": r.requests, "retries": r.retries, "resumes": r.resumes})
    return 0


def cmd_predict(c: Client, a: argparse.Namespace) -> int:
    actions = [x.strip() for x in a.actions.split(",") if x.strip()]
    if not actions:
        raise UsageError("--actions needs at least one action (comma-separated)")
    out = {"session": a.session, "actions": len(actions)}
    if a.out:
        strip = c.predict_strip(a.session, actions, a.mode, a.seed, path=a.out)
        out.update(strip=a.out, frames=strip.frame_count, frame_width=strip.frame_width)
    if a.frames_dir or a.states or not a.out:
        p = c.predict(a.session, actions, a.mode, a.seed)
        if a.frames_dir:
            out["frame_files"] = p.save_frames(a.frames_dir)
        out["steps"] = p.steps
        out["states"] = p.states
    out["served_by"] = c.last_served_by
    _print_json(out)
    return 0


def cmd_replay(c: Client, a: argparse.Namespace) -> int:
    ep = _read_episode(a.episode)
    T = len(ep)
    if a.memorize < 1 or a.memorize >= T:
        raise UsageError(f"the episode has {T} observations: --memorize must be 1..{T - 1} "
                         "(the rest are predicted)")
    K = T - a.memorize if a.predict is None else min(a.predict, T - a.memorize)
    if K < 1:
        raise UsageError("--predict must be >= 1")
    model = _model_name(c, a.model)
    # an existing session is resumed, never re-created empty while its replica is away
    s = c.open_session(model, a.session) if a.session else c.create_session(model)
    sid = s["id"]
    if s["steps"] > a.memorize:
        raise UsageError(f"session {sid} already holds {s['steps']} steps, more than --memorize "
                         f"{a.memorize}: its predictions would start after step {s['steps']}; "
                         "use a new session")
    print(f"session {sid} on {model}: memorizing {a.memorize} observations", file=sys.stderr)
    r = c.observe(sid, ep[:a.memorize], chunk=a.chunk)
    future = ep[a.memorize:a.memorize + K]
    print(f"predicting {K} steps ({a.mode})", file=sys.stderr)
    pred = c.predict(sid, [o["action"] for o in future], a.mode, a.seed)
    truth = [pngmod.decode(base64.b64decode(o["frame"])) for o in future]
    guess = [f.image() for f in pred.frames]
    psnrs = [pngmod.psnr(x, y) for x, y in zip(truth, guess)]
    finite = [p for p in psnrs if math.isfinite(p)]
    rows: list = []
    for i in range(0, K, a.columns):
        if rows:
            rows.append([None])
        rows.append(truth[i:i + a.columns])
        rows.append(guess[i:i + a.columns])
    strip = pngmod.encode(pngmod.grid(rows, k=a.scale, gap=max(1, a.scale // 2)))
    d = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(d, exist_ok=True)
    with open(a.out, "wb") as f:
        f.write(strip)
    if a.delete:
        c.delete_session(sid)
    _print_json({"session": sid, "model": model, "served_by": c.last_served_by,
                 "observed": {"accepted": r.accepted, "duplicates": r.duplicates, "steps": r.steps},
                 "predicted": K, "mode": a.mode,
                 "psnr_mean": round(sum(finite) / len(finite), 3) if finite else None,
                 "psnr": [round(p, 3) if math.isfinite(p) else None for p in psnrs],
                 "out": a.out, "deleted": bool(a.delete)})
    return 0


def cmd_export(c: Client, a: argparse.Namespace) -> int:
    dump = c.export_session(a.session, path=a.out)
    if a.out:
        print(f"exported {a.session} ({dump.get('steps')} steps) to {a.out}", file=sys.stderr)
    else:
        json.dump(dump, sys.stdout)
        sys.stdout.write("\n")
    return 0


def cmd_import(c: Client, a: argparse.Namespace) -> int:
    if a.file == "-":
        src: Any = sys.stdin.buffer.read()
    elif not os.path.isfile(a.file):
        raise UsageError(f"no such file: {a.file}")
    else:
        src = a.file
    _print_json(c.import_session(src, a.id))
    return 0


# ---- the parser ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Drive gtmsmd, the GTMSM prediction service: models, sessions, "
        "observations, predictions (PNG strips), export/import.",
        epilog="Exit codes: 0 done, 1 the daemon refused (its detail is printed), 2 bad usage, "
        "3 the daemon could not be reached.")
    p.add_argument("--url", default=os.environ.get("GTMSM_URL", DEFAULT_URL),
                   help="the daemon (env GTMSM_URL; default %(default)s)")
    p.add_argument("--api-key", help="a bearer key (env GTMSM_API_KEY)")
    p.add_argument("--api-key-file", help="a file whose first key is used, as gtmsmd --api-keys "
                   "reads it (env GTMSM_API_KEY_FILE)")
    p.add_argument("--timeout", type=float, default=60.0, help="socket timeout, s (default 60)")
    p.add_argument("--retries", type=int, default=3, help="retries after connection errors and "
                   "503 (default 3)")
    p.add_argument("--version", action="version", version=f"gtmsm_client {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("health", help="is the daemon live and ready")
    s.set_defaults(fn=cmd_health)

    s = sub.add_parser("models", help="the loaded models (JSON)")
    s.add_argument("name", nargs="?", help="one model")
    s.set_defaults(fn=cmd_models)

    s = sub.add_parser("session", help="create, get or delete a session")
    ss = s.add_subparsers(dest="action", metavar="ACTION")
    ss.required = True
    x = ss.add_parser("create", help="open a session (a client-chosen id by default)")
    x.add_argument("--model", help="model name (default: the only one served)")
    x.add_argument("--id", help="the session id (default: a new uuid4 hex)")
    x.add_argument("--server-id", action="store_true", help="let the daemon choose the id (POST)")
    x = ss.add_parser("get", help="a session's steps, memory entries, model")
    x.add_argument("id")
    x = ss.add_parser("delete", help="delete a session, its memory and frames")
    x.add_argument("id")
    s.set_defaults(fn=cmd_session)

    s = sub.add_parser("observe", help="stream an NDJSON episode (or one PNG frame) into a session")
    s.add_argument("file", help="NDJSON file as `gtmsm gen` prints ('-' for stdin), or a .png")
    s.add_argument("--session", required=True)
    s.add_argument("--chunk", type=int, default=256, help="lines per HTTP chunk (default 256)")
    s.add_argument("--start-t", type=int, default=0, help="skip observations before this t")
    s.add_argument("--t", type=int, help="step index of a PNG frame")
    s.add_argument("--action", help="action of a PNG frame")
    s.set_defaults(fn=cmd_observe)

    s = sub.add_parser("replay", help="memorize the start of an episode, predict the rest, save "
                       "true vs predicted frames as a PNG")
    s.add_argument("episode", help="NDJSON episode (`gtmsm gen` output; '-' for stdin)")
    s.add_argument("--session", help="session id (default: a new uuid4 hex; an existing session "
                   "of the same model is reused: its stored steps come back as duplicates)")
    s.add_argument("--model", help="model name (default: the only one served)")
    s.add_argument("--memorize", type=int, default=256, help="observations streamed (default 256)")
    s.add_argument("--predict", type=int, help="steps predicted (default: the rest of the episode)")
    s.add_argument("--mode", choices=["mean", "sample"], default="mean")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="replay.png", help="the PNG: rows of true frames above "
                   "predicted ones (default replay.png)")
    s.add_argument("--scale", type=int, default=4, help="pixel scale of the PNG (default 4)")
    s.add_argument("--columns", type=int, default=32, help="frames per row (default 32)")
    s.add_argument("--chunk", type=int, default=256, help="lines per HTTP chunk (default 256)")
    s.add_argument("--delete", action="store_true", help="delete the session afterwards")
    s.set_defaults(fn=cmd_replay)

    s = sub.add_parser("predict", help="predict the frames after some actions")
    s.add_argument("--session", required=True)
    s.add_argument("--actions", required=True, help="comma-separated names or indices, e.g. "
                   "right,right,up")
    s.add_argument("--mode", choices=["mean", "sample"], default="mean")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="save the film strip (image/png from the daemon) here")
    s.add_argument("--frames-dir", help="save each frame as its own PNG here")
    s.add_argument("--states", action="store_true", help="also print the states (JSON reply)")
    s.set_defaults(fn=cmd_predict)

    s = sub.add_parser("export", help="a session's portable dump (JSON)")
    s.add_argument("--session", required=True)
    s.add_argument("--out", help="write it here (default stdout)")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("import", help="recreate a session from a dump")
    s.add_argument("file", help="the dump ('-' for stdin)")
    s.add_argument("--id", help="a new id for the session")
    s.set_defaults(fn=cmd_import)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    for opt in ("chunk", "scale", "columns"):
        if getattr(a, opt, 1) is not None and getattr(a, opt, 1) < 1:
            p.error(f"--{opt} must be >= 1")
    try:
        with _client(a) as c:
            return a.fn(c, a)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except TransportError as e:
        print(f"{PROG}: error: cannot reach gtmsmd at {a.url}: {e.detail}", file=sys.stderr)
        return 3
    except GtmsmError as e:
        msg = f"{PROG}: error: {e.status} {e.slug}: {e.detail}"
        if e.expected_t is not None:
            msg += f" (expected t={e.expected_t})"
        if e.request_id:
            msg += f" [request {e.request_id}" + (f", {e.served_by}]" if e.served_by else "]")
        print(msg, file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
