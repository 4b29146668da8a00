"""global_rgb (spec §5) read level by level by zarr-python 3 and xarray, equal
to tensorstore byte for byte, georeferenced by the layout's geotransform; and
level 0 recomputed independently from the zone `rgb` arrays with pyproj.

The multiscales layout is taken from the group attributes (test_rgb.py checks
those attributes against the spec value by value)."""

from __future__ import annotations

import math
import time

import numpy as np
import pyproj
import xarray as xr
import zarr

import checks
from test_rgb import _chunks, _open, _tile_lonlat_boxes, global_rgb  # noqa: F401 (global_rgb is a fixture)

CHUNK = 512
RES0 = 0.0001
FULL_READ_MAX_CHUNKS = 128  # read a whole level when its chunk grid is this small (level 9: 7 × 14)


def _layout(global_rgb):
    a = checks.read_json(global_rgb / "zarr.json")["attributes"]
    layout = a["multiscales"]["layout"]
    assert layout, f"{global_rgb}: empty multiscales layout"
    return layout


def _clusters(chunks):
    """Groups of 8-connected chunk indices (ci, cj)."""
    left = {(ci, cj) for ci, cj, *_ in chunks}
    out = []
    while left:
        todo = [left.pop()]
        comp = []
        while todo:
            ci, cj = todo.pop()
            comp.append((ci, cj))
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    n = (ci + di, cj + dj)
                    if n in left:
                        left.remove(n)
                        todo.append(n)
        out.append(sorted(comp))
    return sorted(out)


