#!/usr/bin/env python3
"""Copies deploy/haproxy/haproxy.cfg into the ConfigMap of deploy/k8s/haproxy.yaml
(the block after '  haproxy.cfg: |'). Run it after editing haproxy.cfg; the deploy
test (tests/deploy/test_deploy_processes.py) fails while the two differ."""
import os
import re

here = os.path.dirname(os.path.abspath(__file__))
cfg_path = os.path.join(here, "..", "haproxy", "haproxy.cfg")
yaml_path = os.path.join(here, "haproxy.yaml")
with open(cfg_path) as f:
    cfg = f.read()
with open(yaml_path) as f:
    text = f.read()
block = "".join(("    " + l) if l.strip() else "\n" for l in cfg.splitlines(True))
new, n = re.subn(r"(\n  haproxy\.cfg: \|\n)(?:(?:    .*)?\n)+(?=---\n)", lambda m: m.group(1) + block, text)
if n != 1:
    raise SystemExit("sync-configmap: no '  haproxy.cfg: |' block followed by '---' in haproxy.yaml")
with open(yaml_path, "w") as f:
    f.write(new)
print("sync-configmap: deploy/k8s/haproxy.yaml" + (" updated" if new != text else " already in sync"))
