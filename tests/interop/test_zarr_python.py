"""zarr-python 3 reads the year store: metadata per spec §3, values per §4."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

import checks
import oracle

CONVENTIONS = {
    "tessera": {
        "schema_url": "https://raw.githubusercontent.com/ucam-eo/zarr-convention-tessera/refs/tags/v1/schema.json",
        "spec_url": "https://github.com/ucam-eo/zarr-convention-tessera/blob/v1/README.md",
        "uuid": "e7f90d5f-019e-4a38-802f-9fa695e26c71",
        "name": "tessera:",
        "description": "Quantised geospatial embedding vectors with per-pixel dequantisation scales",
    },
    "proj": {
        "schema_url": "https://raw.githubusercontent.com/zarr-experimental/geo-proj/refs/tags/v1/schema.json",
        "spec_url": "https://github.com/zarr-experimental/geo-proj/blob/v1/README.md",
        "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f",
        "name": "proj:",
        "description": "Coordinate reference system information for geospatial data",
    },
    "spatial": {
        "schema_url": "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v1/schema.json",
        "spec_url": "https://github.com/zarr-conventions/spatial/blob/v1/README.md",
        "uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4",
        "name": "spatial:",
        "description": "Spatial coordinate information",
    },
    "multiscales": {
        "schema_url": "https://raw.githubusercontent.com/zarr-conventions/multiscales/refs/tags/v1/schema.json",
        "spec_url": "https://github.com/zarr-conventions/multiscales/blob/v1/README.md",
        "uuid": "d35379db-88df-4056-af3a-620245f8e347",
        "name": "multiscales",
        "description": "Multiscale layout of zarr datasets",
    },
}
CONVENTION_KEYS = ["schema_url", "spec_url", "uuid", "name", "description"]

ZONE_ATTR_ORDER = [
    "zarr_conventions", "proj:code", "spatial:dimensions", "spatial:transform", "spatial:shape",
    "spatial:bbox", "spatial:registration", "tessera:dataset_version", "tessera:year", "tessera:utm_zone",
    "tessera:n_bands", "tessera:n_tiles", "tessera:model_version", "tessera:build_version",
    "tessera:has_rgb_preview",
]

BYTES_LE = {"name": "bytes", "configuration": {"endian": "little"}}
BYTES_1 = {"name": "bytes"}
ZSTD = {"name": "zstd", "configuration": {"level": 3, "checksum": False}}
INDEX_CODECS = [BYTES_LE, {"name": "crc32c"}]


def load(p: Path):
    return json.loads(Path(p).read_text())


def node_paths(store: Path) -> dict[str, Path]:
    """Every node under the store (by its zarr.json), keyed by the path
    relative to the store root ('' = root)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(store):
        d = Path(dirpath)
        if "zarr.json" in filenames:
            rel = d.relative_to(store).as_posix()
            out["" if rel == "." else rel] = d / "zarr.json"
        # chunk directories hold no metadata; skip them (they can be large)
        if "zarr.json" in filenames and load(d / "zarr.json").get("node_type") == "array":
            dirnames[:] = []
    return out


@pytest.fixture(scope="session")
def group(root):
    return zarr.open_group(root.store, mode="r", use_consolidated=True)


class _FullReads:
    """Whole-zone reads through zarr-python, kept for the current root only
    (a full read is the slow part of this file)."""

    def __init__(self):
        self.root = None
        self.cache = {}

    def get(self, root, group, zone):
        if self.root != root.name:
            self.root, self.cache = root.name, {}
        if zone.zone not in self.cache:
            g = group[zone.name]
            # Larger codec batches only make zarr-python faster on 4x4 inner chunks.
            with zarr.config.set({"codec_pipeline.batch_size": 4096}):
                self.cache[zone.zone] = (g["embeddings"][...], g["scales"][...])
        return self.cache[zone.zone]


_full_reads = _FullReads()


@pytest.fixture
def zarr_full(root, group, zone):
    return _full_reads.get(root, group, zone)


# --- metadata --------------------------------------------------------------


