#!/usr/bin/env python3
"""Moves gtmsmd sessions to the replica the load balancer now routes them to.

After the replica set changes (a replica added, or one retired for good), the
consistent hash sends some session ids (about 1/N) to a replica that does not
hold them. For every candidate id this script asks:
  - which replica holds it: GET /v1/sessions/{id} on each replica directly;
  - which replica owns it now: the X-Served-By of GET /v1/sessions/{id}
    through the load balancer (a 404 names its replica too);
and when they differ it exports the session from the holder, imports it
through the load balancer with ?id= (so it lands on the owner), checks that
the owner has it with the same steps, then deletes it from the holder.

Run it after the load balancer has switched to the new replica set: from then
on nothing writes to the old holder (the LB no longer routes the id there), so
the export is the final state. Until its move, a moved session answers 404.

Candidate ids come from the replicas' SQLite files (--db, opened read-only;
WAL makes that safe while gtmsmd runs) and/or a file of ids (--ids, one a
line, '-' for stdin). Standard library only.

  deploy/rebalance.py --lb http://127.0.0.1:8080 \\
      --replica gtmsm-1=http://127.0.0.1:8081 --replica gtmsm-2=http://127.0.0.1:8082 ... \\
      --db /var/lib/containers/storage/volumes/gtmsm-1/_data/gtmsm.db ... [--dry-run]

Output: 'move ID FROM -> TO' (dry run), 'moved ID FROM -> TO (steps N)',
'conflict ID ...' (held by more than one replica: resolve by hand).
Exit 0 when everything is where it belongs, 1 on any failure or conflict."""
import argparse
import http.client
import json
import os
import sqlite3
import sys
import urllib.parse


class Endpoint:
    def __init__(self, url, key=None):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise SystemExit(f"rebalance: not an http(s) URL: {url}")
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.prefix = u.path.rstrip("/")
        self.key = key

    def request(self, method, path, body=None, ctype=None):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        c = cls(self.host, self.port, timeout=300)
        h = {}
        if self.key:
            h["Authorization"] = "Bearer " + self.key
        if ctype:
            h["Content-Type"] = ctype
        try:
            c.request(method, self.prefix + path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()


def ids_from_db(path):
    con = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True)
    try:
        return [row[0] for row in con.execute("SELECT id FROM sessions ORDER BY id")]
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lb", required=True, help="the load balancer's URL")
    ap.add_argument("--replica", action="append", default=[], metavar="NAME=URL",
                    help="a replica: its X-Served-By name and its direct URL (repeat for each)")
    ap.add_argument("--db", action="append", default=[], metavar="FILE",
                    help="a replica's SQLite file: its session ids are candidates")
    ap.add_argument("--ids", metavar="FILE", help="candidate session ids, one a line ('-': stdin)")
    ap.add_argument("--api-key", default=os.environ.get("GTMSM_API_KEY"),
                    help="Bearer key when the replicas use --api-keys (env GTMSM_API_KEY)")
    ap.add_argument("--dry-run", action="store_true", help="print the moves, change nothing")
    a = ap.parse_args()

    lb = Endpoint(a.lb, a.api_key)
    replicas = {}
    for spec in a.replica:
        name, sep, url = spec.partition("=")
        if not sep or not name:
            ap.error(f"--replica wants NAME=URL, got {spec!r}")
        replicas[name] = Endpoint(url, a.api_key)
    if not replicas:
        ap.error("name every replica with --replica NAME=URL")

    candidates = []
    for path in a.db:
        candidates += ids_from_db(path)
    if a.ids:
        f = sys.stdin if a.ids == "-" else open(a.ids)
        candidates += [l.strip() for l in f if l.strip() and not l.startswith("#")]
    candidates = sorted(set(candidates))

    failures = moves = 0
    for sid in candidates:
        q = urllib.parse.quote(sid, safe="")
        holders = [n for n, ep in replicas.items() if ep.request("GET", f"/v1/sessions/{q}")[0] == 200]
        s, h, b = lb.request("GET", f"/v1/sessions/{q}")
        owner = h.get("x-served-by")
        if owner not in replicas:
            print(f"error {sid}: the load balancer answered {s} from {owner!r}, not a known replica")
            failures += 1
            continue
        if not holders or holders == [owner]:
            continue
        if len(holders) > 1:
            print(f"conflict {sid}: held by {', '.join(holders)}; the load balancer routes it to "
                  f"{owner} (keep one copy: export the right one, delete the others)")
            failures += 1
            continue
        src = holders[0]
        if a.dry_run:
            print(f"move {sid} {src} -> {owner}")
            moves += 1
            continue
        s, _, dump = replicas[src].request("GET", f"/v1/sessions/{q}/export")
        if s != 200:
            print(f"error {sid}: export from {src}: {s} {dump[:300]!r}")
            failures += 1
            continue
        steps = json.loads(dump).get("steps")
        s, h, b = lb.request("POST", f"/v1/sessions/import?id={q}", dump, "application/json")
        if s != 201 or h.get("x-served-by") != owner:
            print(f"error {sid}: import through the load balancer: {s} on {h.get('x-served-by')} "
                  f"{b[:300]!r}")
            failures += 1
            continue
        s, h, b = lb.request("GET", f"/v1/sessions/{q}")
        if s != 200 or h.get("x-served-by") != owner or json.loads(b).get("steps") != steps:
            print(f"error {sid}: after the import, {owner} answers {s} {b[:300]!r}; "
                  f"left on {src} too")
            failures += 1
            continue
        s, _, b = replicas[src].request("DELETE", f"/v1/sessions/{q}")
        if s != 204:
            print(f"error {sid}: delete on {src}: {s} {b[:300]!r} (now on both: delete it there)")
            failures += 1
            continue
        print(f"moved {sid} {src} -> {owner} (steps {steps})", flush=True)
        moves += 1
    verb = "to move" if a.dry_run else "moved"
    print(f"rebalance: {len(candidates)} sessions checked, {moves} {verb}, {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
