"""Writes registry.parquet fixtures with pyarrow (an independent writer) for
index's tests: geotessera's schema, 1000 rows, row i being tile
lon_i = -17995 + 10 * i, lat_i = 5005 + 10 * (i % 7), year 2020 + i % 3,
hash = sha256 hex of "e<i>", scales_hash = sha256 hex of "s<i>",
file_size = 1000 + i, scales_size = 2000 + i. Each file stresses another
page layout: small data pages (v1 and v2), dictionary pages, one page per
column chunk with no row limit, without dictionaries.

  .venv/bin/python testdata/registry/make.py testdata/registry
"""

import datetime
import hashlib
import struct
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

N = 1000


def table():
    lon_i = [-17995 + 10 * i for i in range(N)]
    lat_i = [5005 + 10 * (i % 7) for i in range(N)]
    lon = [x / 100 for x in lon_i]
    lat = [y / 100 for y in lat_i]
    return pa.table({
        "geometry": pa.array([struct.pack("<BIdd", 1, 1, x, y) for x, y in zip(lon, lat)], pa.binary()),
        "lat": pa.array(lat, pa.float64()),
        "lon": pa.array(lon, pa.float64()),
        "year": pa.array([2020 + i % 3 for i in range(N)], pa.int64()),
        "lon_i": pa.array(lon_i, pa.int32()),
        "lat_i": pa.array(lat_i, pa.int32()),
        "hash": pa.array([hashlib.sha256(f"e{i}".encode()).hexdigest() for i in range(N)], pa.string()),
        "scales_hash": pa.array([hashlib.sha256(f"s{i}".encode()).hexdigest() for i in range(N)], pa.string()),
        "mtime": pa.array([datetime.datetime(2025, 1, 1)] * N, pa.timestamp("us")),
        "file_size": pa.array([1000 + i for i in range(N)], pa.int64()),
        "scales_size": pa.array([2000 + i for i in range(N)], pa.int64()),
    })


def main(out):
    out = Path(out)
    t = table()
    pq.write_table(t, out / "pages-v1.parquet", compression="zstd", data_page_size=2048, row_group_size=400)
    pq.write_table(t, out / "pages-v2.parquet", compression="zstd", data_page_size=2048, data_page_version="2.0",
                   row_group_size=400)
    pq.write_table(t, out / "one-page.parquet", compression="zstd", use_dictionary=False,
                   data_page_size=1 << 30, row_group_size=N)


if __name__ == "__main__":
    main(sys.argv[1])