def test_consolidated_metadata(root):
    doc = load(root.store / "zarr.json")
    assert doc.get("node_type") == "group" and doc.get("zarr_format") == 3, f"{root}: root zarr.json is not a v3 group"
    cm = doc.get("consolidated_metadata")
    assert isinstance(cm, dict), f"{root}: root zarr.json has no consolidated_metadata"
    assert cm.get("kind") == "inline" and cm.get("must_understand") is False, f"{root}: consolidated_metadata header {cm}"
    meta = cm.get("metadata")
    nodes = node_paths(root.store)
    on_disk = set(nodes) - {""}
    assert set(meta) == on_disk, (f"{root}: consolidated keys differ from the nodes on disk: "
                                  f"only consolidated {sorted(set(meta) - on_disk)}, only on disk {sorted(on_disk - set(meta))}")
    for key, path in sorted(nodes.items()):
        if key == "":
            continue
        own = load(path)
        entry = dict(meta[key])
        if own.get("node_type") == "group":
            sub = entry.pop("consolidated_metadata", None)
            assert sub == {"kind": "inline", "must_understand": False, "metadata": {}}, (
                f"{root}: consolidated entry {key!r} should carry an empty consolidated_metadata (zarr-python form), got {sub}")
            own_cm = own.pop("consolidated_metadata", None)
            assert not own_cm or not own_cm.get("metadata"), f"{root}: {key}/zarr.json carries consolidated metadata of its own"
        assert entry == own, f"{root}: consolidated entry {key!r} differs from {path}"


def test_root_attributes(root, group, year):
    doc = load(root.store / "zarr.json")
    attrs = doc["attributes"]
    assert list(attrs) == ["zarr_conventions", "tessera:dataset_version", "tessera:year"], f"{root}: root attribute keys {list(attrs)}"
    assert attrs["zarr_conventions"] == [CONVENTIONS["tessera"]], f"{root}: root zarr_conventions"
    assert attrs["tessera:dataset_version"] == "v1"
    assert attrs["tessera:year"] == year and type(attrs["tessera:year"]) is int
    assert dict(group.attrs) == attrs, f"{root}: zarr-python's view of the root attributes differs from zarr.json"


def test_groups(root, group, manifest):
    want = {z.name for z in manifest.zones.values()}
    got = {k for k, _ in group.groups()}
    zones = {k for k in got if k.startswith("utm")}
    assert zones == want, f"{root}: zone groups {sorted(zones)}, want {sorted(want)}"
    assert got - zones <= {"global_rgb"}, f"{root}: unexpected groups {sorted(got - zones - {'global_rgb'})}"


def test_convention_objects(root):
    """Every zarr_conventions entry is one of the four exact registration objects, keys in order."""
    for key, path in node_paths(root.store).items():
        doc = load(path)
        for c in doc.get("attributes", {}).get("zarr_conventions", []):
            assert list(c) == CONVENTION_KEYS, f"{root}: {key or '/'}: convention keys {list(c)}"
            assert c in CONVENTIONS.values(), f"{root}: {key or '/'}: unknown or altered convention object {c}"


def test_zone_attributes(root, group, zone, year):
    doc = load(root.store / zone.name / "zarr.json")
    attrs = doc["attributes"]
    assert list(attrs) == ZONE_ATTR_ORDER, f"{root}: {zone.name}: attribute order {list(attrs)}"
    want = {
        "zarr_conventions": [CONVENTIONS["tessera"], CONVENTIONS["proj"], CONVENTIONS["spatial"]],
        "proj:code": zone.epsg,
        "spatial:dimensions": ["northing", "easting"],
        "spatial:transform": zone.transform,
        "spatial:shape": [zone.H, zone.W],
        "spatial:bbox": zone.bbox,
        "spatial:registration": "pixel",
        "tessera:dataset_version": "v1",
        "tessera:year": year,
        "tessera:utm_zone": zone.zone,
        "tessera:n_bands": 128,
        "tessera:n_tiles": zone.n_tiles,
        "tessera:model_version": "1.0",
    }
    for k, v in want.items():
        assert attrs[k] == v, f"{root}: {zone.name}: {k} = {attrs[k]!r}, want {v!r}"
    for k in ("spatial:transform", "spatial:bbox"):
        # Spec §3: every number a JSON float (10.0, 285010.0), as Python writes them.
        bad = [v for v in attrs[k] if type(v) is not float]
        assert not bad, f"{root}: {zone.name}: {k} = {attrs[k]!r}: {bad!r} should be JSON floats"
    raw = (root.store / zone.name / "zarr.json").read_text()
    for k in ("spatial:transform", "spatial:bbox"):
        want_text = json.dumps(attrs[k])[1:-1].replace(", ", ",")
        got_text = "".join(raw.split(f'"{k}": [', 1)[1].split("]", 1)[0].split())
        assert got_text == want_text, f"{root}: {zone.name}: {k} written as [{got_text}], Python writes [{want_text}]"
    for k in ("tessera:year", "tessera:utm_zone", "tessera:n_bands", "tessera:n_tiles"):
        assert type(attrs[k]) is int, f"{root}: {zone.name}: {k} should be a JSON integer, got {attrs[k]!r}"
    assert isinstance(attrs["tessera:build_version"], str) and attrs["tessera:build_version"], f"{root}: {zone.name}: build_version"
    assert isinstance(attrs["tessera:has_rgb_preview"], bool)
    assert (root.store / zone.name / "rgb" / "zarr.json").exists() == attrs["tessera:has_rgb_preview"], (
        f"{root}: {zone.name}: tessera:has_rgb_preview is {attrs['tessera:has_rgb_preview']} but rgb/ "
        f"{'exists' if (root.store / zone.name / 'rgb').exists() else 'does not exist'}")
    assert zone.H % 256 == 0 and zone.W % 256 == 0
    assert dict(group[zone.name].attrs) == attrs


