"""Helpers of the fault campaign (tests/fault): the daemon fixtures of the
integration tests (a real gtmsmd on a real loopback port with a real SQLite
file), raw HTTP requests written byte by byte, the check that a daemon still
serves after a fault, and the record of the (path, method, status) seen,
checked against proto/openapi.yaml."""
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from test_server_startup import (BIN, GTMSM, GTMSMD, SRC, Daemon, RawStream, b64, check, episode,  # noqa: E402,F401
                                 finish, is_problem, ndjson, openapi_statuses, png_bytes, train_model)

SPEC = openapi_statuses()
SEEN = set()
# Refused before routing on any path (openapi.yaml's description says so).
ANY_PATH = {400, 413, 414, 431}


def template(method, path):
    path = path.split("?")[0]
    for t in sorted({p for p, _, _ in SPEC}, key=lambda p: p.count("{")):
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path) and any(
                (t, method) == (p, m) for p, m, _ in SPEC):
            return t
    return path


def record(method, path, status):
    if isinstance(path, bytes):
        path = path.decode("latin-1")
    SEEN.add((template(method, path), method, status))


def check_spec():
    """Every status seen on a documented path is listed for it in openapi.yaml."""
    templates = {p for p, _, _ in SPEC}
    extra = sorted(x for x in SEEN - SPEC if x[0] in templates and x[2] not in ANY_PATH | {405})
    for x in extra:
        print("  not in openapi.yaml:", x, file=sys.stderr)
    check(not extra, f"every status seen is in openapi.yaml ({len(SEEN)} (path, method, status) seen)")


class Reply:
    def __init__(self, status, headers, body, closed, seconds):
        self.status, self.headers, self.body, self.closed, self.seconds = status, headers, body, closed, seconds
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def problem(self, status, slug=None):
        return self.status == status and is_problem(self.headers, self.json, status, slug)


def raw(port, data, timeout=5.0, method=None, path=None):
    """Sends data (bytes, a whole request or more) on a new connection and reads
    one reply. closed: the server closed the connection after it (EOF within
    0.5 s of the reply). status 0: no reply before timeout or EOF."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    try:
        s.sendall(data)
    except OSError:
        pass
    status, headers, body, closed = 0, {}, b"", False
    deadline = t0 + timeout
    try:
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            buf += b
        if b"\r\n\r\n" in buf:
            head, body = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
            want = int(headers.get("content-length", "0"))
            while len(body) < want and time.monotonic() < deadline:
                b = s.recv(65536)
                if not b:
                    closed = True
                    break
                body += b
            if not closed:
                s.settimeout(0.5)
                try:
                    extra = s.recv(65536)
                    closed = extra == b""
                    body += extra
                except socket.timeout:
                    closed = False
    except (socket.timeout, ConnectionResetError):
        pass
    finally:
        s.close()
    if method and path is not None and status:
        record(method, path, status)
    return Reply(status, headers, body, closed, time.monotonic() - t0)


def request_bytes(method, path, headers=None, body=b"", host=True, version="HTTP/1.1"):
    """A request as bytes; headers is a list of (name, value) pairs (repeats allowed)."""
    if isinstance(path, str):
        path = path.encode()
    out = method.encode() + b" " + path + b" " + version.encode() + b"\r\n"
    if host:
        out += b"Host: gtmsmd\r\n"
    for k, v in headers or []:
        out += k.encode() + b": " + (v if isinstance(v, bytes) else str(v).encode()) + b"\r\n"
    return out + b"\r\n" + body


def serves(d, what):
    """The daemon still answers: live, ready and a listed model."""
    s1 = d.json("GET", "/v2/health/live")[0]
    s2, _, j = d.json("GET", "/v1/models")
    ok = s1 == 200 and s2 == 200 and j and len(j.get("models", [])) >= 1
    return check(ok, f"the daemon still serves after {what} (live {s1}, models {s2})")


class Recorder(Daemon):
    def request(self, method, path, body=None, headers=None, conn=None):
        s, h, b = super().request(method, path, body, headers, conn)
        record(method, path, s)
        return s, h, b


def model_dir(tmp):
    d = os.path.join(tmp, "models")
    train_model(os.path.join(d, "imagenav.gtm"))
    return d
