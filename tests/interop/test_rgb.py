"""RGB previews, where the store has them: per-zone `rgb` (spec §4) and the
global multiscale `global_rgb` (§5). Their exact bytes depend on a sampled
percentile stretch, so these tests check the rules that do not: alpha,
emptiness, monotonicity, metadata, and the 2×2 pyramid rule between levels."""

from __future__ import annotations

import json
import os

import numpy as np
import pyproj
import pytest
import tensorstore as ts

import checks
from test_zarr_python import CONVENTIONS, ZSTD, BYTES_1, BYTES_LE, load

LEVELS = 10


def _open(path):
    return ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path) + "/"}, "open": True},
                   read=True).result()


def test_zone_rgb(root, zone, expected):
    d = root.store / zone.name / "rgb"
    if not d.exists():
        pytest.skip(f"RGB PREVIEW NOT CHECKED: {zone.name}/rgb absent (tessera:has_rgb_preview false)")
    rgb = _open(d).read().result()
    want_e, want_s = expected.full(zone)
    where = f"{root.name} {zone.name}/rgb"
    fin = np.isfinite(want_s)
    alpha = rgb[..., 3]
    bad = (fin & (alpha != 255)) | (~fin & (alpha != 0))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise AssertionError(f"{where}: {bad.sum()} pixels with wrong alpha (255 where the scale is finite, else 0), "
                             f"e.g. {checks.describe_pixel(zone, r, c)}: alpha {alpha[r, c]}, scale {want_s[r, c]}")
    bad = ~fin & (rgb[..., :3] != 0).any(axis=-1)
    assert not bad.any(), f"{where}: {bad.sum()} transparent pixels with non-zero RGB"
    # byte = trunc(clip((x - p2)/(p98 - p2), 0, 1)·255) is non-decreasing in x
    for k in range(3):
        x = want_e[..., k][fin].astype(np.float32) * want_s[fin]
        v = rgb[..., k][fin]
        order = np.argsort(x, kind="stable")
        xs, vs = x[order], v[order]
        drop = (np.diff(vs.astype(np.int16)) < 0) & (np.diff(xs) > 0)
        assert not drop.any(), f"{where}: band {k} bytes are not monotonic in the dequantised value"
        # a 2-98 % stretch clips roughly 2 % at each end (the percentiles come
        # from a sample, so the bounds are loose)
        lo, hi = float((vs == 0).mean()), float((vs == 255).mean())
        assert 0.002 < lo < 0.10 and 0.002 < hi < 0.10, (
            f"{where}: band {k}: {lo:.2%} of valid pixels at 0 and {hi:.2%} at 255; a 2nd-98th percentile "
            f"stretch gives about 2 % each")
        # linear: the smallest value mapped to byte b grows linearly with b
        bs = np.arange(1, 255)
        first = np.searchsorted(vs, bs, side="left")
        present = (first < len(vs)) & (vs[np.minimum(first, len(vs) - 1)] == bs)
        b_ok, x_lo = bs[present], xs[first[present]]
        if len(b_ok) > 50:
            slope, icpt = np.polyfit(b_ok, x_lo, 1)
            resid = np.abs(x_lo - (slope * b_ok + icpt))
            assert slope > 0 and resid.max() < 1.5 * slope, (
                f"{where}: band {k}: byte thresholds are not linear in the dequantised value "
                f"(max deviation {resid.max():.4g}, bin width {slope:.4g})")


@pytest.fixture(scope="session")
def global_rgb(root):
    d = root.store / "global_rgb"
    if not (d / "zarr.json").exists():
        pytest.skip("GLOBAL RGB NOT CHECKED: global_rgb/ absent")
    return d


def _level_shapes():
    h, w = 1_800_000, 3_600_000
    out = []
    for _ in range(LEVELS):
        out.append((h, w))
        h, w = h // 2, w // 2
    return out


