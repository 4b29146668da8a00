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

mkdir -p "$work"
work=$(cd "$work" && pwd)
mp=$work/mnt
log=$work/mount.log
# shellcheck source=../scripts/mount-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/mount-lib.sh"
trap 'tfs_unmount "$mp"' EXIT
trap 'exit 130' INT TERM
tfs_mount "$bin" "$log" "$mp" --tiles "$tiles" --cache "$work/cache" --cache-size 2GiB || exit 1
echo "with-mount: $(grep -m1 'mounted at' "$log")"

export TESSERAFS_ROOTS="${TESSERAFS_ROOTS:+$TESSERAFS_ROOTS:}mount=$mp"
rc=0
"$@" || rc=$?
tfs_unmount "$mp"
trap - EXIT
echo "with-mount: unmounted $mp; mount log: $log"
grep -h "unmounted" "$log" || true
exit "$rc"
