#!/usr/bin/env bash
# The demo behind `make demo`, and the session README.md shows, in the
# README's order: synthesise tiles, look before building, mount the virtual
# store and read it with xarray, watch the cache fill, unmount, warm and
# clear the cache, materialize the same tree with its STAC catalog, render
# quicklooks, read the tiles over HTTP (nginx on loopback, when installed)
# through a mount and a materialize, serve the tree over HTTP and read it
# back, then plan and run a partitioned materialize.
#
#   scripts/demo.sh BIN PYTHON DIR
#
# Everything lands in DIR (tiles/, cache/, mnt/, out/, out-http/, *.log,
# quicklook*.png). Servers listen on 127.0.0.1 only, on free ports, and are
# stopped when the script exits.
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
# tfs runs the binary and shows it as `tesserafs …`, as a user would type it.
tfs() { printf '$ tesserafs %s\n' "$*"; "$bin" "$@"; }

# wait_for PATTERN LOG PID: until LOG holds PATTERN (up to 60 s); 1 if PID exits first.
wait_for() {
  local pattern=$1 log=$2 pid=$3
  for _ in $(seq 1 600); do
    grep -qs "$pattern" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "demo: no \"$pattern\" in $log after 60 s:" >&2
  cat "$log" >&2
  return 1
}

# stop PID: SIGTERM, then SIGKILL after 10 s; waits for it.
stop() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

serve_pid= nginx_pid= mounted=
cleanup() {
  stop "$serve_pid"
  stop "$nginx_pid"
  if [ -n "$mounted" ]; then tfs_unmount "$mounted"; fi
}
trap cleanup EXIT

# reachable URL: whether URL answers 200 (Python's urllib: curl may be absent).
reachable() {
  "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
}

# free_port prints a free TCP port on 127.0.0.1.
free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"

step "synthesise source tiles (deterministic; values are a known function of position)"
tfs synth --out tiles --year $year --preset demo

step "inspect: what would be built, before building anything"
tfs inspect --tiles tiles

step "mount the virtual store"
mkdir -p mnt
if [ ! -e /dev/fuse ]; then
  echo "demo: /dev/fuse is absent: skipping the mount part of the demo" >&2
else
  # shellcheck source=mount-lib.sh
  . "$here/mount-lib.sh"
  mounted=$dir/mnt
  printf '$ tesserafs mount --tiles tiles --cache cache --cache-size 2GiB mnt &\n'
  tfs_mount "$bin" mount.log "$dir/mnt" --tiles tiles --cache cache --cache-size 2GiB || exit 1
  cat mount.log
  run ls mnt "mnt/$year.zarr"

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
  tfs cache stats --cache cache

  step "unmount (Ctrl-C or SIGINT/SIGTERM unmounts cleanly)"
  printf '$ kill -INT %%1      # or Ctrl-C, or fusermount3 -u mnt\n'
  tfs_unmount "$dir/mnt"
  mounted=
  tail -n 1 mount.log
fi
tfs cache warm --tiles tiles --cache cache --zones 31
tfs cache clear --cache cache

step "materialize the same tree, with its STAC catalog, to disk"
tfs materialize --tiles tiles --out out
run ls out
printf "$ find out/geotessera-%s -name '*.json'\n" $year
find "out/geotessera-$year" -name '*.json' | sort
item=$(find out -name 'utm*.json' -path '*geotessera*' | sort | head -n1)
printf '$ python  # the STAC item %s, in brief\n' "$item"
"$py" - "$item" <<'PY'
import json, sys
it = json.load(open(sys.argv[1]))
p = it["properties"]
print("id", it["id"], "bbox", [round(v, 3) for v in it["bbox"]], p["proj:code"],
      f'{p["grid_width"]} x {p["grid_height"]} px')
for k, a in it["assets"].items():
    print(f"  asset {k}: {a['href']}")
print("  tessera:rgb_stretch", p["tessera:rgb_stretch"])
PY

step "quicklooks from global_rgb and a zone's rgb"
tfs preview --tiles tiles --out quicklook.png
tfs preview --tiles tiles --level 3 --out quicklook-3.png
tfs preview --tiles tiles --zone 30 --level 1 --out quicklook-utm30.png

step "read the tiles over HTTP: nginx on loopback serves tiles/, materialize fetches only the byte ranges it needs"
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "demo: nginx is not installed: skipping remote tiles" >&2
else
  ngx=$(command -v nginx || echo /usr/sbin/nginx)
  port=$(free_port)
  mkdir -p nginx
  user=""
  [ "$(id -u)" = 0 ] && user="user root;"
  cat >nginx/nginx.conf <<EOF