def test_global_rgb_metadata(root, global_rgb):
    doc = load(global_rgb / "zarr.json")
    a = doc["attributes"]
    assert list(a) == ["zarr_conventions", "multiscales", "proj:code", "spatial:dimensions", "spatial:bbox"], (
        f"{root}: global_rgb attribute order {list(a)}")
    assert a["zarr_conventions"] == [CONVENTIONS["multiscales"], CONVENTIONS["proj"], CONVENTIONS["spatial"]]
    assert a["proj:code"] == "EPSG:4326" and a["spatial:dimensions"] == ["lat", "lon"]
    assert a["spatial:bbox"] == [-180.0, -90.0, 180.0, 90.0]
    ms = a["multiscales"]
    assert list(ms) == ["layout", "resampling_method"] and ms["resampling_method"] == "mean"
    shapes = _level_shapes()
    assert len(ms["layout"]) == LEVELS, f"{root}: {len(ms['layout'])} levels"
    for l, (ent, (h, w)) in enumerate(zip(ms["layout"], shapes)):
        res = 0.0001 * 2**l
        want = {"asset": str(l),
                "transform": {"scale": [float(2**l), float(2**l)], "translation": [0.0, 0.0] if l == 0 else [0.5, 0.5]}}
        if l > 0:
            want |= {"derived_from": str(l - 1), "resampling_method": "mean"}
        want |= {"spatial:shape": [h, w], "spatial:transform": [res, 0.0, -180.0, 0.0, -res, 90.0]}
        assert list(ent) == list(want), f"{root}: layout[{l}] keys {list(ent)}, want {list(want)}"
        assert ent == want, f"{root}: layout[{l}] = {json.dumps(ent)}, want {json.dumps(want)}"
        lg = load(global_rgb / str(l) / "zarr.json")
        assert lg["node_type"] == "group" and lg.get("attributes", {}) == {}, f"{root}: global_rgb/{l} attributes"
        m = load(global_rgb / str(l) / "rgb" / "zarr.json")
        where = f"{root}: global_rgb/{l}/rgb"
        assert m["data_type"] == "uint8" and m["shape"] == [h, w, 4], f"{where}: {m['data_type']} {m['shape']}"
        assert m["chunk_grid"]["configuration"]["chunk_shape"] == [512, 512, 4], where
        assert m["codecs"] == [BYTES_1, ZSTD], f"{where}: codecs {m['codecs']}"
        assert m["fill_value"] == 0 and m["dimension_names"] == ["lat", "lon", "band"], where
        b = load(global_rgb / str(l) / "band" / "zarr.json")
        assert b["data_type"] == "int32" and b["shape"] == [4] and b["dimension_names"] == ["band"], f"{root}: global_rgb/{l}/band"
        np.testing.assert_array_equal(_open(global_rgb / str(l) / "band").read().result(), np.arange(4))


def _chunks(level_dir):
    base = level_dir / "rgb" / "c"
    out = []
    if base.is_dir():
        for p in base.rglob("*"):
            if p.is_file():
                out.append(tuple(int(x) for x in p.relative_to(base).parts))
    return sorted(out)


def _tile_lonlat_boxes(manifest):
    """lon/lat bounding box of each placed tile's pixel rectangle (zone UTM,
    edges densified), the area its RGB can reach after reprojection."""
    boxes = []
    for z in manifest.zones.values():
        inv = pyproj.Transformer.from_crs(z.epsg, "OGC:CRS84", always_xy=True)
        for p in z.placed:
            e0, e1 = z.origin_e + p.col * 10.0, z.origin_e + (p.col + p.tile.W) * 10.0
            n0, n1 = z.origin_n - p.row * 10.0, z.origin_n - (p.row + p.tile.H) * 10.0
            t = np.linspace(0, 1, 33)
            es = np.concatenate([e0 + (e1 - e0) * t, np.full_like(t, e1), e1 - (e1 - e0) * t, np.full_like(t, e0)])
            ns = np.concatenate([np.full_like(t, n0), n0 + (n1 - n0) * t, np.full_like(t, n1), n1 - (n1 - n0) * t])
            lon, lat = inv.transform(es, ns)
            boxes.append((p.tile.name, min(lon), min(lat), max(lon), max(lat)))
    return boxes


