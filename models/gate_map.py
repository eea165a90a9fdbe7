#!/usr/bin/env python3
"""Prints the learned wall gate of an image-navigation model (.gtm) on the
lattice of its learned displacements: the gate at the position a move would
lead to, for grid offsets -5..5 from the start cell (the grid is -4..4), in
percent. Standard library only. Usage: models/gate_map.py models/imagenav.gtm"""
import json
import math
import struct
import sys

GATE_IN = 0.25  # core/model/gtmsm.c: the gate sees the position times this


def read_gtm(path):
    b = open(path, "rb").read()
    if b[:8] != b"GTMSMMDL":
        sys.exit(f"{path}: not a GTMSM model file")
    _, ml = struct.unpack_from("<II", b, 8)
    meta = json.loads(b[16:16 + ml])
    o = 16 + ml
    (n,) = struct.unpack_from("<I", b, o)
    o += 4
    tensors = {}
    for _ in range(n):
        (nl,) = struct.unpack_from("<I", b, o)
        name = b[o + 4:o + 4 + nl].decode()
        o += 4 + nl
        (count,) = struct.unpack_from("<Q", b, o)
        o += 8
        tensors[name] = struct.unpack_from(f"<{count}f", b, o)
        o += 4 * count
    return meta, tensors


def main():
    meta, t = read_gtm(sys.argv[1] if len(sys.argv) > 1 else "models/imagenav.gtm")
    names = meta["config"]["actions"]
    B = {a: t["ssm.B"][2 * i:2 * i + 2] for i, a in enumerate(names)}
    G = meta["config"]["gate_hidden"]
    w1, b1, w2, b2, w3 = t["gate.w1"], t["gate.b1"], t["gate.w2"], t["gate.b2"], t["gate.w3"]
    b3 = t["gate.b3"][0]

    def gate(p):
        x = [GATE_IN * p[0], GATE_IN * p[1]]
        h1 = [math.tanh(w1[2 * j] * x[0] + w1[2 * j + 1] * x[1] + b1[j]) for j in range(G)]
        h2 = [math.tanh(sum(w2[i * G + j] * h1[j] for j in range(G)) + b2[i]) for i in range(G)]
        o = b3 + sum(w3[j] * h2[j] for j in range(G))
        return 1 / (1 + math.exp(-o))

    print("learned displacements: " + ", ".join(f"{a} ({v[0]:+.3f}, {v[1]:+.3f})" for a, v in B.items()))
    r, d = B["right"], B["down"]
    print("gate (%) at column offset -5..5 (across) and row offset -5..5 (down) from the start")
    for row in range(-5, 6):
        cells = [gate((col * r[0] + row * d[0], col * r[1] + row * d[1])) for col in range(-5, 6)]
        print(f"{row:+d} " + " ".join(f"{round(100 * g):3d}" for g in cells))


main()
