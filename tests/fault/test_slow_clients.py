#!/usr/bin/env python3
"""Fault campaign, findings 3 and 9: slow clients must not lock anyone out,
and a streamed prediction must not starve behind busy connections.

1. 1,100 connections trickle a request head (one byte every half second) at
   the default --max-connections 1024: a normal client is still served
   within a second (the longest head wait is evicted to make room), and the
   tricklers are cut at --header-timeout.
2. Idle chunked uploads fill what uploads may hold (--max-inflight minus
   --reserve): more uploads get 503 at once, short requests and health still
   get 200 within a second, and the idle uploads are cut at --body-timeout.
3. With 16 clients predicting in a loop, an NDJSON prediction of 256 frames
   arrives in a few 64 KiB blocks (not one line per event-loop turn) and in
   time comparable to the same request as JSON."""
import json
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import Recorder, check, episode, finish, model_dir, ndjson, raw, request_bytes, serves  # noqa: E402

HEAD = b"GET /v1/models HTTP/1.1\r\nHost: gtmsmd\r\nX-Slow: " + b"x" * 4000


def timed(d, method, path, body=None, headers=None):
    t0 = time.monotonic()
    try:
        s, h, j = d.json(method, path, body, headers)
    except OSError as e:
        s, h, j = 0, {}, {"error": str(e)}
    return s, j, time.monotonic() - t0


