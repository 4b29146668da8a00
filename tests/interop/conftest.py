"""Fixtures for the interop tests.

The tests read a year store with real readers and compare every value with an
independent oracle (oracle.py, geometry.py): nothing here runs our Go code.

Configuration (environment):

  TESSERAFS_TILES   the synthetic tiles root (holds synth.json). Required.
  TESSERAFS_ROOTS   "name=/dir:name=/dir", the trees to test, each holding
                    <year>.zarr/ and catalog.json (e.g. materialized=/tmp/out:mount=/mnt/t).
  TESSERAFS_OUT     shorthand for TESSERAFS_ROOTS=materialized=$TESSERAFS_OUT.
  TESSERAFS_YEAR    the year to test when synth.json holds several.
  TESSERAFS_NODE    node binary for the zarrita.js test (default: node on PATH).

Every test that takes the `root` fixture runs once per root. A missing or
unusable configuration is a usage error, never a silent pass.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

import geometry

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCHEMAS = REPO / "testdata" / "schemas"


@dataclass(frozen=True)
class Root:
    name: str
    path: Path
    year: int

    @property
    def store(self) -> Path:
        return self.path / f"{self.year}.zarr"

    def __str__(self) -> str:
        return f"{self.name}={self.path}"


def _parse_roots() -> list[tuple[str, Path]]:
    spec = os.environ.get("TESSERAFS_ROOTS", "").strip()
    if not spec and os.environ.get("TESSERAFS_OUT"):
        spec = "materialized=" + os.environ["TESSERAFS_OUT"]
    if not spec:
        raise pytest.UsageError("set TESSERAFS_ROOTS=name=/dir[:name=/dir...] or TESSERAFS_OUT=/dir")
    roots = []
    for part in spec.split(":"):
        if not part:
            continue
        name, sep, path = part.partition("=")
        if not sep or not name or not path:
            raise pytest.UsageError(f"TESSERAFS_ROOTS entry {part!r}: want name=/dir")
        p = Path(path).absolute()
        if not p.is_dir():
            raise pytest.UsageError(f"TESSERAFS_ROOTS: {name}: {p} is not a directory")
        roots.append((name, p))
    if len({n for n, _ in roots}) != len(roots):
        raise pytest.UsageError(f"TESSERAFS_ROOTS: duplicate names in {spec!r}")
    return roots


def pytest_configure(config):
    tiles = os.environ.get("TESSERAFS_TILES")
    if not tiles:
        raise pytest.UsageError("set TESSERAFS_TILES to the synthetic tiles root (with synth.json)")
    if not (Path(tiles) / "synth.json").is_file():
        raise pytest.UsageError(f"TESSERAFS_TILES={tiles}: no synth.json there")
    year = os.environ.get("TESSERAFS_YEAR")
    try:
        manifest = geometry.load_manifest(Path(tiles), int(year) if year else None)
    except ValueError as e:
        raise pytest.UsageError(f"{e} (set TESSERAFS_YEAR)")
    if not manifest.tiles:
        raise pytest.UsageError(f"{tiles}/synth.json lists no tiles")
    config._tfs_manifest = manifest
    config._tfs_tiles = Path(tiles).absolute()
    config._tfs_roots = [Root(n, p, manifest.year) for n, p in _parse_roots()]


def pytest_report_header(config):
    m = config._tfs_manifest
    zones = ", ".join(f"{z.name} {z.H}x{z.W} ({z.n_tiles} tiles)" for z in m.zones.values())
    return [f"tesserafs tiles: {config._tfs_tiles} (year {m.year}; {zones})",
            "tesserafs roots: " + ", ".join(str(r) for r in config._tfs_roots),
            f"tesserafs schemas: {SCHEMAS}"]


def pytest_generate_tests(metafunc):
    cfg = metafunc.config
    if "root" in metafunc.fixturenames:
        roots = cfg._tfs_roots
        metafunc.parametrize("root", roots, ids=[r.name for r in roots], scope="session")
    if "zone" in metafunc.fixturenames:
        zones = list(cfg._tfs_manifest.zones.values())
        metafunc.parametrize("zone", zones, ids=[z.name for z in zones], scope="session")
    if "tile" in metafunc.fixturenames:
        tiles = cfg._tfs_manifest.tiles
        metafunc.parametrize("tile", tiles, ids=[t.name for t in tiles], scope="session")


@pytest.fixture(scope="session")
def manifest(pytestconfig) -> geometry.Manifest:
    return pytestconfig._tfs_manifest


@pytest.fixture(scope="session")
def tiles_root(pytestconfig) -> Path:
    return pytestconfig._tfs_tiles


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    """The repository's offline JSON schemas (testdata/schemas, see its README)."""
    if not (SCHEMAS / "url-map.json").is_file():
        pytest.fail(f"{SCHEMAS} has no url-map.json: the vendored schemas are missing")
    return SCHEMAS


@pytest.fixture(scope="session")
def year(manifest) -> int:
    return manifest.year


class ExpectedCache:
    """Expected zone arrays, computed once per zone for the whole session."""

    def __init__(self):
        self._full = {}

    def full(self, zone: geometry.Zone):
        if zone.zone not in self._full:
            self._full[zone.zone] = zone.expected(0, zone.H, 0, zone.W)
        return self._full[zone.zone]

    def window(self, zone: geometry.Zone, r0, r1, c0, c1):
        if zone.zone in self._full:
            e, s = self._full[zone.zone]
            return e[r0:r1, c0:c1], s[r0:r1, c0:c1]
        return zone.expected(r0, r1, c0, c1)


@pytest.fixture(scope="session")
def expected() -> ExpectedCache:
    return ExpectedCache()


def read_json(p: Path):
    return json.loads(Path(p).read_text())


_outcomes = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        _outcomes["passed"] += 1
    elif report.failed:
        _outcomes["failed"] += 1
    elif report.skipped:
        _outcomes["skipped"] += 1


def pytest_sessionfinish(session, exitstatus):
    # An interop run in which nothing passed (all skipped, or nothing
    # collected) must not look green.
    if exitstatus == 0 and _outcomes["passed"] == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\ninterop: no test passed (all skipped or none collected): failing the run")
