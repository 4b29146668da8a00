#!/usr/bin/env bash
# Runs a command with a tiles root also served by `tesserafs mount`, so that
# the interop suite reads the mount as well as the materialized tree.
#
#   tests/with-mount.sh BIN TILES WORKDIR COMMAND [ARGS...]
#
# Mounts TILES at WORKDIR/mnt (cache in WORKDIR/cache, log in
# WORKDIR/mount.log) in the background, waits until it serves, runs COMMAND
# with "mount=WORKDIR/mnt" appended to TESSERAFS_ROOTS, then unmounts with
# SIGTERM — also when COMMAND fails or the script is interrupted — and makes
# sure no mount is left behind. Exits with COMMAND's status.
#
# Without /dev/fuse the mount cannot be tested: COMMAND runs on the other
# roots alone, after a loud warning (TESSERAFS_REQUIRE_MOUNT=1 makes that a
# failure instead).
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 BIN TILES WORKDIR COMMAND [ARGS...]" >&2
  exit 2
fi
bin=$1 tiles=$2 work=$3
shift 3

if [ ! -e /dev/fuse ]; then
  echo "with-mount: /dev/fuse is absent: the mount is NOT tested on this machine" >&2
  if [ "${TESSERAFS_REQUIRE_MOUNT:-0}" = 1 ]; then exit 1; fi
  exec "$@"
fi

mp=$work/mnt
log=$work/mount.log
mkdir -p "$mp"
"$bin" mount --tiles "$tiles" --cache "$work/cache" --cache-size 2GiB "$mp" >"$log" 2>&1 &
pid=$!

unmount() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  if grep -qs " $mp " /proc/self/mounts; then
    echo "with-mount: $mp still mounted: detaching it" >&2
    fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  fi
}
trap unmount EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 600); do
  grep -q "mounted at" "$log" && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "with-mount: tesserafs mount exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if ! grep -q "mounted at" "$log"; then
  echo "with-mount: the mount was not ready after 60 s:" >&2
  cat "$log" >&2
  exit 1
fi
echo "with-mount: $(grep -m1 'mounted at' "$log")"

export TESSERAFS_ROOTS="${TESSERAFS_ROOTS:+$TESSERAFS_ROOTS:}mount=$mp"
rc=0
"$@" || rc=$?
unmount
trap - EXIT
echo "with-mount: unmounted $mp; mount log: $log"
grep -h "unmounted" "$log" || true
exit "$rc"
