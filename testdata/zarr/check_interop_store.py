"""Check a store written by zarr/interop_test.go with independent readers.

    ZARR_INTEROP_DIR=/tmp/interop go test ./zarr -run TestWriteInteropStore
    python testdata/zarr/check_interop_store.py /tmp/interop/store.zarr

Needs zarr>=3, numpy, tensorstore, xarray. `make interop` runs both steps. The
expected values here must match the elem functions in interop_test.go.
"""
import glob, json, os, shutil, sys, tempfile, warnings

import numpy as np
import tensorstore as ts
import xarray as xr
import zarr

warnings.simplefilter("ignore")  # zarr-python warns that consolidated metadata is not in the v3 spec
root = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))

r, c, k = np.meshgrid(np.arange(300), np.arange(260), np.arange(16), indexing="ij")
quiet = (r >= 256) & (c >= 256)
emb = ((r * 7 + c * 13 + k * 3) % 255 - 127).astype(np.int8)
emb[quiet | ((r < 8) & (c < 8))] = 0
r2, c2 = r[:, :, 0], c[:, :, 0]
scales = (r2 * 1000 + c2).astype(np.float32) + np.float32(0.25)
scales[quiet[:, :, 0] | ((r2 >= 100) & (r2 < 108) & (c2 >= 100) & (c2 < 108))] = np.nan
easting = 699960 + (np.arange(260) + 0.5) * 10
r4, c4, b4 = np.meshgrid(np.arange(300), np.arange(260), np.arange(4), indexing="ij")
rgb = ((r4 + 2 * c4 + 3 * b4) % 256).astype(np.uint8)
rgb[(r4 >= 256) & (c4 >= 256)] = 0
expected = {"g/emb": emb, "g/scales": scales, "g/easting": easting, "g/rgb": rgb}

def same(name, got, want):
    np.testing.assert_array_equal(np.asarray(got), want, err_msg=name)
    assert np.asarray(got).dtype == want.dtype, (name, np.asarray(got).dtype, want.dtype)

# 1. zarr-python, through the consolidated metadata and without it.
g = zarr.open_consolidated(root, mode="r")
members = sorted(p for p, _ in g.members(max_depth=None))
assert members == ["g", "g/easting", "g/emb", "g/rgb", "g/scales"], members
for path, want in expected.items():
    same("zarr consolidated " + path, g[path][...], want)
    same("zarr direct " + path, zarr.open_array(os.path.join(root, path), mode="r")[...], want)
assert g["g"].attrs["transform"] == [10.0, 0.0, 699960.0]
print("zarr-python %s: consolidated and direct reads OK" % zarr.__version__)

# 2. zarr-python's own consolidation of the same store gives the same metadata.
with tempfile.TemporaryDirectory() as tmp:
    copy = os.path.join(tmp, "copy.zarr")
    shutil.copytree(root, copy)
    zarr.consolidate_metadata(copy)
    theirs = json.load(open(os.path.join(copy, "zarr.json")))["consolidated_metadata"]
    ours = json.load(open(os.path.join(root, "zarr.json")))["consolidated_metadata"]
    for node in theirs["metadata"].values():
        node.pop("storage_transformers", None)  # zarr-python writes [], the spec's default
    assert theirs == ours, (theirs, ours)
print("zarr.consolidate_metadata writes the same consolidated metadata")

# 3. tensorstore (zarr3 driver), every array.
for path, want in expected.items():
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": os.path.join(root, path)}}).result()
    same("tensorstore " + path, t.read().result(), want)
print("tensorstore: all arrays OK")

# 4. xarray on the group.
for consolidated in (None, False):
    ds = xr.open_zarr(root, group="g", consolidated=consolidated, mask_and_scale=False)
    for name in ("emb", "scales", "easting", "rgb"):
        same("xarray %s (consolidated=%s)" % (name, consolidated), ds[name].values, expected["g/" + name])
    assert ds["emb"].dims == ("northing", "easting", "band"), ds["emb"].dims
print("xarray %s: open_zarr(group='g') OK" % xr.__version__)

# 5. The golden metadata files parse in zarr-python.
from zarr.core.metadata.v3 import ArrayV3Metadata
for path in sorted(glob.glob(os.path.join(here, "*.json"))):
    doc = json.load(open(path))
    if doc["node_type"] == "array":
        ArrayV3Metadata.from_dict(doc)
    else:
        zarr.core.group.GroupMetadata.from_dict(doc)
print("golden metadata files parse in zarr-python")
print("ALL OK")
