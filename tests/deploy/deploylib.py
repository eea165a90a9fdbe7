"""The deployment scenario, shared by test_deploy_processes.py (haproxy and
three gtmsmd processes) and test_deploy_containers.py (the same in podman
containers): HAProxy with deploy/haproxy/haproxy.cfg in front of three
replicas, each with its own SQLite file, driven through the load balancer.

A cluster object gives: names (the replicas' X-Served-By values, in the order
of haproxy.cfg's servers replica1..3), lb_port, stats_port, stop(name) and
start(name) (the same replica on the same data). run_scenario(cluster) does
the rest and records failures with check()."""
import http.client
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import test_server_startup as tss  # noqa: E402
from test_server_startup import check, episode, finish, ndjson, png_size, train_model  # noqa: E402,F401

SRC = os.environ.get("GTMSM_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("GTMSM_BIN", os.path.join(SRC, "build"))
HAPROXY_CFG = os.path.join(SRC, "deploy", "haproxy", "haproxy.cfg")
GTMSMD_NAMES = ["gtmsm-1", "gtmsm-2", "gtmsm-3", "gtmsm-4"]
MODEL = "tiny"
N_SESSIONS = 30
STEPS = 48
PRED_ACTIONS = ["left", "left", "up", "right", "down", "stay", "up", "up"] * 3


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def lb_env(lb_port, stats_port, replica_ports):
    """The environment that points deploy/haproxy/haproxy.cfg at loopback ports."""
    env = {"GTMSM_LB_BIND": f"127.0.0.1:{lb_port}", "GTMSM_LB_STATS": f"127.0.0.1:{stats_port}"}
    for i, p in enumerate(replica_ports, 1):
        env[f"GTMSM_REPLICA_{i}"] = f"127.0.0.1:{p}"
    return env


def make_model(workdir):
    """A tiny model in its own folder (world-readable: containers run as uid 10001)."""
    models = os.path.join(workdir, "models")
    os.makedirs(models, exist_ok=True)
    train_model(os.path.join(models, MODEL + ".gtm"))
    os.chmod(workdir, 0o755)
    os.chmod(models, 0o755)
    for f in os.listdir(models):
        p = os.path.join(models, f)
        os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
    return models


# ---- HTTP ------------------------------------------------------------------

def request(port, method, path, body=None, headers=None, timeout=60):
    """(status, headers with lowercase keys, body bytes). dict bodies go as JSON;
    an iterator body goes chunked (streamed)."""
    h = dict(headers or {})
    chunked = False
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    elif body is not None and not isinstance(body, (bytes, str)):
        chunked = True
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h, encode_chunked=chunked)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def wait_http(port, path="/v2/health/ready", timeout=30, want=200):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = request(port, "GET", path, timeout=2)[0]
            if last == want:
                return True
        except OSError as e:
            last = e
        time.sleep(0.1)
    print(f"  {path} on port {port}: last answer {last}", file=sys.stderr)
    return False


def server_states(stats_port):
    """{server name: status} of the 'sessions' backend from HAProxy's CSV stats."""
    s, _, b = request(stats_port, "GET", "/;csv", timeout=5)
    lines = b.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") == "sessions" and row.get("svname") not in ("FRONTEND", "BACKEND"):
            out[row["svname"]] = row["status"]
    return out


def wait_states(stats_port, want, timeout=30):
    """Waits until HAProxy's view of replica1..3 is `want` (e.g. UP, DOWN, UP)."""
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        try:
            st = server_states(stats_port)
            got = [st.get(f"replica{i}", "?").split(" ")[0] for i in range(1, len(want) + 1)]
            if got == list(want):
                return True
        except OSError:
            pass
        time.sleep(0.1)
    print(f"  haproxy states {st}, wanted {want}", file=sys.stderr)
    return False


# ---- the scenario ------------------------------------------------------------

def predict(port, sid):
    return request(port, "POST", f"/v1/sessions/{sid}/predictions",
                   {"actions": PRED_ACTIONS, "mode": "mean"}, {"Accept": "image/png"})


def stream(lines, size=700):
    """An NDJSON body in small chunks, to go through HAProxy chunked."""
    data = ndjson(lines)
    for i in range(0, len(data), size):
        yield data[i:i + size]


