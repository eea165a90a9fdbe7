#!/usr/bin/env python3
"""The load-balanced deployment in containers, as shipped: docker/build.sh
builds the gtmsmd image (docker/Dockerfile) and the HAProxy image
(deploy/haproxy/Dockerfile) with podman, on a debian:bookworm-slim made with
debootstrap (docker/podman/make-base-image.sh, reused when present); then
three gtmsmd containers, each with its own named volume, and an HAProxy
container, all with host networking on distinct loopback ports.

First the image itself: non-root, the shipped models/*.gtm inside, no
compiler, VOLUME, HEALTHCHECK, STOPSIGNAL, GTMSM_* defaults; a container on
its defaults creates its database in the volume. Then the scenario of
deploylib (the same as test_deploy_processes.py): 30 sessions through the
load balancer, one replica per session, spread over three; a replica stopped
(podman stop: SIGTERM, exit 0) leaves the others byte-identical; a new
container on its volume brings its sessions back byte-identical. Then the
same three containers on one shared PostgreSQL (session leases): a replica
stopped and another killed, every session served by the third at once
(SIGTERM released the leases) or after the lease TTL (SIGKILL), predictions
byte-identical, and again when both are back.

Needs root and podman (scripts/setup.sh installs podman, runc, debootstrap);
fails when they are missing. Containers and volumes are removed at the end."""
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploylib import (GTMSMD_NAMES, SRC, check, finish, free_ports, lb_env,  # noqa: E402
                       make_model, request, run_scenario, tss, wait_http)

PODMAN = os.path.join(SRC, "docker", "podman", "podman.sh")
IMAGE = os.environ.get("GTMSM_IMAGE", "gtmsm/gtmsmd:latest")
HAPROXY_IMAGE = os.environ.get("GTMSM_HAPROXY_IMAGE", "gtmsm/haproxy:latest")
LABEL = "gtmsm.test=deploy"


def podman(*args, check_rc=True, timeout=120):
    r = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]}")
    return r


def remove_stale():
    """Containers and volumes of earlier runs whose test process is gone."""
    for kind, ls, rm in (("container", ["ps", "-a"], ["rm", "-f", "-t", "0"]),
                         ("volume", ["volume", "ls"], ["volume", "rm", "-f"])):
        r = podman(*ls, "--filter", f"label={LABEL}", "--format", "json", check_rc=False)
        for item in json.loads(r.stdout or "[]"):
            labels = item.get("Labels") or {}
            pid = int(labels.get("gtmsm.test.pid", "0") or 0)
            alive = pid > 0 and os.path.exists(f"/proc/{pid}")
            if not alive:
                name = item.get("Names", [item.get("Name")])
                name = name[0] if isinstance(name, list) else name
                podman(*rm, name, check_rc=False)
                print(f"  removed a stale {kind} {name}", flush=True)


