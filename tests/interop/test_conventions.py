"""Every group's zarr.json validates (Draft 2020-12) against the schemas of
the conventions it declares, using only the offline copies in testdata/schemas."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

import schemas
from test_zarr_python import CONVENTIONS, load, node_paths


def _validator(schemas_dir, url):
    return jsonschema.Draft202012Validator(schemas.schema(schemas_dir, url), registry=schemas.registry(schemas_dir))


def _errors(v, doc):
    return sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))


def test_groups_validate(root, schemas_dir, manifest):
    nodes = node_paths(root.store)
    groups = {k: load(p) for k, p in nodes.items() if load(p).get("node_type") == "group"}
    want_decl = {"": ["tessera"]} | {z.name: ["tessera", "proj", "spatial"] for z in manifest.zones.values()}
    if "global_rgb" in groups:
        want_decl["global_rgb"] = ["multiscales", "proj", "spatial"]
    failures = []
    checked = 0
    for key, doc in sorted(groups.items()):
        declared = doc.get("attributes", {}).get("zarr_conventions", [])
        names = [next((n for n, k in CONVENTIONS.items() if k == c), repr(c)) for c in declared]
        if key in want_decl:
            assert names == want_decl[key], f"{root}: {key or '/'} declares {names}, want {want_decl[key]}"
        for c in declared:
            url = c.get("schema_url")
            try:
                v = _validator(schemas_dir, url)
            except schemas.UnmappedSchemaURL as e:
                failures.append(f"{key or '/'}: declared schema {url} has no offline copy: {e}")
                continue
            for err in _errors(v, doc):
                failures.append(f"{key or '/'} vs {c['name']}: {err.message} at {'/'.join(map(str, err.absolute_path))}")
            checked += 1
    assert checked >= 1 + 3 * len(manifest.zones), f"{root}: only {checked} (group, convention) pairs validated"
    assert not failures, f"{root}: convention schema failures:\n  " + "\n  ".join(failures)


@pytest.mark.parametrize("mutation", ["proj_code_int", "transform_short", "year_string", "bad_uuid"])
def test_validator_is_not_vacuous(root, schemas_dir, manifest, mutation):
    """The same validators reject a broken zone group: guards against a
    registry or draft mix-up that silently accepts everything."""
    z = next(iter(manifest.zones.values()))
    doc = copy.deepcopy(load(root.store / z.name / "zarr.json"))
    a = doc["attributes"]
    url, = [c["schema_url"] for c in a["zarr_conventions"] if c["name"] == {
        "proj_code_int": "proj:", "transform_short": "spatial:", "year_string": "tessera:", "bad_uuid": "spatial:"}[mutation]]
    if mutation == "proj_code_int":
        a["proj:code"] = 32630
    elif mutation == "transform_short":
        a["spatial:transform"] = [10.0, 0.0]
    elif mutation == "year_string":
        a["tessera:year"] = "2024"
    elif mutation == "bad_uuid":
        for c in a["zarr_conventions"]:
            if c["name"] == "spatial:":
                c["uuid"] = "00000000-0000-0000-0000-000000000000"
    errs = _errors(_validator(schemas_dir, url), doc)
    assert errs, f"{mutation}: the {url} validator accepted a broken document"


def test_registry_refuses_unmapped(schemas_dir):
    v = jsonschema.Draft202012Validator({"$ref": "https://example.invalid/schema.json"},
                                        registry=schemas.registry(schemas_dir))
    with pytest.raises(Exception) as ei:
        v.validate({})
    assert "example.invalid" in str(ei.value)
