#!/usr/bin/env python3
"""gtmsmd against the conventions of model servers (issue 13), on a real
daemon with a real SQLite file: numbers in JSON in their shortest form (0.1,
not 0.10000000000000001) in every body, NDJSON line and log line."""
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import (Daemon, check, episode, finish, ndjson, train_model)  # noqa: E402

# A %.17g artefact: 15+ significant digits ending in a run of 0s or 9s and
# one noise digit, as jansson's default printing of 0.1 gives.
NOISE = re.compile(rb"\d\.?\d*(0{6,}|9{6,})\d(?![\d])")


def numbers(raw):
    """Every number token outside strings in JSON text (bytes)."""
    out, in_str, i = [], False, 0
    while i < len(raw):
        c = raw[i:i + 1]
        if in_str:
            if c == b"\\":
                i += 1
            elif c == b'"':
                in_str = False
        elif c == b'"':
            in_str = True
        elif c in b"-0123456789":
            m = re.match(rb"-?[0-9][0-9.eE+-]*", raw[i:])
            out.append(m.group(0))
            i += len(m.group(0))
            continue
        i += 1
    return out


def shortest(tok):
    """The token is the shortest form that reads back as its double (or an integer)."""
    if not re.search(rb"[.eE]", tok):
        return True
    v = float(tok)
    s = tok.decode()
    digits = len(re.sub(r"e.*|[-.]", "", s.lower()).strip("0")) or 1  # significant digits
    return all(float("%.*g" % (p, v)) != v for p in range(1, digits))


def test_numbers(d, model_dir):
    s, h, raw = d.request("GET", "/v1/models/imagenav")
    m = json.loads(raw)
    check(s == 200 and not NOISE.search(raw), "model description: no %.17g noise in the numbers")
    toks = numbers(raw)
    check(toks and all(shortest(t) for t in toks), f"model description: every number shortest ({len(toks)})")
    # The training options as the trainer wrote them into the model file's card.
    check(m["training"].get("kl_start") == 1.0 and b'"kl_start":1.0' in raw, "integral reals keep '.0'")
    s, h, j = d.json("POST", "/v1/sessions", {"model": "imagenav"})
    sid = j["id"]
    ep = episode(3, 40)
    s, h, j = d.json("POST", f"/v1/sessions/{sid}/observations", ndjson(ep), {"Content-Type": "application/x-ndjson"})
    check(s == 200, "observations accepted")
    s, h, raw = d.request("POST", f"/v1/sessions/{sid}/predictions", {"actions": ["right", "up", "left"]})
    p = json.loads(raw)
    states = [v for f in p["frames"] for v in f["state"]]
    toks = [t for t in numbers(raw)]
    check(s == 200 and states and all(len(re.sub(r"e.*|[-.]", "", repr(v)).lstrip("0")) <= 9 for v in states),
          f"prediction states: at most 9 digits (float32): {states[:4]}")
    check(not NOISE.search(raw) and all(shortest(t) for t in toks), "prediction JSON: every number shortest")
    s, h, raw = d.request("POST", f"/v1/sessions/{sid}/predictions", {"actions": ["right", "up"]},
                          {"Accept": "application/x-ndjson"})
    check(s == 200 and raw.count(b"\n") == 2 and all(shortest(t) for t in numbers(raw)),
          "prediction NDJSON: every number shortest")
    s, h, raw = d.request("GET", f"/v1/sessions/{sid}/export")
    check(s == 200 and all(shortest(t) for t in numbers(raw)), "export: every number shortest")
    # The export reads back: the float32 state survives the round trip.
    dump = json.loads(raw)
    d.request("DELETE", f"/v1/sessions/{sid}")
    s, h, j = d.json("POST", "/v1/sessions/import", dump)
    s2, h2, raw2 = d.request("GET", f"/v1/sessions/{sid}/export")
    check(s == 201 and json.loads(raw2)["state"] == dump["state"], "import of the export: the same state")
    logs = open(d.log_path, "rb").read()
    check(all(shortest(t) for line in logs.splitlines() if line.startswith(b"{") for t in numbers(line)),
          "log lines: every number shortest")
    return sid


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tmp + "/models"
        train_model(model_dir + "/imagenav.gtm")
        d = Daemon(model_dir, tmp + "/conv.db")
        test_numbers(d, model_dir)
        check(d.stop() == 0, "SIGTERM: exit 0")
    finish("test_server_conventions")


if __name__ == "__main__":
    main()
