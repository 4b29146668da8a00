"""xarray opens each zone group through consolidated metadata: named dims,
pixel-centre coordinates, label- and index-based windows equal the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import checks


@pytest.fixture(scope="session")
def dataset(root, zone):
    ds = xr.open_zarr(root.store, group=zone.name, consolidated=True)
    yield ds
    ds.close()


def test_dims_and_coords(root, zone, dataset):
    ds = dataset
    where = f"xarray {root.name} {zone.name}"
    assert ds["embeddings"].dims == ("northing", "easting", "band"), f"{where}: embeddings dims {ds['embeddings'].dims}"
    assert ds["scales"].dims == ("northing", "easting"), f"{where}: scales dims {ds['scales'].dims}"
    assert ds["embeddings"].dtype == np.int8, f"{where}: embeddings decoded as {ds['embeddings'].dtype} (fill masking?)"
    assert ds["scales"].dtype == np.float32, f"{where}: scales dtype {ds['scales'].dtype}"
    assert dict(ds.sizes) == {"northing": zone.H, "easting": zone.W, "band": 128} | (
        {"rgba": 4} if "rgb" in ds else {}), f"{where}: sizes {dict(ds.sizes)}"
    for name in ("easting", "northing", "band"):
        assert name in ds.indexes, f"{where}: {name} is not an indexed coordinate"
    np.testing.assert_array_equal(ds["easting"].values, zone.easting(), err_msg=f"{where}: easting != pixel centres")
    np.testing.assert_array_equal(ds["northing"].values, zone.northing(), err_msg=f"{where}: northing != pixel centres")
    np.testing.assert_array_equal(ds["band"].values, np.arange(128), err_msg=f"{where}: band")
    assert ds.attrs["proj:code"] == zone.epsg and ds.attrs["spatial:transform"] == zone.transform, f"{where}: attrs"


def test_isel_window(root, zone, dataset, expected):
    ds = dataset
    for r0, r1, c0, c1 in checks.random_windows(zone, 3, seed=2, max_h=120, max_w=120):
        sub = ds.isel(northing=slice(r0, r1), easting=slice(c0, c1))
        want_e, want_s = expected.window(zone, r0, r1, c0, c1)
        rn = f"xarray {root.name}"
        checks.assert_equal(sub["embeddings"].values, want_e, zone, r0, c0, f"isel embeddings[{r0}:{r1},{c0}:{c1}]", reader=rn)
        checks.assert_equal(sub["scales"].values, want_s, zone, r0, c0, f"isel scales[{r0}:{r1},{c0}:{c1}]", reader=rn)


def test_sel_window(root, zone, dataset, expected):
    """Select by map coordinates (metres), as a user would: a box around the
    overlap of the first two tiles written, bands by label."""
    ds = dataset
    p = zone.placed[-1]
    r0, c0 = max(p.row - 40, 0), max(p.col - 40, 0)
    r1, c1 = min(r0 + 100, zone.H), min(c0 + 100, zone.W)
    e0, e1 = zone.origin_e + c0 * 10.0, zone.origin_e + c1 * 10.0  # pixel edges: centres fall strictly inside
    n0, n1 = zone.origin_n - r0 * 10.0, zone.origin_n - r1 * 10.0
    bands = [0, 1, 63, 126, 127]
    sub = ds.sel(easting=slice(e0, e1), northing=slice(n0, n1), band=bands)
    assert sub.sizes["northing"] == r1 - r0 and sub.sizes["easting"] == c1 - c0, (
        f"xarray {root.name} {zone.name}: sel by coordinates gave {dict(sub.sizes)}, want rows {r0}:{r1} cols {c0}:{c1}")
    want_e, want_s = expected.window(zone, r0, r1, c0, c1)
    rn = f"xarray {root.name}"
    checks.assert_equal(sub["embeddings"].values, want_e[:, :, bands], zone, r0, c0, f"sel embeddings bands {bands}", reader=rn)
    checks.assert_equal(sub["scales"].values, want_s, zone, r0, c0, "sel scales", reader=rn)
    deq = (sub["embeddings"].astype(np.float32) * sub["scales"]).values
    checks.assert_equal(deq, checks.dequantise(want_e[:, :, bands], want_s), zone, r0, c0, "sel dequantised", reader=rn)