def run_scenario(cl):
    lb = cl.lb_port
    names = cl.names
    check(wait_states(cl.stats_port, ["UP"] * len(names)), "haproxy sees all three replicas UP")

    # Requests without a session id go anywhere (round robin).
    seen = set()
    for _ in range(9):
        s, h, b = request(lb, "GET", "/v1/models")
        seen.add(h.get("x-served-by"))
        if s != 200 or MODEL not in b.decode():
            check(False, f"GET /v1/models through the LB: {s} {b[:200]!r}")
    check(seen == set(names), f"GET /v1/models spread over every replica: {sorted(seen, key=str)}")

    # 30 sessions with client ids; every request of a session records its replica.
    served = {}  # sid -> set of X-Served-By
    ids = [f"deploy-{i:02d}" for i in range(N_SESSIONS)]

    def note(sid, h):
        served.setdefault(sid, set()).add(h.get("x-served-by"))

    bad = []
    for i, sid in enumerate(ids):
        s, h, b = request(lb, "PUT", f"/v1/sessions/{sid}", {"model": MODEL})
        note(sid, h)
        if s != 201:
            bad.append(("PUT", sid, s, b[:200]))
        s, h, _ = request(lb, "PUT", f"/v1/sessions/{sid}", {"model": MODEL})  # idempotent
        note(sid, h)
        if s != 200:
            bad.append(("PUT again", sid, s))
        ep = episode(1000 + i, STEPS)
        half = STEPS // 2
        # The first half streamed in chunks, the second as one body, then the
        # second half again (a retry: all duplicates).
        for part, body in ((0, stream(ep[:half])), (1, ndjson(ep[half:])), (2, ndjson(ep[half:]))):
            s, h, b = request(lb, "POST", f"/v1/sessions/{sid}/observations", body,
                              {"Content-Type": "application/x-ndjson"})
            note(sid, h)
            want = {"accepted": half, "duplicates": 0, "steps": (part + 1) * half} if part < 2 else \
                {"accepted": 0, "duplicates": STEPS - half, "steps": STEPS}
            if s != 200 or json.loads(b) != want:
                bad.append(("observations", sid, part, s, b[:200]))
    check(not bad, f"{N_SESSIONS} sessions created with PUT and fed {STEPS} steps through the LB"
          + (f": {bad[:3]}" if bad else ""))

    # Ids are hashed and read as sent: an encoded spelling of an existing id is
    # refused by whichever replica it lands on, never a second copy elsewhere.
    s1 = request(lb, "PUT", "/v1/sessions/deploy-0%31", {"model": MODEL})[0]
    s2 = request(lb, "DELETE", "/v1/sessions/deploy-00%00x")[0]
    s3, h3, _ = request(lb, "GET", "/v1/sessions/deploy-01")
    s4 = request(lb, "GET", "/v1/sessions/deploy-00")[0]
    check(s1 == 400 and s2 == 400 and s3 == 200 and s4 == 200 and {h3.get("x-served-by")} == served["deploy-01"],
          f"percent-encoded ids through the LB: 400, the real sessions untouched on their replica "
          f"({s1} {s2} {s3} {s4})")

    before = {}
    bad = []
    for sid in ids:
        s, h, b = predict(lb, sid)
        note(sid, h)
        if s != 200 or b[:8] != b"\x89PNG\r\n\x1a\n":
            bad.append((sid, s, b[:200]))
        before[sid] = b
        s, h, b = request(lb, "GET", f"/v1/sessions/{sid}")
        note(sid, h)
        if s != 200 or json.loads(b).get("steps") != STEPS:
            bad.append((sid, s, b[:200]))
    check(not bad, "every session predicts a PNG strip and has its steps" + (f": {bad[:3]}" if bad else ""))

    owner = {}
    split = {sid: v for sid, v in served.items() if len(v) != 1}
    check(not split, f"every request of a session was served by one replica ({split or 'all 30'})")
    for sid, v in served.items():
        owner[sid] = next(iter(v))
    spread = {n: sum(1 for o in owner.values() if o == n) for n in names}
    print(f"  sessions per replica: {spread}", flush=True)
    check(set(owner.values()) == set(names), "the sessions spread over all three replicas")

    # POST /v1/sessions (no id from the client): the LB picks the id, so the
    # session lives where its id hashes and later requests find it.
    created = []
    bad = []
    for k in range(6):
        s, h, b = request(lb, "POST", "/v1/sessions", {"model": MODEL})
        j = json.loads(b) if s == 201 else {}
        sid = j.get("id", "")
        if s != 201 or len(sid) != 32 or h.get("location") != f"/v1/sessions/{sid}":
            bad.append((s, h.get("location"), b[:200]))
            continue
        created.append(sid)
        note(sid, h)
        ep = episode(2000 + k, 16)
        s, h, b = request(lb, "POST", f"/v1/sessions/{sid}/observations", ndjson(ep),
                          {"Content-Type": "application/x-ndjson"})
        note(sid, h)
        s2, h, _ = predict(lb, sid)
        note(sid, h)
        if s != 200 or s2 != 200:
            bad.append((sid, s, s2))
    check(not bad and all(len(served[sid]) == 1 for sid in created),
          f"POST /v1/sessions through the LB: 201, a 32-hex id, and every later request on its "
          f"creator ({[served[sid] for sid in created]}) {bad[:2]}")

    # Moving a session: export from its owner, import under a new id through
    # the LB (which needs ?id=), and the copy predicts byte-identically.
    s, h, dump = request(lb, "GET", f"/v1/sessions/{ids[0]}/export")
    check(s == 200 and h.get("x-served-by") == owner[ids[0]], "export through the LB, from the owner")
    s, h, b = request(lb, "POST", "/v1/sessions/import", dump, {"Content-Type": "application/json"})
    check(s == 400 and b"?id=" in b and h.get("content-type", "").startswith("application/problem+json"),
          f"import without ?id= through the LB is refused with a problem: {s} {b[:160]!r}")
    copies = [f"moved-{k}" for k in range(6)]
    bad = []
    for cid in copies:
        s, h, b = request(lb, "POST", f"/v1/sessions/import?id={cid}", dump,
                          {"Content-Type": "application/json"})
        note(cid, h)
        s2, h, b2 = predict(lb, cid)
        note(cid, h)
        if s != 201 or s2 != 200 or b2 != before[ids[0]] or len(served[cid]) != 1:
            bad.append((cid, s, s2, b2 == before[ids[0]], served[cid], b[:200]))
    check(not bad, "import?id= through the LB lands on the id's owner and predicts byte-identically "
          f"(copies on {sorted({next(iter(served[c])) for c in copies})}) {bad[:2]}")

    # One replica goes away: its sessions are unavailable, the others' are untouched.
    victim = names[1]
    mine = [sid for sid in ids if owner[sid] == victim]
    others = [sid for sid in ids if owner[sid] != victim]
    t0 = time.time()
    code = cl.stop(victim)
    check(code == 0, f"{victim} stopped with SIGTERM exits 0 (got {code})")
    states = ["UP"] * len(names)
    states[1] = "DOWN"
    check(wait_states(cl.stats_port, states), f"haproxy marks {victim} DOWN "
          f"({time.time() - t0:.1f} s after the stop began)")
    bad = []
    for sid in others:
        s, h, b = predict(lb, sid)
        if s != 200 or b != before[sid] or h.get("x-served-by") != owner[sid]:
            bad.append((sid, s, h.get("x-served-by"), b == before[sid]))
    check(not bad, f"with {victim} down, the {len(others)} sessions of the other two predict "
          f"byte-identically on their own replica {bad[:3]}")
    bad = []
    for sid in mine:
        s, h, b = predict(lb, sid)
        if s != 503 or h.get("x-served-by") == victim or not h.get("retry-after"):
            bad.append((sid, s, h.get("x-served-by"), b[:120]))
    check(not bad, f"with {victim} down, its {len(mine)} sessions are unavailable: 503 with "
          f"Retry-After (owner-unavailable from the ring's next replica), never 404 {bad[:3]}")
    # ... and never created there: a PUT of one of its ids makes no empty fork
    s, h, b = request(lb, "PUT", f"/v1/sessions/{mine[0]}", {"model": MODEL})
    check(s == 503 and b"owner-unavailable" in b and h.get("x-served-by") != victim,
          f"with {victim} down, PUT of one of its ids is 503 owner-unavailable, no fork ({s} {b[:120]})")
    s, h, _ = request(lb, "GET", "/v1/models")
    check(s == 200 and h.get("x-served-by") != victim, "requests without an id still go to live replicas")

    # It comes back with its own data: every session predicts byte-identically,
    # each on its owner again.
    t0 = time.time()
    cl.start(victim)
    check(wait_states(cl.stats_port, ["UP"] * len(names)),
          f"haproxy marks {victim} UP again ({time.time() - t0:.1f} s after the start)")
    bad = []
    for sid in ids:
        s, h, b = predict(lb, sid)
        if s != 200 or b != before[sid] or h.get("x-served-by") != owner[sid]:
            bad.append((sid, s, h.get("x-served-by"), b == before[sid]))
    check(not bad, f"after the restart all {N_SESSIONS} sessions predict byte-identically, each on its "
          f"owner ({len(mine)} of them reloaded from {victim}'s database) {bad[:3]}")
    s, h, b = request(lb, "GET", f"/v1/sessions/{mine[0]}") if mine else (200, {}, b"{}")
    check(s == 200 and (not mine or json.loads(b)["steps"] == STEPS), "a restored session kept its steps")
    return owner, before
