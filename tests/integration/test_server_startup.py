#!/usr/bin/env python3
"""gtmsmd start-up and configuration, and the helpers the other server tests
import (a real daemon on a real port with a real SQLite file, driven with the
Python standard library only).

Checks here: --help lists every option with its GTMSM_* variable; bad flags,
bad values and unknown options exit 2 with a message; env variables work and
flags win over them; a missing or empty models folder starts, says so, and is
live but not ready; SIGTERM exits 0; the database gets WAL, schema version 4."""
import base64
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import zlib

BIN = os.environ.get("GTMSM_BIN", "build")
SRC = os.environ.get("GTMSM_SRC", ".")
GTMSMD = os.path.join(BIN, "server", "gtmsmd")
GTMSM = os.path.join(BIN, "tools", "gtmsm")

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr, flush=True)
    else:
        print("ok:", what, flush=True)
    return cond


def finish(name):
    print(f"{name}: {failures} failure(s)")
    sys.exit(1 if failures else 0)


# ---- fixtures -------------------------------------------------------------

def train_model(path, seed=1, steps=2):
    """A tiny imagenav model (8x8x3 frames, actions right,left,up,down,stay)."""
    out = os.path.dirname(path)
    os.makedirs(out, exist_ok=True)
    subprocess.run([GTMSM, "train", "--out", out + "/run", "--steps", str(steps), "--batch", "2",
                    "--memorize", "24", "--predict", "8", "--hidden", "16", "--latent", "4",
                    "--gate-hidden", "8", "--seed", str(seed), "--model-out", path],
                   check=True, capture_output=True)
    return path


def episode(seed, steps):
    """gtmsm gen lines: [{"t", "action", "frame", "truth"}]."""
    out = subprocess.run([GTMSM, "gen", "--env", "imagenav", "--seed", str(seed), "--steps",
                          str(steps)], check=True, capture_output=True).stdout
    return [json.loads(l) for l in out.decode().splitlines()]


def ndjson(obs):
    return "".join(json.dumps(o) + "\n" for o in obs).encode()


