"""Make the small landmask GeoTIFF fixtures of landmask's tests with rasterio.

Run from this directory: python make_fixtures.py (needs numpy and rasterio).
The files are committed; rerun only to change them. Every readable fixture
holds the same 50 × 37 (width × height) uint8 pattern, value(i, j) =
(31·i + 7·j) mod 256 at row i, column j, so the Go test can check every
pixel; the pattern includes 0 (water) and values above 127.
"""
import warnings

import numpy as np
import rasterio
from rasterio.transform import from_origin

W, H = 50, 37
i, j = np.mgrid[0:H, 0:W]
PATTERN = ((31 * i + 7 * j) % 256).astype(np.uint8)
CRS = "EPSG:32630"
TRANSFORM = from_origin(702270.0, 5770710.0, 10.0, 10.0)


def write(name, data=PATTERN, driver="GTiff", **opts):
    count = 1 if data.ndim == 2 else data.shape[0]
    profile = dict(driver=driver, width=data.shape[-1], height=data.shape[-2], count=count,
                   dtype=data.dtype, crs=CRS, transform=TRANSFORM, **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(name, "w", **profile) as dst:
            if count == 1:
                dst.write(data, 1)
            else:
                dst.write(data)
            if name.startswith("palette"):
                dst.write_colormap(1, {0: (0, 0, 255, 255), 1: (0, 255, 0, 255)})


# Readable: the layouts and codecs source landmasks come in.
write("striped_none.tiff", compress=None, tiled=False)
write("striped_deflate_pred2.tiff", compress="deflate", predictor=2, tiled=False, blockysize=8)
write("tiled_deflate.tiff", compress="deflate", tiled=True, blockxsize=16, blockysize=16)
write("tiled_lzw_pred2.tiff", compress="lzw", predictor=2, tiled=True, blockxsize=16, blockysize=16)
write("tiled_packbits.tiff", compress="packbits", tiled=True, blockxsize=16, blockysize=16)
write("cog_deflate.tiff", driver="COG", compress="deflate", blocksize=16, overview_resampling="nearest")
write("miniswhite.tiff", compress="deflate", photometric="MINISWHITE")
write("palette.tiff", compress="deflate", photometric="PALETTE")

# Unreadable, each for one reason.
write("zstd.tiff", compress="zstd", tiled=True, blockxsize=16, blockysize=16)
write("bigtiff.tiff", compress="deflate", BIGTIFF="YES")
write("uint16.tiff", PATTERN.astype(np.uint16), compress="deflate")
write("int8.tiff", PATTERN.astype(np.int8), compress="deflate")
write("two_band.tiff", np.stack([PATTERN, PATTERN]), compress="deflate")
with open("not_a_tiff.tiff", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + bytes(64))
