#!/usr/bin/env python3
"""Fault campaign, findings 1, 2, 7, 8, 11, 12 and 14: the bad-input table,
every case written byte by byte on its own connection to a real daemon, each
with its exact status and slug (and whether the connection must be closed),
each followed by a check that the daemon still serves:

  1. ids are taken as sent: percent-encoded ids (%00, %2F, %2D) and a raw NUL
     in the target are refused, never acted on as another id;
  2. a PNG decompression bomb (a valid 8x8 frame whose zlib stream goes on
     with 256 MiB of zeros) is 400 bad-png at once;
  7. a target with bytes outside printable ASCII is 400, and its access-log
     line keeps method, path and status;
  8. framing: disagreeing Content-Length headers (the rest is not parsed as a
     next request), unknown Transfer-Encoding, Transfer-Encoding with
     Content-Length, too many query parameters (431), HTTP/1.1 without Host
     or with two: a prompt reply and the connection closed;
 12. Accept q-values: q=0 refuses a format, the highest q wins, 406 when
     nothing fits.
Then start-up inputs: 14. a keys file with a UTF-8 BOM (its first key works)
and one with a non-ASCII key (exit 2 naming the line); 11. a FIFO named
*.gtm in the models folder (skipped, start-up does not hang)."""
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import (GTMSMD, Recorder, b64, check, check_spec, episode, finish, model_dir, ndjson,  # noqa: E402
                      png_bytes, raw, request_bytes, serves)


def bomb_png(zeros):
    """A valid 8x8 RGB PNG whose single zlib stream holds its rows and then zeros more bytes."""
    rows = b"".join(b"\x00" + bytes((x * 7 + y * 13) % 256 for x in range(24)) for y in range(8))
    c = zlib.compressobj(9)
    parts, block = [c.compress(rows)], bytes(1 << 20)
    for _ in range(zeros >> 20):
        parts.append(c.compress(block))
    parts.append(c.flush())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def json_req(method, path, obj=None, headers=None):
    body = json.dumps(obj).encode() if obj is not None else b""
    h = [("Content-Type", "application/json"), ("Content-Length", len(body))] if obj is not None else []
    return request_bytes(method, path, h + (headers or []), body)


