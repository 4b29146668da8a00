"""registry.parquet and landmasks.parquet that `tesserafs synth` writes, read
with pyarrow: geotessera's schema, GeoParquet metadata, zstd, and every row
checked against synth.json and the files themselves (size, sha256), so that
a synthetic root is a valid remote root for any reader, not only ours."""

from __future__ import annotations

import datetime
import hashlib
import json
import struct

import pyarrow as pa
import pyarrow.parquet as pq

REGISTRY_SCHEMA = {
    "geometry": pa.binary(), "lat": pa.float64(), "lon": pa.float64(), "year": pa.int64(),
    "lon_i": pa.int32(), "lat_i": pa.int32(), "hash": pa.string(), "scales_hash": pa.string(),
    "file_size": pa.int64(), "scales_size": pa.int64(),
}
LANDMASKS_SCHEMA = {
    "geometry": pa.binary(), "lat": pa.float64(), "lon": pa.float64(),
    "lon_i": pa.int32(), "lat_i": pa.int32(), "hash": pa.string(), "file_size": pa.int64(),
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_table(path, schema):
    f = pq.ParquetFile(path)
    t = f.read()
    for name, typ in schema.items():
        assert t.schema.field(name).type == typ, f"{path.name}: {name} is {t.schema.field(name).type}, want {typ}"
    md = f.metadata
    for rg in range(md.num_row_groups):
        for c in range(md.num_columns):
            assert md.row_group(rg).column(c).compression == "ZSTD", f"{path.name}: column {c} not zstd"
    geo = json.loads(f.schema_arrow.metadata[b"geo"])
    assert geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Point"]
    rows = t.to_pylist()
    for r in rows:
        order, kind, x, y = struct.unpack("<BIdd", r["geometry"])
        assert (order, kind) == (1, 1), f"{path.name}: geometry is not a little-endian WKB point"
        assert (x, y) == (r["lon"], r["lat"]), f"{path.name}: geometry ({x}, {y}) is not (lon, lat) = ({r['lon']}, {r['lat']})"
        assert r["lon_i"] == round(r["lon"] * 100) and r["lat_i"] == round(r["lat"] * 100)
        b = col["bbox"]
        assert b[0] <= x <= b[2] and b[1] <= y <= b[3], f"{path.name}: point outside the bbox {b}"
    return rows


def test_registry(tiles_root):
    synth = json.loads((tiles_root / "synth.json").read_text())
    rows = check_table(tiles_root / "registry.parquet", REGISTRY_SCHEMA)
    pq_mtime = pq.read_table(tiles_root / "registry.parquet").schema.field("mtime").type
    assert pa.types.is_timestamp(pq_mtime), f"mtime is {pq_mtime}, want a timestamp"
    want = {(y["year"], t["lon100"], t["lat100"]): t for y in synth["years"] for t in y["tiles"]}
    got = {(r["year"], r["lon_i"], r["lat_i"]): r for r in rows}
    assert len(got) == len(rows), "registry lists a tile twice"
    assert got.keys() == want.keys(), f"registry tiles differ from synth.json: {sorted(got.keys() ^ want.keys())[:5]}"
    for (year, _, _), r in got.items():
        t = want[(year, r["lon_i"], r["lat_i"])]
        d = tiles_root / "global_0.1_degree_representation" / str(year) / t["name"]
        emb, sc = d / f"{t['name']}.npy", d / f"{t['name']}_scales.npy"
        assert r["file_size"] == emb.stat().st_size and r["scales_size"] == sc.stat().st_size, f"{t['name']}: sizes"
        mtime = datetime.datetime.fromtimestamp(emb.stat().st_mtime_ns // 1000 / 1e6, datetime.timezone.utc)
        got_mtime = r["mtime"] if r["mtime"].tzinfo else r["mtime"].replace(tzinfo=datetime.timezone.utc)
        assert abs((got_mtime - mtime).total_seconds()) < 1e-5, f"{t['name']}: mtime {got_mtime}, file {mtime}"
        if t["sparse"]:
            assert r["hash"] == "" and r["scales_hash"] == "", f"{t['name']}: sparse tiles carry no hash"
        else:
            assert r["hash"] == sha256(emb) and r["scales_hash"] == sha256(sc), f"{t['name']}: sha256 differs from the file's"


def test_landmasks(tiles_root):
    synth = json.loads((tiles_root / "synth.json").read_text())
    rows = check_table(tiles_root / "landmasks.parquet", LANDMASKS_SCHEMA)
    want = {(t["lon100"], t["lat100"]): t["name"] for y in synth["years"] for t in y["tiles"] if t["landmask"] != "none"}
    got = {(r["lon_i"], r["lat_i"]): r for r in rows}
    assert got.keys() == want.keys(), "landmasks.parquet lists other tiles than those with a landmask file"
    for k, r in got.items():
        tiff = tiles_root / "global_0.1_degree_tiff_all" / f"{want[k]}.tiff"
        assert r["file_size"] == tiff.stat().st_size and r["hash"] == sha256(tiff), f"{tiff.name}: size or sha256"
