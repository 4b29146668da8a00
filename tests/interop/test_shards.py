"""Shard files on disk (spec §2, §3): a shard exists exactly where some tile
touches it, and its index (at the end, crc32c-protected) marks every inner
chunk that no tile covers as missing (offset = nbytes = 2^64−1)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import checks
import geometry

MISSING = 2**64 - 1
N_INNER = geometry.SHARD // geometry.INNER  # 64 inner chunks per shard side


def _crc32c_table():
    poly = 0x82F63B78
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t.append(c)
    return t


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def test_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283


def shard_files(array_dir, ndim: int) -> dict[tuple[int, int], str]:
    """Shard files under <array>/c/, keyed by (row, col) shard index."""
    out = {}
    base = array_dir / "c"
    if not base.is_dir():
        return out
    for dirpath, _, files in os.walk(base):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), base).split(os.sep)
            assert len(rel) == ndim, f"{array_dir}: unexpected chunk key c/{'/'.join(rel)}"
            idx = tuple(int(x) for x in rel)
            if ndim == 3:
                assert idx[2] == 0, f"{array_dir}: band-axis shard index {idx[2]} in c/{'/'.join(rel)}"
            out[idx[:2]] = os.path.join(dirpath, f)
    return out


def read_index(path: str):
    """(offsets, nbytes) arrays (64, 64) from the shard's end-located index."""
    n = N_INNER * N_INNER
    size = os.path.getsize(path)
    idx_len = n * 16 + 4
    with open(path, "rb") as f:
        f.seek(size - idx_len)
        raw = f.read(idx_len)
    body, (crc,) = raw[:-4], struct.unpack("<I", raw[-4:])
    entries = np.frombuffer(body, dtype="<u8").reshape(N_INNER, N_INNER, 2)
    return entries[..., 0], entries[..., 1], crc32c(body), crc, size - idx_len


ARRAYS = [("embeddings", 3, False), ("scales", 2, True), ("rgb", 3, True)]


@pytest.mark.parametrize("name,ndim,may_drop_nan", ARRAYS, ids=[a[0] for a in ARRAYS])
def test_shards(root, zone, expected, name, ndim, may_drop_nan):
    adir = root.store / zone.name / name
    if name == "rgb" and not adir.exists():
        pytest.skip(f"{zone.name}/rgb not present (tessera:has_rgb_preview false)")
    where = f"{root.name} {zone.name}/{name}"
    files = shard_files(adir, ndim)
    touched = zone.shard_touched()
    extra = sorted(set(files) - touched)
    assert not extra, f"{where}: shards written that no tile touches: {extra} (absent means fill)"
    want_e, want_s = expected.full(zone)
    for si, sj in sorted(touched):
        # Spec §3: a shard whose inner chunks would all hold the fill value
        # is absent: for scales and rgb, one with no finite scale. (An
        # embeddings shard is listed wherever a tile touches it: deciding
        # otherwise would need the embeddings.)
        blk = want_s[si * 256:(si + 1) * 256, sj * 256:(sj + 1) * 256]
        should = not (may_drop_nan and np.isnan(blk).all())
        assert ((si, sj) in files) == should, (
            f"{where}: shard ({si},{sj}) {'missing' if should else 'written although all fill value'}")
    # Listing agrees with lookup over the whole shard grid.
    suffix = "/0" if ndim == 3 else ""
    for si in range(zone.H // 256):
        for sj in range(zone.W // 256):
            found = os.path.exists(adir / "c" / f"{si}/{sj}{suffix}")
            assert found == ((si, sj) in files), f"{where}: c/{si}/{sj}{suffix}: lookup {found}, listing {(si, sj) in files}"
    for (si, sj), path in sorted(files.items()):
        off, nb, crc_got, crc_want, body_end = read_index(path)
        sw = f"{where} shard c/{si}/{sj}{'/0' if ndim == 3 else ''}"
        assert crc_got == crc_want, f"{sw}: index crc32c {crc_want:#010x} does not match its bytes ({crc_got:#010x})"
        absent = (off == MISSING) & (nb == MISSING)
        half = (off == MISSING) ^ (nb == MISSING)
        assert not half.any(), f"{sw}: {half.sum()} index entries with only one of offset/nbytes = 2^64-1"
        covered = zone.inner_covered(si, sj)
        bad = ~covered & ~absent
        if bad.any():
            a, b = np.argwhere(bad)[0]
            raise AssertionError(f"{sw}: {bad.sum()} inner chunks no tile covers are stored, e.g. inner ({a},{b}) = "
                                 f"{checks.describe_pixel(zone, si * 256 + a * 4, sj * 256 + b * 4)}")
        # Spec §3: a covered inner chunk is stored iff some value differs
        # from the fill value (oracle): NaN scale for scales and rgb (a
        # transparent rgb pixel is exactly a NaN scale), 0 for embeddings.
        if may_drop_nan:
            blk = want_s[si * 256:(si + 1) * 256, sj * 256:(sj + 1) * 256].reshape(N_INNER, 4, N_INNER, 4)
            fill = np.isnan(blk).all(axis=(1, 3))
        else:
            blk = want_e[si * 256:(si + 1) * 256, sj * 256:(sj + 1) * 256].reshape(N_INNER, 4, N_INNER, 4, -1)
            fill = (blk == 0).all(axis=(1, 3, 4))
        for what, bad in (("missing", covered & absent & ~fill), ("stored although all fill value", ~absent & fill)):
            if bad.any():
                a, b = np.argwhere(bad)[0]
                raise AssertionError(f"{sw}: {bad.sum()} covered inner chunks {what}, e.g. inner ({a},{b}) at "
                                     f"{checks.describe_pixel(zone, si * 256 + a * 4, sj * 256 + b * 4)}")
        o, n = off[~absent].astype(np.int64), nb[~absent].astype(np.int64)
        assert (n > 0).all(), f"{sw}: stored inner chunk with 0 bytes"
        assert (o + n <= body_end).all() and (o >= 0).all(), f"{sw}: inner chunk beyond the data section"
        order = np.argsort(o)
        assert (o[order][1:] >= (o + n)[order][:-1]).all(), f"{sw}: inner chunks overlap"