def test_global_rgb_chunks_near_data(root, global_rgb, manifest):
    """Level-0 chunks exist only where some tile's pixels reproject to."""
    boxes = _tile_lonlat_boxes(manifest)
    chunks = _chunks(global_rgb / "0")
    assert chunks, f"{root}: global_rgb/0 has no chunks at all"
    margin = 0.001  # degrees: ten level-0 pixels
    far = []
    for ci, cj, _ in chunks:
        lat_top, lat_bot = 90 - ci * 512 * 1e-4, 90 - (ci + 1) * 512 * 1e-4
        lon_l, lon_r = -180 + cj * 512 * 1e-4, -180 + (cj + 1) * 512 * 1e-4
        if not any(lon_l < b[3] + margin and b[1] - margin < lon_r and lat_bot < b[4] + margin and b[2] - margin < lat_top
                   for b in boxes):
            far.append(f"({ci},{cj}) lon {lon_l:.4f}..{lon_r:.4f} lat {lat_bot:.4f}..{lat_top:.4f}")
    assert not far, f"{root}: global_rgb/0 chunks far from every tile: {far[:5]} (tiles: {boxes})"
    # and every tile has some level-0 chunk over it
    for name, w, s_, e, n in boxes:
        ci0, ci1 = int((90 - n) / 0.0512), int((90 - s_) / 0.0512)
        cj0, cj1 = int((w + 180) / 0.0512), int((e + 180) / 0.0512)
        assert any(ci0 <= ci <= ci1 and cj0 <= cj <= cj1 for ci, cj, _ in chunks), f"{root}: no global_rgb/0 chunk over {name}"


def test_global_rgb_pyramid(root, global_rgb):
    """Level L ≥ 1 from L−1: alpha = sum//4; RGB = mean over the alpha > 0 pixels
    (0 if none); checked over every chunk of every level (few above level 3)."""
    shapes = _level_shapes()
    for l in range(1, LEVELS):
        up = _open(global_rgb / str(l) / "rgb")
        dn = _open(global_rgb / str(l - 1) / "rgb")
        for ci, cj, _ in _chunks(global_rgb / str(l)):
            r0, c0 = ci * 512, cj * 512
            r1, c1 = min(r0 + 512, shapes[l][0]), min(c0 + 512, shapes[l][1])
            got = up[r0:r1, c0:c1].read().result().astype(np.int64)
            blk = dn[2 * r0:2 * r1, 2 * c0:2 * c1].read().result().astype(np.int64)
            q = blk.reshape(r1 - r0, 2, c1 - c0, 2, 4)
            a = q[..., 3]
            want_a = a.sum(axis=(1, 3)) // 4
            on = (a > 0)[..., None]
            n = on.sum(axis=(1, 3))
            s = (q[..., :3] * on).sum(axis=(1, 3))
            assert (got[..., 3] == want_a).all(), f"{root}: global_rgb/{l} chunk ({ci},{cj}): alpha is not sum//4 of level {l - 1}"
            ok = n > 0
            mean = np.where(ok, s / np.maximum(n, 1), 0)
            diff = np.abs(got[..., :3] - mean)
            # integer mean: allow the rounding choice (floor or nearest)
            assert (diff < 1.0 + 1e-9).all(), (f"{root}: global_rgb/{l} chunk ({ci},{cj}): RGB is not the mean of the "
                                               f"opaque level-{l - 1} pixels (max diff {diff.max():.2f})")


SAMPLE_SHARDS, SAMPLE_PIXELS, SHARD = 32, 10_000, 256


