"""Independent NumPy port of synth/oracle.go: the values the synthetic tiles
hold, as a function of global 10 m pixel indices (gE, gN) on a zone grid.

Nothing here imports or runs our Go code. Go's uint64 arithmetic wraps, and so
does NumPy's on uint64 arrays; int64 → uint64 conversions are two's-complement
views, as Go's uint64(int64) is.
"""

from __future__ import annotations

import numpy as np

STAMP_BAND = 127
N_BANDS = 128

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_KE = np.uint64(0x9E3779B97F4A7C15)
_KN = np.uint64(0xC2B2AE3D27D4EB4F)
_KB = np.uint64(0x165667B19E3779F9)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_MASK6 = np.uint64(0x3F)
_S8 = np.uint64(8)


def _u64(a) -> np.ndarray:
    """int64 → uint64 with Go's two's-complement semantics."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.int64)).view(np.uint64)


def mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (synth.mix), on uint64 arrays."""
    with np.errstate(over="ignore"):
        z = z ^ (z >> _S30)
        z = z * _M1
        z = z ^ (z >> _S27)
        z = z * _M2
        z = z ^ (z >> _S31)
    return z


def embedding(gE, gN, bands=None) -> np.ndarray:
    """int8 embeddings for bands 0..126 (or `bands`) on the grid gN × gE.

    gE has shape (W,), gN shape (H,); the result has shape (H, W, len(bands)),
    rows following gN and columns following gE.
    """
    if bands is None:
        bands = np.arange(STAMP_BAND)
    gE = np.atleast_1d(gE)
    gN = np.atleast_1d(gN)
    b = np.asarray(bands, dtype=np.int64)
    with np.errstate(over="ignore"):
        hE = _u64(gE) * _KE
        hN = _u64(gN) * _KN
        hB = _u64(b) * _KB
    h = mix(hN[:, None, None] ^ hE[None, :, None] ^ hB[None, None, :])
    v = (h & _MASK6).astype(np.int16) + ((h >> _S8) & _MASK6).astype(np.int16) - 63
    return v.astype(np.int8)


def stamp(lon100: int, lat100: int) -> int:
    """Band 127's value for every pixel of the tile centred at (lon100, lat100)."""
    return ((lon100 * 31 + lat100 * 17) % 251) - 125  # Python % is a floor mod


def scale(gE, gN) -> np.ndarray:
    """float32 scales (H, W) before the landmask: +inf on the sparse set
    mod(gE, 500) == 7 and mod(gN, 500) < 3, else 0.01 + mod(gE + 2 gN, 997)·1e-4
    in float64 rounded to float32."""
    gE = np.atleast_1d(np.asarray(gE, dtype=np.int64))
    gN = np.atleast_1d(np.asarray(gN, dtype=np.int64))
    s = (0.01 + np.mod(gE[None, :] + 2 * gN[:, None], 997).astype(np.float64) * 1e-4).astype(np.float32)
    inf = (np.mod(gE, 500) == 7)[None, :] & (np.mod(gN, 500) < 3)[:, None]
    s[inf] = np.float32(np.inf)
    return s


def water(gE, gN) -> np.ndarray:
    """bool (H, W): the landmask says water (0) on 200 × 200 pixel squares
    where mod(floor(gE/200) + floor(gN/200), 7) == 0."""
    gE = np.atleast_1d(np.asarray(gE, dtype=np.int64))
    gN = np.atleast_1d(np.asarray(gN, dtype=np.int64))
    return np.mod((gE // 200)[None, :] + (gN // 200)[:, None], 7) == 0


def scale3d(gE, gN) -> np.ndarray:
    """float32 (H, W, 128) 3-D scales: band 5 = scale, bands b % 3 == 0 NaN,
    others scale·0.5 (float32 product); NaN-max over bands == scale."""
    s = scale(gE, gN)
    out = np.empty(s.shape + (N_BANDS,), dtype=np.float32)
    b = np.arange(N_BANDS)
    out[...] = (s * np.float32(0.5))[..., None]
    out[..., b % 3 == 0] = np.nan
    out[..., 5] = s
    return out
