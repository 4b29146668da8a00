"""Every root serves exact sizes, and all roots serve the same tree: a byte
that differs between the mount and the materialized directory is a bug by
definition (architecture.md)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


def tree(root_path: Path) -> dict[str, Path]:
    """Relative paths of every file under a root: the store and the STAC
    catalog, and nothing else (a finished materialize keeps no bookkeeping
    there, so nothing is excluded)."""
    out = {}
    for dirpath, dirnames, files in os.walk(root_path):
        rel_dir = Path(dirpath).relative_to(root_path)
        for f in files:
            out[(rel_dir / f).as_posix()] = Path(dirpath) / f
    return out


def test_exact_sizes(root):
    """stat size == bytes read, for every file (readers seek to the end of a
    shard for its index, so a wrong size breaks them)."""
    bad = []
    files = tree(root.path)
    assert any(k.startswith(f"{root.year}.zarr/") for k in files), f"{root}: no {root.year}.zarr in the tree"
    for rel, p in files.items():
        st = os.stat(p).st_size
        with open(p, "rb") as f:
            n = len(f.read())
        if st != n:
            bad.append(f"{rel}: stat {st}, read {n}")
    assert not bad, f"{root}: sizes differ from content:\n  " + "\n  ".join(bad[:20])


def test_roots_identical(pytestconfig):
    roots = pytestconfig._tfs_roots
    if len(roots) < 2:
        pytest.skip(f"one root only ({roots[0]}): nothing to compare")
    ref = roots[0]
    ref_tree = tree(ref.path)
    for other in roots[1:]:
        t = tree(other.path)
        only_ref, only_other = sorted(set(ref_tree) - set(t)), sorted(set(t) - set(ref_tree))
        assert not only_ref and not only_other, (
            f"{ref.name} vs {other.name}: trees differ: only in {ref.name} {only_ref[:10]}, only in {other.name} {only_other[:10]}")
        diff = []
        for rel in sorted(ref_tree):
            a, b = ref_tree[rel].read_bytes(), t[rel].read_bytes()
            if a != b:
                diff.append(f"{rel}: {len(a)} bytes sha256 {hashlib.sha256(a).hexdigest()[:12]} vs "
                            f"{len(b)} bytes sha256 {hashlib.sha256(b).hexdigest()[:12]}")
        assert not diff, f"{ref.name} vs {other.name}: {len(diff)} files differ:\n  " + "\n  ".join(diff[:20])
