"""Comparisons with messages that say which zone, which pixel, which tile."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

import geometry


def describe_pixel(zone: geometry.Zone, r: int, c: int) -> str:
    e = zone.origin_e + (c + 0.5) * 10.0
    n = zone.origin_n - (r + 0.5) * 10.0
    w = zone.winner(r, r + 1, c, c + 1)[0, 0]
    cover = [p.tile.name for p in zone.covering(r, r + 1, c, c + 1)]
    if w < 0:
        who = "no tile"
    else:
        p = zone.placed[w]
        who = f"winner {p.tile.name} (tile pixel {r - p.row},{c - p.col})"
        if len(cover) > 1:
            who += f", covered by {cover} in write order"
    return f"{zone.name} pixel (row {r}, col {c}) E {e:.1f} N {n:.1f}: {who}"


def _same(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    if np.issubdtype(want.dtype, np.floating):
        return (got == want) | (np.isnan(got) & np.isnan(want))
    return got == want


def assert_equal(got, want, zone: geometry.Zone, r0: int, c0: int, what: str, b0: int = 0, reader: str = ""):
    """Exact equality (NaN == NaN) of a window starting at (r0, c0[, b0])."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{reader} {zone.name} {what}: shape {got.shape}, want {want.shape}"
    assert got.dtype == want.dtype, f"{reader} {zone.name} {what}: dtype {got.dtype}, want {want.dtype}"
    ok = _same(got, want)
    if ok.all():
        return
    bad = np.argwhere(~ok)
    lines = [f"{reader} {zone.name} {what}: {len(bad)} of {ok.size} values differ from the oracle "
             f"(window rows {r0}..{r0 + got.shape[0]}, cols {c0}..{c0 + got.shape[1]})"]
    if got.ndim == 3:
        pix_bad = ~ok.all(axis=2)
        lines.append(f"  {int(pix_bad.sum())} pixels affected; bands affected: "
                     f"{sorted(set(int(b) + b0 for b in bad[:, 2]))[:20]}")
        for i, j in np.argwhere(pix_bad)[:6]:
            bands = np.nonzero(~ok[i, j])[0]
            k = bands[0]
            lines.append(f"  {describe_pixel(zone, r0 + int(i), c0 + int(j))}: {len(bands)} bands differ, "
                         f"band {int(k) + b0} got {got[i, j, k].item()!r} want {want[i, j, k].item()!r}")
    else:
        for i, j in bad[:6]:
            lines.append(f"  {describe_pixel(zone, r0 + int(i), c0 + int(j))}: "
                         f"got {got[i, j].item()!r}, want {want[i, j].item()!r}")
    raise AssertionError("\n".join(lines))


def dequantise(emb: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return emb.astype(np.float32) * scales[..., None]


def random_windows(zone: geometry.Zone, n: int, seed: int, max_h=300, max_w=300):
    """Deterministic random windows (r0, r1, c0, c1), biased to cross tile
    edges and shard boundaries: half start near a tile corner or overlap."""
    rnd = random.Random(f"{seed}-{zone.zone}")
    out = []
    anchors = []
    for p in zone.placed:
        (a0, a1), (b0, b1) = p.rows, p.cols
        anchors += [(a0, b0), (a1, b1), (a0, b1), (a1, b0)]
    for k in range(n):
        h = rnd.randint(1, min(max_h, zone.H))
        w = rnd.randint(1, min(max_w, zone.W))
        if k % 2 == 0 and anchors:
            ar, ac = rnd.choice(anchors)
            r0 = min(max(ar - h // 2, 0), zone.H - h)
            c0 = min(max(ac - w // 2, 0), zone.W - w)
        else:
            r0 = rnd.randint(0, zone.H - h)
            c0 = rnd.randint(0, zone.W - w)
        out.append((r0, r0 + h, c0, c0 + w))
    return out


def read_json(p: Path):
    return json.loads(Path(p).read_text())
