"""The store served over HTTP by `tesserafs serve`, read by real remote
clients: xarray and zarr-python 3 through fsspec's HTTP file system
(consolidated metadata), tensorstore's http kvstore, and zarrita.js's
FetchStore in Node with and without suffix requests. Values are compared
with the oracle.

The server is started here, on 127.0.0.1 with a port of its own and a fresh
cache, from TESSERAFS_BIN (the Makefile's interop target sets it) over
TESSERAFS_TILES. Without TESSERAFS_BIN these tests skip loudly;
TESSERAFS_REQUIRE_SERVE=1 makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import checks
from test_zarrita import JS_DIR, _flat, _node


def _serve(tiles_root, work, *extra):
    """Starts `tesserafs serve` on tiles_root with a fresh cache in work;
    returns (process, base URL, log file)."""
    binary = os.environ.get("TESSERAFS_BIN")
    if not binary:
        msg = "HTTP SERVE INTEROP NOT RUN: set TESSERAFS_BIN to bin/tesserafs"
        print("\n" + msg)
        if os.environ.get("TESSERAFS_REQUIRE_SERVE") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    log = open(work / "serve.log", "w")
    proc = subprocess.Popen([binary, "serve", "--tiles", str(tiles_root), "--cache", str(work / "cache"),
                             "--cache-size", "1GiB", "--addr", "127.0.0.1:0", *extra],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    first = proc.stdout.readline()
    m = re.search(r"serving (http://127\.0\.0\.1:\d+)/", first)
    if not m:
        proc.kill()
        proc.wait()
        pytest.fail(f"tesserafs serve did not start: {first!r}; log {(work / 'serve.log').read_text()[-2000:]}")
    return proc, m.group(1), log


@pytest.fixture(scope="session")
def served(tiles_root, tmp_path_factory, year):
    """Base URL of a running `tesserafs serve`; stopped (SIGTERM) at the end,
    which must exit 0 with its summary."""
    work = tmp_path_factory.mktemp("serve")
    proc, base, log = _serve(tiles_root, work, "--cors-origin", "*")
    yield base
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    log.close()
    print(f"\nserve: {out.strip().splitlines()[-1] if out.strip() else ''}")
    assert proc.returncode == 0, f"tesserafs serve exited {proc.returncode}: {(work / 'serve.log').read_text()[-2000:]}"
    assert "stopped serving" in out, f"no summary on exit: {out!r}"


@pytest.fixture(scope="session")
def store_url(served, year):
    return f"{served}/{year}.zarr"


@pytest.mark.parametrize("concurrency", [64, 256])
def test_zarr_python_concurrency(tiles_root, tmp_path, year, manifest, expected, concurrency):
    """zarr-python at a high async.concurrency reads every scales and rgb
    shard of the largest zone from a fresh, cold `tesserafs serve` (default
    admission) with no error: requests for cold chunks wait their turn for
    a worker instead of being refused with 503, which fsspec does not
    retry. Values equal the oracle."""
    zarr = pytest.importorskip("zarr")
    zone = max(manifest.zones.values(), key=lambda z: z.H * z.W)
    proc, base, log = _serve(tiles_root, tmp_path)
    try:
        with zarr.config.set({"async.concurrency": concurrency}):
            g = zarr.open_group(f"{base}/{year}.zarr", mode="r", use_consolidated=True)
            s = g[f"{zone.name}/scales"][...]
            rgb = g[f"{zone.name}/rgb"][...]
        want_e, want_s = expected.full(zone)
        checks.assert_equal(s, want_s, zone, 0, 0, "scales", reader=f"zarr-python http, concurrency {concurrency}")
        fin = np.isfinite(want_s)
        assert ((rgb[..., 3] == 255) == fin).all(), f"rgb alpha differs from the oracle's finite scales (concurrency {concurrency})"
        metrics = urllib.request.urlopen(f"{base}/metrics").read().decode()
        busy = [l for l in metrics.splitlines() if l.startswith("tesserafs_http_busy_total")]
        assert busy and float(busy[0].split()[-1]) == 0, f"requests refused as busy: {busy}"
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = next((l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")), "?")
        print(f"\nconcurrency {concurrency}: {zone.name} scales + rgb read, serve peak RSS {hwm} kB")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        log.close()
    assert proc.returncode == 0, f"tesserafs serve exited {proc.returncode}: {(tmp_path / 'serve.log').read_text()[-2000:]}"


def test_healthz_and_metrics(served):
    assert urllib.request.urlopen(f"{served}/healthz").read() == b"ok\n"
    body = urllib.request.urlopen(f"{served}/metrics").read().decode()
    assert "tesserafs_http_requests_total" in body and "tesserafs_generation_seconds_bucket" in body


def test_xarray_fsspec(store_url, zone, expected):
    xr = pytest.importorskip("xarray")
    ds = xr.open_zarr(store_url, group=zone.name, consolidated=True)
    try:
        where = f"xarray http {zone.name}"
        assert ds["embeddings"].dims == ("northing", "easting", "band"), where
        assert ds["embeddings"].dtype == np.int8 and ds["scales"].dtype == np.float32, where
        np.testing.assert_array_equal(ds["easting"].values, zone.easting(), err_msg=f"{where}: easting")
        np.testing.assert_array_equal(ds["northing"].values, zone.northing(), err_msg=f"{where}: northing")
        for r0, r1, c0, c1 in checks.random_windows(zone, 3, seed=12, max_h=120, max_w=120):
            sub = ds.isel(northing=slice(r0, r1), easting=slice(c0, c1))
            want_e, want_s = expected.window(zone, r0, r1, c0, c1)
            checks.assert_equal(sub["embeddings"].values, want_e, zone, r0, c0, f"embeddings[{r0}:{r1},{c0}:{c1}]", reader="xarray http")
            checks.assert_equal(sub["scales"].values, want_s, zone, r0, c0, f"scales[{r0}:{r1},{c0}:{c1}]", reader="xarray http")
    finally:
        ds.close()


def test_zarr_python_fsspec(store_url, zone, expected):
    zarr = pytest.importorskip("zarr")
    g = zarr.open_group(store_url, mode="r", use_consolidated=True)
    e = g[f"{zone.name}/embeddings"]
    s = g[f"{zone.name}/scales"]
    assert e.shape == (zone.H, zone.W, 128) and s.shape == (zone.H, zone.W)
    p = zone.placed[-1]
    r0, c0 = max(p.row - 20, 0), max(p.col - 20, 0)
    r1, c1 = min(r0 + 60, zone.H), min(c0 + 60, zone.W)
    want_e, want_s = expected.window(zone, r0, r1, c0, c1)
    checks.assert_equal(e[r0:r1, c0:c1, :], want_e, zone, r0, c0, "embeddings", reader="zarr-python http")
    checks.assert_equal(s[r0:r1, c0:c1], want_s, zone, r0, c0, "scales", reader="zarr-python http")


def test_tensorstore_http(served, year, zone, expected):
    ts = pytest.importorskip("tensorstore")

    def open_(name):
        return ts.open({"driver": "zarr3", "kvstore": {"driver": "http", "base_url": served,
                                                       "path": f"/{year}.zarr/{zone.name}/{name}/"}},
                       read=True, open=True).result()

    e, s = open_("embeddings"), open_("scales")
    assert tuple(e.shape) == (zone.H, zone.W, 128)
    for r0, r1, c0, c1 in checks.random_windows(zone, 4, seed=13, max_h=300, max_w=300):
        want_e, want_s = expected.window(zone, r0, r1, c0, c1)
        checks.assert_equal(e[r0:r1, c0:c1, :].read().result(), want_e, zone, r0, c0, f"embeddings[{r0}:{r1},{c0}:{c1}]", reader="tensorstore http")
        checks.assert_equal(s[r0:r1, c0:c1].read().result(), want_s, zone, r0, c0, f"scales[{r0}:{r1},{c0}:{c1}]", reader="tensorstore http")


@pytest.mark.parametrize("suffix", [False, True], ids=["head-then-range", "suffix-range"])
def test_zarrita_fetchstore(store_url, zone, expected, tmp_path, suffix):
    node = _node()
    reads = []
    p = zone.placed[-1]
    r0, c0 = max(p.row - 8, 0), max(p.col - 8, 0)
    windows = [(r0, min(r0 + 24, zone.H), c0, min(c0 + 24, zone.W), 120, 128)]
    windows += [w + (0, 16) for w in checks.random_windows(zone, 2, seed=14, max_h=40, max_w=40)]
    for r0, r1, c0, c1, b0, b1 in windows:
        want_e, want_s = expected.window(zone, r0, r1, c0, c1)
        reads.append({"array": f"{zone.name}/embeddings", "start": [r0, c0, b0], "stop": [r1, c1, b1],
                      "expected": _flat(want_e[:, :, b0:b1])})
        reads.append({"array": f"{zone.name}/scales", "start": [r0, c0], "stop": [r1, c1], "expected": _flat(want_s)})
    req = tmp_path / "request.json"
    req.write_text(json.dumps({"url": store_url, "suffix": suffix, "reads": reads}))
    proc = subprocess.run([node, str(JS_DIR / "read_windows.mjs"), str(req)], cwd=JS_DIR,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"zarrita.js http {zone.name}: node failed:\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout)
    bad = [(r["array"], r["n_mismatch"], r["mismatches"][:3]) for r in out["results"] if r["n_mismatch"]]
    assert not bad, f"zarrita.js http {zone.name}: mismatches {bad}"
    reqs = out["requests"]
    # The shard index is read from the end: by suffix ranges, or HEAD then a range.
    if suffix:
        assert reqs["suffix"] > 0 and reqs["HEAD"] == 0, f"zarrita.js suffix mode: requests {reqs}"
    else:
        assert reqs["HEAD"] > 0 and reqs["suffix"] == 0, f"zarrita.js HEAD mode: requests {reqs}"
    assert set(reqs["status"]) <= {"200", "206", "404"}, f"zarrita.js http: statuses {reqs['status']}"
