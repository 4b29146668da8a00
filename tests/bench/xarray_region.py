"""Benchmark (c) of issue 4: an xarray region read through the mount vs. the materialized store.

Driven by tests/bench/xarray_region.sh, which synthesises the tiles, materializes them, warms
the mount's cache and remounts before every mount-side repetition. This script does the parts
that need Python; run it with the project venv (.venv/bin/python):

  plan  --root OUT --year Y [--size N]
        Picks the zone group with the largest grid and a shard-aligned N x N region of it, as
        central as it goes, whose every embeddings shard exists in the materialized tree OUT
        (so the region is inside data). Prints "GROUP ROW COL".

  read  --root ROOT --year Y --group G --row R --col C [--size N] --side NAME --ref FILE
        [--drop-cache] [--fadvise DIR ...] [--raw] --out RESULTS.jsonl
        After the imports, optionally drops the page cache (sync, then
        `echo 3 > /proc/sys/vm/drop_caches`; if that is not permitted,
        posix_fadvise(POSIX_FADV_DONTNEED) on every file under each --fadvise DIR), then times

            xr.open_zarr(ROOT/Y.zarr, group=G, consolidated=True)["embeddings"]
              .isel(northing=slice(R, R+N), easting=slice(C, C+N)).values

        (or, with --raw, plain reads of the region's embeddings shard files: no zarr, no
        decoding — a diagnostic of the I/O path alone). The array of the first read is saved to
        --ref; every later one must be np.array_equal to it. Appends one JSON line to --out.

  summary RESULTS.jsonl
        Prints medians per side and the ratio materialized / mount (goal >= 0.8).
        Exits 1 if any read returned different data or a region without data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

GOAL = 0.8
SHARD = 256  # shard edge of embeddings, docs/format.md §3


def shard_path(root: str, year: int, group: str, i: int, j: int) -> str:
    return os.path.join(root, f"{year}.zarr", group, "embeddings", "c", str(i), str(j), "0")


def cmd_plan(a: argparse.Namespace) -> int:
    with open(os.path.join(a.root, f"{a.year}.zarr", "zarr.json")) as f:
        meta = json.load(f)["consolidated_metadata"]["metadata"]
    zones = []
    for key, node in meta.items():
        if key.startswith("utm") and "/" not in key:
            h, w = node["attributes"]["spatial:shape"]
            zones.append((h * w, key, h, w))
    if not zones:
        print(f"plan: no zone group in {a.root}/{a.year}.zarr", file=sys.stderr)
        return 1
    _, group, h, w = max(zones)
    emb = meta[f"{group}/embeddings"]
    dims = emb.get("dimension_names")
    if dims != ["northing", "easting", "band"]:
        print(f"plan: unexpected dimension names {dims}", file=sys.stderr)
        return 1
    n = a.size // SHARD
    if a.size % SHARD or a.size > min(h, w):
        print(f"plan: {group} is {h} x {w}: no shard-aligned {a.size} x {a.size} region", file=sys.stderr)
        return 1
    # Central first, then the rest, in shard units.
    rows, cols = h // SHARD - n + 1, w // SHARD - n + 1
    cands = sorted(
        ((r, c) for r in range(rows) for c in range(cols)),
        key=lambda rc: (abs(2 * rc[0] - (rows - 1)) + abs(2 * rc[1] - (cols - 1)), rc),
    )
    for r, c in cands:
        if all(
            os.path.exists(shard_path(a.root, a.year, group, r + i, c + j))
            for i in range(n)
            for j in range(n)
        ):
            print(group, r * SHARD, c * SHARD)
            return 0
    print(f"plan: no {a.size} x {a.size} region of {group} has every shard", file=sys.stderr)
    return 1


def drop_page_cache(fadvise_dirs: list[str]) -> str:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "drop_caches"
    except OSError:
        pass
    n = 0
    for d in fadvise_dirs:
        for dirpath, _, files in os.walk(d):
            for name in files:
                try:
                    fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    n += 1
                finally:
                    os.close(fd)
    return f"fadvise({n} files)"


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    t = os.times()
    return t.user + t.system


def cmd_read(a: argparse.Namespace) -> int:
    import numpy as np

    if not a.raw:
        import xarray as xr
        import zarr  # noqa: F401  (imported before the clock starts, like xarray)

    drop = drop_page_cache(a.fadvise) if a.drop_cache else "none"
    store = os.path.join(a.root, f"{a.year}.zarr")
    rec = {"side": a.side, "kind": "raw" if a.raw else "xarray", "cache_drop": drop}
    if a.raw:
        from concurrent.futures import ThreadPoolExecutor

        def read_file(path: str) -> int:
            buf, n = bytearray(1 << 20), 0
            with open(path, "rb", buffering=0) as f:
                while k := f.readinto(buf):
                    n += k
            return n

        paths = [
            shard_path(a.root, a.year, a.group, i, j)
            for i in range(a.row // SHARD, (a.row + a.size - 1) // SHARD + 1)
            for j in range(a.col // SHARD, (a.col + a.size - 1) // SHARD + 1)
        ]
        t0 = time.perf_counter()
        # As many files at once as zarr-python reads (async.concurrency, default 10).
        with ThreadPoolExecutor(a.raw_threads) as pool:
            total = sum(pool.map(read_file, paths))
        rec["seconds"] = time.perf_counter() - t0
        rec["threads"] = a.raw_threads
        rec["bytes"] = total
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(
            f"  {a.side:12s} raw    {rec['seconds']:7.3f} s  {total / rec['seconds'] / 1e6:8.1f} MB/s"
            f" of shard files, {a.raw_threads} at a time ({drop})"
        )
        return 0

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    ds = xr.open_zarr(store, group=a.group, consolidated=True)
    t1 = time.perf_counter()
    arr = ds["embeddings"].isel(
        northing=slice(a.row, a.row + a.size), easting=slice(a.col, a.col + a.size)
    ).values
    t2 = time.perf_counter()
    rec.update(open_s=t1 - t0, read_s=t2 - t1, seconds=t2 - t0, cpu_s=cpu_seconds() - cpu0, bytes=arr.nbytes)

    want = (a.size, a.size, 128)
    ok = arr.shape == want and arr.dtype == np.int8
    # The synthetic embeddings are a hash of position: an all-zero vector means no tile there.
    empty = int(np.count_nonzero(~arr.reshape(-1, arr.shape[-1]).any(axis=1))) if ok else -1
    rec["empty_pixels"] = empty
    if not ok:
        rec["equal"] = False
        rec["why"] = f"got {arr.shape} {arr.dtype}, want {want} int8"
    elif not os.path.exists(a.ref):
        np.save(a.ref, arr)
        rec["equal"] = True
        rec["ref"] = "saved"
    else:
        ref = np.load(a.ref, mmap_mode="r")
        rec["equal"] = bool(np.array_equal(arr, ref))
        rec["ref"] = "compared"
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(
        f"  {a.side:12s} xarray {rec['seconds']:7.3f} s (open {rec['open_s']:.3f} s, python cpu {rec['cpu_s']:.1f} s)"
        f"  {arr.nbytes / rec['seconds'] / 1e6:7.1f} MB/s decoded"
        f"  equal={rec['equal']} empty_pixels={empty} ({drop})"
    )
    return 0 if rec["equal"] and empty == 0 else 1


def cmd_summary(a: argparse.Namespace) -> int:
    with open(a.results) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    bad = [r for r in recs if r["kind"] == "xarray" and (not r.get("equal") or r.get("empty_pixels") != 0)]

    def med(kind: str, side: str) -> tuple[float, int, int] | None:
        xs = [r for r in recs if r["kind"] == kind and r["side"] == side]
        if not xs:
            return None
        return statistics.median(r["seconds"] for r in xs), xs[0]["bytes"], len(xs)

    drops = sorted({r["cache_drop"].split("(")[0] for r in recs})
    raw_m, raw_z = med("raw", "mount"), med("raw", "materialized")
    if raw_m and raw_z:
        print(
            f"raw shard files (diagnostic): mount {raw_m[1] / raw_m[0] / 1e6:.0f} MB/s,"
            f" materialized {raw_z[1] / raw_z[0] / 1e6:.0f} MB/s, ratio {raw_z[0] / raw_m[0]:.2f}x"
        )
    m, z = med("xarray", "mount"), med("xarray", "materialized")
    if not m or not z:
        print("xarray-region: no complete measurement", file=sys.stderr)
        return 1
    ratio = z[0] / m[0]
    mb = m[1] / 1e6
    print(
        f"xarray-region: mount {m[0]:.2f} s ({mb / m[0]:.0f} MB/s), materialized {z[0]:.2f} s"
        f" ({mb / z[0]:.0f} MB/s), ratio {ratio:.2f}x (goal >= {GOAL}x)"
        f"{'' if ratio >= GOAL else ' BELOW GOAL'}; medians of {m[2]}/{z[2]} reps,"
        f" {m[1] / 2**20:.0f} MiB decoded, page cache dropped by {'+'.join(drops)}"
    )
    if bad:
        print(f"xarray-region: {len(bad)} read(s) returned wrong data or empty pixels: {bad}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("plan")
    pl.add_argument("--root", required=True)
    pl.add_argument("--year", type=int, required=True)
    pl.add_argument("--size", type=int, default=2048)
    rd = sub.add_parser("read")
    rd.add_argument("--root", required=True)
    rd.add_argument("--year", type=int, required=True)
    rd.add_argument("--group", required=True)
    rd.add_argument("--row", type=int, required=True)
    rd.add_argument("--col", type=int, required=True)
    rd.add_argument("--size", type=int, default=2048)
    rd.add_argument("--side", required=True)
    rd.add_argument("--ref", required=True)
    rd.add_argument("--out", required=True)
    rd.add_argument("--raw", action="store_true")
    rd.add_argument("--raw-threads", type=int, default=10)
    rd.add_argument("--drop-cache", action="store_true")
    rd.add_argument("--fadvise", action="append", default=[])
    sm = sub.add_parser("summary")
    sm.add_argument("results")
    a = p.parse_args()
    return {"plan": cmd_plan, "read": cmd_read, "summary": cmd_summary}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
