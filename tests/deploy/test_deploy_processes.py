#!/usr/bin/env python3
"""The load-balanced deployment without containers, quick to run while
developing: Debian's haproxy with deploy/haproxy/haproxy.cfg (pointed at
loopback ports through its GTMSM_* environment) in front of three gtmsmd
processes, each with its own SQLite file and its own X-Served-By name.

Through the load balancer: 30 sessions with client ids (PUT), gtmsm gen
episodes streamed, predictions; every request of a session is served by one
replica and the sessions spread over all three; POST /v1/sessions and
import?id= land where their id hashes; one replica stops (SIGTERM, exit 0):
the sessions of the other two predict byte-identically, its own are
unavailable; it restarts on its database and its sessions come back
byte-identical. Then the k8s ConfigMap is checked to embed the same
haproxy.cfg, and deploy/rebalance.py moves the sessions that a fourth
replica takes over (~1/4) and they still predict byte-identically."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploylib import (BIN, GTMSMD_NAMES, HAPROXY_CFG, SRC, check, finish, free_ports,  # noqa: E402
                       lb_env, make_model, predict, request, run_scenario, tss, wait_http,
                       wait_states)

GTMSMD = os.path.join(BIN, "server", "gtmsmd")


class Processes:
    """haproxy + gtmsmd processes on loopback ports, everything under workdir."""

    def __init__(self, workdir, models, n=3, cfg=HAPROXY_CFG):
        self.workdir, self.models, self.cfg = workdir, models, cfg
        ports = free_ports(n + 2)
        self.lb_port, self.stats_port = ports[0], ports[1]
        self.names = GTMSMD_NAMES[:n]
        self.port = dict(zip(self.names, ports[2:]))
        self.procs = {}
        self.lb = None
        for name in self.names:
            self.start(name)
        self.start_lb()

    def start(self, name):
        env = dict(os.environ)
        env.update({"GTMSM_LISTEN": f"127.0.0.1:{self.port[name]}",
                    "GTMSM_DB": os.path.join(self.workdir, name, "gtmsm.db"),
                    "GTMSM_MODELS": self.models, "GTMSM_SERVED_BY": name, "GTMSM_THREADS": "4"})
        log = open(os.path.join(self.workdir, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen([GTMSMD], env=env, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        if not wait_http(self.port[name]):
            raise RuntimeError(f"{name} did not become ready:\n" + self.log(name))

    def stop(self, name):
        p = self.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(40)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def start_lb(self, extra_env=None):
        env = dict(os.environ)
        env.update(lb_env(self.lb_port, self.stats_port, [self.port[n] for n in self.names]))
        env.update(extra_env or {})
        log = open(os.path.join(self.workdir, "haproxy.log"), "ab")
        self.lb = subprocess.Popen(["haproxy", "-W", "-db", "-f", self.cfg], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if not wait_http(self.stats_port, "/;csv", timeout=15):
            raise RuntimeError("haproxy did not start:\n" + self.log("haproxy"))

    def stop_lb(self):
        if self.lb:
            self.lb.send_signal(signal.SIGUSR1)  # soft stop
            try:
                self.lb.wait(10)
            except subprocess.TimeoutExpired:
                self.lb.kill()
                self.lb.wait()
            self.lb = None

    def log(self, name):
        with open(os.path.join(self.workdir, name + ".log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def close(self):
        self.stop_lb()
        for name in list(self.procs):
            self.stop(name)


def check_k8s_configmap():
    """deploy/k8s/haproxy.yaml embeds deploy/haproxy/haproxy.cfg unchanged."""
    import yaml
    with open(HAPROXY_CFG) as f:
        cfg = f.read()
    with open(os.path.join(SRC, "deploy", "k8s", "haproxy.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    embedded = [d["data"]["haproxy.cfg"] for d in docs if d.get("kind") == "ConfigMap"]
    check(embedded == [cfg], "deploy/k8s/haproxy.yaml's ConfigMap embeds deploy/haproxy/haproxy.cfg "
          "unchanged")


def check_compose():
    """deploy/compose.yaml: three replicas, each its own volume and X-Served-By name, the
    HAProxy of deploy/haproxy pointed at them (no compose engine here: checked as data)."""
    import yaml
    with open(os.path.join(SRC, "deploy", "compose.yaml")) as f:
        c = yaml.safe_load(f)
    sv = c["services"]
    reps = [n for n in sv if n.startswith("gtmsm-")]
    vols = [sv[n]["volumes"][0].split(":")[0] for n in reps]
    served = [sv[n]["environment"]["GTMSM_SERVED_BY"] for n in reps]
    check(reps == GTMSMD_NAMES[:3] and len(set(vols)) == 3 and set(vols) <= set(c["volumes"])
          and served == reps and all(sv[n]["volumes"][0].endswith(":/var/lib/gtmsm") for n in reps)
          and all(sv[n]["build"]["dockerfile"] == "docker/Dockerfile" for n in reps),
          f"compose.yaml: three replicas, each with its own volume and name ({vols}, {served})")
    env = sv["haproxy"]["environment"]
    check(sv["haproxy"]["build"] == "./haproxy" and
          [env[f"GTMSM_REPLICA_{i}"] for i in (1, 2, 3)] == [f"{n}:8080" for n in reps],
          "compose.yaml: HAProxy built from deploy/haproxy, pointed at the three replicas")


def four_replica_cfg(workdir):
    """haproxy.cfg with a fourth server (id 4) in both backends, as docs/DEPLOY.md says to scale."""
    with open(HAPROXY_CFG) as f:
        cfg = f.read()
    out = []
    for line in cfg.splitlines(True):
        line = line.replace("%[srv_is_up(sessions/replica3)]",
                            "%[srv_is_up(sessions/replica3)]%[srv_is_up(sessions/replica4)]")
        out.append(line)
        m = re.match(r'(\s+server )replica3 "\$\{GTMSM_REPLICA_3-gtmsm-3:8080\}" id 3(.*)$', line)
        if m:
            rest = m.group(2).replace("replica3", "replica4")
            out.append(f'{m.group(1)}replica4 "${{GTMSM_REPLICA_4-gtmsm-4:8080}}" id 4{rest}\n')
    path = os.path.join(workdir, "haproxy-4.cfg")
    with open(path, "w") as f:
        f.write("".join(out))
    check("".join(out).count("replica4") == 4, "the 4-replica config has replica4 in both backends "
          "and in the ring header")
    return path


def scale_to_four(cl, owner, before):
    """Adds a fourth replica and moves the sessions it now owns with deploy/rebalance.py."""
    name = GTMSMD_NAMES[3]
    cl.names.append(name)
    cl.port[name] = free_ports(1)[0]
    cl.start(name)
    cl.stop_lb()
    cl.cfg = four_replica_cfg(cl.workdir)
    cl.start_lb({"GTMSM_REPLICA_4": f"127.0.0.1:{cl.port[name]}"})
    check(wait_states(cl.stats_port, ["UP"] * 4), "haproxy with four replicas, all UP")
    cmd = [sys.executable, os.path.join(SRC, "deploy", "rebalance.py"), "--lb", f"http://127.0.0.1:{cl.lb_port}"]
    for n in cl.names:
        cmd += ["--replica", f"{n}=http://127.0.0.1:{cl.port[n]}",
                "--db", os.path.join(cl.workdir, n, "gtmsm.db")]
    r = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, timeout=120)
    planned = [l for l in r.stdout.splitlines() if l.startswith("move ")]
    check(r.returncode == 0 and planned, f"rebalance --dry-run lists the moves ({len(planned)})\n{r.stderr[-2000:]}")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    print(r.stdout[-1500:], end="")
    moved = [l for l in r.stdout.splitlines() if l.startswith("moved ")]
    check(r.returncode == 0, f"rebalance.py exits 0\n{r.stderr[-2000:]}")
    m = re.search(r"rebalance: (\d+) sessions checked", r.stdout)
    n_all = int(m.group(1)) if m else 0
    check(n_all >= len(before) and 0 < len(moved) < n_all / 2 and len(moved) == len(planned)
          and all(l.endswith(f"-> {name}") or f"-> {name} " in l for l in moved),
          f"scaling 3 -> 4 moved {len(moved)} of {n_all} sessions (about 1/4), all to {name}, as planned")
    bad = []
    new_owner = {}
    for sid, png in before.items():
        s, h, b = predict(cl.lb_port, sid)
        new_owner[sid] = h.get("x-served-by")
        if s != 200 or b != png:
            bad.append((sid, s, h.get("x-served-by")))
        if new_owner[sid] not in (owner[sid], name):
            bad.append((sid, "moved between old replicas", owner[sid], new_owner[sid]))
    check(not bad, f"after scaling, every session predicts byte-identically; only moves to {name} {bad[:3]}")
    gone = []
    for sid, o in owner.items():
        if new_owner[sid] == name:
            s, _, _ = request(cl.port[o], "GET", f"/v1/sessions/{sid}")
            if s != 404:
                gone.append((sid, o, s))
    check(not gone, f"moved sessions were deleted from their old replica {gone[:3]}")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and "moved " not in r.stdout, "a second rebalance has nothing to move")


def main():
    if shutil.which("haproxy") is None:
        check(False, "haproxy is not installed (scripts/setup.sh installs it)")
        finish("deploy_processes")
    t_start = time.time()
    work = tempfile.mkdtemp(prefix="gtmsm-deploy-")
    cl = None
    ok = False
    try:
        models = make_model(work)
        cl = Processes(work, models)
        print(f"  haproxy on 127.0.0.1:{cl.lb_port}, replicas {cl.port}", flush=True)
        check_k8s_configmap()
        check_compose()
        owner, before = run_scenario(cl)
        scale_to_four(cl, owner, before)
        ok = True
    finally:
        if cl:
            cl.close()
        if cl and (not ok or tss.failures):
            for n in ["haproxy"] + GTMSMD_NAMES:
                if os.path.exists(os.path.join(work, n + ".log")):
                    print(f"---- {n}.log (tail)\n{cl.log(n)[-1500:]}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    print(f"deploy_processes: {time.time() - t_start:.1f} s")
    finish("deploy_processes")


if __name__ == "__main__":
    main()
