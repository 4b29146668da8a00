"""The synthetic source tiles themselves hold the oracle's values on the
geometry computed here (spec §1, §2). This checks `tesserafs synth`, so that a
store failure elsewhere can be told apart from a wrong input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import oracle


def tile_dir(tiles_root, year, t):
    return tiles_root / "global_0.1_degree_representation" / str(year) / t.name


def test_tile_npy(tiles_root, year, tile):
    d = tile_dir(tiles_root, year, tile)
    emb = np.load(d / f"{tile.name}.npy", mmap_mode="r")
    sc = np.load(d / f"{tile.name}_scales.npy", mmap_mode="r")
    assert emb.dtype == np.int8 and emb.shape == (tile.H, tile.W, 128), (
        f"{tile.name}.npy: {emb.dtype} {emb.shape}, want int8 ({tile.H}, {tile.W}, 128) from the §2 footprint")
    want_sc_shape = (tile.H, tile.W, 128) if tile.scales3d else (tile.H, tile.W)
    assert sc.dtype == np.float32 and sc.shape == want_sc_shape, f"{tile.name}_scales.npy: {sc.dtype} {sc.shape}, want {want_sc_shape}"
    if tile.sparse:
        assert not np.asarray(emb).any() and not np.asarray(sc).any(), f"{tile.name}: sparse tile data should read as zeros"
        return
    gE, gN = tile.gE(), tile.gN()
    for i0 in range(0, tile.H, 256):
        i1 = min(i0 + 256, tile.H)
        want = oracle.embedding(gE, gN[i0:i1])
        got = np.asarray(emb[i0:i1, :, :127])
        if not (got == want).all():
            i, j, b = np.argwhere(got != want)[0]
            raise AssertionError(f"{tile.name}.npy pixel ({i0 + i},{j}) band {b} (gE {gE[j]}, gN {gN[i0 + i]}): "
                                 f"{got[i, j, b]}, oracle {want[i, j, b]}")
    assert (np.asarray(emb[:, :, 127]) == tile.stamp).all(), f"{tile.name}.npy: band 127 is not the stamp {tile.stamp}"
    want_sc = oracle.scale3d(gE, gN) if tile.scales3d else oracle.scale(gE, gN)
    same = (np.asarray(sc) == want_sc) | (np.isnan(sc) & np.isnan(want_sc))
    assert same.all(), f"{tile.name}_scales.npy: {(~same).sum()} values differ from the oracle, first at {np.argwhere(~same)[0]}"


def test_tile_landmask(tiles_root, tile):
    p = tiles_root / "global_0.1_degree_tiff_all" / f"{tile.name}.tiff"
    if tile.no_landmask:
        assert not p.exists(), f"{tile.name} is listed without landmask but {p} exists"
        return
    rasterio = pytest.importorskip("rasterio")
    with warnings.catch_warnings():
        # synth's landmasks carry no GeoTIFF georeferencing; tesserafs does not read it
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        f = rasterio.open(p)
    with f:
        assert f.count == 1 and f.dtypes[0] == "uint8", f"{p.name}: {f.count} bands {f.dtypes}"
        assert (f.height, f.width) == (tile.H, tile.W), f"{p.name}: {f.height}x{f.width}, want {tile.H}x{tile.W}"
        lm = f.read(1)
    if tile.has_water:
        want = oracle.water(tile.gE(), tile.gN())
    else:
        want = np.zeros((tile.H, tile.W), dtype=bool)  # an all-land landmask
    got = lm == 0
    assert (got == want).all(), f"{p.name}: {(got != want).sum()} pixels disagree with the oracle's water squares"
