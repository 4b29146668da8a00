"""tensorstore (zarr3 driver, file kvstore) reads windows of each zone."""

from __future__ import annotations

import numpy as np
import pytest
import tensorstore as ts

import checks


def _open(root, zone, name):
    return ts.open({
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(root.store / zone.name / name) + "/"},
        "open": True,
    }, read=True).result()


@pytest.fixture(scope="session")
def arrays(root, zone):
    return {n: _open(root, zone, n) for n in ("embeddings", "scales", "easting", "northing", "band")}


def test_schema(root, zone, arrays):
    e, s = arrays["embeddings"], arrays["scales"]
    where = f"tensorstore {root.name} {zone.name}"
    assert e.dtype == ts.int8 and tuple(e.shape) == (zone.H, zone.W, 128), f"{where}: embeddings {e.dtype} {e.shape}"
    assert s.dtype == ts.float32 and tuple(s.shape) == (zone.H, zone.W), f"{where}: scales {s.dtype} {s.shape}"
    assert list(e.domain.labels) == ["northing", "easting", "band"], f"{where}: labels {e.domain.labels}"
    assert tuple(e.chunk_layout.read_chunk.shape) == (4, 4, 128), f"{where}: read chunk {e.chunk_layout.read_chunk.shape}"
    assert tuple(e.chunk_layout.write_chunk.shape) == (256, 256, 128), f"{where}: write chunk {e.chunk_layout.write_chunk.shape}"
    assert np.isnan(s.fill_value) and e.fill_value == 0
    np.testing.assert_array_equal(arrays["easting"].read().result(), zone.easting(), err_msg=f"{where}: easting")
    np.testing.assert_array_equal(arrays["northing"].read().result(), zone.northing(), err_msg=f"{where}: northing")
    np.testing.assert_array_equal(arrays["band"].read().result(), np.arange(128), err_msg=f"{where}: band")


def test_windows(root, zone, arrays, expected):
    e, s = arrays["embeddings"], arrays["scales"]
    rn = f"tensorstore {root.name}"
    for r0, r1, c0, c1 in checks.random_windows(zone, 10, seed=3, max_h=300, max_w=300):
        want_e, want_s = expected.window(zone, r0, r1, c0, c1)
        checks.assert_equal(e[r0:r1, c0:c1, :].read().result(), want_e, zone, r0, c0, f"embeddings[{r0}:{r1},{c0}:{c1}]", reader=rn)
        checks.assert_equal(s[r0:r1, c0:c1].read().result(), want_s, zone, r0, c0, f"scales[{r0}:{r1},{c0}:{c1}]", reader=rn)


def test_shard_rows(root, zone, arrays, expected):
    """One full shard row per zone (256 rows × all columns), all bands."""
    e, s = arrays["embeddings"], arrays["scales"]
    rn = f"tensorstore {root.name}"
    si = max(p.row for p in zone.placed) // 256  # a shard row where the last tiles start
    r0, r1 = si * 256, si * 256 + 256
    want_e, want_s = expected.window(zone, r0, r1, 0, zone.W)
    checks.assert_equal(e[r0:r1].read().result(), want_e, zone, r0, 0, f"embeddings shard row {si}", reader=rn)
    checks.assert_equal(s[r0:r1].read().result(), want_s, zone, r0, 0, f"scales shard row {si}", reader=rn)
