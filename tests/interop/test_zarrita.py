"""zarrita.js (Node) reads windows of embeddings and scales; values computed
here by the oracle are handed over in a JSON file and compared in Node."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import checks

JS_DIR = Path(__file__).resolve().parent.parent / "js"


def _node():
    node = os.environ.get("TESSERAFS_NODE") or shutil.which("node")
    reason = None
    if not node or not shutil.which(node):
        reason = "node not found"
    elif not (JS_DIR / "node_modules" / "zarrita").is_dir():
        reason = f"zarrita.js not installed in {JS_DIR}/node_modules (run `make js-deps`)"
    if reason:
        msg = f"ZARRITA.JS INTEROP NOT RUN: {reason}"
        print("\n" + "!" * len(msg) + "\n" + msg + "\n" + "!" * len(msg))
        if os.environ.get("TESSERAFS_REQUIRE_JS") == "1":
            pytest.fail(msg + " (TESSERAFS_REQUIRE_JS=1)")
        pytest.skip(msg)
    return node


def _flat(a: np.ndarray):
    if np.issubdtype(a.dtype, np.floating):
        return [None if np.isnan(v) else float(v) for v in a.ravel()]
    return [int(v) for v in a.ravel()]


def test_zarrita_windows(root, zone, expected, tmp_path):
    node = _node()
    reads = []
    windows = []
    p = zone.placed[-1]  # around where the last tile starts: overlap, edge, water, stamps
    r0, c0 = max(p.row - 8, 0), max(p.col - 8, 0)
    windows.append((r0, min(r0 + 24, zone.H), c0, min(c0 + 24, zone.W), 120, 128))
    for w in checks.random_windows(zone, 2, seed=4, max_h=40, max_w=40):
        windows.append(w + (0, 16))
    for r0, r1, c0, c1, b0, b1 in windows:
        want_e, want_s = expected.window(zone, r0, r1, c0, c1)
        reads.append({"array": f"{zone.name}/embeddings", "start": [r0, c0, b0], "stop": [r1, c1, b1],
                      "expected": _flat(want_e[:, :, b0:b1])})
        reads.append({"array": f"{zone.name}/scales", "start": [r0, c0], "stop": [r1, c1], "expected": _flat(want_s)})
    req = tmp_path / "request.json"
    req.write_text(json.dumps({"store": str(root.store), "reads": reads}))
    proc = subprocess.run([node, str(JS_DIR / "read_windows.mjs"), str(req)], cwd=JS_DIR,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"zarrita.js {root.name} {zone.name}: node failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout)
    assert len(out["results"]) == len(reads)
    failures = []
    for rd, res in zip(reads, out["results"]):
        if res["n_mismatch"] or res["n"] != len(rd["expected"]):
            shape = [b - a for a, b in zip(rd["start"], rd["stop"])]
            detail = []
            for m in res["mismatches"][:5]:
                idx = np.unravel_index(m["index"], shape) if m["index"] >= 0 else None
                if idx is not None:
                    r, c = rd["start"][0] + int(idx[0]), rd["start"][1] + int(idx[1])
                    band = f" band {rd['start'][2] + int(idx[2])}" if len(shape) == 3 else ""
                    detail.append(f"    {checks.describe_pixel(zone, r, c)}{band}: got {m['got']}, want {m['want']}")
                else:
                    detail.append(f"    {m}")
            failures.append(f"  {res['array']}[{rd['start']}:{rd['stop']}] ({res['dtype']}): "
                            f"{res['n_mismatch']} of {res['n']} differ\n" + "\n".join(detail))
    assert not failures, f"zarrita.js {root.name} {zone.name}:\n" + "\n".join(failures)
