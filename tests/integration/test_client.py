#!/usr/bin/env python3
"""The Python client (clients/python, package gtmsm_client) and its CLI against a real gtmsmd
with a real SQLite file: every client method; observations from a file, a list, a generator
and bytes; the safe-retry paths (a replayed episode gives duplicates, a gap resumes at the
problem's expected_t, a dropped connection and a 503 are retried, a body or frame limit hit
mid-stream continues at the committed steps, a kept-alive connection the daemon closed); typed
exceptions with the problem+json fields; API keys; the PNG codec; and the CLI end to end with a
`gtmsm gen` episode."""
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import (GTMSM, SRC, Daemon, RawStream, check, finish, ndjson,  # noqa: E402
                                 png_bytes, train_model)

CLIENT_DIR = os.path.join(os.path.abspath(SRC), "clients", "python")
sys.path.insert(0, CLIENT_DIR)
import gtmsm_client as gc  # noqa: E402
from gtmsm_client import png as gpng  # noqa: E402


def raises(fn, cls, slug=None):
    """The exception fn() raised if it is a `cls` (with `slug`), else None."""
    try:
        fn()
    except cls as e:  # noqa: BLE001
        if slug is None or getattr(e, "slug", None) == slug:
            return e
        print(f"  raised {type(e).__name__} {e}", file=sys.stderr)
        return None
    except Exception as e:  # noqa: BLE001
        print(f"  raised {type(e).__name__} {e}", file=sys.stderr)
        return None
    print("  raised nothing", file=sys.stderr)
    return None


def problem_fields(e, status):
    return (e is not None and e.status == status and e.type.startswith("urn:gtmsm:problem:")
            and e.title and e.detail and e.request_id and e.instance)


def gen_file(path, seed, steps):
    with open(path, "wb") as f:
        subprocess.run([GTMSM, "gen", "--env", "imagenav", "--seed", str(seed), "--steps", str(steps)],
                       check=True, stdout=f, stderr=subprocess.DEVNULL)
    with open(path) as f:
        return [json.loads(l) for l in f]


def cli(*args, env=None, stdin=None):
    e = dict(os.environ, PYTHONPATH=CLIENT_DIR)
    e.pop("GTMSM_URL", None)
    e.pop("GTMSM_API_KEY", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "gtmsm_client", *args], capture_output=True,
                          text=True, env=e, input=stdin, timeout=120)


def cli_json(r):
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


# ---- a TCP proxy that cuts connections ------------------------------------------------------

class CuttingProxy:
    """127.0.0.1:port -> the daemon; the first `cuts` connections are cut (both sides closed)
    once the client has sent `after` bytes."""

    def __init__(self, target_port, after, cuts=1):
        self.target = target_port
        self.after = after
        self.cuts = cuts
        self.cut_done = 0
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            cut = self.cut_done < self.cuts
            if cut:
                self.cut_done += 1
            threading.Thread(target=self._pump, args=(c, s, self.after if cut else None), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, None), daemon=True).start()

    @staticmethod
    def _pump(a, b, limit):
        n = 0
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if limit is not None and n + len(d) > limit:
                    b.sendall(d[:limit - n])
                    time.sleep(0.2)  # let the daemon process what it got
                    for x in (a, b):
                        try:
                            x.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    break
                n += len(d)
                b.sendall(d)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.close()
                except OSError:
                    pass

    def close(self):
        self.srv.close()


# ---- PNG codec ------------------------------------------------------------------------------

def filtered_png(w, h, c, pix, ftype):
    """A PNG with every row written with filter `ftype` (0-4), to test the decoder."""
    stride = w * c
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        row = pix[y * stride:(y + 1) * stride]
        enc = bytearray(stride)
        for i in range(stride):
            a = row[i - c] if i >= c else 0
            b = prev[i]
            cc = prev[i - c] if i >= c else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) >> 1
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            enc[i] = (row[i] - pred) & 255
        out += bytes([ftype]) + enc
        prev = bytearray(row)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


