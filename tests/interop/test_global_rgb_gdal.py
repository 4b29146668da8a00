"""global_rgb level 0 against GDAL itself (spec §5): every sampled listed
level-0 chunk is rebuilt with rasterio.warp.reproject(..., Resampling.average)
(rasterio's wheel carries GDAL) from each zone's `rgb` array as read by
tensorstore, EPSG:326NN (canonical northings) → the chunk's 512-pixel window
of the 0.0001° EPSG:4326 grid, float32, source alpha as GDAL's alpha band;
bytes = trunc(clip(mean, 0, 255)), alpha 255 where some band's mean is
non-zero, zones composed in ascending order with alpha-0 pixels not
overwriting. Nothing here runs our Go code.

Every sampled chunk must be byte-identical: where every contributing zone
grid covers the chunk's whole footprint GDAL warps the chunk in one piece;
where a zone grid ends inside the chunk GDAL cuts its warp into pieces (its
chunk list, by source fill ratio), each with its own source window and its
own rows for the approximate transformer, and so does our generator. The
two kinds are counted apart in the report."""

from __future__ import annotations

import time

import numpy as np
import pyproj
from affine import Affine
from rasterio.warp import Resampling, reproject

from test_rgb import _chunks, _open, global_rgb  # noqa: F401 (global_rgb is a fixture)

CHUNK = 512
RES0 = 1e-4
W0 = 3_600_000
MAX_CHUNKS = 48


def _sample(chunks):
    chunks = sorted({(ci, cj) for ci, cj, *_ in chunks})
    if len(chunks) > MAX_CHUNKS:
        chunks = chunks[:: -(-len(chunks) // MAX_CHUNKS)]
    return chunks


def _window(ci, cj):
    west = -180.0 + (cj * CHUNK) * RES0
    north = 90.0 - (ci * CHUNK) * RES0
    nx = min(CHUNK, W0 - cj * CHUNK)
    return west, north, nx


def _inside(z, west, north, nx):
    """(reaches, covers): whether the chunk's outline, projected to zone z's
    pixel space, meets the zone grid, and whether it lies wholly inside."""
    t = np.linspace(0.0, 1.0, 65)
    span_x, span_y = nx * RES0, CHUNK * RES0
    lon = np.concatenate([west + span_x * t, np.full_like(t, west + span_x), west + span_x * t, np.full_like(t, west)])
    lat = np.concatenate([np.full_like(t, north), north - span_y * t, np.full_like(t, north - span_y), north - span_y * t])
    e, n = pyproj.Transformer.from_crs("OGC:CRS84", z.epsg, always_xy=True).transform(lon, lat)
    x, y = (np.asarray(e) - z.origin_e) / 10.0, (z.origin_n - np.asarray(n)) / 10.0
    reaches = x.max() > -2 and x.min() < z.W + 2 and y.max() > -2 and y.min() < z.H + 2
    covers = x.min() >= 0 and x.max() <= z.W and y.min() >= 0 and y.max() <= z.H
    return reaches, covers


def test_global_rgb_level0_gdal(root, global_rgb, manifest):
    t0 = time.monotonic()
    listed = _chunks(global_rgb / "0")
    assert listed, f"{root}: global_rgb/0 lists no chunk"
    g0 = _open(global_rgb / "0" / "rgb")
    zones = sorted(manifest.zones.values(), key=lambda z: z.zone)
    src = {}

    def zone_src(z):
        if z.zone not in src:
            a = _open(root.store / z.name / "rgb").read().result()
            assert a.shape == (z.H, z.W, 4), f"{root}: {z.name}/rgb shape {a.shape}"
            src[z.zone] = np.ascontiguousarray(np.moveaxis(a, 2, 0))
        return src[z.zone]

    stats = {True: [0, 0, 0], False: [0, 0, 0]}  # whole: [chunks, identical bytes, bytes]
    bad = []
    for ci, cj in _sample(listed):
        west, north, nx = _window(ci, cj)
        want = np.zeros((CHUNK, nx, 4), dtype=np.uint8)
        whole = True
        for z in zones:
            reaches, covers = _inside(z, west, north, nx)
            if not reaches:
                continue
            whole = whole and covers
            dst = np.zeros((4, CHUNK, nx), dtype=np.float32)
            reproject(source=zone_src(z), destination=dst,
                      src_transform=Affine(10.0, 0.0, z.origin_e, 0.0, -10.0, z.origin_n), src_crs=z.epsg,
                      dst_transform=Affine(RES0, 0.0, west, 0.0, -RES0, north), dst_crs="EPSG:4326",
                      resampling=Resampling.average, src_alpha=4)
            v = dst[:3]
            a = (v != 0).any(axis=0)
            want[a, :3] = np.moveaxis(np.clip(v, 0, 255).astype(np.uint8), 0, 2)[a]
            want[a, 3] = 255
        got = g0[ci * CHUNK:(ci + 1) * CHUNK, cj * CHUNK:cj * CHUNK + nx].read().result()
        same = int((got == want).sum())
        s = stats[whole]
        s[0] += 1
        s[1] += same
        s[2] += want.size
        if same != want.size:
            i, j, k = np.argwhere(got != want)[0]
            bad.append(f"chunk {ci}/{cj} ({'whole' if whole else 'zone-grid edge'}): {want.size - same} bytes differ, "
                       f"first [{i},{j},{k}]: {got[i, j].tolist()}, GDAL {want[i, j].tolist()}")
    for whole, (n, same, size) in stats.items():
        if n:
            print(f"{root} global_rgb/0 vs GDAL average warp, {'whole' if whole else 'zone-grid edge'} chunks: "
                  f"{n} chunks, {same} of {size} bytes identical ({100 * same / size:.4f} %)")
    print(f"{root}: {time.monotonic() - t0:.1f} s")
    assert not bad, f"{root}: {len(bad)} chunks differ from GDAL: " + "; ".join(bad[:5])
    assert stats[True][0] + stats[False][0] > 0, f"{root}: no chunk compared"
