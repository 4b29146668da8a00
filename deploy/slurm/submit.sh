#!/bin/bash
# Submit a partitioned materialize to Slurm: one job array per phase
# (zones, global0, global; N tasks each), each waiting for the previous one
# with --dependency=afterok, then one finalize job. A failed task cancels
# everything after it (--kill-on-invalid-dep=yes); fix the cause and submit
# again: what is already written is skipped.
#
#   deploy/slurm/submit.sh --tiles ROOT --out DIR|s3://bucket/prefix/ [options] [-- tesserafs flags]
#
#   --tiles ROOT        tiles root: a directory every node sees, or http(s)://, s3://
#   --out OUT           output: a shared directory, or s3://bucket/prefix/
#   --partitions N      tasks per phase (default 4); see docs/scale-out.md for sizing
#   --workers W         workers (and CPUs) per task (default 2)
#   --mem MEM           memory per data task (default 2G: ~128 MiB + 40 MiB per worker
#                       of heap, the shards in flight, 512 MiB of remote-tile cache
#                       (-- --source-cache-size BYTES) and the plan; docs/scale-out.md)
#   --time T            time limit of a zones task (default 24:00:00)
#   --bin PATH          tesserafs binary on a path every node sees (default: from PATH)
#   --logs DIR          job logs, one file per task (default ./tesserafs-logs)
#   --scratch DIR       node-local scratch (TMPDIR of the tasks; default: the node's)
#   --allow-skipped     do not fail a task whose tiles were skipped (exit status 3)
#   --sbatch ARG        extra sbatch option for every job (repeatable), e.g. --sbatch=--account=geo
#   --no-plan           do not run "tesserafs plan" before submitting
#   -- FLAGS            extra tesserafs flags for every task, e.g. -- --year 2024
#                       --source-cache-size 268435456 --registry URL (no spaces inside a flag)
#
# S3 output: the tasks inherit this shell's environment (sbatch --export=ALL):
# AWS_ENDPOINT_URL, AWS_REGION and AWS_PROFILE with a credentials file on
# the shared home are the safe way; AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
# in the environment work too, but Slurm keeps a job's environment in its
# spool, readable by the cluster's administrators.
#
# Prints the job ids, last line: zones=ID global0=ID global=ID finalize=ID
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tiles= out= partitions=4 workers=2 mem=2G time=24:00:00 bin= logs=./tesserafs-logs
scratch= allow_skipped=0 plan=1
extra_sbatch=()

die() { echo "submit.sh: $*" >&2; exit 2; }
need() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --tiles) need "$@"; tiles=$2; shift 2 ;;
    --out) need "$@"; out=$2; shift 2 ;;
    --partitions) need "$@"; partitions=$2; shift 2 ;;
    --workers) need "$@"; workers=$2; shift 2 ;;
    --mem) need "$@"; mem=$2; shift 2 ;;
    --time) need "$@"; time=$2; shift 2 ;;
    --bin) need "$@"; bin=$2; shift 2 ;;
    --logs) need "$@"; logs=$2; shift 2 ;;
    --scratch) need "$@"; scratch=$2; shift 2 ;;
    --sbatch) need "$@"; extra_sbatch+=("$2"); shift 2 ;;
    --sbatch=*) extra_sbatch+=("${1#--sbatch=}"); shift ;;
    --allow-skipped) allow_skipped=1; shift ;;
    --no-plan) plan=0; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -n $tiles ]] || die "--tiles is required"
[[ -n $out ]] || die "--out is required"
[[ $partitions =~ ^[1-9][0-9]*$ ]] || die "--partitions $partitions: want a positive integer"
[[ $workers =~ ^[1-9][0-9]*$ ]] || die "--workers $workers: want a positive integer"

# The tasks run elsewhere, maybe in another directory: make paths absolute.
abs() { case $1 in /*|*://*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
tiles=$(abs "$tiles")
out=$(abs "$out")
if [[ -z $bin ]]; then
  bin=$(command -v tesserafs) || die "tesserafs is not on PATH: give --bin"
fi
bin=$(abs "$bin")
[[ -x $bin ]] || die "--bin $bin is not executable"
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)

export TFS_TILES=$tiles TFS_OUT=$out TFS_PARTITIONS=$partitions TFS_WORKERS=$workers
export TFS_BIN=$bin TFS_SCRATCH=$scratch TFS_ALLOW_SKIPPED=$allow_skipped TFS_ARGS="$*"

if [[ $plan == 1 ]]; then
  # Reads the index only: checks the tiles root before anything is queued,
  # and prints what each partition will write.
  # shellcheck disable=SC2086
  "$bin" plan --tiles "$tiles" --partitions "$partitions" $TFS_ARGS
fi

common=(--parsable --kill-on-invalid-dep=yes --export=ALL "${extra_sbatch[@]}")
array=(--array="0-$((partitions - 1))" --cpus-per-task="$workers" --mem="$mem")
submit() { sbatch "${common[@]}" "$@" | cut -d';' -f1; }

zones=$(submit "${array[@]}" --time="$time" --output="$logs/%x-%A_%a.log" "$here/zones.sbatch")
global0=$(submit "${array[@]}" --dependency="afterok:$zones" --output="$logs/%x-%A_%a.log" "$here/global0.sbatch")
global=$(submit "${array[@]}" --dependency="afterok:$global0" --output="$logs/%x-%A_%a.log" "$here/global.sbatch")
finalize=$(submit --dependency="afterok:$global" --output="$logs/%x-%j.log" "$here/finalize.sbatch")
echo "logs in $logs; follow with: squeue -j $zones,$global0,$global,$finalize"
echo "zones=$zones global0=$global0 global=$global finalize=$finalize"
