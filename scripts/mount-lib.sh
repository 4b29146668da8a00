# Shell functions that run `tesserafs mount` in the background, for
# scripts/demo.sh, tests/with-mount.sh and tests/bench/xarray_region.sh
# (source this file).
#
#   tfs_mount BIN LOG MOUNTPOINT [MOUNT FLAGS...]
#       starts the mount with its output in LOG and waits (up to 60 s) until
#       it serves; sets TFS_MOUNT_PID. Returns 1, with the log on stderr, if
#       the mount exits or is not ready in time.
#   tfs_unmount MOUNTPOINT
#       stops it with SIGTERM (SIGKILL after 10 s) and detaches a mount that
#       is still there. MOUNTPOINT must be absolute.

tfs_mount() {
  local bin=$1 log=$2 mp=$3
  shift 3
  mkdir -p "$mp"
  "$bin" mount "$@" "$mp" >"$log" 2>&1 &
  TFS_MOUNT_PID=$!
  for _ in $(seq 1 600); do
    grep -q "mounted at" "$log" && return 0
    if ! kill -0 "$TFS_MOUNT_PID" 2>/dev/null; then
      echo "tesserafs mount exited:" >&2
      cat "$log" >&2
      TFS_MOUNT_PID=
      return 1
    fi
    sleep 0.1
  done
  echo "the mount at $mp was not ready after 60 s:" >&2
  cat "$log" >&2
  return 1
}

tfs_unmount() {
  local mp=$1 pid=${TFS_MOUNT_PID:-}
  if [ -n "$pid" ]; then
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    TFS_MOUNT_PID=
  fi
  if grep -qs " $mp " /proc/self/mounts; then
    echo "$mp still mounted: detaching it" >&2
    fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  fi
}
