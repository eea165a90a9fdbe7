"""Replicas that die: HAProxy (deploy/haproxy/haproxy.cfg) in front of three
gtmsmd processes, on one shared PostgreSQL (tests/lib/pglib.py) or each on its
own SQLite file, 16 clients (the Python client, clients/python, with its
normal retry path) streaming observations and asking for predictions while a
replica is killed with SIGKILL at seeded random moments and restarted.

Used by test_failover_postgres.py and test_failover_sqlite.py. Every process
here is started by this module and stopped or killed by its own PID only."""
import atexit
import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import deploylib  # noqa: E402
from deploylib import HAPROXY_CFG, free_ports, lb_env, server_states, wait_http  # noqa: E402,F401
from test_server_startup import check, episode, finish, train_model  # noqa: E402,F401

SRC = deploylib.SRC
BIN = deploylib.BIN
GTMSMD = os.path.join(BIN, "server", "gtmsmd")
sys.path.insert(0, os.path.join(SRC, "clients", "python"))
import gtmsm_client as gc  # noqa: E402

MODEL = "imagenav"
N_CLIENTS = 16
STEPS = 96       # observations per session
WINDOW = 4       # observations per request
PACE = 0.8       # seconds a client waits between requests under chaos: 24 requests span the kills
PRED = ["left", "up", "right", "down", "stay", "up"]  # the prediction after every request