class Containers:
    """gtmsmd containers (one named volume each) and an HAProxy container."""

    def __init__(self, work, models, extra=(), tag=""):
        self.models = models
        self.extra = list(extra)  # more podman run arguments for every gtmsmd container
        self.prefix = f"gtmsm-deploytest-{os.getpid()}{tag}"
        ports = free_ports(5)
        self.lb_port, self.stats_port = ports[0], ports[1]
        self.names = GTMSMD_NAMES[:3]
        self.port = dict(zip(self.names, ports[2:]))
        self.containers, self.volumes = [], []
        self.labels = ["--label", LABEL, "--label", f"gtmsm.test.pid={os.getpid()}"]
        for name in self.names:
            vol = f"{self.prefix}-{name}"
            podman("volume", "create", *self.labels, vol)
            self.volumes.append(vol)
            self.start(name)
        env = []
        for k, v in lb_env(self.lb_port, self.stats_port, [self.port[n] for n in self.names]).items():
            env += ["-e", f"{k}={v}"]
        self.lb = self.run(f"{self.prefix}-lb", *env, HAPROXY_IMAGE)
        if not wait_http(self.stats_port, "/;csv", timeout=30):
            raise RuntimeError("haproxy container did not start:\n" + self.logs(self.lb))

    def run(self, cname, *args):
        podman("run", "-d", "--name", cname, "--network", "host", *self.labels, *args)
        self.containers.append(cname)
        return cname

    def start(self, name):
        """A new container for the replica, on the replica's volume."""
        cname = f"{self.prefix}-{name}"
        # (Without systemd podman does not schedule the HEALTHCHECK: `healthcheck run` below.)
        self.run(cname, "-v", f"{self.prefix}-{name}:/var/lib/gtmsm", "-v", f"{self.models}:/models:ro",
                 "-e", f"GTMSM_LISTEN=127.0.0.1:{self.port[name]}", "-e", f"GTMSM_SERVED_BY={name}",
                 "-e", "GTMSM_MODELS=/models", "-e", "GTMSM_THREADS=4", *self.extra, IMAGE)
        if not wait_http(self.port[name], timeout=60):
            raise RuntimeError(f"{cname} did not become ready:\n" + self.logs(cname))
        r = podman("healthcheck", "run", cname, check_rc=False)
        check(r.returncode == 0, f"{cname}: the image's HEALTHCHECK passes ({r.stdout.strip() or 'healthy'})")

    def stop(self, name):
        """podman stop (SIGTERM), the exit code, then the container goes; the volume stays."""
        cname = f"{self.prefix}-{name}"
        podman("stop", "-t", "40", cname, timeout=60)
        code = int(podman("inspect", "-f", "{{.State.ExitCode}}", cname).stdout.strip())
        podman("rm", cname)
        self.containers.remove(cname)
        return code

    def kill(self, name):
        """podman kill -s KILL: the replica dies without a word; the container goes."""
        cname = f"{self.prefix}-{name}"
        podman("kill", "-s", "KILL", cname, check_rc=False)
        podman("rm", "-f", "-t", "0", cname, check_rc=False)
        self.containers.remove(cname)

    def logs(self, cname):
        r = podman("logs", "--tail", "40", cname, check_rc=False)
        return (r.stdout + r.stderr)[-4000:]

    def close(self):
        for c in self.containers:
            podman("rm", "-f", "-t", "0", c, check_rc=False)
        for v in self.volumes:
            podman("volume", "rm", "-f", v, check_rc=False)
        self.containers, self.volumes = [], []


def build_images(work):
    t0 = time.time()
    base_present = podman("image", "exists", "docker.io/library/debian:bookworm-slim",
                          check_rc=False).returncode == 0
    log = os.path.join(work, "build.log")
    with open(log, "w") as f:
        r = subprocess.run([os.path.join(SRC, "docker", "build.sh")], stdout=f, stderr=subprocess.STDOUT,
                           env=dict(os.environ, GTMSM_ENGINE="podman", GTMSM_IMAGE=IMAGE,
                                    GTMSM_HAPROXY_IMAGE=HAPROXY_IMAGE), timeout=1500)
    with open(log) as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith(("build.sh:", "make-base-image:")):
            print("  " + line, flush=True)
    ok = check(r.returncode == 0, f"docker/build.sh builds both images with podman in {time.time() - t0:.0f} s "
               f"(base image {'reused' if base_present else 'made with debootstrap'})")
    if not ok:
        print(text[-6000:], file=sys.stderr)
    return ok


def check_image():
    info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    cfg = info.get("Config", {})
    env = dict(e.split("=", 1) for e in cfg.get("Env", []))
    hc = info.get("Healthcheck") or info.get("HealthCheck") or cfg.get("Healthcheck") or {}
    hc = " ".join(hc.get("Test") or [])
    check(cfg.get("User") == "10001:10001", f"the image runs as a non-root user ({cfg.get('User')})")
    check("/var/lib/gtmsm" in (cfg.get("Volumes") or {}), "the image declares VOLUME /var/lib/gtmsm")
    check(cfg.get("StopSignal") in ("SIGTERM", "15"), f"STOPSIGNAL SIGTERM ({cfg.get('StopSignal')})")
    check("/opt/gtmsm/bin/healthcheck" in hc, f"HEALTHCHECK is set ({hc})")
    check(env.get("GTMSM_LISTEN") == "0.0.0.0:8080" and env.get("GTMSM_DB") == "/var/lib/gtmsm/gtmsm.db"
          and env.get("GTMSM_MODELS") == "/opt/gtmsm/models", f"GTMSM_* defaults in the image ({env})")
    r = podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", IMAGE, "-c",
               "id -u; cd /opt/gtmsm/models && sha256sum *.gtm 2>/dev/null; "
               "for t in cc gcc cmake make; do command -v $t; done; true")
    lines = r.stdout.split("\n")
    check(lines[0] == "10001", f"a container runs as uid 10001 ({lines[0]})")
    inside = sorted(l.split()[1] + " " + l.split()[0] for l in lines[1:] if l.endswith(".gtm"))
    shipped = []
    mdir = os.path.join(SRC, "models")
    for f in sorted(os.listdir(mdir)):
        if f.endswith(".gtm"):
            import hashlib
            with open(os.path.join(mdir, f), "rb") as fh:
                shipped.append(f + " " + hashlib.sha256(fh.read()).hexdigest())
    check(inside == sorted(shipped), f"the image ships models/*.gtm ({[s.split()[0] for s in shipped] or 'none in the repository yet'})")
    tools = [l for l in lines[1:] if l.startswith("/")]
    check(not tools, f"no compiler or build tool in the runtime image ({tools})")
    return shipped


