"""Regenerate the shard fixtures written by zarr-python (an independent writer).

    python make_zarr_python_shards.py   # needs zarr>=3, numpy; writes next to this file

The Go tests only read the .bin files; they never run this script. The values
must match int8Fixture and float32Fixture in zarr/shard_test.go.
"""
import os, shutil, tempfile
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

here = os.path.dirname(os.path.abspath(__file__))
r, c, b = np.meshgrid(np.arange(8), np.arange(8), np.arange(16), indexing="ij")

# int8 (8, 8, 16), inner chunks (4, 4, 16): inner chunk (1, 1) is all fill.
emb = ((r * 31 + c * 17 + b * 7) % 251 - 125).astype(np.int8)
emb[4:, 4:, :] = 0
# float32 (8, 8), inner chunks (4, 4): inner chunk (0, 1) is all fill (NaN).
sc = (r[:, :, 0] * 8 + c[:, :, 0] + 0.5).astype(np.float32)
sc[:4, 4:] = np.nan

with tempfile.TemporaryDirectory() as tmp:
    for name, data, inner, fill in [
        ("int8", emb, (4, 4, 16), 0),
        ("float32", sc, (4, 4), float("nan")),
    ]:
        a = zarr.create_array(
            store=os.path.join(tmp, name), shape=data.shape, chunks=inner,
            shards=data.shape, dtype=data.dtype, fill_value=fill,
            compressors=ZstdCodec(level=3, checksum=False),
        )
        a[...] = data
        key = os.path.join(tmp, name, "c", *["0"] * data.ndim)
        shutil.copy(key, os.path.join(here, f"shard_{name}_zarr_python.bin"))
print("zarr", zarr.__version__)
