#!/usr/bin/env bash
# The demo behind `make demo`: synthesise tiles, look before building, mount
# the virtual store and read it with xarray, watch the cache fill, unmount,
# then materialize the same tree with its STAC catalog and render a quicklook.
#
#   scripts/demo.sh BIN PYTHON DIR
#
# Everything lands in DIR (tiles/, cache/, mnt/, out/, quicklook*.png).
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 BIN PYTHON DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "$1") py=$2 dir=$(realpath -m "$3")
case $py in /*) ;; */*) py=$PWD/$py ;; esac
year=2024
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"

step "synthesise source tiles (deterministic; values are a known function of position)"
run "$bin" synth --out tiles --year $year --preset demo

step "inspect: what would be built, before building anything"
run "$bin" inspect --tiles tiles

step "mount the virtual store"
mkdir -p mnt
if [ ! -e /dev/fuse ]; then
  echo "demo: /dev/fuse is absent: skipping the mount part of the demo" >&2
else
  # shellcheck source=mount-lib.sh
  . "$here/mount-lib.sh"
  trap 'tfs_unmount "$dir/mnt"' EXIT
  tfs_mount "$bin" mount.log "$dir/mnt" --tiles tiles --cache cache --cache-size 2GiB || exit 1
  cat mount.log
  run ls mnt "mnt/$year.zarr"
  run "$bin" cache stats --cache cache

  step "open a zone with xarray, through the mount (shards are generated on first read)"
  zone=$(ls "mnt/$year.zarr" | grep -m1 '^utm')
  printf '$ python  # xarray.open_zarr("mnt/%s.zarr", group="%s")\n' "$year" "$zone"
  "$py" - "mnt/$year.zarr" "$zone" <<'PY'
import sys, time
import numpy as np
import xarray as xr

store, zone = sys.argv[1], sys.argv[2]
ds = xr.open_zarr(store, group=zone, consolidated=True)
print(ds)
emb, sc = ds["embeddings"], ds["scales"]
dims = emb.dims[:2]
win = {dims[0]: slice(0, 256), dims[1]: slice(0, 512)}  # two shards (4×4 px inner chunks)
t = time.perf_counter()
e = emb.isel(win).values
s = sc.isel(win).values
dt = time.perf_counter() - t
vec = e.astype(np.float32) * (s[..., None] if s.ndim == 2 else s)
land = np.isfinite(s if s.ndim == 2 else s[..., 0])
print(f"read {e.nbytes / 2**20:.0f} MiB of embeddings in {dt:.2f} s; "
      f"{land.mean():.0%} of the window has data")
print("mean dequantised vector, bands 0-7:", np.round(np.nanmean(vec[land], axis=0)[:8], 3))
PY

  step "the cache filled while reading"
  run "$bin" cache stats --cache cache

  step "unmount (Ctrl-C or SIGINT/SIGTERM unmounts cleanly)"
  tfs_unmount "$dir/mnt"
  trap - EXIT
  tail -n 2 mount.log
fi

step "materialize the same tree, with its STAC catalog, to disk"
run "$bin" materialize --tiles tiles --out out
run ls out
run find out -maxdepth 3 -name '*.json' -path '*geotessera*'
item=$(find out -name 'utm*.json' -path '*geotessera*' | sort | head -n1)
run head -c 800 "$item"
echo

step "quicklooks from global_rgb and a zone's rgb"
run "$bin" preview --tiles tiles --level 0 --out quicklook.png
z=$(ls "out/$year.zarr" | grep -m1 '^utm' | sed 's/utm//')
run "$bin" preview --tiles tiles --zone "$z" --level 1 --out "quicklook-utm$z.png"
run du -sh out cache tiles
echo
echo "demo: all in $dir"