def check_defaults(prefix, labels, shipped):
    """The image on its defaults (only the port moved to loopback): the database in the volume."""
    port = free_ports(1)[0]
    cname, vol = f"{prefix}-defaults", f"{prefix}-defaults"
    try:
        podman("volume", "create", *labels, vol)
        podman("run", "-d", "--name", cname, "--network", "host", *labels, "-v", f"{vol}:/var/lib/gtmsm",
               "-e", f"GTMSM_LISTEN=127.0.0.1:{port}", IMAGE)
        live = wait_http(port, "/v2/health/live", timeout=60)
        check(live, "a container on the image's defaults is live")
        ready = wait_http(port, timeout=10 if shipped else 2)
        hc = podman("healthcheck", "run", cname, check_rc=False).returncode
        if shipped:
            s, _, b = request(port, "GET", "/v1/models")
            names = [m["name"] for m in json.loads(b).get("models", [])] if s == 200 else []
            want = sorted(x.split()[0][:-4] for x in shipped)
            check(ready and hc == 0 and sorted(names) == want,
                  f"on its defaults it serves the shipped models {names} and is healthy")
        else:
            check(not ready and hc != 0, "with no shipped model it is live, not ready, and unhealthy")
        r = podman("exec", cname, "sh", "-c", "ls -ln /var/lib/gtmsm", check_rc=False)
        check(" 10001 10001 " in r.stdout and "gtmsm.db" in r.stdout,
              f"the database is created in the volume, owned by 10001 ({r.stdout.strip()})")
        podman("stop", "-t", "40", cname, timeout=60)
        code = podman("inspect", "-f", "{{.State.ExitCode}}", cname).stdout.strip()
        check(code == "0", f"podman stop (SIGTERM) ends gtmsmd with exit 0 ({code})")
    finally:
        podman("rm", "-f", "-t", "0", cname, check_rc=False)
        podman("volume", "rm", "-f", vol, check_rc=False)