def _stretch_sample(zone_dir):
    """The spec §4 sample, read from the store: of the zone's shards that
    tiles touch (the embeddings shards, row-major) all of them if at most
    32, else the 32 at indices k·n//32; up to 10,000 evenly strided valid
    pixels (finite scale, row-major) of each, as float32(embedding[b]) ×
    scale for b = 0, 1, 2."""
    c = zone_dir / "embeddings" / "c"
    shards = sorted((int(i), int(j)) for i in os.listdir(c) for j in os.listdir(c / i))
    if len(shards) > SAMPLE_SHARDS:
        shards = [shards[k * len(shards) // SAMPLE_SHARDS] for k in range(SAMPLE_SHARDS)]
    # tensorstore: zarr-python decodes each 4 × 4 inner chunk on its own,
    # about 10 s a shard.
    emb = _open(zone_dir / "embeddings")
    sc = _open(zone_dir / "scales")
    vals = []
    for i, j in shards:
        win = np.s_[i * SHARD:(i + 1) * SHARD, j * SHARD:(j + 1) * SHARD]
        s = np.asarray(sc[win].read().result(), dtype=np.float32).reshape(-1)
        e = np.asarray(emb[win + (slice(0, 3),)].read().result(), dtype=np.int8).reshape(-1, 3)
        valid = np.flatnonzero(np.isfinite(s))
        n = len(valid)
        if n > SAMPLE_PIXELS:
            valid = valid[(np.arange(SAMPLE_PIXELS, dtype=np.int64) * n) // SAMPLE_PIXELS]
        vals.append(e[valid].astype(np.float32) * s[valid][:, None])
    return np.concatenate(vals) if vals else np.zeros((0, 3), np.float32)


def test_rgb_stretch_numpy(root, zone):
    """The stretch recorded in the zone's STAC item (tessera:rgb_stretch;
    no zarr.json carries it) is numpy.percentile(linear) of the spec's
    sample, and the rgb bytes are that stretch applied to the dequantised
    embedding (spec §4), checked with NumPy rather than a copy of our Go
    code."""
    zd = root.store / zone.name
    if not (zd / "rgb").exists():
        pytest.skip(f"RGB PREVIEW NOT CHECKED: {zone.name}/rgb absent")
    where = f"{root.name} {zone.name}/rgb"
    assert load(zd / "rgb" / "zarr.json")["attributes"] == {}, f"{where}: the rgb array has attributes"
    iid = f"{zone.name}_{root.year}"
    item = load(root.path / f"geotessera-{root.year}" / iid / f"{iid}.json")
    rec = item["properties"].get("tessera:rgb_stretch")
    assert rec is not None, f"{where}: no tessera:rgb_stretch in the STAC item {iid}"
    assert list(rec) == ["p2", "p98", "mode"] and rec["mode"] in ("zone", "global"), f"{where}: {rec!r}"
    if rec["mode"] != "zone":
        pytest.skip(f"{where}: global stretch: the sample spans every zone")
    sample = _stretch_sample(zd)
    assert len(sample) > 1000, f"{where}: only {len(sample)} sample pixels"
    p2 = np.percentile(sample, 2, axis=0, method="linear").astype(np.float32)
    p98 = np.percentile(sample, 98, axis=0, method="linear").astype(np.float32)
    p98 = np.where(p98 <= p2, p2 + np.float32(1), p98).astype(np.float32)
    got2, got98 = np.array(rec["p2"], np.float32), np.array(rec["p98"], np.float32)
    assert np.array_equal(got2, p2) and np.array_equal(got98, p98), (
        f"{where}: recorded p2 {got2.tolist()} p98 {got98.tolist()}, numpy.percentile gives "
        f"p2 {p2.tolist()} p98 {p98.tolist()} over {len(sample)} sample pixels")
    # The bytes: trunc(clip((x − p2)/(p98 − p2), 0, 1)·255) in float32.
    # Whole-zone reads through tensorstore: zarr-python decodes each 4 × 4
    # inner chunk on its own and takes minutes for a zone (the sample
    # above is read with zarr-python).
    emb = np.asarray(_open(zd / "embeddings")[..., 0:3].read().result(), dtype=np.int8)
    sc = np.asarray(_open(zd / "scales").read().result(), dtype=np.float32)
    rgb = np.asarray(_open(zd / "rgb")[..., 0:3].read().result())
    fin = np.isfinite(sc)
    x = emb[fin].astype(np.float32) * sc[fin][:, None]
    with np.errstate(invalid="ignore"):
        t = np.clip((x - p2) / (p98 - p2), np.float32(0), np.float32(1)).astype(np.float32)
    want = (t * np.float32(255)).astype(np.uint8)
    bad = (rgb[fin] != want).any(axis=-1)
    assert not bad.any(), f"{where}: {bad.sum()} of {len(bad)} valid pixels differ from the recorded stretch applied by NumPy"