class Cluster:
    """HAProxy + gtmsmd replicas on loopback; store(name) gives each replica's
    --store/--db arguments. kill9/start by the PIDs recorded here."""

    def __init__(self, workdir, models, store_args, extra=()):
        self.workdir, self.models, self.store_args, self.extra = workdir, models, store_args, list(extra)
        ports = free_ports(5)
        self.lb_port, self.stats_port = ports[0], ports[1]
        self.names = ["gtmsm-1", "gtmsm-2", "gtmsm-3"]
        self.port = dict(zip(self.names, ports[2:]))
        self.procs = {}
        self.lb = None
        for n in self.names:
            self.start(n)
        env = dict(os.environ)
        env.update(lb_env(self.lb_port, self.stats_port, [self.port[n] for n in self.names]))
        log = open(os.path.join(workdir, "haproxy.log"), "ab")
        self.lb = subprocess.Popen(["haproxy", "-W", "-db", "-f", HAPROXY_CFG], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        log.close()
        if not wait_http(self.stats_port, "/;csv", timeout=15):
            raise RuntimeError("haproxy did not start")
        deploylib.wait_states(self.stats_port, ["UP"] * 3)
        atexit.register(self.close)  # whatever happens to the test: close is idempotent

    def start(self, name):
        log = open(os.path.join(self.workdir, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen(
            [GTMSMD, "--models", self.models, "--listen", f"127.0.0.1:{self.port[name]}", "--served-by", name,
             "--threads", "4", *self.store_args(name), *self.extra], stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        if not wait_http(self.port[name], timeout=30):
            raise RuntimeError(f"{name} did not become ready:\n" + self.log(name))

    def kill9(self, name):
        p = self.procs.pop(name)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()

    def stop(self, name):
        p = self.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(40)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            return p.wait()

    def log(self, name):
        with open(os.path.join(self.workdir, name + ".log"), "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def close(self):
        if self.lb:
            os.kill(self.lb.pid, signal.SIGUSR1)
            try:
                self.lb.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.lb.pid, signal.SIGKILL)
                self.lb.wait()
            self.lb = None
        codes = {n: self.stop(n) for n in list(self.procs)}
        return codes


def episodes():
    """One gtmsm gen episode per client (seeded by its index)."""
    return [episode(100 + i, STEPS) for i in range(N_CLIENTS)]


def client_run(base_url, sid, ep, out, retries=80, pace=0.0):
    """One client: creates (opens) the session, then WINDOW observations per
    request, each followed by a prediction (PNG strip bytes by steps). Records
    the acknowledged steps after every request in out["acked"], the
    predictions in out["preds"], and any exception in out["error"]."""
    c = gc.Client(base_url, retries=retries, backoff=0.1, max_backoff=1.0, timeout=30)
    try:
        c.open_session(MODEL, sid)
        for i in range(0, len(ep), WINDOW):
            r = c.observe(sid, ep[i:i + WINDOW], window=WINDOW, start_t=i)
            out["acked"] = r.steps
            out["retries"] = out.get("retries", 0) + r.retries
            strip = c.predict_strip(sid, PRED)
            out["retries"] += strip.reply.attempts - 1 if strip.reply else 0
            out["preds"][r.steps] = strip.png
            time.sleep(pace)
        out["done"] = True
        out["done_at"] = time.monotonic()
    except Exception as e:  # noqa: BLE001
        out["error"] = repr(e)
    finally:
        c.close()


def reference(workdir, models, eps, ids):
    """The same sessions on one SQLite gtmsmd, no faults: predictions by steps."""
    port = free_ports(1)[0]
    log = open(os.path.join(workdir, "single.log"), "ab")
    p = subprocess.Popen([GTMSMD, "--models", models, "--listen", f"127.0.0.1:{port}", "--db",
                          os.path.join(workdir, "single.db"), "--threads", "4"], stdout=subprocess.DEVNULL,
                         stderr=log)
    log.close()
    try:
        wait_http(port, timeout=30)
        outs = []
        for sid, ep in zip(ids, eps):
            o = {"preds": {}}
            client_run(f"http://127.0.0.1:{port}", sid, ep, o, retries=3)
            outs.append(o)
        return outs
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(40)


def chaos(cl, rng, stop_event, kills, on_dead=None, restart_after=(0.8, 4.0), gap=(0.5, 2.0)):
    """kills times: wait a random gap, kill -9 a random replica, call on_dead
    (the victim's name; may probe), wait, restart it on its own data (some
    restarts come before HAProxy's checks mark it DOWN, about 2 s: HAProxy's
    connection retries cover them; the others move its ids on the ring and
    back). Returns
    [(victim, killed_at, back_at)]."""
    log = []
    for _ in range(kills):
        time.sleep(rng.uniform(*gap))
        victim = rng.choice(cl.names)
        t_kill = time.monotonic()
        cl.kill9(victim)
        if on_dead:
            on_dead(victim)
        time.sleep(rng.uniform(*restart_after))
        cl.start(victim)
        log.append((victim, t_kill, time.monotonic()))
    stop_event.set()
    return log


def run_clients(cl, eps, ids, seed, outs, kills=5, on_dead=None):
    """N_CLIENTS clients through HAProxy (results into outs, one dict each,
    which on_dead may read) while chaos() kills; returns (kill log, clients
    still running when the last killed replica was back)."""
    rng = random.Random(seed)
    threads = [threading.Thread(target=client_run, args=(f"http://127.0.0.1:{cl.lb_port}", sid, ep, o),
                                kwargs={"pace": PACE}) for sid, ep, o in zip(ids, eps, outs)]
    for t in threads:
        t.start()
    klog = chaos(cl, rng, threading.Event(), kills, on_dead)
    during = sum(t.is_alive() for t in threads)
    for t in threads:
        t.join(300)
    return klog, during


def check_run(klog, during, ids, outs, t0, kills=5, what=""):
    """The checks every chaos run shares: the kills happened while the clients
    ran, and every client finished through its retries."""
    print(f"  clients done in {time.monotonic() - t0:.1f} s; kills: "
          + ", ".join(f"{v} at {k - t0:.1f} s (back {b - t0:.1f} s)" for v, k, b in klog), flush=True)
    check(len(klog) == kills and during >= N_CLIENTS // 2,
          f"{kills} replicas killed with SIGKILL (and restarted) while the clients ran ({during} still running "
          "after the last restart)")
    errors = [(sid, o.get("error")) for sid, o in zip(ids, outs) if not o.get("done")]
    check(not errors, f"every client finished through the client's retries{what} {errors[:3]}")
    print("  client retries:", sum(o.get("retries", 0) for o in outs), flush=True)


def compare_predictions(ids, outs, ref):
    """Sessions whose predictions (by steps) differ from the reference run's."""
    return [(sid, sorted(set(o["preds"]) ^ set(r["preds"]))[:3],
             [k for k in o["preds"] if k in r["preds"] and o["preds"][k] != r["preds"][k]][:3])
            for sid, o, r in zip(ids, outs, ref) if o["preds"] != r["preds"]]


def check_logs(workdir, names):
    for n in names:
        with open(os.path.join(workdir, n + ".log"), errors="replace") as f:
            text = f.read()
        check(not any(m in text for m in ("ERROR: AddressSanitizer", "runtime error:")),
              f"{n}: no sanitizer report")