def _sharded(dtype_size: int, inner: list[int]):
    return [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": inner,
        "codecs": [BYTES_1 if dtype_size == 1 else BYTES_LE, ZSTD],
        "index_codecs": INDEX_CODECS,
        "index_location": "end"}}]


def test_array_metadata(root, zone):
    z = root.store / zone.name
    arrays = {
        "embeddings": ("int8", [zone.H, zone.W, 128], [256, 256, 128], _sharded(1, [4, 4, 128]), 0, ["northing", "easting", "band"]),
        "scales": ("float32", [zone.H, zone.W], [256, 256], _sharded(4, [4, 4]), "NaN", ["northing", "easting"]),
        "rgb": ("uint8", [zone.H, zone.W, 4], [256, 256, 4], _sharded(1, [4, 4, 4]), 0, ["northing", "easting", "rgba"]),
    }
    for name, (dtype, shape, shard, codecs, fill, dims) in arrays.items():
        if name == "rgb" and not (z / "rgb").exists():
            continue
        m = load(z / name / "zarr.json")
        where = f"{root}: {zone.name}/{name}"
        assert m["zarr_format"] == 3 and m["node_type"] == "array", where
        assert m["data_type"] == dtype, f"{where}: data_type {m['data_type']}"
        assert m["shape"] == shape, f"{where}: shape {m['shape']}, want {shape}"
        assert m["chunk_grid"] == {"name": "regular", "configuration": {"chunk_shape": shard}}, f"{where}: chunk_grid {m['chunk_grid']}"
        assert m["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}, f"{where}: chunk_key_encoding"
        assert m["codecs"] == codecs, f"{where}: codecs {json.dumps(m['codecs'])}"
        assert m["fill_value"] == fill, f"{where}: fill_value {m['fill_value']!r}, want {fill!r}"
        assert m.get("dimension_names") == dims, f"{where}: dimension_names {m.get('dimension_names')}"
        # No array has attributes: the rgb stretch depends on tile bytes, so
        # it is in the zone's STAC item, not in any zarr.json (docs/format.md
        # §4; its values are checked against NumPy in test_rgb.py).
        assert m.get("attributes", {}) == {}, f"{where}: attributes {m.get('attributes')}"
    for name, n in (("easting", zone.W), ("northing", zone.H), ("band", 128)):
        m = load(z / name / "zarr.json")
        where = f"{root}: {zone.name}/{name}"
        assert m["data_type"] == ("int32" if name == "band" else "float64"), f"{where}: data_type {m['data_type']}"
        assert m["shape"] == [n], f"{where}: shape {m['shape']}"
        (chunk,) = m["chunk_grid"]["configuration"]["chunk_shape"]
        assert m["chunk_grid"]["name"] == "regular" and 1 <= chunk <= 65536, f"{where}: chunk_grid {m['chunk_grid']}"
        assert m["codecs"] == [BYTES_LE], f"{where}: coordinate arrays are unsharded, bytes little only: {m['codecs']}"
        assert m["fill_value"] == 0, f"{where}: fill_value {m['fill_value']!r}"
        assert m.get("dimension_names") == [name], f"{where}: dimension_names {m.get('dimension_names')}"
        assert m.get("attributes") == {}, f"{where}: attributes"
        assert m["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}, where


def test_coordinates(root, group, zone):
    g = group[zone.name]
    e, n, b = g["easting"][:], g["northing"][:], g["band"][:]
    assert e.dtype == np.float64 and n.dtype == np.float64 and b.dtype == np.int32
    np.testing.assert_array_equal(e, zone.easting(), err_msg=f"{root}: {zone.name}/easting != origin_e + (i+0.5)*10")
    np.testing.assert_array_equal(n, zone.northing(), err_msg=f"{root}: {zone.name}/northing != origin_n - (i+0.5)*10")
    np.testing.assert_array_equal(b, np.arange(128, dtype=np.int32), err_msg=f"{root}: {zone.name}/band")


# --- values ------------------------------------------------------------------


def test_full_arrays(root, zone, zarr_full, expected):
    """Whole zone, every pixel and band: embeddings, scales, dequantised."""
    got_e, got_s = zarr_full
    want_e, want_s = expected.full(zone)
    rn = f"zarr-python {root.name}"
    checks.assert_equal(got_e, want_e, zone, 0, 0, "embeddings", reader=rn)
    checks.assert_equal(got_s, want_s, zone, 0, 0, "scales", reader=rn)
    for r0 in range(0, zone.H, 256):  # in bands, to bound memory
        r1 = r0 + 256
        checks.assert_equal(checks.dequantise(got_e[r0:r1], got_s[r0:r1]),
                            checks.dequantise(want_e[r0:r1], want_s[r0:r1]), zone, r0, 0, "dequantised", reader=rn)


def test_random_windows(root, group, zone, expected):
    g = group[zone.name]
    for r0, r1, c0, c1 in checks.random_windows(zone, 8, seed=1, max_h=200, max_w=200):
        b0 = (r0 * 7 + c0) % 100
        b1 = min(128, b0 + 1 + (c1 - c0) % 40) if (r0 % 3) else 128
        want_e, want_s = expected.window(zone, r0, r1, c0, c1)
        checks.assert_equal(g["embeddings"][r0:r1, c0:c1, b0:b1], want_e[:, :, b0:b1], zone, r0, c0,
                            f"embeddings[{r0}:{r1},{c0}:{c1},{b0}:{b1}]", b0=b0, reader=f"zarr-python {root.name}")
        checks.assert_equal(g["scales"][r0:r1, c0:c1], want_s, zone, r0, c0, f"scales[{r0}:{r1},{c0}:{c1}]",
                            reader=f"zarr-python {root.name}")


def test_special_pixels(root, zone, zarr_full):
    """The cases the oracle was built to expose, each checked on its own (and
    without the full expected arrays) so a failure names the rule that broke."""
    got_e, got_s = zarr_full
    win = zone.winner(0, zone.H, 0, zone.W)
    rn = f"zarr-python {root.name} {zone.name}"

    def first(mask, a0=0, b0=0):
        i, j = np.argwhere(mask)[0]
        return checks.describe_pixel(zone, a0 + int(i), b0 + int(j))

    # no tile: embeddings 0 in every band, scales NaN
    empty = win < 0
    bad = empty & ((got_e != 0).any(axis=2) | ~np.isnan(got_s))
    assert not bad.any(), f"{rn}: {bad.sum()} pixels without a tile hold data (want emb 0, scale NaN), e.g. {first(bad)}"

    for k, p in enumerate(zone.placed):
        t = p.tile
        (a0, a1), (b0, b1) = p.rows, p.cols
        mine = win[a0:a1, b0:b1] == k
        if not mine.any():
            continue
        gE, gN = t.gE(), t.gN()
        s = got_s[a0:a1, b0:b1]
        e = got_e[a0:a1, b0:b1]
        if t.sparse:  # data reads as zeros: embeddings 0, scale 0.0 (valid)
            bad = mine & ((e != 0).any(axis=2) | (s != 0))
            assert not bad.any(), f"{rn}: sparse tile {t.name}: {bad.sum()} pixels not (0, 0.0), e.g. {first(bad, a0, b0)}"
            continue
        raw = oracle.scale(gE, gN)
        wat = oracle.water(gE, gN)
        # band 127 carries the stamp of the tile written last at each pixel
        bad = mine & (e[:, :, oracle.STAMP_BAND] != np.int8(t.stamp))
        assert not bad.any(), (f"{rn}: band 127 should hold stamp {t.stamp} of {t.name} (written last there) "
                               f"on {bad.sum()} pixels; e.g. {first(bad, a0, b0)} holds {e[:, :, 127][bad][0]}")
        # positional bands follow the tile's own global pixel index
        sample = np.argwhere(mine)[:: max(1, int(mine.sum()) // 200)]
        want = oracle.embedding(gE[sample[:, 1]], gN[sample[:, 0]])  # (n, n, 127): use the diagonal
        want = want[np.arange(len(sample)), np.arange(len(sample))]
        gotv = e[sample[:, 0], sample[:, 1], :oracle.STAMP_BAND]
        badrow = (gotv != want).any(axis=1)
        if badrow.any():
            i, j = sample[np.argmax(badrow)]
            raise AssertionError(f"{rn}: embeddings at {checks.describe_pixel(zone, a0 + i, b0 + j)} do not follow "
                                 f"{t.name}'s pixel (gE {gE[j]}, gN {gN[i]}): got {gotv[np.argmax(badrow)][:6]}.., "
                                 f"want {want[np.argmax(badrow)][:6]}..")
        # ±inf source scales become NaN
        inf = mine & np.isinf(raw)
        bad = inf & ~np.isnan(s)
        assert not bad.any(), f"{rn}: {t.name}: {bad.sum()} source +inf scales are not NaN, e.g. {first(bad, a0, b0)} = {s[bad][0]}"
        fin = mine & np.isfinite(raw)
        if not t.has_water:
            # no landmask (or an all-land one): water squares keep their scales
            bad = fin & (s != raw)
            assert not bad.any(), (f"{rn}: {t.name} has landmask {t.landmask!r} (all land), but {bad.sum()} pixels differ from the "
                                   f"source scale (water squares NaN?), e.g. {first(bad, a0, b0)} = {s[bad][0]}")
        else:
            bad = fin & wat & ~np.isnan(s)
            assert not bad.any(), f"{rn}: {t.name}: {bad.sum()} water pixels have a finite scale, e.g. {first(bad, a0, b0)}"
            bad = fin & ~wat & (s != raw)
            assert not bad.any(), (f"{rn}: {t.name}: {bad.sum()} land pixels differ from the source scale, "
                                   f"e.g. {first(bad, a0, b0)} = {s[bad][0]}, want {raw[bad][0]}"
                                   + (" (3-D scales: want the NaN-aware max over bands)" if t.scales3d else ""))
            # water keeps its embeddings (only the scale marks no-data)
            wm = mine & wat
            if wm.any():
                i, j = np.argwhere(wm)[int(wm.sum()) // 2]
                want = oracle.embedding(gE[j:j + 1], gN[i:i + 1])[0, 0]
                assert (e[i, j, :127] == want).all(), (f"{rn}: water pixel {checks.describe_pixel(zone, a0 + i, b0 + j)} "
                                                      f"lost its embeddings: {e[i, j, :6]}.., want {want[:6]}..")


def test_preset_exercises_the_rules(manifest, expected):
    """The tile set must contain what the checks above are for; otherwise they
    pass vacuously."""
    tiles = manifest.tiles
    assert any(t.scales3d for t in tiles), "no tile with 3-D scales"
    assert any(t.no_landmask for t in tiles), "no tile without landmask"
    assert any(t.lat100 < 0 for t in tiles), "no southern-hemisphere tile"
    assert len({t.zone for t in tiles}) >= 2, "a single zone"
    overlaps = 0
    infs = 0
    assert any(oracle.water(t.gE(), t.gN()).any() for t in tiles if t.has_water), "no water pixels"
    for z in manifest.zones.values():
        w = np.zeros((z.H, z.W), dtype=np.int32)
        for p in z.placed:
            w[p.rows[0]:p.rows[1], p.cols[0]:p.cols[1]] += 1
            infs += int(np.isinf(oracle.scale(p.tile.gE(), p.tile.gN())).sum())
        overlaps += int((w > 1).sum())
    assert overlaps > 0, "no overlapping tiles: write order is not observable"
    assert infs > 0, "no +inf source scales"
