"""Writes the fixtures of internal/generate's GDAL test (spec §5): GDAL's own
average warp of synthetic zone rgb grids into level-0 chunks of global_rgb.

Run with the project's venv (rasterio's wheel carries GDAL):

    .venv/bin/python testdata/gdal/make_fixtures.py

Each case is one level-0 chunk (ci, cj) and one or more synthetic zone grids
(zone, origin_e, origin_n, w, h, and a pattern that Go computes the same way:
see pattern() here and in internal/generate/gdal_test.go). Each zone is warped
by rasterio.warp.reproject(..., Resampling.average) from EPSG:326NN
(canonical northings) into the chunk's 512 × 512 float32 window of the
0.0001° EPSG:4326 grid, the source alpha band as GDAL's alpha; the bytes are
trunc(clip(mean, 0, 255)), alpha 255 where some band's mean is non-zero, and
the zones are composed in ascending order, a pixel with alpha 0 not
overwriting. A subset of the chunk's rows is stored (gzip, RGBA, 512 pixels
a row) to keep the fixtures small.

Each zone also records GDAL's chunk list, the pieces its warp operation cut
the chunk into ("pieces": [dst x, y, w, h, src x, y, w, h] as GDAL's debug
log reports them, pieces without source pixels are not warped and not
logged), so that Go's port of the cutting is checked against GDAL itself.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import pathlib
import re

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject, transform

HERE = pathlib.Path(__file__).resolve().parent
CHUNK = 512
RES = 1e-4
M32 = np.uint64(0xFFFFFFFF)


def mix32(x):
    """A 32-bit integer hash (uint64 arrays holding uint32 values)."""
    x = x & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M32
    x ^= x >> np.uint64(16)
    return x


def pattern(z, r0, r1, c0, c1):
    """Zone z's pixels [r0, r1) × [c0, c1), RGBA uint8 (rows, cols, 4)."""
    r = np.arange(r0, r1, dtype=np.uint64)[:, None]
    c = np.arange(c0, c1, dtype=np.uint64)[None, :]
    out = np.zeros((r1 - r0, c1 - c0, 4), dtype=np.uint8)
    seed = np.uint64(z["seed"])
    if z["pattern"] == "noise":
        base = (r * np.uint64(73856093)) ^ (c * np.uint64(19349663)) ^ seed
        for b in range(3):
            out[..., b] = (mix32(base ^ (np.uint64(b + 1) * np.uint64(83492791))) & np.uint64(255)).astype(np.uint8)
        opaque = (mix32(base ^ np.uint64(4 * 83492791)) % np.uint64(23)) != 0
    else:  # smooth: triangle waves along a slanted direction, one per band
        for b in range(3):
            t = (np.uint64(2) * r + np.uint64(3) * c + np.uint64(85 * b) + seed) % np.uint64(510)
            out[..., b] = np.where(t < 256, t, np.uint64(509) - t).astype(np.uint8)
        opaque = np.ones(out.shape[:2], dtype=bool)
    hr0, hr1, hc0, hc1 = z["hole"]
    opaque &= ~((r >= hr0) & (r < hr1) & (c >= hc0) & (c < hc1))
    out[..., 3] = np.where(opaque, 255, 0)
    out[~opaque] = 0
    return out


def chunk_origin(ci, cj):
    return -180.0 + (cj * CHUNK) * RES, 90.0 - (ci * CHUNK) * RES