def open_quiet(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.setblocking(False)
        return s
    except OSError:
        return None


def is_cut(s):
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_trickling_heads(models, tmp):
    d = Recorder(models, tmp + "/slow.db", "--header-timeout", "3")
    n = 1100
    socks = []
    t_open = time.monotonic()
    for _ in range(n):
        s = open_quiet(d.port)
        if s:
            socks.append([s, 0, True])
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for e in socks:
                if not e[2]:
                    continue
                try:
                    e[0].send(HEAD[e[1]:e[1] + 1])
                    e[1] += 1
                except OSError:
                    e[2] = False
            time.sleep(0.5)
    th = threading.Thread(target=trickle, daemon=True)
    th.start()
    check(len(socks) >= 1025, f"{len(socks)} trickling connections opened (more than --max-connections)")
    time.sleep(1.6)  # every trickler has waited more than a second for its head
    for i in range(3):
        s, j, secs = timed(d, "GET", "/v1/models")
        check(s == 200 and secs < 1.0, f"{len(socks)} trickling connections open: a normal request "
              f"#{i + 1} is served in {secs:.2f} s (status {s})")
    s, j, secs = timed(d, "GET", "/v2/health/ready")
    check(s == 200 and secs < 1.0, f"health answered in {secs:.2f} s among the tricklers")
    deadline = t_open + 3 + 2.0
    while time.monotonic() < deadline and any(not is_cut(e[0]) for e in socks):
        time.sleep(0.2)
    alive = sum(1 for e in socks if not is_cut(e[0]))
    check(alive == 0, f"every trickler is cut within --header-timeout 3 s + 2 s ({alive} of {len(socks)} "
          f"still open {time.monotonic() - t_open:.1f} s after they opened)")
    stop.set()
    th.join()
    for e in socks:
        e[0].close()
    s, h, text = d.request("GET", "/metrics")
    t = text.decode()
    check('gtmsm_connections_cut_total{reason="header_timeout"}' in t and
          'gtmsm_connections_cut_total{reason="header_timeout"} 0\n' not in t, "the cuts are counted in /metrics")
    serves(d, "1,100 trickling connections")
    check(d.stop() == 0, "stops cleanly")


def test_idle_uploads(models, tmp):
    ep = episode(3, 4)
    d = Recorder(models, tmp + "/uploads.db", "--max-inflight", "24", "--reserve", "8",
                 "--body-timeout", "3")
    d.json("PUT", "/v1/sessions/up", {"model": "imagenav"})
    d.json("POST", "/v1/sessions/up/observations", {"observations": ep[:2]})
    head = request_bytes("POST", "/v1/sessions/up/observations",
                         [("Content-Type", "application/x-ndjson"), ("Transfer-Encoding", "chunked")])
    socks, t0 = [], time.monotonic()
    for i in range(24):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(head + b"1\r\n\n\r\n")  # one blank line, then silence
        socks.append(s)
    time.sleep(0.5)
    held, refused = [], 0
    for s in socks:
        s.settimeout(0.05)
        got = b""
        try:
            while True:  # a refusal closes the connection: read it to the end
                b = s.recv(4096)
                if not b:
                    break
                got += b
        except socket.timeout:
            pass
        if got.startswith(b"HTTP/1.1 503") and b"Retry-After" in got and b"overloaded" in got:
            refused += 1
            s.close()
        else:
            held.append(s)
    check(len(held) == 16 and refused == 8,
          f"24 idle uploads: 16 held (max-inflight 24 - reserve 8), 8 refused at once with 503 "
          f"(held {len(held)}, refused {refused})")
    for method, path, body in [("GET", "/v1/models", None), ("GET", "/v1/sessions/up", None),
                               ("PUT", "/v1/sessions/up2", {"model": "imagenav"}),
                               ("POST", "/v1/sessions/up/predictions", {"actions": [0, 1]}),
                               ("GET", "/v2/health/ready", None)]:
        s, j, secs = timed(d, method, path, body)
        check(s in (200, 201) and secs < 1.0, f"with the uploads held: {method} {path} -> {s} in {secs:.2f} s")
    for x in held:
        x.setblocking(False)
    while time.monotonic() < t0 + 3 + 2.5 and any(not is_cut(x) for x in held):
        time.sleep(0.2)
    alive = sum(1 for x in held if not is_cut(x))
    check(alive == 0, f"idle uploads cut at --body-timeout 3 s ({alive} of {len(held)} still open after "
          f"{time.monotonic() - t0:.1f} s)")
    for x in held:
        x.close()
    time.sleep(0.3)
    s, h, j = d.json("POST", "/v1/sessions/up/observations", ndjson(ep[2:4]), {"Content-Type": "application/x-ndjson"})
    check(s == 200 and j["steps"] == 4, f"uploads work again once the idle ones are cut ({s} {j})")
    serves(d, "idle uploads")
    check(d.stop() == 0, "stops cleanly")


def chunked_reply(port, body):
    """POST a prediction asking NDJSON; returns (status, number of HTTP chunks, lines, seconds)."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(request_bytes("POST", "/v1/sessions/busy0/predictions",
                            [("Content-Type", "application/json"), ("Accept", "application/x-ndjson"),
                             ("Content-Length", len(body)), ("Connection", "close")], body))
    buf = b""
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        buf += b
    s.close()
    secs = time.monotonic() - t0
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split()[1])
    chunks, data = 0, b""
    while rest:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        chunks += 1
        data, rest = data + rest[:size], rest[size + 2:]
    return status, chunks, data.decode().splitlines(), secs


def test_ndjson_under_load(models, tmp):
    d = Recorder(models, tmp + "/busy.db", "--threads", "2")
    ep = episode(7, 40)
    for i in range(17):
        d.json("PUT", f"/v1/sessions/busy{i}", {"model": "imagenav"})
        d.json("POST", f"/v1/sessions/busy{i}/observations", {"observations": ep})
    stop = threading.Event()
    errors = []

    def busy(i):
        c = d.conn(timeout=60)
        while not stop.is_set():
            try:
                s, _, _ = d.request("POST", f"/v1/sessions/busy{i}/predictions", {"actions": [0, 1, 2, 3] * 16},
                                    conn=c)
                if s != 200:
                    errors.append(s)
            except OSError as e:
                errors.append(str(e))
                c = d.conn(timeout=60)
    threads = [threading.Thread(target=busy, args=(i,), daemon=True) for i in range(1, 17)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    body = json.dumps({"actions": [i % 5 for i in range(256)]}).encode()
    t0 = time.monotonic()
    s_json, _, j = d.json("POST", "/v1/sessions/busy0/predictions", json.loads(body))
    json_secs = time.monotonic() - t0
    status, chunks, lines, nd_secs = chunked_reply(d.port, body)
    stop.set()
    for t in threads:
        t.join()
    same = s_json == 200 and [json.loads(l)["png"] for l in lines] == [f["png"] for f in j["frames"]]
    check(status == 200 and len(lines) == 256 and same, f"NDJSON under load: 256 frames, the same as JSON ({status})")
    size = sum(len(l) + 1 for l in lines)
    check(chunks <= size // 65536 + 4, f"{size} bytes of NDJSON came in {chunks} chunks (64 KiB blocks, "
          f"not one per line)")
    check(nd_secs < 3 * json_secs + 0.5, f"with 16 busy clients NDJSON took {nd_secs * 1000:.0f} ms, "
          f"JSON {json_secs * 1000:.0f} ms")
    check(not errors, f"the busy clients saw no errors ({errors[:3]})")
    serves(d, "the load")
    check(d.stop() == 0, "stops cleanly")


def main():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 1,100 sockets of our own
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    with tempfile.TemporaryDirectory() as tmp:
        models = model_dir(tmp)
        test_trickling_heads(models, tmp)
        test_idle_uploads(models, tmp)
        test_ndjson_under_load(models, tmp)
    finish("test_slow_clients")


if __name__ == "__main__":
    main()