def postgres_scenario(work, models):
    """The three gtmsmd containers on one PostgreSQL (a throwaway server on the
    host, tests/lib/pglib.py, its unix socket folder mounted into each
    container) behind the HAProxy container: 9 sessions through the balancer;
    one replica stopped (podman stop: SIGTERM releases its leases) and another
    killed (podman kill -s KILL: its leases lapse after GTMSM_LEASE_TTL_MS):
    every session is served by a live replica, byte-identically, without
    waiting for the dead ones; both back, still byte-identical."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import pglib
    from deploylib import episode, ndjson, predict, wait_states
    if not pglib.available():
        check(False, "PostgreSQL server binaries are missing (scripts/setup.sh installs postgresql-15)")
        return
    with pglib.Postgres() as pg:
        pg.create_db("gtmsm")
        os.chmod(pg.dir, 0o711)  # the containers' uid 10001 reaches the socket inside
        store = ["-v", f"{pg.dir}:/pg", "-e", "GTMSM_STORE=postgresql:///gtmsm?host=/pg&port=5432&user=gtmsm",
                 "-e", "GTMSM_LEASE_TTL_MS=1500"]
        cl = Containers(work, models, store, tag="-pg")
        try:
            lb = cl.lb_port
            ids = [f"pg-walker-{i}" for i in range(9)]
            before, served = {}, {}
            for i, sid in enumerate(ids):
                s, h, b = request(lb, "PUT", f"/v1/sessions/{sid}", {"model": "tiny"})
                s2, h, b = request(lb, "POST", f"/v1/sessions/{sid}/observations", ndjson(episode(40 + i, 24)),
                                   {"Content-Type": "application/x-ndjson"})
                s3, h, before[sid] = predict(lb, sid)
                served[sid] = h.get("x-served-by")
                check(s == 201 and s2 == 200 and s3 == 200, f"postgresql: {sid} created, observed, predicted "
                      f"on {served[sid]}")
            check(int(pg.sql("gtmsm", "SELECT count(*) FROM sessions")) == 9 and
                  pg.sql("gtmsm", "SELECT version FROM gtmsm_schema") == "5",
                  "postgresql: the 9 sessions are in the shared database (schema 5)")
            stopped, killed = cl.names[0], cl.names[1]
            check(cl.stop(stopped) == 0, f"postgresql: {stopped} stopped with SIGTERM exits 0")
            cl.kill(killed)
            wait_states(cl.stats_port, ["DOWN", "DOWN", "UP"])
            t0 = time.time()
            bad = []
            for sid in ids:
                s = None
                for _ in range(100):
                    s, h, b = predict(lb, sid)
                    if s == 200:
                        break
                    time.sleep(0.1)
                if s != 200 or b != before[sid] or h.get("x-served-by") != cl.names[2]:
                    bad.append((sid, s, h.get("x-served-by"), b == before[sid]))
            check(not bad, f"postgresql: with {stopped} stopped and {killed} killed every session, theirs too, "
                  f"predicts byte-identically on {cl.names[2]} ({time.time() - t0:.1f} s) {bad[:3]}")
            cl.start(stopped)
            cl.start(killed)
            wait_states(cl.stats_port, ["UP"] * 3)
            bad = []
            for sid in ids:
                s = None
                for _ in range(100):
                    s, h, b = predict(lb, sid)
                    if s == 200:
                        break
                    time.sleep(0.1)
                if s != 200 or b != before[sid]:
                    bad.append((sid, s, h.get("x-served-by")))
            check(not bad, f"postgresql: both back, every session predicts byte-identically {bad[:3]}")
        finally:
            if tss.failures:
                for c in cl.containers:
                    print(f"---- podman logs {c} (tail)\n{cl.logs(c)}", file=sys.stderr)
            cl.close()


def main():
    t_start = time.time()
    if os.geteuid() != 0:
        check(False, "the container test runs podman as root: run it as root")
        finish("deploy_containers")
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            check(False, f"{tool} is not installed (scripts/setup.sh installs podman, runc, debootstrap)")
    if tss.failures:
        finish("deploy_containers")

    work = tempfile.mkdtemp(prefix="gtmsm-deploy-c-")
    cl = None

    def on_signal(sig, frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    try:
        remove_stale()
        if not build_images(work):
            finish("deploy_containers")
        shipped = check_image()
        t0 = time.time()
        check_defaults(f"gtmsm-deploytest-{os.getpid()}",
                       ["--label", LABEL, "--label", f"gtmsm.test.pid={os.getpid()}"], shipped)
        print(f"  image checks: {time.time() - t0:.1f} s", flush=True)
        models = make_model(work)
        t0 = time.time()
        cl = Containers(work, models)
        print(f"  haproxy container on 127.0.0.1:{cl.lb_port}, replicas {cl.port} "
              f"(started in {time.time() - t0:.1f} s)", flush=True)
        t0 = time.time()
        run_scenario(cl)
        print(f"  scenario: {time.time() - t0:.1f} s", flush=True)
        cl.close()
        t0 = time.time()
        postgres_scenario(work, models)
        print(f"  postgresql scenario: {time.time() - t0:.1f} s", flush=True)
    finally:
        if cl:
            if tss.failures:
                for c in cl.containers:
                    print(f"---- podman logs {c} (tail)\n{cl.logs(c)}", file=sys.stderr)
            cl.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"deploy_containers: {time.time() - t_start:.1f} s")
    finish("deploy_containers")


if __name__ == "__main__":
    main()