def zone_for(ci, cj, zone, lon_frac, lat_frac, pattern_name, seed):
    """A zone grid covering the fractions lon_frac = (a, b) and lat_frac =
    (top, bottom) of the chunk (fractions may reach past 0 or 1), with a
    hole of transparent pixels."""
    west, north = chunk_origin(ci, cj)
    span = CHUNK * RES
    lon0, lon1 = west + lon_frac[0] * span, west + lon_frac[1] * span
    lat0, lat1 = north - lat_frac[0] * span, north - lat_frac[1] * span
    lons = [lon0, lon1, lon0, lon1, (lon0 + lon1) / 2, (lon0 + lon1) / 2]
    lats = [lat0, lat0, lat1, lat1, lat0, lat1]
    e, n = transform("EPSG:4326", f"EPSG:326{zone:02d}", lons, lats)
    oe, on = math.floor(min(e) / 10) * 10, math.ceil(max(n) / 10) * 10
    w, h = round((math.ceil(max(e) / 10) * 10 - oe) / 10), round((on - math.floor(min(n) / 10) * 10) / 10)
    hole = [h // 3, h // 3 + max(h // 10, 3), w // 2, w // 2 + max(w // 8, 3)]
    return {"zone": zone, "origin_e": float(oe), "origin_n": float(on), "w": w, "h": h,
            "pattern": pattern_name, "seed": seed, "hole": hole}


class _Pieces(logging.Handler):
    """Collects the pieces GDAL's debug log reports for one warp."""

    PIECE = re.compile(r"GWKAverageOrMode\(\) Src=(\d+),(\d+),(\d+)x(\d+) Dst=(\d+),(\d+),(\d+)x(\d+)")

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.pieces = []

    def emit(self, record):
        m = self.PIECE.search(record.getMessage())
        if m:
            v = [int(g) for g in m.groups()]
            self.pieces.append(v[4:] + v[:4])


def warp(z, ci, cj):
    """GDAL's average warp of zone z into chunk (ci, cj): float32 (3, ny, nx),
    and the pieces GDAL cut the chunk into, in the order it warped them."""
    log = logging.getLogger("rasterio")
    h = _Pieces()
    level = log.level
    log.addHandler(h)
    log.setLevel(logging.DEBUG)
    try:
        with rasterio.Env(CPL_DEBUG=True):
            v = _warp(z, ci, cj)
    finally:
        log.removeHandler(h)
        log.setLevel(level)
    if not h.pieces:
        raise RuntimeError("GDAL's debug log reported no warp piece: did the log format change?")
    return v, h.pieces


def _warp(z, ci, cj):
    src = np.moveaxis(pattern(z, 0, z["h"], 0, z["w"]), 2, 0).copy()
    west, north = chunk_origin(ci, cj)
    dst = np.zeros((4, CHUNK, CHUNK), dtype=np.float32)
    reproject(
        source=src, destination=dst,
        src_transform=Affine(10.0, 0.0, z["origin_e"], 0.0, -10.0, z["origin_n"]),
        src_crs=f"EPSG:326{z['zone']:02d}",
        dst_transform=Affine(RES, 0.0, west, 0.0, -RES, north),
        dst_crs="EPSG:4326",
        resampling=Resampling.average, src_alpha=4)
    return dst[:3]


def compose(zones, ci, cj):
    out = np.zeros((CHUNK, CHUNK, 4), dtype=np.uint8)
    for z in sorted(zones, key=lambda z: z["zone"]):
        v, z["pieces"] = warp(z, ci, cj)
        a = (v != 0).any(axis=0)
        rgb = np.moveaxis(np.clip(v, 0, 255).astype(np.uint8), 0, 2)
        out[a, :3] = rgb[a]
        out[a, 3] = 255
    return out


def chunk_of(lon, lat):
    return int((90 - lat) / (CHUNK * RES)), int((lon + 180) / (CHUNK * RES))


def cases():
    out = []
    places = [("eq", 3.3, 0.0, 31), ("n52", 9.1, 52.0, 32), ("n70", 20.1, 70.0, 34), ("s33", 18.5, -33.0, 34)]
    for k, (name, lon, lat, zone) in enumerate(places):
        ci, cj = chunk_of(lon, lat)
        for pat in ("noise", "smooth"):
            # a grid covering the whole chunk: GDAL warps it in one piece
            z = zone_for(ci, cj, zone, (-0.1, 1.1), (-0.1, 1.1), pat, 1000 * k + len(pat))
            out.append({"name": f"{name}_{pat}", "ci": ci, "cj": cj, "zones": [z], "whole": True})
    # zone edges: the meridian between two zones crosses the chunk; each
    # zone's grid reaches a little past it, as tiles overlapping the edge do.
    # A grid that covers less than about half of the chunk's footprint makes
    # GDAL cut the chunk into smaller warps (GDALWarpOperation's chunk list,
    # by source fill ratio), each with its own source window and its own
    # rows of corners for the approximate transformer: "whole" is False.
    for name, lon, lat, zone in [("n52_edge", 6.0, 52.0, 31), ("n70_edge", 18.0, 70.0, 33), ("s33_edge", 18.0, -33.0, 33)]:
        ci, cj = chunk_of(lon, lat)
        west, _ = chunk_origin(ci, cj)
        f = (lon - west) / (CHUNK * RES)
        a = zone_for(ci, cj, zone, (-0.1, f + 0.07), (-0.1, 1.1), "noise", 7 + zone)
        b = zone_for(ci, cj, zone + 1, (f - 0.05, 1.1), (0.05, 0.95), "smooth" if lat < 0 else "noise", 11 + zone)
        out.append({"name": name, "ci": ci, "cj": cj, "zones": [a, b], "whole": False})
    return out


def main():
    manifest = {"gdal": rasterio.__gdal_version__, "rasterio": rasterio.__version__, "cases": []}
    for k, case in enumerate(cases()):
        img = compose(case["zones"], case["ci"], case["cj"])
        rows = sorted(set([0, 1, 511] + list(range(5 + k, CHUNK, 29))))
        case["rows"] = rows
        case["file"] = case["name"] + ".rgba.gz"
        (HERE / case["file"]).write_bytes(gzip.compress(img[rows].tobytes(), 9, mtime=0))
        manifest["cases"].append(case)
        print(f"{case['name']}: chunk {case['ci']}/{case['cj']}, {int((img[..., 3] > 0).sum())} opaque pixels, "
              f"{len(rows)} rows stored")
    (HERE / "fixtures.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
