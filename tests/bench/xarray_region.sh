#!/usr/bin/env bash
# Benchmark (c) of issue 4: a 2048 x 2048 x 128 xarray region read through
# `tesserafs mount` after a remount (cache warm, kernel page cache cold) vs.
# the same read from the materialized store. Goal: materialized time / mount
# time >= 0.8.
#
#   tests/bench/xarray_region.sh [WORKDIR]
#
# WORKDIR (default ${TMPDIR:-/tmp}/tesserafs-bench-xarray) keeps the tiles,
# the materialized tree and the mount's cache between runs: the tiles are
# synthesised once; the tree is rebuilt when bin/tesserafs changes; the cache
# is filled by `tesserafs cache warm` (which skips what is already there).
# Then REPS (default 3) repetitions, alternating which side goes first; before
# each timed read the page cache is dropped (drop_caches, or fadvise on the
# materialized tree and the cache when that is not permitted) and every
# mount-side read gets a fresh mount. The page cache is dropped for the whole
# machine (both sides then read from disk: the materialized files, or the
# cache's badger files), which also costs any concurrent job its cache.
# Each repetition also times plain reads of the region's shard files on both
# sides, 10 at a time like zarr-python (no zarr: the I/O path alone).
# Every read must equal the first one (np.array_equal) and have no empty
# pixel, and every mount-side read must be served from the cache (no cache
# miss during it, at least one cache hit per shard of the region). Prints
# the medians and the ratio; exits 1 on wrong data or on a read not served
# from the cache, not on a ratio below the goal. A run takes ~8-9 min (each
# xarray read ~80 s: zarr-python decodes 262,144 inner chunks of 4 x 4 x
# 128), plus ~1.5 min the first time (synth, materialize, cache warm).
#
# Env: BIN (bin/tesserafs), PY (.venv/bin/python), REPS (3), OFFSET (0: a
# shard-aligned region, read by zarr as whole shards; e.g. 128 shifts it so
# the edge shards are read chunk by chunk).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${BIN:-$repo/bin/tesserafs}
py=${PY:-$repo/.venv/bin/python}
reps=${REPS:-3}
work=${1:-${TMPDIR:-/tmp}/tesserafs-bench-xarray}
year=2024
size=2048
# 3 x 3 tiles of ~1110 x 1105 px in UTM zone 34 north: a 3328 x 3328 px grid.
synth_args=(--year "$year" --count 9 --at 20.05,10.05)

for f in "$bin" "$py"; do
  [ -x "$f" ] || { echo "xarray-region: $f is missing (make build venv)" >&2; exit 2; }
done
if [ ! -e /dev/fuse ]; then
  echo "xarray-region: /dev/fuse is absent: cannot benchmark the mount" >&2
  exit 2
fi

mkdir -p "$work"
work=$(cd "$work" && pwd)
tiles=$work/tiles out=$work/out cache=$work/cache mp=$work/mnt log=$work/mount.log
results=$work/results.jsonl ref=$work/ref.npy
t_start=$(date +%s)

# --- data -----------------------------------------------------------------------

stamp_tiles="synth ${synth_args[*]}"
if [ "$(cat "$work/tiles.ok" 2>/dev/null)" != "$stamp_tiles" ]; then
  echo "xarray-region: synth → $tiles"
  rm -rf "$tiles" "$work/tiles.ok"
  "$bin" synth --out "$tiles" "${synth_args[@]}"
  echo "$stamp_tiles" >"$work/tiles.ok"
fi

stamp_out="$stamp_tiles $(sha256sum "$bin" | cut -c1-16)"
if [ "$(cat "$work/out.ok" 2>/dev/null)" != "$stamp_out" ]; then
  echo "xarray-region: materialize → $out"
  rm -rf "$out" "$work/out.ok"
  "$bin" materialize --tiles "$tiles" --out "$out" --year "$year"
  echo "$stamp_out" >"$work/out.ok"
fi

