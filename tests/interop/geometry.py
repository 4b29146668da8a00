"""Independent geometry (spec §2) with pyproj, and the expected store content
(spec §4) computed from the oracle: no Go code is involved.

Tiles come from TILES/synth.json, either {"years": [{"year", "tiles": [...]}]}
or {"year", "tiles": [...]}, each tile {name, lon100, lat100, scales3d,
no_landmask[, sparse, landmask]}. landmask is "water" (the oracle's water
squares), "all_land" (a file with no water) or "none" (no file: all land);
a sparse tile's data reads as zeros (embeddings 0, scales 0.0).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyproj

import oracle

PIXEL = 10.0
SHARD = 256
INNER = 4
SOUTH_OFFSET = 10_000_000.0


def utm_zone(lon: float) -> int:
    return min(max(math.floor((lon + 180.0) / 6.0) + 1, 1), 60)


@lru_cache(maxsize=None)
def _to_utm(epsg: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs("OGC:CRS84", epsg, always_xy=True)


@dataclass(frozen=True)
class Tile:
    name: str
    lon100: int
    lat100: int
    scales3d: bool
    landmask: str  # "water", "all_land" or "none"
    sparse: bool
    zone: int
    epsg: str  # the tile's own CRS
    origin_e: float  # canonical UTM, upper-left corner, not snapped
    origin_n: float
    W: int
    H: int

    @property
    def stamp(self) -> int:
        return 0 if self.sparse else oracle.stamp(self.lon100, self.lat100)

    @property
    def no_landmask(self) -> bool:
        return self.landmask == "none"

    @property
    def has_water(self) -> bool:
        return self.landmask == "water"

    @property
    def gE0(self) -> int:
        return round(self.origin_e / PIXEL)

    @property
    def gN0(self) -> int:
        return round(self.origin_n / PIXEL)

    def gE(self, j0=0, j1=None) -> np.ndarray:
        j1 = self.W if j1 is None else j1
        return self.gE0 + np.arange(j0, j1, dtype=np.int64)

    def gN(self, i0=0, i1=None) -> np.ndarray:
        i1 = self.H if i1 is None else i1
        return self.gN0 - np.arange(i0, i1, dtype=np.int64)


def make_tile(name: str, lon100: int, lat100: int, scales3d=False, landmask="water", sparse=False) -> Tile:
    if landmask not in ("water", "all_land", "none"):
        raise ValueError(f"tile {name}: unknown landmask kind {landmask!r}")
    lon, lat = lon100 / 100.0, lat100 / 100.0
    zone = utm_zone(lon)
    epsg = f"EPSG:{32600 + zone}" if lat100 >= 0 else f"EPSG:{32700 + zone}"
    h = 0.05
    xs = [lon - h, lon + h, lon - h, lon + h]  # ul, ur, ll, lr
    ys = [lat + h, lat + h, lat - h, lat - h]
    e, n = _to_utm(epsg).transform(xs, ys, errcheck=True)
    if lat100 < 0:
        n = [v - SOUTH_OFFSET for v in n]
    (ul_e, ur_e, ll_e, lr_e), (ul_n, ur_n, ll_n, lr_n) = e, n
    origin_e, origin_n = min(ul_e, ll_e), max(ul_n, ur_n)
    max_e, min_n = max(ur_e, lr_e), min(ll_n, lr_n)
    return Tile(
        name=name, lon100=lon100, lat100=lat100, scales3d=bool(scales3d), landmask=landmask, sparse=bool(sparse),
        zone=zone, epsg=epsg, origin_e=origin_e, origin_n=origin_n,
        W=round((max_e - origin_e) / PIXEL), H=round((origin_n - min_n) / PIXEL),
    )


@dataclass
class Placed:
    tile: Tile
    row: int
    col: int

    @property
    def rows(self):
        return self.row, self.row + self.tile.H

    @property
    def cols(self):
        return self.col, self.col + self.tile.W


@dataclass
class Zone:
    zone: int
    origin_e: float
    origin_n: float
    W: int  # padded to a multiple of 256
    H: int
    placed: list[Placed] = field(default_factory=list)  # in write order

    @property
    def name(self) -> str:
        return f"utm{self.zone:02d}"

    @property
    def epsg(self) -> str:
        return f"EPSG:{32600 + self.zone}"

    @property
    def n_tiles(self) -> int:
        return len(self.placed)

    @property
    def transform(self) -> list[float]:
        return [10.0, 0.0, self.origin_e, 0.0, -10.0, self.origin_n]

    @property
    def bbox(self) -> list[float]:
        return [self.origin_e, self.origin_n - 10.0 * self.H, self.origin_e + 10.0 * self.W, self.origin_n]

    def easting(self) -> np.ndarray:
        return self.origin_e + (np.arange(self.W, dtype=np.float64) + 0.5) * 10.0

    def northing(self) -> np.ndarray:
        return self.origin_n - (np.arange(self.H, dtype=np.float64) + 0.5) * 10.0

    # --- coverage -----------------------------------------------------------

    def covering(self, r0, r1, c0, c1) -> list[Placed]:
        """Tiles whose rectangle intersects rows [r0, r1) × cols [c0, c1), in write order."""
        out = []
        for p in self.placed:
            (a0, a1), (b0, b1) = p.rows, p.cols
            if a0 < r1 and r0 < a1 and b0 < c1 and c0 < b1:
                out.append(p)
        return out

    def winner(self, r0, r1, c0, c1) -> np.ndarray:
        """int (r1-r0, c1-c0): index into self.placed of the tile written last
        at each pixel, −1 where no tile is."""
        w = np.full((r1 - r0, c1 - c0), -1, dtype=np.int32)
        for k, p in enumerate(self.placed):
            (a0, a1), (b0, b1) = p.rows, p.cols
            ia0, ia1, jb0, jb1 = max(a0, r0), min(a1, r1), max(b0, c0), min(b1, c1)
            if ia0 < ia1 and jb0 < jb1:
                w[ia0 - r0:ia1 - r0, jb0 - c0:jb1 - c0] = k
        return w

    def shard_touched(self) -> set[tuple[int, int]]:
        s = set()
        for p in self.placed:
            (a0, a1), (b0, b1) = p.rows, p.cols
            for i in range(a0 // SHARD, (a1 - 1) // SHARD + 1):
                for j in range(b0 // SHARD, (b1 - 1) // SHARD + 1):
                    s.add((i, j))
        return s

    def inner_covered(self, si: int, sj: int) -> np.ndarray:
        """bool (64, 64): inner 4×4 chunks of shard (si, sj) that some tile touches."""
        n = SHARD // INNER
        cov = np.zeros((n, n), dtype=bool)
        r0, c0 = si * SHARD, sj * SHARD
        for p in self.placed:
            (a0, a1), (b0, b1) = p.rows, p.cols
            ia0, ia1 = max(a0, r0), min(a1, r0 + SHARD)
            jb0, jb1 = max(b0, c0), min(b1, c0 + SHARD)
            if ia0 < ia1 and jb0 < jb1:
                cov[(ia0 - r0) // INNER:(ia1 - 1 - r0) // INNER + 1,
                    (jb0 - c0) // INNER:(jb1 - 1 - c0) // INNER + 1] = True
        return cov

    # --- expected values ----------------------------------------------------

    def expected(self, r0, r1, c0, c1, bands=None):
        """Expected (embeddings int8 (h, w, nb), scales float32 (h, w)) over
        rows [r0, r1) × cols [c0, c1), built the way the spec says a store is
        built: each tile's own pixels (its own gE/gN from its own origin),
        pasted at its placement, tiles in write order, later ones overwriting.
        `bands` selects embedding bands (default all 128)."""
        bands = np.arange(oracle.N_BANDS) if bands is None else np.asarray(bands)
        h, w = r1 - r0, c1 - c0
        emb = np.zeros((h, w, len(bands)), dtype=np.int8)
        sc = np.full((h, w), np.nan, dtype=np.float32)
        pos = bands[bands != oracle.STAMP_BAND]
        pos_idx = np.nonzero(bands != oracle.STAMP_BAND)[0]
        stamp_idx = np.nonzero(bands == oracle.STAMP_BAND)[0]
        for p in self.covering(r0, r1, c0, c1):
            t = p.tile
            (a0, a1), (b0, b1) = p.rows, p.cols
            ia0, ia1, jb0, jb1 = max(a0, r0), min(a1, r1), max(b0, c0), min(b1, c1)
            # tile-local pixel ranges
            ti0, ti1, tj0, tj1 = ia0 - p.row, ia1 - p.row, jb0 - p.col, jb1 - p.col
            gE, gN = t.gE(tj0, tj1), t.gN(ti0, ti1)
            dst = (slice(ia0 - r0, ia1 - r0), slice(jb0 - c0, jb1 - c0))
            if t.sparse:
                emb[dst[0], dst[1], :] = 0
            elif len(pos):
                emb[dst[0], dst[1], pos_idx] = oracle.embedding(gE, gN, pos)
            if len(stamp_idx):
                emb[dst[0], dst[1], stamp_idx] = np.int8(t.stamp)
            s = tile_scale(t, gE, gN)
            sc[dst] = s
        return emb, sc


def tile_scale(t: Tile, gE, gN) -> np.ndarray:
    """What the store must hold as a tile's scales: 3-D scales NaN-max reduced,
    ±inf → NaN, water (per the tile's own landmask; none = all land) → NaN."""
    if t.sparse:
        return np.zeros((len(gN), len(gE)), dtype=np.float32)
    if t.scales3d:
        with np.errstate(all="ignore"):
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                s = np.nanmax(oracle.scale3d(gE, gN), axis=-1)
    else:
        s = oracle.scale(gE, gN)
    s = s.copy()
    s[~np.isfinite(s)] = np.nan
    if t.has_water:
        s[oracle.water(gE, gN)] = np.nan
    return s


def _ceil_to(v: int, m: int) -> int:
    return -(-v // m) * m


def build_zones(tiles: list[Tile]) -> dict[int, Zone]:
    by_zone: dict[int, list[Tile]] = {}
    for t in tiles:
        by_zone.setdefault(t.zone, []).append(t)
    zones = {}
    for z, ts in sorted(by_zone.items()):
        min_e = min(t.origin_e for t in ts)
        max_e = max(t.origin_e + PIXEL * t.W for t in ts)
        max_n = max(t.origin_n for t in ts)
        min_n = min(t.origin_n - PIXEL * t.H for t in ts)
        oe = math.floor(min_e / PIXEL) * PIXEL
        on = math.ceil(max_n / PIXEL) * PIXEL
        right = math.ceil(max_e / PIXEL) * PIXEL
        bottom = math.floor(min_n / PIXEL) * PIXEL
        W = _ceil_to(round((right - oe) / PIXEL), SHARD)
        H = _ceil_to(round((on - bottom) / PIXEL), SHARD)
        zone = Zone(zone=z, origin_e=float(oe), origin_n=float(on), W=W, H=H)
        for t in sorted(ts, key=lambda t: (t.lon100, t.lat100)):
            zone.placed.append(Placed(t, row=round((on - t.origin_n) / PIXEL), col=round((t.origin_e - oe) / PIXEL)))
        zones[z] = zone
    return zones


@dataclass
class Manifest:
    year: int
    tiles: list[Tile]
    zones: dict[int, Zone]


def load_manifest(tiles_root: Path, year: int | None = None) -> Manifest:
    m = json.loads((Path(tiles_root) / "synth.json").read_text())
    years = m["years"] if "years" in m else [m]
    if year is None:
        if len(years) != 1:
            raise ValueError(f"{tiles_root}/synth.json holds years {[y['year'] for y in years]}: choose one")
        (y,) = years
    else:
        ys = [y for y in years if int(y["year"]) == int(year)]
        if not ys:
            raise ValueError(f"{tiles_root}/synth.json has no year {year}")
        (y,) = ys
    tiles = []
    for t in y["tiles"]:
        kind = t.get("landmask") or ("none" if t.get("no_landmask") else "water")
        if bool(t.get("no_landmask", False)) != (kind == "none"):
            raise ValueError(f"synth.json: {t['name']}: no_landmask {t.get('no_landmask')} vs landmask {kind!r}")
        tiles.append(make_tile(t["name"], int(t["lon100"]), int(t["lat100"]), t.get("scales3d", False), kind,
                               t.get("sparse", False)))
    for t in tiles:
        want = "grid_%s_%s" % (_hundredths(t.lon100), _hundredths(t.lat100))
        assert t.name == want, f"synth.json: tile name {t.name!r} does not match lon100/lat100 ({want!r})"
    return Manifest(year=int(y["year"]), tiles=tiles, zones=build_zones(tiles))


def _hundredths(v: int) -> str:
    sign = "-" if v < 0 else ""
    v = abs(v)
    return f"{sign}{v // 100}.{v % 100:02d}"


def zone_item_bbox(zone: Zone) -> list[float]:
    """STAC item bbox (§6): W/E from the zone number, S/N the latitudes of
    (500000, bottom) and (500000, top) in EPSG:326NN."""
    inv = pyproj.Transformer.from_crs(zone.epsg, "OGC:CRS84", always_xy=True)
    _, s = inv.transform(500000.0, zone.origin_n - 10.0 * zone.H, errcheck=True)
    _, n = inv.transform(500000.0, zone.origin_n, errcheck=True)
    return [(zone.zone - 1) * 6.0 - 180.0, s, zone.zone * 6.0 - 180.0, n]
