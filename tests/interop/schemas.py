"""Offline JSON Schema registry over testdata/schemas (see its README):
every URL in url-map.json maps to a local copy; any other URL is an error, so
validation never reaches the network."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import referencing
from referencing.jsonschema import DRAFT7, DRAFT202012


class UnmappedSchemaURL(LookupError):
    """A schema URL with no offline copy."""


@lru_cache(maxsize=None)
def registry(schemas_dir: Path) -> referencing.Registry:
    schemas_dir = Path(schemas_dir)
    url_map = json.loads((schemas_dir / "url-map.json").read_text())

    def retrieve(uri: str):
        raise UnmappedSchemaURL(f"{uri} is not in {schemas_dir}/url-map.json; refusing to fetch it")

    resources = []
    for url, rel in url_map.items():
        contents = json.loads((schemas_dir / rel).read_text(encoding="utf-8"))
        resources.append((url, referencing.Resource.from_contents(contents, default_specification=DRAFT7)))
    return referencing.Registry(retrieve=retrieve).with_resources(resources)


def schema(schemas_dir: Path, url: str) -> dict:
    url_map = json.loads((Path(schemas_dir) / "url-map.json").read_text())
    if url not in url_map:
        raise UnmappedSchemaURL(f"{url} is not in {schemas_dir}/url-map.json")
    return json.loads((Path(schemas_dir) / url_map[url]).read_text(encoding="utf-8"))


__all__ = ["registry", "schema", "DRAFT7", "DRAFT202012", "UnmappedSchemaURL"]
