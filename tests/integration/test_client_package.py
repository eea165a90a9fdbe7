#!/usr/bin/env python3
"""The Python client as a package (clients/python), against a real gtmsmd with a real SQLite
file:
  - `pip install` works offline: a venv of Debian's python3 with its system site-packages
    (python3-setuptools), `pip install --no-build-isolation --no-index`; the installed package
    has its `py.typed` marker (PEP 561) and the `gtmsm-client` command;
  - with numpy (Debian's python3-numpy): `Prediction.arrays()` is (T, H, W, C) uint8 equal to
    the decoded PNGs, `state_array()` (T, S) float32 equal to the JSON states as float32,
    `Strip.arrays()` the film strip's frames, `PredictedFrame.array()` (H, W, C);
  - without numpy (its import blocked): the same calls give png.Image tuples and lists;
  - `Client.temporary_session()` creates a session for the `with` block and deletes it on exit,
    also when the block raises (the exception goes through);
  - mypy (when installed) finds no untyped definition in the package.
Each part is skipped with a message where its tool is missing (no venv, no numpy, no mypy)."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_startup import SRC, Daemon, check, finish, train_model  # noqa: E402

CLIENT_DIR = os.path.join(os.path.abspath(SRC), "clients", "python")
DEBIAN_PY = "/usr/bin/python3"

# Runs in the interpreter under test with argv: port, with_numpy (1/0), episode file.
SCRIPT = r'''
import json, sys
if sys.argv[2] == "0":
    sys.modules["numpy"] = None  # the import fails: the plain path
import gtmsm_client as gc
from gtmsm_client import png as gpng
port, want_np, ep = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
out = {"have_numpy": gc.have_numpy()}
c = gc.Client(f"http://127.0.0.1:{port}")
with c.temporary_session("imagenav") as s:
    out["sid"] = s["id"]
    c.observe(s, ep)
    p = c.predict(s, ["right", "up", "left"])
    a, st = p.arrays(), p.state_array()
    strip = c.predict_strip(s, ["right", "up", "left"]).arrays()
    one = p.frames[0].array()
    imgs = [gpng.decode(f.png) for f in p.frames]
    if want_np:
        import numpy as np
        out["arrays"] = [type(a).__name__, str(a.dtype), list(a.shape),
                         bool(all(a[i].tobytes() == imgs[i].pixels for i in range(len(imgs))))]
        want_st = np.array(p.states, dtype=np.float32)
        out["states"] = [str(st.dtype), list(st.shape), bool((st == want_st).all())]
        out["strip"] = [list(strip.shape), bool((strip == a).all())]
        out["one"] = [list(one.shape), bool(one.tobytes() == imgs[0].pixels)]
    else:
        out["arrays"] = [type(a).__name__, type(a[0]).__name__, len(a), a == imgs]
        out["states"] = [type(st).__name__, st == p.states]
        out["strip"] = [type(strip).__name__, [i.pixels for i in strip] == [i.pixels for i in imgs]]
        out["one"] = [type(one).__name__, one == imgs[0]]
    out["inside"] = c.session(s)["steps"]
try:
    c.session(out["sid"])
    out["gone"] = False
except gc.NotFound:
    out["gone"] = True
try:
    with c.temporary_session("imagenav") as s2:
        out["sid2"] = s2["id"]
        raise KeyError("from the block")
except KeyError as e:
    out["raised"] = str(e)
try:
    c.session(out["sid2"])
    out["gone2"] = False
except gc.NotFound:
    out["gone2"] = True
print(json.dumps(out))
'''


def run_script(python, port, with_numpy, ep, env=None):
    p = subprocess.run([python, "-c", SCRIPT, str(port), "1" if with_numpy else "0", ep],
                       capture_output=True, timeout=300, env=env)
    if p.returncode != 0:
        print(p.stderr.decode()[-3000:], file=sys.stderr)
        return None
    import json
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def has_numpy(python, env=None):
    return subprocess.run([python, "-c", "import numpy"], capture_output=True, env=env).returncode == 0


def check_common(r, what):
    check(r is not None, f"{what}: the script ran")
    if r is None:
        return
    check(r["inside"] == 40, f"{what}: temporary_session is a session inside the block")
    check(r["gone"], f"{what}: temporary_session deleted it on exit")
    check(r["raised"] == "'from the block'" and r["gone2"],
          f"{what}: an exception in the block goes through and the session is deleted")


def test_install(tmp, port, ep):
    if not os.path.exists(DEBIAN_PY) or subprocess.run([DEBIAN_PY, "-c", "import setuptools, venv, ensurepip"],
                                                       capture_output=True).returncode != 0:
        print("skip: no Debian python3 with setuptools and venv: the offline install is not tested")
        return None
    src = tmp + "/src"
    shutil.copytree(CLIENT_DIR, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = tmp + "/venv"
    p = subprocess.run([DEBIAN_PY, "-m", "venv", "--system-site-packages", venv], capture_output=True)
    check(p.returncode == 0, "a venv of Debian's python3 with its system site-packages")
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    p = subprocess.run([venv + "/bin/pip", "install", "--no-build-isolation", "--no-index", src],
                       capture_output=True, env=env, timeout=600)
    check(p.returncode == 0, "pip install --no-build-isolation --no-index clients/python (offline)") \
        or print(p.stdout.decode()[-2000:], p.stderr.decode()[-2000:], file=sys.stderr)
    py = venv + "/bin/python"
    loc = subprocess.run([py, "-c", "import gtmsm_client, os; print(os.path.dirname(gtmsm_client.__file__))"],
                         capture_output=True, env=env, cwd=tmp).stdout.decode().strip()
    check(loc.startswith(venv) and os.path.isfile(os.path.join(loc, "py.typed")),
          f"installed in the venv with its py.typed marker ({loc})")
    check(os.access(venv + "/bin/gtmsm-client", os.X_OK), "the gtmsm-client command is installed")
    p = subprocess.run([venv + "/bin/gtmsm-client", "--url", f"http://127.0.0.1:{port}", "health"],
                       capture_output=True, env=env, timeout=60)
    check(p.returncode == 0 and b'"ready": true' in p.stdout, "gtmsm-client health from the venv")
    return py, env


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tmp + "/models"
        train_model(model_dir + "/imagenav.gtm")
        from test_server_startup import episode, ndjson
        ep = tmp + "/ep.ndjson"
        with open(ep, "wb") as f:
            f.write(ndjson(episode(9, 40)))
        d = Daemon(model_dir, tmp + "/pkg.db")
        installed = test_install(tmp, d.port, ep)
        # the installed package where it could be installed, else the source tree
        if installed:
            py, env = installed
        else:
            py, env = sys.executable, dict(os.environ, PYTHONPATH=CLIENT_DIR)
        if has_numpy(py, env):
            r = run_script(py, d.port, True, ep, env)
            check_common(r, "with numpy")
            if r:
                check(r["have_numpy"], "have_numpy() is true with numpy")
                check(r["arrays"] == ["ndarray", "uint8", [3, 8, 8, 3], True],
                      f"Prediction.arrays(): (T, H, W, C) uint8, the decoded PNGs: {r['arrays']}")
                check(r["states"] == ["float32", [3, 2], True], f"state_array(): (T, S) float32: {r['states']}")
                check(r["strip"] == [[3, 8, 8, 3], True], f"Strip.arrays(): the strip's frames: {r['strip']}")
                check(r["one"] == [[8, 8, 3], True], f"PredictedFrame.array(): (H, W, C): {r['one']}")
        else:
            print("skip: numpy not installed for", py, "(Debian: python3-numpy): arrays not tested")
        r = run_script(py, d.port, False, ep, env)
        check_common(r, "without numpy")
        if r:
            check(not r["have_numpy"], "have_numpy() is false without numpy")
            check(r["arrays"] == ["list", "Image", 3, True], f"without numpy, arrays() are png.Image: {r['arrays']}")
            check(r["states"] == ["list", True], "without numpy, state_array() is the lists of floats")
            check(r["strip"] == ["list", True] and r["one"] == ["Image", True], "without numpy, Strip and frame too")
        check(d.stop() == 0, "SIGTERM: exit 0")
    mypy = subprocess.run([DEBIAN_PY, "-m", "mypy", "--version"], capture_output=True) \
        if os.path.exists(DEBIAN_PY) else None
    if mypy is not None and mypy.returncode == 0:
        p = subprocess.run([DEBIAN_PY, "-m", "mypy", "--disallow-untyped-defs", "--disallow-incomplete-defs",
                            "--no-incremental", "--cache-dir", os.devnull, "gtmsm_client"],
                           capture_output=True, cwd=CLIENT_DIR, timeout=600)
        check(p.returncode == 0, "mypy --disallow-untyped-defs: no issues") \
            or print(p.stdout.decode()[-3000:], file=sys.stderr)
    else:
        print("skip: mypy not installed (Debian: mypy): the type hints are not checked")
    finish("test_client_package")


if __name__ == "__main__":
    main()
