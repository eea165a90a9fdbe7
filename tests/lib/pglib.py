#!/usr/bin/env python3
"""A throwaway PostgreSQL server for tests, from Debian's postgresql-15 binaries.

    with Postgres() as pg:            # initdb in a temp folder, start, wait until ready
        url = pg.create_db("t1")      # postgresql:///t1?host=<socket dir>&port=..&user=gtmsm
        pg.sql("t1", "SELECT 1")      # psql -At, the output's text
        pg.stop(); pg.start()         # a restart (the data stays)
    # stopped and removed on leaving the block, on an exception too, and at exit

It listens on a unix socket in its own folder only (no TCP port, so nothing
collides with another test or a machine's own server); trust authentication
for the superuser gtmsm. initdb refuses to run as root: as root every server
command runs as the postgres system user (the package creates it) with the
folder chowned to it.

From the shell (the ctest fixture of the C unit tests):
    pglib.py start STATE_DIR   # starts a server, writes STATE_DIR/url and STATE_DIR/pgdir
    pglib.py stop STATE_DIR    # stops it and removes its folder (whatever state it is in)
"""
import atexit
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("GTMSM_PG_BIN", "/usr/lib/postgresql/15/bin")
PORT = 5432  # only names the socket file inside our own folder
USER = "gtmsm"


def available():
    """True when the server binaries are installed."""
    return os.path.exists(os.path.join(BIN, "initdb")) and os.path.exists(os.path.join(BIN, "postgres"))


class Postgres:
    def __init__(self, root=None, start=True):
        if not available():
            raise RuntimeError(f"PostgreSQL binaries not found in {BIN} (scripts/setup.sh installs postgresql-15)")
        self.as_root = os.geteuid() == 0
        self.dir = root or tempfile.mkdtemp(prefix="gtmsm_pg_")
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir  # short: a unix socket path has ~107 bytes at most
        self.log = os.path.join(self.dir, "server.log")
        self.running = False
        self.owned = root is None
        atexit.register(self.close)
        try:
            if self.as_root:
                pw = pwd.getpwnam("postgres")
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            if not os.path.exists(self.data):
                self._run([os.path.join(BIN, "initdb"), "-D", self.data, "-U", USER, "--auth=trust",
                           "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            if start:
                self.start()
        except Exception:
            self.close()
            raise

    def _cmd(self, argv):
        return ["runuser", "-u", "postgres", "--", *argv] if self.as_root else argv

    def _run(self, argv, check=True, timeout=120):
        p = subprocess.run(self._cmd(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s" % (" ".join(argv), p.returncode, p.stdout.decode(errors="replace")))
        return p

    def start(self):
        """Starts the server and returns once it accepts connections."""
        opts = (f"-k {self.sock} -p {PORT} -c listen_addresses='' -c max_connections=40 "
                "-c shared_buffers=16MB -c fsync=on")
        p = self._run([os.path.join(BIN, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                       "-o", opts, "start"], check=False)
        if p.returncode != 0:
            raise RuntimeError("pg_ctl start failed:\n%s\n%s" % (p.stdout.decode(errors="replace"), self.log_text()))
        self.running = True
        deadline = time.time() + 30
        while time.time() < deadline:
            if self._run([os.path.join(BIN, "pg_isready"), "-h", self.sock, "-p", str(PORT)],
                         check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not become ready:\n" + self.log_text())

    def stop(self, mode="fast"):
        """Stops the server (mode fast, or immediate: a crash-like stop)."""
        if self.running:
            self._run([os.path.join(BIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                      check=False)
            self.running = False

    def close(self):
        """Stops the server and removes its folder; safe to call twice."""
        try:
            self.stop("immediate")
        finally:
            if self.owned and os.path.isdir(self.dir):
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def url(self, db="postgres"):
        return f"postgresql:///{db}?host={self.sock}&port={PORT}&user={USER}"

    def sql(self, db, query):
        """Runs query with psql (unaligned, tuples only) and returns its output."""
        p = subprocess.run([os.path.join(BIN, "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.sock,
                            "-p", str(PORT), "-U", USER, "-d", db, "-c", query],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("psql %r: %s" % (query, p.stderr.decode(errors="replace")))
        return p.stdout.decode().strip()

    def create_db(self, name):
        """Creates an empty database (names are the tests' own) and returns its URL."""
        self.sql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    state = argv[2]
    os.makedirs(state, exist_ok=True)
    pgdir_file = os.path.join(state, "pgdir")
    if argv[1] == "stop":
        if os.path.exists(pgdir_file):
            with open(pgdir_file) as f:
                root = f.read().strip()
            pg = Postgres(root=root, start=False)
            pg.running = True
            pg.owned = True
            pg.close()
            os.remove(pgdir_file)
        for name in ("url",):
            if os.path.exists(os.path.join(state, name)):
                os.remove(os.path.join(state, name))
        print("pglib: stopped")
        return 0
    if os.path.exists(pgdir_file):  # a server left by an earlier run that never stopped
        main([argv[0], "stop", state])
    pg = Postgres()
    atexit.unregister(pg.close)  # it outlives this process: the stop fixture removes it
    with open(pgdir_file, "w") as f:
        f.write(pg.dir)
    with open(os.path.join(state, "url"), "w") as f:
        f.write(pg.url())
    print("pglib: started", pg.url())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