def test_table(d):
    ep = episode(9, 6)
    for sid in ("victim", "bad"):
        d.json("PUT", f"/v1/sessions/{sid}", {"model": "imagenav"})
    d.json("POST", "/v1/sessions/bad/observations", {"observations": ep[:5]})
    s, h, dump = d.json("GET", "/v1/sessions/bad/export")
    t0 = time.monotonic()
    bomb = bomb_png(256 << 20)
    print(f"bomb: {len(bomb)} bytes inflating to 256 MiB (built in {time.monotonic() - t0:.1f} s)")
    line = json.dumps({"t": 5, "action": "left", "frame": b64(bomb)}).encode() + b"\n"
    nd = [("Content-Type", "application/x-ndjson")]
    pred = {"actions": [0, 1]}
    smuggle = (b"POST /v1/sessions/victim/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 15\r\nContent-Length: 60\r\n\r\n{\"actions\": [0]}"
               b"DELETE /v1/sessions/victim HTTP/1.1\r\nHost: x\r\n\r\n")
    q5000 = "/v1/models?" + "&".join(f"a{i}=1" for i in range(5000))
    # (name, method, path, request bytes, status, slug, must the connection be closed)
    table = [
        ("DELETE with %00 in the id", "DELETE", "/v1/sessions/victim%00x",
         request_bytes("DELETE", "/v1/sessions/victim%00x"), 400, "bad-id", False),
        ("GET with %2F in the id", "GET", "/v1/sessions/victim%2Fexport",
         request_bytes("GET", "/v1/sessions/victim%2Fexport"), 400, "bad-id", False),
        ("PUT with %2D in the id", "PUT", "/v1/sessions/walker%2D0",
         json_req("PUT", "/v1/sessions/walker%2D0", {"model": "imagenav"}), 400, "bad-id", False),
        ("import with ?id=walker%2D0", "POST", "/v1/sessions/import?id=walker%2D0",
         json_req("POST", "/v1/sessions/import?id=walker%2D0", dump), 400, "bad-id", False),
        ("model name with %00", "GET", "/v1/models/imagenav%00",
         request_bytes("GET", "/v1/models/imagenav%00"), 400, "bad-id", False),
        ("a raw NUL in the id", "DELETE", "/v1/sessions/victim",
         request_bytes("DELETE", b"/v1/sessions/victim\x00x"), 400, "malformed-request", True),
        ("invalid UTF-8 in the path", "GET", "/v1/sessions/x",
         request_bytes("GET", b"/v1/sessions/\xff\xfe"), 400, "malformed-request", True),
        ("a control byte in the path", "GET", "/v1/models",
         request_bytes("GET", b"/v1/models\x01"), 400, "malformed-request", True),
        ("PNG bomb in an NDJSON line", "POST", "/v1/sessions/bad/observations",
         request_bytes("POST", "/v1/sessions/bad/observations", nd + [("Content-Length", len(line))], line),
         400, "bad-png", False),
        ("PNG bomb as an image/png body", "POST", "/v1/sessions/bad/observations?t=5&action=left",
         request_bytes("POST", "/v1/sessions/bad/observations?t=5&action=left",
                       [("Content-Type", "image/png"), ("Content-Length", len(bomb))], bomb),
         400, "bad-png", False),
        ("two different Content-Length", "POST", "/v1/sessions/victim/predictions", smuggle, 400,
         "malformed-request", True),
        ("Transfer-Encoding gzip", "POST", "/v1/sessions",
         request_bytes("POST", "/v1/sessions", [("Content-Type", "application/json"),
                                                ("Transfer-Encoding", "gzip")], b"{}"), 400, "malformed-request", True),
        ("Transfer-Encoding gzip, chunked", "POST", "/v1/sessions",
         request_bytes("POST", "/v1/sessions", [("Content-Type", "application/json"),
                                                ("Transfer-Encoding", "gzip, chunked")], b"0\r\n\r\n"),
         400, "malformed-request", True),
        ("Transfer-Encoding and Content-Length", "POST", "/v1/sessions",
         request_bytes("POST", "/v1/sessions", [("Content-Type", "application/json"), ("Content-Length", 2),
                                                ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
         400, "malformed-request", True),
        ("two Transfer-Encoding headers", "POST", "/v1/sessions",
         request_bytes("POST", "/v1/sessions", [("Content-Type", "application/json"),
                                                ("Transfer-Encoding", "chunked"),
                                                ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
         400, "malformed-request", True),
        ("5,000 query parameters", "GET", "/v1/models", request_bytes("GET", q5000), 431, "too-many-parameters", True),
        ("65 query parameters", "GET", "/v1/models",
         request_bytes("GET", "/v1/models?" + "&".join(["a=1"] * 65)), 431, "too-many-parameters", True),
        ("HTTP/1.1 without Host", "GET", "/v2/health/live",
         request_bytes("GET", "/v2/health/live", host=False), 400, "malformed-request", True),
        ("two Host headers", "GET", "/v2/health/live",
         request_bytes("GET", "/v2/health/live", [("Host", "other")]), 400, "malformed-request", True),
        ("Accept: image/png;q=0 only", "POST", "/v1/sessions/bad/predictions",
         json_req("POST", "/v1/sessions/bad/predictions", pred, [("Accept", "image/png;q=0")]),
         406, "not-acceptable", False),
        ("Accept: text/html", "POST", "/v1/sessions/bad/predictions",
         json_req("POST", "/v1/sessions/bad/predictions", pred, [("Accept", "text/html")]),
         406, "not-acceptable", False),
    ]
    for name, method, path, data, status, slug, closed in table:
        r = raw(d.port, data, timeout=10, method=method, path=path)
        ok = r.problem(status, slug) and (r.closed or not closed) and r.seconds < 3
        check(ok, f"bad input: {name} -> {status} {slug}{', closed' if closed else ''} in {r.seconds:.2f} s"
              + ("" if ok else f" (got {r.status} closed={r.closed} {r.body[:300]!r})"))
        if not serves(d, name):
            return
    r = raw(d.port, request_bytes("GET", "/v1/sessions/victim"))
    check(r.status == 200, "victim still exists: no %00, NUL or smuggled DELETE reached it")
    r = raw(d.port, request_bytes("GET", "/v1/sessions/walker-0"))
    check(r.status == 404, "no walker-0 was created by the encoded id")
    r = raw(d.port, smuggle, timeout=3)
    check(r.body.count(b"HTTP/1.1 ") == 0, "the bytes after the first Content-Length were not answered as a request")
    check(d.json("GET", "/v1/sessions/bad")[2]["steps"] == 5, "the bombs changed nothing (5 steps)")
    bomb_lines = [l for l in d.lines() if l.get("event") == "access" and l.get("path") == "/v1/sessions/%FF%FE"]
    check(len(bomb_lines) == 1 and bomb_lines[0].get("method") == "GET" and bomb_lines[0].get("status") == 400,
          "the access log keeps method, path (as %XX) and status of the invalid UTF-8 request")
    # what must still work
    ok_cases = [
        ("the same Content-Length twice", request_bytes("PUT", "/v1/sessions/dup", [
            ("Content-Type", "application/json"), ("Content-Length", 20), ("Content-Length", 20)],
            b'{"model":"imagenav"}'), 201),
        ("64 query parameters", request_bytes("GET", "/v1/models?" + "&".join(["a=1"] * 64)), 200),
        ("HTTP/1.0 without Host", request_bytes("GET", "/v2/health/live", host=False, version="HTTP/1.0"), 200),
        ("chunked, any case", request_bytes("POST", "/v1/sessions/bad/observations", nd + [
            ("Transfer-Encoding", "Chunked")], b"0\r\n\r\n"), 200),
    ]
    for name, data, status in ok_cases:
        r = raw(d.port, data)
        check(r.status == status, f"still accepted: {name} -> {status} (got {r.status})")
    for accept, ctype in [("image/png;q=0, application/json", "application/json"),
                          ("application/json;q=0.2, image/png;q=0.3", "image/png"),
                          ("image/*;q=0.1, application/x-ndjson;q=0.2", "application/x-ndjson"),
                          ("*/*, application/json;q=0", "image/png")]:
        s, h, body = d.request("POST", "/v1/sessions/bad/predictions", pred, {"Accept": accept})
        check(s == 200 and h.get("content-type") == ctype, f"Accept '{accept}' -> {ctype} (got {s} {h.get('content-type')})")


def test_keys_bom(models, tmp):
    keys = tmp + "/keys-bom"
    with open(keys, "wb") as f:
        f.write(b"\xef\xbb\xbffirst-key\nsecond-key\n")
    d = Recorder(models, tmp + "/bom.db", "--api-keys", keys)
    for key in ("first-key", "second-key"):
        s = d.json("GET", "/v1/models", headers={"Authorization": "Bearer " + key})[0]
        check(s == 200, f"a keys file with a UTF-8 BOM: '{key}' works ({s})")
    check(d.json("GET", "/v1/models")[0] == 401, "and no key is still 401")
    check(d.stop() == 0, "stops cleanly")
    with open(keys, "wb") as f:
        f.write(b"good-key\nk\xc3\xa9y\n")
    p = subprocess.Popen([GTMSMD, "--models", models, "--db", tmp + "/bom2.db", "--api-keys", keys,
                          "--listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    check(p.returncode == 2 and ":2:" in err, f"a non-ASCII key: exit 2 naming line 2 ({p.returncode})")


def test_fifo_model(models, tmp):
    d2 = tmp + "/models-fifo"
    os.makedirs(d2)
    shutil.copy(models + "/imagenav.gtm", d2 + "/imagenav.gtm")
    os.mkfifo(d2 + "/stuck.gtm")
    t0 = time.monotonic()
    d = Recorder(d2, tmp + "/fifo.db")
    secs = time.monotonic() - t0
    s, h, j = d.json("GET", "/v2/health/ready")
    check(s == 200 and j["models"] == 1 and secs < 10, f"a FIFO named stuck.gtm: start-up in {secs:.1f} s, "
          "ready with the one real model")
    check(any(l.get("event") == "models" and "stuck.gtm" in l.get("file", "") and "regular" in l.get("msg", "")
              for l in d.lines()), "the FIFO is logged as skipped")
    serves(d, "a FIFO in the models folder")
    check(d.stop() == 0, "stops cleanly")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        models = model_dir(tmp)
        d = Recorder(models, tmp + "/inputs.db")
        test_table(d)
        check(d.stop() == 0, "SIGTERM after the table: exit 0")
        test_keys_bom(models, tmp)
        test_fifo_model(models, tmp)
    check_spec()
    finish("test_inputs")


if __name__ == "__main__":
    main()