plan=$("$py" "$here/xarray_region.py" plan --root "$out" --year "$year" --size "$size")
read -r group row col <<<"$plan"
zone=${group#utm}
# OFFSET (default 0) shifts the region off the shard grid: zarr then reads
# the edge shards chunk by chunk (byte ranges) instead of whole.
offset=${OFFSET:-0}
row=$((row + offset)) col=$((col + offset))
nshards=$(( ((row + size - 1) / 256 - row / 256 + 1) * ((col + size - 1) / 256 - col / 256 + 1) ))
echo "xarray-region: region $group northing[$row:$((row + size))] easting[$col:$((col + size))] x 128 bands"

echo "xarray-region: cache warm → $cache (zone $zone)"
"$bin" cache warm --tiles "$tiles" --cache "$cache" --cache-size 4GiB --year "$year" --zones "$zone"

# --- mount ------------------------------------------------------------------------

# shellcheck source=../../scripts/mount-lib.sh
. "$repo/scripts/mount-lib.sh"
unmount() { tfs_unmount "$mp"; }
trap unmount EXIT
trap 'exit 130' INT TERM

mount_fresh() {
  unmount
  tfs_mount "$bin" "$log" "$mp" --tiles "$tiles" --cache "$cache" --cache-size 4GiB --year "$year" || exit 1
}

# cache_misses prints the cache's lookup misses so far (counted across
# mounts and persisted by the cache).
cache_misses() {
  "$bin" cache stats --cache "$cache" | awk '$1 == "misses" { print $2 }'
}

# After a mount-side read: the mount must have served every shard of the
# region from the cache. It fails (1) when the cache missed any lookup
# during the read (a shard was then generated, so the timing is not that of
# a cache read) or served fewer than the region's shards. What the mount
# generates without a miss are the small coordinate chunks, which are not
# cached by design.
check_served_from_cache() {
  local misses_before=$1 line served misses
  unmount
  line=$(grep -h "unmounted" "$log" || true)
  served=$(sed -n 's/.*, \([0-9]*\) served from the cache.*/\1/p' <<<"$line")
  misses=$(cache_misses)
  echo "    mount: ${line#*: unmounted $mp: }; cache misses during the read: $((misses - misses_before))"
  if [ -z "$misses" ] || [ "$misses" -ne "$misses_before" ]; then
    echo "xarray-region: FAIL: the cache missed $((${misses:-0} - misses_before)) lookups during the mount-side read: not a read from the cache" >&2
    return 1
  fi
  if [ "${served:-0}" -lt "$nshards" ]; then
    echo "xarray-region: FAIL: the mount served ${served:-?} chunks from the cache, the region has $nshards shards" >&2
    return 1
  fi
}

# --- measure ------------------------------------------------------------------------

rm -f "$results" "$ref"
common=(--year "$year" --group "$group" --row "$row" --col "$col" --size "$size"
  --ref "$ref" --out "$results" --drop-cache --fadvise "$out/$year.zarr/$group" --fadvise "$cache")
read_materialized() { "$py" "$here/xarray_region.py" read --root "$out" --side materialized "${common[@]}" "$@"; }
read_mount() {
  local before st=0
  before=$(cache_misses)
  mount_fresh
  "$py" "$here/xarray_region.py" read --root "$mp" --side mount "${common[@]}" "$@" || st=1
  check_served_from_cache "$before" || st=1
  return "$st"
}

rc=0
echo "xarray-region: $reps repetitions (each: xarray and raw reads, both sides, page cache dropped before each)"
for i in $(seq 1 "$reps"); do
  echo "rep $i"
  if [ $((i % 2)) = 1 ]; then
    read_materialized || rc=1
    read_mount || rc=1
    read_materialized --raw || rc=1
    read_mount --raw || rc=1
  else
    read_mount || rc=1
    read_materialized || rc=1
    read_mount --raw || rc=1
    read_materialized --raw || rc=1
  fi
done
unmount
trap - EXIT

"$py" "$here/xarray_region.py" summary "$results" || rc=1
echo "xarray-region: took $(($(date +%s) - t_start)) s; data in $work"
exit "$rc"