def test_png():
    import random
    rnd = random.Random(5)
    ok = True
    for c in (1, 2, 3, 4):
        w, h = 7, 5
        pix = bytes(rnd.randrange(256) for _ in range(w * h * c))
        for f in range(5):
            img = gpng.decode(filtered_png(w, h, c, pix, f))
            ok &= img == gpng.Image(w, h, c, pix)
        ok &= gpng.decode(gpng.encode(gpng.Image(w, h, c, pix))).pixels == pix
    check(ok, "png: decodes filter types 0-4 for gray, gray+alpha, RGB, RGBA; encode round-trips")
    img = gpng.decode(png_bytes(3, 2, 4))
    check(gpng.to_rgb(img).pixels == bytes((10, 200, 30)) * 6, "png: RGBA to RGB")
    g = gpng.grid([[img, None], [img, img]], k=2, gap=1)
    check((g.width, g.height) == (3 * 2 * 2 + 3, 2 * 2 * 2 + 3), "png: a grid of scaled frames")
    check(gpng.psnr(img, img) == float("inf"), "png: psnr of equal frames is inf")


# ---- the client against the daemon ----------------------------------------------------------

def test_models_and_sessions(d, c):
    ms = c.models()
    check([m["name"] for m in ms] == ["imagenav"] and ms[0]["frame_width"] == 8, "models()")
    m = c.model("imagenav")
    check(m["actions"] == ["right", "left", "up", "down", "stay"] and len(m["version"]) == 16, "model(name)")
    check(c.last_served_by == "client-test", "last_served_by is X-Served-By")
    rid = c.last_request_id
    check(rid and len(rid) == 16 and all(ch in "0123456789abcdef" for ch in rid),
          "last_request_id is the X-Request-Id the client sent")
    e = raises(lambda: c.model("nope"), gc.NotFound, "model-not-found")
    check(problem_fields(e, 404) and "nope" in e.detail, "model('nope'): NotFound with the problem fields")
    c.wait_ready(5)
    check(c.live() and c.ready(), "live(), ready(), wait_ready()")

    s = c.create_session("imagenav")
    check(len(s["id"]) == 32 and all(ch in "0123456789abcdef" for ch in s["id"]) and s["steps"] == 0,
          "create_session: a client-generated id (uuid4 hex) by PUT")
    check(c.last_response.status == 201, "create_session: 201 created")
    again = c.create_session("imagenav", s["id"])
    check(again["id"] == s["id"] and c.last_response.status == 200,
          "create_session with the same id: idempotent (200)")
    s2 = c.create_session("imagenav", "my-walker_1")
    check(s2["id"] == "my-walker_1", "create_session with a chosen id")
    o = c.open_session("imagenav", "my-walker_1")
    check(o["id"] == "my-walker_1" and c.last_response.status == 200, "open_session of an existing id: a GET")
    o = c.open_session("imagenav", "opened-new")
    check(o["id"] == "opened-new" and c.last_response.status == 201, "open_session of a new id: GET 404, then PUT")
    # the daemon behind HAProxy with a replica down: an id it does not have is 503
    # owner-unavailable, never created (the client itself sends no ring header; a raw request does)
    import http.client as hc
    conn = hc.HTTPConnection("127.0.0.1", c._port, timeout=10)
    conn.request("PUT", "/v1/sessions/not-here-yet", body=b'{"model": "imagenav"}',
                 headers={"Content-Type": "application/json", "X-Gtmsm-Ring": "101"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    check(r.status == 503 and b"owner-unavailable" in body and r.getheader("Retry-After") == "2",
          f"PUT of an unknown id with a replica down (X-Gtmsm-Ring 101): 503 owner-unavailable ({r.status})")
    e = raises(lambda: c.session("not-here-yet"), gc.NotFound, "session-not-found")
    check(e is not None, "... and nothing was created")
    s3 = c.create_session("imagenav", server_id=True)
    check(len(s3["id"]) == 32 and c.last_response.status == 201, "create_session(server_id=True): POST, daemon's id")
    check(c.session(s2)["id"] == "my-walker_1" and c.get_session("my-walker_1")["steps"] == 0,
          "session(dict or id)")
    e = raises(lambda: c.create_session("nope"), gc.NotFound, "model-not-found")
    check(problem_fields(e, 404), "create_session on an unknown model: NotFound")
    e = raises(lambda: c.session("bad id!"), gc.BadRequest, "bad-id")
    check(problem_fields(e, 400), "a bad session id: BadRequest bad-id")
    e = raises(lambda: c.session("a/b"), gc.GtmsmError)
    check(e is not None and e.status in (400, 404),
          "an id with a slash: a typed 4xx")
    check(c.delete_session(s3) is True, "delete_session")
    e = raises(lambda: c.session(s3), gc.NotFound, "session-not-found")
    check(problem_fields(e, 404) and e.served_by == "client-test", "a deleted session: NotFound")
    check(c.delete_session(s3, missing_ok=True) is False, "delete_session(missing_ok=True)")
    check(raises(lambda: c.delete_session(s3), gc.NotFound) is not None, "delete_session of a missing one: NotFound")
    check(isinstance(raises(lambda: c.delete_session(s3), gc.GtmsmError), gc.GtmsmError),
          "every typed error is a GtmsmError")
    check("gtmsm_http_requests_total" in c.metrics(), "metrics()")
    c.delete_session(s2)


def test_observe(d, c, tmp, ep, ep_path):
    s = c.create_session("imagenav")["id"]
    r = c.observe(s, ep[:200], chunk=64, states=True)
    check((r.accepted, r.duplicates, r.steps, r.requests, r.retries) == (200, 0, 200, 1, 0),
          "observe(list of dicts): one chunked request")
    check(len(r.states) == 200 and r.states[0] == [0, 0] and all(len(x) == 2 for x in r.states),
          "observe(states=True): the 200 stored states, the first at the origin")
    r = c.observe(s, ep_path, chunk=32, window=50)
    check((r.accepted, r.duplicates, r.steps, r.requests) == (100, 200, 300, 6),
          "observe(NDJSON path), windows of 50: the stored ones are duplicates")
    r = c.observe(s, ep_path)
    check((r.accepted, r.duplicates, r.steps) == (0, 300, 300), "the same episode again: all duplicates, no error")
    check(c.session(s)["steps"] == 300 and c.session(s)["memory_entries"] == 300, "the session holds 300 steps")

    # generators, bytes, file objects, raw PNG bytes in dicts
    s2 = c.create_session("imagenav")["id"]
    lines = (json.dumps(o) for o in ep[:20])
    r = c.observe(s2, lines)
    check((r.accepted, r.steps) == (20, 20), "observe(generator of NDJSON lines)")
    r = c.observe(s2, ndjson(ep[:30]))
    check((r.accepted, r.duplicates) == (10, 20), "observe(NDJSON bytes)")
    with open(ep_path, "rb") as f:
        r = c.observe(s2, f, start_t=30, window=10)
    check((r.accepted, r.duplicates, r.steps) == (270, 0, 300), "observe(file object, start_t=30)")
    s3 = c.create_session("imagenav")["id"]
    raw = [{"t": o["t"], "action": o["action"], "frame": base64.b64decode(o["frame"])} for o in ep[:5]]
    check(c.observe(s3, iter(raw)).accepted == 5, "observe(dicts with raw PNG bytes)")
    r = c.observe(s3, [])
    check((r.accepted, r.requests, r.steps) == (0, 0, 5), "observe(nothing): no request, the session's steps")
    check(raises(lambda: c.observe(s3, [b"not json\n"]), ValueError) is not None,
          "a line that is not JSON: ValueError")
    check(raises(lambda: c.observe(s3, [{"action": "left", "frame": "x"}]), ValueError) is not None,
          "an observation without t: ValueError")

    # one PNG frame
    frame5 = base64.b64decode(ep[5]["frame"])
    j = c.observe_png(s3, 5, ep[5]["action"], frame5)
    check(j == {"accepted": 1, "duplicates": 0, "steps": 6}, "observe_png(bytes)")
    with open(tmp + "/f5.png", "wb") as f:
        f.write(frame5)
    j = c.observe_png(s3, 5, ep[5]["action"], tmp + "/f5.png")
    check(j == {"accepted": 0, "duplicates": 1, "steps": 6}, "observe_png(path) again: a duplicate")

    # gaps
    g = c.create_session("imagenav")["id"]
    c.observe(g, ep[:10])
    r = c.observe(g, ep_path, start_t=50, states=True)
    check((r.accepted, r.steps, r.resumes) == (290, 300, 1) and len(r.states) == 290,
          "a gap (start_t past steps): resumes at expected_t by re-reading the file (290 states)")
    g2 = c.create_session("imagenav")["id"]
    c.observe(g2, ep[:10])

    def later():
        yield from ep[12:13]
        yield from ep[10:40]
    r = c.observe(g2, later())
    check((r.accepted, r.duplicates, r.steps, r.resumes) == (30, 0, 40, 1),
          "a gap whose expected_t is in the window: resumed in place")
    e = raises(lambda: c.observe(g2, iter(ep[60:80])), gc.Conflict, "gap")
    check(problem_fields(e, 409) and e.expected_t == 40 and e.accepted == 0 and e.steps == 40,
          "a gap the observations cannot fill: Conflict with expected_t")
    r = c.observe(g2, ep[e.expected_t:80])
    check((r.accepted, r.steps) == (40, 80), "the caller resumes at expected_t")
    e = raises(lambda: c.observe(g2, ep[:70] + [ep[70]] + [dict(ep[71], frame=ep[3]["frame"])]),
               gc.Conflict, "content-mismatch")
    check(problem_fields(e, 409) and e.expected_t == 80 and e.duplicates == 71,
          "another frame at a stored t: Conflict content-mismatch (not resumed)")

    # typed errors on bad input
    e = raises(lambda: c.observe("no-such-session", ep_path), gc.NotFound, "session-not-found")
    check(problem_fields(e, 404), "observe into an unknown session (a streamed body): NotFound")
    e = raises(lambda: c.request("POST", f"/v1/sessions/{g2}/observations", b"hello", "text/plain"),
               gc.UnsupportedMediaType, "unsupported-media-type")
    check(problem_fields(e, 415), "a wrong media type: UnsupportedMediaType")
    e = raises(lambda: c.observe_png(g2, 80, "left", png_bytes(16, 16, 3)), gc.Unprocessable, "frame-shape")
    check(problem_fields(e, 422), "a frame of the wrong size: Unprocessable frame-shape")
    e = raises(lambda: c.observe_png(g2, 80, "left", b"\x89PNG garbage"), gc.BadRequest, "bad-png")
    check(problem_fields(e, 400), "bytes that are not a PNG: BadRequest bad-png")
    e = raises(lambda: c.observe_png(g2, 80, "jump", base64.b64decode(ep[80]["frame"])), gc.Unprocessable,
               "unknown-action")
    check(problem_fields(e, 422) and "jump" in e.detail, "an unknown action: Unprocessable unknown-action")
    bad = ndjson(ep[80:85]) + b'{"t": 85, "action": "left", "frame": "!!!"}\n'
    e = raises(lambda: c.observe(g2, bad), gc.BadRequest, "bad-base64")
    check(problem_fields(e, 400) and e.accepted == 5 and e.steps == 85,
          "a bad line: BadRequest carrying accepted/steps (the lines before it committed)")
    return s


def test_predict(d, c, tmp, s, ep):
    acts = ["right", "left", "up", "down", "stay"]
    p = c.predict(s, acts)
    check(len(p) == 5 and p.steps == 300 and p.actions == acts and all(len(st) == 2 for st in p.states)
          and all(gpng.size(b) == (8, 8) for b in p.pngs), "predict: PNG frames with states (JSON)")
    p2 = c.predict(s, "right,left,up,down,stay")
    p3 = c.predict(s, [0, 1, 2, 3, 4])
    check(p2.pngs == p.pngs and p3.pngs == p.pngs, "actions as a comma string or indices")
    ps = c.predict(s, acts, stream=True)
    check(ps.pngs == p.pngs and ps.states == p.states,
          "predict(stream=True): the NDJSON stream gives the same frames")
    frames = list(c.iter_predict(s, acts))
    check([f.index for f in frames] == list(range(5)) and [f.png for f in frames] == p.pngs, "iter_predict")
    st = c.predict_strip(s, acts)
    check(st.frame_count == 5 and st.frame_width == 8 and gpng.size(st.png) == (40, 8)
          and st.reply.headers.get("content-type") == "image/png", "predict_strip: image/png, X-Frame-Count")
    check([gpng.decode(b).pixels for b in st.frames()] == [gpng.decode(b).pixels for b in p.pngs],
          "the strip's frames are the JSON frames")
    check(gpng.decode(p.strip()).pixels == gpng.decode(st.png).pixels, "Prediction.strip() composes the same strip")
    st.save(tmp + "/out/strip.png")
    paths = p.save_frames(tmp + "/out/frames")
    p.save_strip(tmp + "/out/local.png", scale=2)
    check(open(tmp + "/out/strip.png", "rb").read() == st.png and len(paths) == 5
          and open(paths[2], "rb").read() == p.pngs[2]
          and gpng.size(open(tmp + "/out/local.png", "rb").read()) == (80, 16),
          "save helpers write the strip and the frames")
    st2 = c.predict_strip(s, acts, path=tmp + "/out/strip2.png")
    check(st2.png == st.png and os.path.exists(tmp + "/out/strip2.png"), "predict_strip(path=): byte-identical again")
    a = c.predict(s, acts, mode="sample", seed=3)
    b = c.predict(s, acts, mode="sample", seed=3)
    check(a.pngs == b.pngs, "sample mode with a seed is reproducible")
    e = raises(lambda: c.predict(s, ["right", "jump"]), gc.Unprocessable, "unknown-action")
    check(problem_fields(e, 422) and "jump" in e.detail, "predict with a bad action: Unprocessable")
    e = raises(lambda: c.predict(s, ["right"], mode="median"), gc.BadRequest, "invalid-request")
    check(problem_fields(e, 400), "predict with a bad mode: BadRequest")
    e = raises(lambda: c.predict_strip("nobody", ["right"]), gc.NotFound, "session-not-found")
    check(problem_fields(e, 404), "predict on an unknown session: NotFound")
    e = raises(lambda: list(c.iter_predict("nobody", ["right"])), gc.NotFound, "session-not-found")
    check(e is not None, "iter_predict on an unknown session: NotFound")
    return st.png


def test_transfer(d, c, tmp, s, strip):
    dump = c.export_session(s, path=tmp + "/dump.json")
    check(dump["format"] == "gtmsm-session" and dump["steps"] == 300 and len(dump["observations"]) == 300
          and json.load(open(tmp + "/dump.json")) == dump, "export_session (and to a file)")
    j = c.import_session(tmp + "/dump.json", "copy-1")
    check(j["id"] == "copy-1" and j["steps"] == 300, "import_session(path, new id)")
    check(c.predict_strip("copy-1", ["right", "left", "up", "down", "stay"]).png == strip,
          "the imported session predicts byte-identically")
    e = raises(lambda: c.import_session(dump, "copy-1"), gc.Conflict, "session-exists")
    check(problem_fields(e, 409) and e.expected_t is None, "importing onto a taken id: Conflict session-exists")
    check(c.import_session(json.dumps(dump).encode(), "copy-2")["steps"] == 300, "import_session(bytes)")
    e = raises(lambda: c.import_session({"format": "nope"}), gc.GtmsmError)
    check(e is not None and e.status in (400, 422), "a bad dump: a typed 4xx")


def test_cli(d, tmp, ep_path):
    url = f"http://127.0.0.1:{d.port}"
    G = ("--url", url)
    r = cli(*G, "models")
    j = cli_json(r)
    check(r.returncode == 0 and j and j[0]["name"] == "imagenav", "cli models")
    r = cli("models", "imagenav", env={"GTMSM_URL": url})
    check(r.returncode == 0 and cli_json(r)["frame_width"] == 8, "cli models NAME (GTMSM_URL)")
    r = cli(*G, "health")
    check(r.returncode == 0 and cli_json(r)["ready"] is True, "cli health")
    r = cli(*G, "session", "create")
    check(r.returncode == 0 and len(cli_json(r)["id"]) == 32, "cli session create (client id; the only model)")
    r = cli(*G, "session", "create", "--id", "cli-1", "--model", "imagenav")
    check(r.returncode == 0 and cli_json(r)["id"] == "cli-1", "cli session create --id")
    r = cli(*G, "session", "get", "cli-1")
    check(r.returncode == 0 and cli_json(r)["steps"] == 0, "cli session get")
    out = tmp + "/cli/replay.png"
    r = cli(*G, "replay", ep_path, "--session", "cli-1", "--memorize", "256", "--out", out)
    j = cli_json(r)
    check(r.returncode == 0 and j and j["observed"] == {"accepted": 256, "duplicates": 0, "steps": 256}
          and j["predicted"] == 44 and len(j["psnr"]) == 44 and j["served_by"] == "client-test",
          "cli replay: 256 memorized, 44 predicted" + ("" if r.returncode == 0 else ": " + r.stderr))
    if os.path.exists(out):
        img = gpng.decode(open(out, "rb").read())
        # rows: 32 true, 32 predicted, a blank row, 12 true, 12 predicted; 8x8 frames x4, gaps 2
        check((img.width, img.height) == (32 * 32 + 33 * 2, 5 * 32 + 6 * 2),
              "cli replay: the PNG of true vs predicted rows")
    else:
        check(False, "cli replay wrote the PNG")
    r = cli(*G, "replay", ep_path, "--session", "cli-1", "--memorize", "256", "--predict", "8",
            "--mode", "sample", "--seed", "2", "--out", tmp + "/cli/again.png", "--scale", "1")
    j = cli_json(r)
    check(r.returncode == 0 and j["observed"] == {"accepted": 0, "duplicates": 256, "steps": 256}
          and j["predicted"] == 8, "cli replay of the same episode again: duplicates, not errors")
    r = cli(*G, "predict", "--session", "cli-1", "--actions", "right,left,up", "--out", tmp + "/cli/strip.png",
            "--frames-dir", tmp + "/cli/frames")
    j = cli_json(r)
    check(r.returncode == 0 and j["frames"] == 3 and gpng.size(open(tmp + "/cli/strip.png", "rb").read()) == (24, 8)
          and len(os.listdir(tmp + "/cli/frames")) == 3, "cli predict --out strip.png --frames-dir")
    r = cli(*G, "predict", "--session", "cli-1", "--actions", "right,left")
    check(r.returncode == 0 and len(cli_json(r)["states"]) == 2, "cli predict without --out prints the states")
    r = cli(*G, "export", "--session", "cli-1", "--out", tmp + "/cli/dump.json")
    check(r.returncode == 0 and json.load(open(tmp + "/cli/dump.json"))["steps"] == 256, "cli export --out")
    r = cli(*G, "export", "--session", "cli-1")
    check(r.returncode == 0 and cli_json(r)["id"] == "cli-1", "cli export to stdout")
    r = cli(*G, "import", tmp + "/cli/dump.json", "--id", "cli-1-copy")
    check(r.returncode == 0 and cli_json(r)["steps"] == 256, "cli import --id")
    r1 = cli(*G, "predict", "--session", "cli-1", "--actions", "up,up,left", "--out", tmp + "/cli/a.png")
    r2 = cli(*G, "predict", "--session", "cli-1-copy", "--actions", "up,up,left", "--out", tmp + "/cli/b.png")
    check(r1.returncode == 0 and r2.returncode == 0
          and open(tmp + "/cli/a.png", "rb").read() == open(tmp + "/cli/b.png", "rb").read(),
          "cli: the imported copy predicts byte-identically")
    r = cli(*G, "session", "create", "--id", "cli-2")
    with open(ep_path) as f:
        head = "".join(f.readlines()[:100])
    r = cli(*G, "observe", "--session", "cli-2", "-", stdin=head)
    check(r.returncode == 0 and cli_json(r)["accepted"] == 100, "cli observe - (NDJSON on stdin)")
    r = cli(*G, "observe", "--session", "cli-2", ep_path, "--start-t", "150")
    j = cli_json(r)
    check(r.returncode == 0 and j["accepted"] == 200 and j["resumes"] == 1 and j["steps"] == 300,
          "cli observe --start-t past steps: resumed at expected_t")
    ep = [json.loads(l) for l in open(ep_path)]
    with open(tmp + "/cli/f.png", "wb") as f:
        f.write(base64.b64decode(ep[10]["frame"]))
    r = cli(*G, "observe", "--session", "cli-2", "--t", "10", "--action", ep[10]["action"], tmp + "/cli/f.png")
    check(r.returncode == 0 and cli_json(r)["duplicates"] == 1, "cli observe a PNG frame")

    # errors: the detail on stderr, exit codes
    with open(tmp + "/cli/late.ndjson", "w") as f:
        f.write(ndjson(ep[280:]).decode())
    r = cli(*G, "observe", "--session", "cli-1", tmp + "/cli/late.ndjson")
    check(r.returncode == 1 and "409 gap" in r.stderr and "expected t=256" in r.stderr,
          "cli: a gap it cannot fill exits 1 with the detail and expected t")
    r = cli(*G, "predict", "--session", "cli-1", "--actions", "right,jump", "--out", tmp + "/cli/x.png")
    check(r.returncode == 1 and "422 unknown-action" in r.stderr and "'jump'" in r.stderr
          and not os.path.exists(tmp + "/cli/x.png"), "cli: a bad action exits 1 with the detail")
    r = cli(*G, "session", "get", "nobody")
    check(r.returncode == 1 and "404 session-not-found" in r.stderr and "nobody" in r.stderr,
          "cli: an unknown session exits 1")
    r = cli(*G, "replay", ep_path, "--memorize", "300")
    check(r.returncode == 2 and "--memorize" in r.stderr, "cli: --memorize past the episode exits 2")
    r = cli(*G, "replay", tmp + "/nope.ndjson")
    check(r.returncode == 2 and "cannot read" in r.stderr, "cli: a missing episode exits 2")
    r = cli(*G, "predict", "--session", "cli-1")
    check(r.returncode == 2 and "--actions" in r.stderr, "cli: a missing option exits 2 (argparse)")
    r = cli("--url", "http://127.0.0.1:1", "--retries", "1", "models")
    check(r.returncode == 3 and "cannot reach" in r.stderr, "cli: no daemon exits 3")
    r = cli(*G, "replay", ep_path, "--session", "cli-2", "--memorize", "100")
    check(r.returncode == 2 and "already holds 300 steps" in r.stderr,
          "cli replay into a session past --memorize exits 2 (its predictions would start later)")
    r = cli(*G, "session", "delete", "cli-2")
    check(r.returncode == 0 and cli(*G, "session", "get", "cli-2").returncode == 1, "cli session delete")
    r = cli("--help")
    check(r.returncode == 0 and all(w in r.stdout for w in ("models", "session", "observe", "replay", "predict",
                                                             "export", "import")), "cli --help lists the commands")


def test_retries(tmp, model_dir, ep, ep_path):
    # a connection cut while streaming: sent again, what was stored comes back as duplicates
    d = Daemon(model_dir, tmp + "/retry.db", "--served-by", "client-test", "--timeout", "1")
    proxy = CuttingProxy(d.port, after=60000)
    s = gc.Client(f"http://127.0.0.1:{d.port}").create_session("imagenav")["id"]
    c = gc.Client(f"http://127.0.0.1:{proxy.port}", retries=3, backoff=0.05)
    r = c.observe(s, ep_path, chunk=16)
    check(r.retries == 1 and r.duplicates > 0 and r.accepted + r.duplicates == 300 and r.steps == 300
          and proxy.cut_done == 1,
          f"a connection cut mid-stream is retried (accepted {r.accepted}, duplicates {r.duplicates})")
    check(c.session(s)["steps"] == 300, "after the retry the session has every step once")
    proxy.close()

    # a kept-alive connection the daemon closed (idle --timeout 1): a POST goes out again
    c2 = gc.Client(f"http://127.0.0.1:{d.port}", retries=0)
    c2.models()
    time.sleep(1.6)
    try:
        j = c2.create_session("imagenav", server_id=True)
        check(len(j["id"]) == 32, "a POST on a kept-alive connection the daemon closed is sent again")
    except gc.GtmsmError as e:
        check(False, f"a POST on a closed kept-alive connection: {e}")

    # nothing listening: TransportError after the retries
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    t0 = time.time()
    e = raises(lambda: gc.Client(f"http://127.0.0.1:{free}", retries=2, backoff=0.01).models(), gc.TransportError)
    check(e is not None and e.status is None and e.attempts == 3 and time.time() - t0 < 5,
          "connection refused: TransportError after 1 + 2 attempts")
    d.stop()

    # 503 with Retry-After: waited for, then the call goes through
    d = Daemon(model_dir, tmp + "/retry.db", "--served-by", "client-test", "--max-inflight", "1")
    held = RawStream(d.port, f"/v1/sessions/{s}/observations")
    held.send(ndjson(ep[:1]))
    time.sleep(0.2)
    e = raises(lambda: gc.Client(f"http://127.0.0.1:{d.port}", retries=0).models(), gc.Unavailable, "overloaded")
    check(problem_fields(e, 503) and e.retry_after == 1.0 and isinstance(e, gc.ServerError),
          "503 without retries: Unavailable with retry_after")
    timer = threading.Timer(0.5, lambda: held.finish())
    timer.start()
    c3 = gc.Client(f"http://127.0.0.1:{d.port}", retries=3)
    t0 = time.time()
    ms = c3.models()
    took = time.time() - t0
    timer.join()
    check(ms[0]["name"] == "imagenav" and c3.last_response.attempts == 2 and 0.9 <= took < 5,
          f"503 + Retry-After: 1 is waited for and retried ({took:.2f} s, {c3.last_response.attempts} attempts)")
    d.stop()

    # a body or frame limit reached mid-stream: continued at the committed steps
    for flag, value, slug in [("--max-body", "20000", "413 body-too-large"),
                              ("--max-frames", "40", "422 too-many-frames")]:
        d = Daemon(model_dir, tmp + "/limits.db", flag, value)
        c4 = gc.Client(f"http://127.0.0.1:{d.port}")
        s = c4.create_session("imagenav")["id"]
        r = c4.observe(s, ep_path, chunk=8)
        check(r.accepted == 300 and r.steps == 300 and r.resumes >= 5 and r.requests == r.resumes + 1,
              f"{slug} after progress: continued at the committed steps ({r.requests} requests)")
        d.stop()


def test_auth(tmp, model_dir, ep_path):
    keys = tmp + "/keys"
    with open(keys, "w") as f:
        f.write("# keys\nsecret-one\n")
    d = Daemon(model_dir, tmp + "/auth.db", "--api-keys", keys)
    url = f"http://127.0.0.1:{d.port}"
    e = raises(lambda: gc.Client(url).models(), gc.Unauthorized, "unauthorized")
    check(problem_fields(e, 401) and e.headers.get("www-authenticate", "").startswith("Bearer"),
          "no key: Unauthorized")
    check(raises(lambda: gc.Client(url, api_key="wrong").models(), gc.Unauthorized) is not None,
          "a wrong key: Unauthorized")
    c = gc.Client(url, api_key="secret-one")
    s = c.create_session("imagenav")
    check(c.observe(s, ep_path).steps == 300 and len(c.predict(s, ["left"])) == 1, "with the key: everything works")
    check(gc.Client(url).ready(), "health stays open without a key")
    r = cli("--url", url, "--api-key-file", keys, "session", "get", s["id"])
    check(r.returncode == 0 and cli_json(r)["steps"] == 300, "cli --api-key-file")
    r = cli("--url", url, "models", env={"GTMSM_API_KEY": "secret-one"})
    check(r.returncode == 0, "cli with GTMSM_API_KEY")
    r = cli("--url", url, "models")
    check(r.returncode == 1 and "401 unauthorized" in r.stderr, "cli without a key exits 1 with 401")
    d.stop()


def main():
    t0 = time.time()
    test_png()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tmp + "/models"
        train_model(model_dir + "/imagenav.gtm")
        ep_path = tmp + "/ep.ndjson"
        ep = gen_file(ep_path, 7, 300)
        d = Daemon(model_dir, tmp + "/client.db", "--served-by", "client-test")
        c = gc.Client(f"http://127.0.0.1:{d.port}")
        test_models_and_sessions(d, c)
        s = test_observe(d, c, tmp, ep, ep_path)
        strip = test_predict(d, c, tmp, s, ep)
        test_transfer(d, c, tmp, s, strip)
        test_cli(d, tmp, ep_path)
        c.close()
        check(d.stop() == 0, "the daemon stops cleanly")
        test_retries(tmp, model_dir, ep, ep_path)
        test_auth(tmp, model_dir, ep_path)
    print(f"took {time.time() - t0:.1f} s")
    finish("test_client")


if __name__ == "__main__":
    main()