def png_bytes(w, h, c, fill=(10, 200, 30, 255)):
    """A minimal valid PNG (8-bit, c = 1 gray, 3 RGB, 4 RGBA)."""
    ctype = {1: 0, 3: 2, 4: 6}[c]
    row = bytes(fill[:c]) * w
    raw = b"".join(b"\x00" + row for _ in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def b64(b):
    return base64.b64encode(b).decode()


def png_size(b):
    assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", b[16:24])


# ---- the daemon -----------------------------------------------------------

class Daemon:
    """gtmsmd on 127.0.0.1 with an ephemeral port read from its 'listening' log line."""

    def __init__(self, models, db, *args, env=None, wait_ready=True):
        self.log_path = db + ".log"
        self.logf = open(self.log_path, "ab")
        self.logf_start = self.logf.tell()
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([GTMSMD, "--models", models, "--db", db, "--listen",
                                      "127.0.0.1:0", "--threads", "4", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.logf, env=e)
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline and self.port is None:
            for line in self.lines():
                if line.get("event") == "listening":
                    self.port = line["port"]
            if self.proc.poll() is not None:
                raise RuntimeError("gtmsmd exited %d:\n%s" % (self.proc.returncode, self.log_text()))
            time.sleep(0.02)
        if self.port is None:
            raise RuntimeError("gtmsmd did not start:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.logf_start)
            return f.read().decode(errors="replace")

    def lines(self):
        out = []
        for l in self.log_text().splitlines():
            try:
                out.append(json.loads(l))
            except ValueError:
                out.append({"raw": l})
        return out

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """(status, headers (lowercase keys), body bytes); JSON bodies from dicts."""
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if conn is None:
                c.close()

    def json(self, method, path, body=None, headers=None):
        s, h, b = self.request(method, path, body, headers)
        try:
            j = json.loads(b) if b else None
        except ValueError:
            j = None
        return s, h, j

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.logf.close()
        self.check_sanitizers()
        return code

    def check_sanitizers(self):
        """Fails the test when a sanitizer build of the daemon reported anything."""
        text = self.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer"):
            if marker in text:
                i = text.index(marker)
                check(False, "sanitizer report from gtmsmd:\n" + text[max(0, i - 200):i + 3000])
                break


class RawStream:
    """A chunked upload written by hand, to control when bytes leave."""

    def __init__(self, port, path, ctype="application/x-ndjson", headers=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        hdr = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n"
        for k, v in (headers or {}).items():
            hdr += f"{k}: {v}\r\n"
        self.sock.sendall((hdr + "\r\n").encode())

    def send(self, data):
        self.sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")

    def finish(self):
        """Ends the body and reads the reply: (status, headers, json or None)."""
        try:
            self.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        return self.read()

    def read(self):
        r = http.client.HTTPResponse(self.sock)
        r.begin()
        body = r.read()
        self.sock.close()
        try:
            j = json.loads(body)
        except ValueError:
            j = None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, j

    def close(self):
        self.sock.close()


def openapi_doc():
    """proto/openapi.yaml parsed with PyYAML (python3-yaml), or None without it."""
    try:
        import yaml
    except ImportError:
        return None
    with open(os.path.join(SRC, "proto", "openapi.yaml")) as f:
        return yaml.safe_load(f)


def openapi_statuses():
    """{(path, method, status)} documented in proto/openapi.yaml: from PyYAML when it
    is installed, else from the file's fixed indentation."""
    doc = openapi_doc()
    if doc:
        return {(p, m.upper(), int(st)) for p, item in doc["paths"].items() for m, op in item.items()
                if m in ("get", "put", "post", "delete") for st in op["responses"]}
    out, path, method = set(), None, None
    for line in open(os.path.join(SRC, "proto", "openapi.yaml")):
        if line.startswith("components:"):
            break
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            path, method = m.group(1), None
            continue
        m = re.match(r"^    (get|put|post|delete):\s*$", line)
        if m:
            method = m.group(1).upper()
            continue
        m = re.match(r'^        "(\d{3})":', line)
        if m and path and method:
            out.add((path, method, int(m.group(1))))
    return out


def is_problem(h, j, status, slug=None):
    return (h.get("content-type") == "application/problem+json" and isinstance(j, dict)
            and j.get("status") == status and {"type", "title", "status", "detail"} <= set(j)
            and (slug is None or j.get("type") == "urn:gtmsm:problem:" + slug))


# ---- start-up and configuration tests --------------------------------------

def test_help_and_flags(tmp):
    out = subprocess.run([GTMSMD, "--help"], capture_output=True, text=True)
    check(out.returncode == 0, "--help exits 0")
    for opt in ["models", "db", "listen", "api-keys", "served-by", "threads", "max-body",
                "max-frames", "max-actions", "max-sessions", "cache-bytes", "max-entries",
                "max-inflight", "reserve", "max-connections", "timeout", "header-timeout",
                "body-timeout", "shutdown-grace", "log-level", "synchronous"]:
        env = "GTMSM_" + opt.upper().replace("-", "_")
        check(f"--{opt} " in out.stdout and env in out.stdout, f"--help lists --{opt} and {env}")
    check("./models" in out.stdout and "./data/gtmsm.db" in out.stdout and "127.0.0.1:8080" in out.stdout,
          "--help shows the defaults")
    for args, what in [(["--nope", "1"], "unknown option"), (["--max-body", "12q"], "not a byte size"),
                       (["--threads", "-1"], "not an integer"), (["--log-level", "loud"], "not one of"),
                       (["--synchronous"], "needs a value"), (["stray"], "unexpected argument")]:
        r = subprocess.run([GTMSMD, *args], capture_output=True, text=True)
        check(r.returncode == 2 and what in r.stderr, f"{' '.join(args)}: exit 2 with '{what}'")
    r = subprocess.run([GTMSMD, "--listen", "nowhere"], capture_output=True, text=True,
                       env=dict(os.environ, GTMSM_DB=tmp + "/x.db", GTMSM_MODELS=tmp))
    check(r.returncode == 2 and "HOST:PORT" in r.stderr, "a bad --listen exits 2 with a message")
    r = subprocess.run([GTMSMD, "--api-keys", tmp + "/missing-keys"], capture_output=True, text=True,
                       env=dict(os.environ, GTMSM_DB=tmp + "/x.db", GTMSM_MODELS=tmp))
    check(r.returncode == 2 and "API keys" in r.stderr, "a missing keys file exits 2")
    r = subprocess.run([GTMSMD, "--version"], capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.startswith("gtmsmd "), "--version")
    core = re.search(r"^blas_core (\w+) \((.*)\)$", r.stdout, re.M)
    check(core is not None, f"--version names the OpenBLAS core: {r.stdout.strip()!r}")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["OPENBLAS_CORETYPE"] = "Prescott"
    r = subprocess.run([GTMSMD, "--version"], capture_output=True, text=True, env=env)
    check("blas_core Prescott (OPENBLAS_CORETYPE)" in r.stdout, "a set OPENBLAS_CORETYPE is kept")


def test_empty_models(tmp):
    for models, what in [(tmp + "/no-such-folder", "missing"), (tmp + "/empty", "empty")]:
        os.makedirs(tmp + "/empty", exist_ok=True)
        d = Daemon(models, f"{tmp}/{what}.db")
        s, h, j = d.json("GET", "/v2/health/live")
        check(s == 200 and j == {"status": "live"}, f"{what} models folder: live")
        s, h, j = d.json("GET", "/v2/health/ready")
        check(s == 503 and is_problem(h, j, 503, "not-ready") and "retry-after" in h,
              f"{what} models folder: not ready (503 not-ready, Retry-After)")
        s, h, j = d.json("GET", "/v1/models")
        check(s == 200 and j == {"models": []}, f"{what} models folder: no models")
        said = [l for l in d.lines() if l.get("event") == "models" and l.get("level") == "warn"]
        check(len(said) == 1 and "not ready" in said[0].get("msg", ""), f"{what} models folder: said so in the log")
        check(d.stop() == 0, f"{what} models folder: SIGTERM exits 0")


def test_env_and_db(tmp, model_dir):
    db = tmp + "/sub/dir.db"
    os.makedirs(tmp + "/sub", exist_ok=True)
    d = Daemon(model_dir, db, "--max-actions", "3",
               env={"GTMSM_MAX_ACTIONS": "7", "GTMSM_SERVED_BY": "replica-7", "GTMSM_LOG_LEVEL": "debug"})
    s, h, j = d.json("GET", "/v2/health/ready")
    check(s == 200 and j["models"] == 1, "ready with one model")
    check(h.get("x-served-by") == "replica-7", "GTMSM_SERVED_BY sets X-Served-By")
    check(len(h.get("x-request-id", "")) == 16, "a generated X-Request-Id")
    s, h, j = d.json("GET", "/v2/health/live", headers={"X-Request-Id": "abc.DEF-123_x"})
    check(h.get("x-request-id") == "abc.DEF-123_x", "a client X-Request-Id is echoed")
    s, h, j = d.json("GET", "/v2/health/live", headers={"X-Request-Id": "bad id with spaces"})
    check(h.get("x-request-id") != "bad id with spaces", "an invalid X-Request-Id is replaced")
    d.json("PUT", "/v1/sessions/envtest", {"model": "imagenav"})
    s, h, j = d.json("POST", "/v1/sessions/envtest/predictions", {"actions": ["left"] * 4})
    check(s == 422 and j.get("limit") == 3, "the flag wins over GTMSM_MAX_ACTIONS (limit 3)")
    access = [l for l in d.lines() if l.get("event") == "access"]
    check(access and {"rid", "method", "path", "route", "status", "us", "ts"} <= set(access[-1]),
          "JSON-lines access log with request id, route, status and latency")
    check(any(l.get("rid") == "abc.DEF-123_x" for l in access), "the access log carries the client's request id")
    check(d.stop() == 0, "SIGTERM exits 0")
    con = sqlite3.connect(db)
    check(con.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "the database is in WAL mode")
    check(con.execute("PRAGMA user_version").fetchone()[0] == 5, "schema version 5 after migrations")
    check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check ok")
    con.close()
    d = Daemon(model_dir, db)  # migrations are idempotent: a second start keeps the data
    s, h, j = d.json("GET", "/v1/sessions/envtest")
    check(s == 200 and j["id"] == "envtest", "a restart keeps the session")
    check(not any(l.get("msg") == "schema migrated" for l in d.lines()), "no migration on a current schema")
    check(d.stop() == 0, "SIGTERM exits 0 again")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tmp + "/models"
        train_model(model_dir + "/imagenav.gtm")
        test_help_and_flags(tmp)
        test_empty_models(tmp)
        test_env_and_db(tmp, model_dir)
    finish("test_server_startup")


if __name__ == "__main__":
    main()