def _regions(level_dir, shape):
    """Pixel windows (r0, r1, c0, c1) to read at one level: the whole array
    when its chunk grid is small, else each cluster of listed chunks' bounding
    box with one chunk of margin (absent neighbours read as fill), clipped."""
    h, w = shape
    gr, gc = -(-h // CHUNK), -(-w // CHUNK)
    chunks = _chunks(level_dir)
    if gr * gc <= FULL_READ_MAX_CHUNKS:
        return chunks, [(0, h, 0, w)]
    out = []
    for comp in _clusters(chunks):
        i0 = max(min(c[0] for c in comp) - 1, 0)
        i1 = min(max(c[0] for c in comp) + 2, gr)
        j0 = max(min(c[1] for c in comp) - 1, 0)
        j1 = min(max(c[1] for c in comp) + 2, gc)
        out.append((i0 * CHUNK, min(i1 * CHUNK, h), j0 * CHUNK, min(j1 * CHUNK, w)))
    return chunks, out


def _first_diff(got, want):
    bad = np.argwhere(got != want)
    i, j, k = bad[0]
    return f"{len(bad)} values differ, first at [{i},{j},{k}]: got {got[i, j, k]}, tensorstore {want[i, j, k]}"


def test_global_rgb_levels_readers(root, global_rgb, manifest):
    """zarr-python 3 and xarray open every level group global_rgb/<l> (the
    level directory as a store, and the year store's consolidated metadata
    with group=) and read exactly what tensorstore reads, over each cluster
    of listed chunks (or the whole level when it is small); xarray's dims and
    the layout's geotransform put the data where the tiles are."""
    layout = _layout(global_rgb)
    boxes = _tile_lonlat_boxes(manifest)
    for l, ent in enumerate(layout):
        level = ent["asset"]
        assert level == str(l), f"{root}: layout[{l}] asset {level!r}"
        h, w = ent["spatial:shape"]
        tr = ent["spatial:transform"]
        where = f"{root} global_rgb/{level}"
        # The geotransform of level l: 2^l level-0 pixels each way, same corner.
        res = tr[0]
        assert tr == [res, 0.0, -180.0, 0.0, -res, 90.0] and math.isclose(res, RES0 * 2**l, rel_tol=1e-12), (
            f"{where}: spatial:transform {tr}")
        assert ent["transform"]["scale"] == [float(2**l)] * 2, f"{where}: multiscales scale {ent['transform']}"
        assert (h, w) == (1_800_000 >> l, 3_600_000 >> l), f"{where}: spatial:shape {[h, w]}"

        lv = global_rgb / level
        t_rgb = _open(lv / "rgb")
        z_grp = zarr.open_group(lv, mode="r")
        z_rgb = z_grp["rgb"]
        assert z_rgb.shape == (h, w, 4) and z_rgb.dtype == np.uint8, f"zarr-python {where}: {z_rgb.shape} {z_rgb.dtype}"
        # band: zarr-python, tensorstore and xarray all read int32 0..3
        zb = z_grp["band"][...]
        assert zb.dtype == np.int32 and np.array_equal(zb, np.arange(4)), f"zarr-python {where}/band: {zb!r}"
        assert np.array_equal(_open(lv / "band").read().result(), zb), f"tensorstore {where}/band"

        ds_dir = xr.open_zarr(lv, consolidated=False, chunks=None)
        ds_cons = xr.open_zarr(root.store, group=f"global_rgb/{level}", consolidated=True, chunks=None)
        for name, ds in (("xarray (level dir)", ds_dir), ("xarray (consolidated, group=)", ds_cons)):
            assert set(ds.variables) == {"rgb", "band"}, f"{name} {where}: variables {sorted(ds.variables)}"
            assert list(ds.coords) == ["band"], f"{name} {where}: coords {list(ds.coords)}"
            assert ds["rgb"].dims == ("lat", "lon", "band"), f"{name} {where}: dims {ds['rgb'].dims}"
            assert dict(ds.sizes) == {"lat": h, "lon": w, "band": 4}, f"{name} {where}: sizes {dict(ds.sizes)}"
            assert ds["rgb"].dtype == np.uint8, f"{name} {where}: rgb decoded as {ds['rgb'].dtype} (fill masking?)"
            b = ds["band"].values
            assert b.dtype == np.int32 and np.array_equal(b, zb), f"{name} {where}: band {b!r}"

        chunks, regions = _regions(lv, (h, w))
        assert chunks, f"{where}: no chunk listed under rgb/c"
        opaque = 0
        for r0, r1, c0, c1 in regions:
            want = t_rgb[r0:r1, c0:c1].read().result()
            reg = f"{where} rgb[{r0}:{r1}, {c0}:{c1}]"
            got = z_rgb[r0:r1, c0:c1]
            assert got.shape == want.shape and got.dtype == want.dtype, f"zarr-python {reg}: {got.shape} {got.dtype}"
            assert np.array_equal(got, want), f"zarr-python {reg}: {_first_diff(got, want)}"
            for name, ds in (("xarray (level dir)", ds_dir), ("xarray (consolidated, group=)", ds_cons)):
                sub = ds["rgb"].isel(lat=slice(r0, r1), lon=slice(c0, c1))
                got = sub.values
                assert got.dtype == want.dtype, f"{name} {reg}: dtype {got.dtype}"
                assert np.array_equal(got, want), f"{name} {reg}: {_first_diff(got, want)}"
            # Georeferencing: pixel centres from the layout's geotransform; the
            # opaque pixels lie on the tiles (within a pixel of their boxes).
            sub = ds_cons["rgb"].isel(lat=slice(r0, r1), lon=slice(c0, c1)).assign_coords(
                lat=tr[5] + (np.arange(r0, r1) + 0.5) * tr[4], lon=tr[2] + (np.arange(c0, c1) + 0.5) * tr[0])
            a = want[..., 3] > 0
            opaque += int(a.sum())
            if a.any():
                lat = np.broadcast_to(sub["lat"].values[:, None], a.shape)[a]
                lon = np.broadcast_to(sub["lon"].values[None, :], a.shape)[a]
                m = res + RES0
                on = np.zeros(lat.shape, dtype=bool)
                for _, bw, bs, be, bn in boxes:
                    on |= (lon > bw - m) & (lon < be + m) & (lat > bs - m) & (lat < bn + m)
                assert on.all(), (f"{where}: {int((~on).sum())} opaque pixels away from every tile, e.g. lon "
                                  f"{lon[~on][0]:.5f} lat {lat[~on][0]:.5f}: geotransform or placement wrong")
        assert opaque > 0, f"{where}: no opaque pixel in the regions read: the comparison would be vacuous"
        # Label-based selection with those coordinates finds data on every tile.
        for name, bw, bs, be, bn in boxes:
            i0, i1 = int((90 - bn) / res), int(math.ceil((90 - bs) / res))
            j0, j1 = int((bw + 180) / res), int(math.ceil((be + 180) / res))
            sub = ds_cons["rgb"].isel(lat=slice(i0, i1), lon=slice(j0, j1)).assign_coords(
                lat=tr[5] + (np.arange(i0, i1) + 0.5) * tr[4], lon=tr[2] + (np.arange(j0, j1) + 0.5) * tr[0])
            sel = sub.sel(lat=slice(bn, bs), lon=slice(bw, be), band=3)
            assert (sel.values > 0).any(), f"{where}: xarray .sel over tile {name} (lon {bw:.4f}..{be:.4f}, " \
                                            f"lat {bs:.4f}..{bn:.4f}) finds no opaque pixel"
        ds_dir.close()
        ds_cons.close()


# --- level 0, recomputed from the zone rgb arrays --------------------------------------------

SAMPLE_STEP = 23
SAMPLE_OFFSET = (11, 17)  # not the Go test's (3, 5): other pixels
MAX_SAMPLE_CHUNKS = 300


def _level0_sample_chunks(global_rgb, h, w):
    """Listed level-0 chunks and their unlisted 8-neighbours (which must come
    out empty), capped deterministically."""
    listed = {(ci, cj) for ci, cj, *_ in _chunks(global_rgb / "0")}
    gr, gc = -(-h // CHUNK), -(-w // CHUNK)
    ring = {(ci + di, cj + dj) for ci, cj in listed for di in (-1, 0, 1) for dj in (-1, 0, 1)}
    ring = {c for c in ring if 0 <= c[0] < gr and 0 <= c[1] < gc} - listed
    chunks = sorted(listed) + sorted(ring)
    if len(chunks) > MAX_SAMPLE_CHUNKS:
        chunks = chunks[:: -(-len(chunks) // MAX_SAMPLE_CHUNKS)]
    return listed, chunks


def _compute_weight(i, i0, i1, lo, hi):
    """GDAL's COMPUTE_WEIGHT along one axis (unclamped at the box's ends)."""
    return np.where(i == i0, np.where(i0 + 1 == i1, 1.0, 1 - (lo - i0)),
                    np.where(i + 1 == i1, 1 - (i1 - hi), 1.0))


def level0_expected(R, C, zones, zone_rgb):
    """Spec §5 for level-0 pixels (R, C) but with exact corners (GDAL's
    approximate transformer left out; test_global_rgb_gdal.py compares with
    GDAL itself): per zone, ascending, the pixel's upper-left and lower-right
    corners projected with pyproj give a box in the zone's pixel space
    (x = (E − origin_e)/10, y = (origin_n − N)/10); each zone pixel with
    alpha ≥ 128 counts with GDAL's COMPUTE_WEIGHT; RGB is the float32 mean
    truncated, alpha 255 where some band's mean is non-zero; a zone overwrites
    only the pixels it sets. Returns (rgba uint8 (n, 4), mean float (n, 3))."""
    n = len(R)
    out = np.zeros((n, 4), dtype=np.uint8)
    mean = np.zeros((n, 3))
    lon0, lat0 = -180.0 + C * RES0, 90.0 - R * RES0
    lon1, lat1 = -180.0 + (C + 1) * RES0, 90.0 - (R + 1) * RES0
    for z in sorted(zones, key=lambda z: z.zone):
        tr = pyproj.Transformer.from_crs("OGC:CRS84", z.epsg, always_xy=True)
        e0, n0 = tr.transform(lon0, lat0)
        e1, n1 = tr.transform(lon1, lat1)
        xa, xb = (np.asarray(e0) - z.origin_e) / 10.0, (np.asarray(e1) - z.origin_e) / 10.0
        ya, yb = (z.origin_n - np.asarray(n0)) / 10.0, (z.origin_n - np.asarray(n1)) / 10.0
        xa, xb = np.minimum(xa, xb), np.maximum(xa, xb)
        ya, yb = np.minimum(ya, yb), np.maximum(ya, yb)
        with np.errstate(invalid="ignore"):
            hit = np.isfinite(xa + xb + ya + yb) & (xb > 0) & (xa < z.W) & (yb > 0) & (ya < z.H)
        idx = np.nonzero(hit)[0]
        if not len(idx):
            continue
        xa, xb, ya, yb = xa[idx], xb[idx], ya[idx], yb[idx]
        eps = 1e-10
        ix0 = np.maximum(np.floor(xa + eps), 0).astype(np.int64)
        ix1 = np.minimum(np.ceil(xb - eps), z.W).astype(np.int64)
        ix1 = np.where((ix0 == ix1) & (ix1 < z.W), ix1 + 1, ix1)
        iy0 = np.maximum(np.floor(ya + eps), 0).astype(np.int64)
        iy1 = np.minimum(np.ceil(yb - eps), z.H).astype(np.int64)
        iy1 = np.where((iy0 == iy1) & (iy1 < z.H), iy1 + 1, iy1)
        fx, fy = ix0, iy0
        kx = max(int((ix1 - ix0).max()), 1)
        ky = max(int((iy1 - iy0).max()), 1)
        assert kx * ky <= 64, f"{z.name}: a level-0 footprint spans {ky} × {kx} zone pixels: projection broken?"
        # the zone pixels any footprint touches, read once
        sx0, sx1 = max(int(fx.min()), 0), min(int(fx.max()) + kx, z.W)
        sy0, sy1 = max(int(fy.min()), 0), min(int(fy.max()) + ky, z.H)
        src = zone_rgb(z, sy0, sy1, sx0, sx1).astype(np.float64)
        s = np.zeros((len(idx), 3))
        wsum = np.zeros(len(idx))
        for dy in range(ky):
            iy = fy + dy
            wy = _compute_weight(iy, iy0, iy1, ya, yb)
            for dx in range(kx):
                ix = fx + dx
                wx = _compute_weight(ix, ix0, ix1, xa, xb)
                inside = (iy >= iy0) & (iy < iy1) & (ix >= ix0) & (ix < ix1) & (wx * wy > 0)
                px = src[np.clip(iy, sy0, sy1 - 1) - sy0, np.clip(ix, sx0, sx1 - 1) - sx0]
                wt = np.where(inside & (px[:, 3] >= 128), wx * wy, 0.0)
                s += wt[:, None] * px[:, :3]
                wsum += wt
        m = np.zeros_like(s)
        np.divide(s, wsum[:, None], out=m, where=wsum[:, None] > 0)
        m = m.astype(np.float32)
        got = (wsum > 0) & (m != 0).any(axis=1)  # a pure-black mean is transparent
        g = idx[got]
        mean[g] = m[got]
        out[g, :3] = np.clip(m[got], 0, 255).astype(np.uint8)  # truncation
        out[g, 3] = 255
    return out, mean


def test_global_rgb_level0_reprojection(root, global_rgb, manifest):
    """Sampled level-0 pixels (every 23rd row and column of each listed chunk
    and of its unlisted neighbours) agree with the independent reprojection
    with exact corners: unlisted chunks get no data; alpha equal and RGB
    within 8 levels for all but 0.1 %, RGB exact for ≥ 50 % (byte identity
    with GDAL: test_global_rgb_gdal.py)."""
    t_start = time.monotonic()
    ent = _layout(global_rgb)[0]
    h, w = ent["spatial:shape"]
    assert ent["spatial:transform"] == [RES0, 0.0, -180.0, 0.0, -RES0, 90.0], f"{root}: level 0 transform"
    listed, chunks = _level0_sample_chunks(global_rgb, h, w)
    assert listed, f"{root}: global_rgb/0 lists no chunk"
    g0 = _open(global_rgb / "0" / "rgb")

    arrays = {}

    def zone_rgb(z, r0, r1, c0, c1):
        if z.zone not in arrays:
            d = root.store / z.name / "rgb"
            assert (d / "zarr.json").exists(), f"{root}: global_rgb exists but {z.name}/rgb does not"
            # tensorstore: zarr-python takes seconds per zone over the 4 × 4 inner chunks
            arrays[z.zone] = _open(d)
            assert tuple(arrays[z.zone].shape) == (z.H, z.W, 4), f"{root}: {z.name}/rgb shape {arrays[z.zone].shape}"
        return arrays[z.zone][r0:r1, c0:c1].read().result()

    rr = np.arange(SAMPLE_OFFSET[0], CHUNK, SAMPLE_STEP)
    cc = np.arange(SAMPLE_OFFSET[1], CHUNK, SAMPLE_STEP)
    Rs, Cs, got, is_listed = [], [], [], []
    for ci, cj in chunks:
        r0, c0 = ci * CHUNK, cj * CHUNK
        blk = g0[r0:min(r0 + CHUNK, h), c0:min(c0 + CHUNK, w)].read().result()
        r = rr[rr < blk.shape[0]]
        c = cc[cc < blk.shape[1]]
        R, C = np.meshgrid(r, c, indexing="ij")
        Rs.append((R + r0).ravel())
        Cs.append((C + c0).ravel())
        got.append(blk[R, C].reshape(-1, 4))
        is_listed.append(np.full(R.size, (ci, cj) in listed))
    R, C = np.concatenate(Rs).astype(np.int64), np.concatenate(Cs).astype(np.int64)
    got, is_listed = np.concatenate(got), np.concatenate(is_listed)
    want, mean = level0_expected(R, C, list(manifest.zones.values()), zone_rgb)

    n = len(R)
    with_data = int((want[:, 3] == 255).sum())
    where = f"{root} global_rgb/0"

    def px(k):
        return f"pixel (row {R[k]}, col {C[k]}) lon {-180 + (C[k] + 0.5) * RES0:.5f} lat {90 - (R[k] + 0.5) * RES0:.5f}"

    # Unlisted chunks must have nothing to show.
    lost = np.nonzero(~is_listed & (want[:, 3] != 0))[0]
    assert not len(lost), (f"{where}: {len(lost)} sampled pixels in unlisted (absent) chunks have data, e.g. "
                           f"{px(lost[0])}: independent {want[lost[0]].tolist()}")
    # GDAL's approximate transformer moves corners by up to 0.125 zone pixel:
    # bytes may differ by a few levels, and at a zone or coast edge a
    # footprint may reach or miss a pixel (a few per thousand at most).
    bad_a = np.nonzero(got[:, 3] != want[:, 3])[0]
    d = got[:, :3].astype(np.int16) - want[:, :3].astype(np.int16)
    off = np.nonzero((d != 0).any(axis=1))[0]
    far = np.nonzero((np.abs(d) > 8).any(axis=1) & (got[:, 3] == want[:, 3]))[0]
    assert len(bad_a) + len(far) <= 0.001 * n, (
        f"{where}: {len(bad_a)} of {n} sampled pixels with another alpha, {len(far)} off by more than 8, e.g. "
        + "; ".join(f"{px(k)}: got {got[k].tolist()}, independent {want[k].tolist()} "
                    f"(mean {np.round(mean[k], 3).tolist()})" for k in list(bad_a[:2]) + list(far[:2])))
    exact = n - len(off)
    assert exact >= 0.5 * n, f"{where}: only {exact} of {n} sampled pixels exactly equal"
    # not vacuous: plenty of pixels with data, and some without (edges, water)
    assert with_data >= 1000 and with_data < n, f"{where}: {with_data} of {n} sampled pixels have data"
    print(f"{where}: {n} sampled pixels in {len(chunks)} chunks ({len(listed)} listed), {with_data} with data, "
          f"{exact} exact, {time.monotonic() - t_start:.1f} s")