$user
daemon off;
worker_processes 1;
error_log $dir/nginx/error.log warn;
pid $dir/nginx/nginx.pid;
events { worker_connections 64; }
http {
  access_log $dir/nginx/access.log;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$port;
    location /v1/ { alias $dir/tiles/; }
  }
}
EOF
  "$ngx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" >nginx/stdout.log 2>&1 &
  nginx_pid=$!
  root="http://127.0.0.1:$port/v1/"
  for _ in $(seq 1 100); do
    reachable "${root}registry.parquet" && break
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! reachable "${root}registry.parquet"; then
    echo "demo: nginx did not start: skipping remote tiles" >&2
    cat nginx/error.log nginx/stdout.log >&2 || true
    stop "$nginx_pid"
    nginx_pid=
  else
    echo "(nginx serves $dir/tiles at $root)"
    if [ -e /dev/fuse ]; then
      mounted=$dir/rmnt
      printf '$ tesserafs mount --tiles %s --cache rcache --cache-size 2GiB rmnt &\n' "$root"
      tfs_mount "$bin" rmount.log "$dir/rmnt" --tiles "$root" --cache rcache --cache-size 2GiB || exit 1
      cat rmount.log
      shard="rmnt/$year.zarr/utm30/embeddings/c/0/0/0"
      TIMEFORMAT='%R s'
      : >nginx/access.log
      printf '$ time cat %s | wc -c   # first read: generated\n' "$shard"
      time { cat "$shard" | wc -c; }
      echo "# nginx logged $(grep -c '" 206 ' nginx/access.log || true) ranged GETs for it"
      printf '$ time cat %s | wc -c   # again: from the cache\n' "$shard"
      time { cat "$shard" | wc -c; }
      printf '$ kill %%1\n'
      tfs_unmount "$dir/rmnt"
      mounted=
      tail -n 2 rmount.log
    fi
    : >nginx/access.log
    tfs materialize --tiles "$root" --out out-http
    printf '$ diff -r out out-http && echo identical\n'
    diff -r out out-http && echo identical
    gets=$(wc -l <nginx/access.log)
    ranged=$(grep -c '" 206 ' nginx/access.log || true)
    echo "nginx answered $gets requests ($ranged of them ranged)"
    stop "$nginx_pid"
    nginx_pid=
  fi
fi

step "serve the same tree over HTTP (the map viewer is at /)"
printf '$ tesserafs serve --tiles tiles --cache cache --addr 127.0.0.1:0 &\n'
"$bin" serve --tiles tiles --cache cache --addr 127.0.0.1:0 >serve.log 2>serve.err &
serve_pid=$!
wait_for 'tesserafs: serving http' serve.log "$serve_pid" || exit 1
cat serve.log
url=$(grep -o -m1 'http://[^ ]*/' serve.log)
key="$year.zarr/utm30/embeddings/c/0/0/0"
if command -v curl >/dev/null; then
  printf "$ curl -s -D - -o /dev/null -H 'Range: bytes=-65540' %s%s\n" "$url" "$key"
  curl -s -D - -o /dev/null -H 'Range: bytes=-65540' "$url$key" | tr -d '\r' | grep -v '^Date:'
else
  echo "demo: curl is not installed: skipping the range request" >&2
fi
printf '$ python  # xarray.open_zarr("%s%s.zarr", group="utm30"), compared with out/\n' "$url" "$year"
"$py" - "$url$year.zarr" "out/$year.zarr" <<'PY'
import sys
import numpy as np
import xarray as xr

http = xr.open_zarr(sys.argv[1], group="utm30", consolidated=True)
disk = xr.open_zarr(sys.argv[2], group="utm30", consolidated=True)
win = dict(northing=slice(0, 256), easting=slice(0, 256))
a = http.embeddings.isel(win).values
b = disk.embeddings.isel(win).values
print(f"read {a.shape} {a.dtype} over HTTP:",
      "equal to the materialized store" if np.array_equal(a, b) else "DIFFERENT from the materialized store")
PY
echo "the map viewer: open $url in a browser while serve runs"
echo "  (from another machine: ssh -L 8080:127.0.0.1:8080 host, with serve on its default 127.0.0.1:8080)"
printf '$ kill -TERM %%1      # or Ctrl-C\n'
stop "$serve_pid"
serve_pid=
cat serve.log | tail -n 1

step "plan and run a partitioned materialize (each partition is one machine's share; see docs/scale-out.md)"
tfs plan --tiles tiles --partitions 2
printf '$ for ph in zones global0 global; do for i in 0 1; do\n>   tesserafs materialize --tiles tiles --out parts --phase $ph --partition $i/2\n> done; done\n'
for ph in zones global0 global; do for i in 0 1; do
  "$bin" materialize --tiles tiles --out parts --phase $ph --partition $i/2
done; done
tfs materialize --tiles tiles --out parts --finalize --partitions 2
printf '$ diff -r out parts && echo identical\n'
diff -r out parts && echo identical

run du -sh out cache tiles
echo
echo "demo: all in $dir"
