"""STAC 1.1.0 catalog (spec §6): schema-valid offline (jsonschema, and
stac-valid with a schema map), ids, links, relative hrefs, bboxes computed
independently with pyproj, the zarr asset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import geometry
import schemas

STAC = "https://schemas.stacspec.org/v1.1.0"
SCHEMA_URL = {
    "Catalog": f"{STAC}/catalog-spec/json-schema/catalog.json",
    "Collection": f"{STAC}/collection-spec/json-schema/collection.json",
    "Feature": f"{STAC}/item-spec/json-schema/item.json",
}
ZARR_MEDIA_TYPE = "application/vnd.zarr; version=3"
BBOX_TOL = 1e-9  # degrees; PROJ versions differ in the last bits


def load(p: Path):
    return json.loads(Path(p).read_text())


def stac_files(root, manifest):
    y = manifest.year
    files = {"catalog": root.path / "catalog.json", "collection": root.path / f"geotessera-{y}" / "collection.json"}
    for z in manifest.zones.values():
        iid = f"{z.name}_{y}"
        files[iid] = root.path / f"geotessera-{y}" / iid / f"{iid}.json"
    return files


def links(doc, rel):
    return [l for l in doc.get("links", []) if l.get("rel") == rel]


def resolve(base: Path, href: str) -> Path:
    assert "://" not in href and not href.startswith("/"), f"href {href!r} is not relative"
    return (base.parent / href).resolve()


def test_files_exist(root, manifest):
    missing = [str(p) for p in stac_files(root, manifest).values() if not p.is_file()]
    assert not missing, f"{root}: STAC files missing: {missing}"
    y = manifest.year
    items = {p.name for p in (root.path / f"geotessera-{y}").iterdir() if p.is_dir()}
    want = {f"{z.name}_{y}" for z in manifest.zones.values()}
    assert items == want, f"{root}: item directories {sorted(items)}, want {sorted(want)} (no item for global_rgb)"


def test_schema_valid(root, manifest, schemas_dir):
    reg = schemas.registry(schemas_dir)
    failures = []
    for key, p in stac_files(root, manifest).items():
        doc = load(p)
        assert doc.get("stac_version") == "1.1.0", f"{root}: {p.name}: stac_version {doc.get('stac_version')}"
        url = SCHEMA_URL[doc["type"]]
        v = jsonschema.Draft7Validator(schemas.schema(schemas_dir, url), registry=reg)
        for err in sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            failures.append(f"{p.relative_to(root.path)}: {err.message} at /{'/'.join(map(str, err.absolute_path))}")
    assert not failures, f"{root}: STAC schema errors:\n  " + "\n  ".join(failures)


def test_stac_valid_cli(root, manifest, schemas_dir):
    """stac-valid (the stac-validator CLI), offline: --schema-map points every
    schema URL at the local copy; proxies point at a closed port so any
    network attempt fails instead of passing."""
    exe = Path(sys.executable).parent / "stac-valid"
    if not exe.exists():
        exe = shutil.which("stac-valid") or shutil.which("stac-validator")
        if not exe:
            pytest.fail("stac-valid is not installed in the test venv")
    url_map = json.loads((schemas_dir / "url-map.json").read_text())
    args = []
    for url, rel in url_map.items():
        args += ["--schema-map", url, str(schemas_dir / rel)]
    env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", NO_PROXY="", no_proxy="")
    failures = []
    for key, p in stac_files(root, manifest).items():
        proc = subprocess.run([str(exe), "validate", "--verbose", *args, str(p)], capture_output=True, text=True,
                              env=env, timeout=120)
        if proc.returncode != 0:
            failures.append(f"{p.relative_to(root.path)}: rc {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-1000:]}")
    assert not failures, f"{root}: stac-valid:\n" + "\n".join(failures)


def test_catalog(root, manifest):
    y = manifest.year
    p = root.path / "catalog.json"
    c = load(p)
    assert c["type"] == "Catalog"
    assert c["id"] == "geotessera", f"{root}: catalog id {c['id']!r}"
    assert c.get("title") == "Geotessera Embedding Stores"
    assert c["description"] == "Static STAC catalog of Geotessera Zarr v3 embedding stores"
    (r,) = links(c, "root")
    assert r["href"] == "./catalog.json", f"{root}: catalog root link {r}"
    children = links(c, "child")
    assert [l["href"] for l in children] == [f"./geotessera-{y}/collection.json"], f"{root}: catalog child links {children}"
    assert children[0].get("title") == f"Geotessera {y}"


def test_collection(root, manifest):
    y = manifest.year
    p = root.path / f"geotessera-{y}" / "collection.json"
    c = load(p)
    where = f"{root}: {p.relative_to(root.path)}"
    assert c["type"] == "Collection" and c["id"] == f"geotessera-{y}", f"{where}: id {c.get('id')}"
    assert c.get("title") == f"Geotessera {y}" and c["description"] == f"Geotessera embedding stores for {y}", where
    assert c["license"] == "other", f"{where}: license {c['license']}"
    assert c["extent"]["temporal"]["interval"] == [[f"{y}-01-01T00:00:00Z", f"{y}-12-31T23:59:59Z"]], f"{where}: temporal"
    boxes = [geometry.zone_item_bbox(z) for z in manifest.zones.values()]
    union = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    (bbox,) = c["extent"]["spatial"]["bbox"]
    assert bbox == pytest.approx(union, abs=BBOX_TOL), f"{where}: spatial extent {bbox}, want union of item boxes {union}"
    assert resolve(p, links(c, "root")[0]["href"]) == (root.path / "catalog.json").resolve(), f"{where}: root link"
    (parent,) = links(c, "parent")
    assert resolve(p, parent["href"]) == (root.path / "catalog.json").resolve(), f"{where}: parent link {parent}"
    items = links(c, "item")
    want = [f"./{z.name}_{y}/{z.name}_{y}.json" for z in manifest.zones.values()]
    assert sorted(l["href"] for l in items) == sorted(want), f"{where}: item links {[l['href'] for l in items]}"
    for l in items:
        assert l.get("type") == "application/geo+json", f"{where}: item link type {l}"


def test_items(root, manifest):
    y = manifest.year
    for z in manifest.zones.values():
        iid = f"{z.name}_{y}"
        p = root.path / f"geotessera-{y}" / iid / f"{iid}.json"
        it = load(p)
        where = f"{root}: {p.relative_to(root.path)}"
        assert it["type"] == "Feature" and it["id"] == iid, f"{where}: id {it.get('id')}"
        want_bbox = geometry.zone_item_bbox(z)
        assert it["bbox"] == pytest.approx(want_bbox, abs=BBOX_TOL), f"{where}: bbox {it['bbox']}, want {want_bbox}"
        W, S, E, N = it["bbox"]
        assert it["geometry"]["type"] == "Polygon", where
        ring = it["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) == 5, f"{where}: polygon ring {ring}"
        assert {tuple(v) for v in ring} == {(W, S), (E, S), (E, N), (W, N)}, f"{where}: geometry is not the bbox: {ring}"
        pr = it["properties"]
        assert pr["datetime"] == f"{y}-01-01T00:00:00Z", f"{where}: datetime {pr['datetime']}"
        want = {"tessera:utm_zone": z.zone, "proj:code": z.epsg, "grid_width": z.W, "grid_height": z.H,
                "tessera:n_bands": 128, "tessera:dataset_version": "v1"}
        for k, v in want.items():
            assert pr.get(k) == v, f"{where}: properties[{k!r}] = {pr.get(k)!r}, want {v!r}"
        zattrs = load(root.store / z.name / "zarr.json")["attributes"]
        for k in ("tessera:has_rgb_preview", "tessera:build_version"):
            assert pr.get(k) == zattrs[k], f"{where}: properties[{k!r}] = {pr.get(k)!r}, zone group says {zattrs[k]!r}"
        for rel, target in (("root", root.path / "catalog.json"),
                            ("parent", root.path / f"geotessera-{y}" / "collection.json"),
                            ("collection", root.path / f"geotessera-{y}" / "collection.json")):
            ls = links(it, rel)
            assert len(ls) == 1, f"{where}: {len(ls)} {rel!r} links"
            assert resolve(p, ls[0]["href"]) == target.resolve(), f"{where}: {rel} link {ls[0]['href']} → {target}"
        a = it["assets"]["zarr"]
        assert a["href"] == f"../../{y}.zarr/{z.name}", f"{where}: asset href {a['href']}"
        tgt = resolve(p, a["href"])
        assert tgt == (root.store / z.name).resolve() and (tgt / "zarr.json").is_file(), f"{where}: asset does not resolve to the zone group"
        assert a.get("type") == ZARR_MEDIA_TYPE, f"{where}: asset media type {a.get('type')!r}"
        assert a.get("title") == "Zarr v3 embedding store" and a.get("roles") == ["data"], f"{where}: asset {a}"


def test_all_relative_hrefs_resolve(root, manifest):
    bad = []
    for p in stac_files(root, manifest).values():
        doc = load(p)
        hrefs = [l["href"] for l in doc.get("links", [])] + [a["href"] for a in doc.get("assets", {}).values()]
        for h in hrefs:
            if "://" in h or h.startswith("/"):
                bad.append(f"{p.relative_to(root.path)}: absolute href {h}")
            elif not resolve(p, h).exists():
                bad.append(f"{p.relative_to(root.path)}: {h} does not exist")
    assert not bad, f"{root}: " + "\n  ".join(bad)
