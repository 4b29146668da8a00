#!/bin/bash
# Run a partitioned materialize on Kubernetes: the phases in order, each an
# Indexed Job applied only once the one before has the condition Complete
# (Kubernetes has no dependencies between Jobs), then the finalize Job.
#
#   deploy/k8s/run.sh [-n NAMESPACE] [--timeout 48h]
#
# Before: build and push the image (Dockerfile here; set `image:` in the
# job-*.yaml files), edit configmap.yaml, and create the Secret
# tesserafs-s3 (see secret.yaml). Rerunning is safe: finished Jobs of an
# earlier run are deleted and their pods write nothing twice (every object
# already in the store is skipped).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The order of the phases; each runs when the one before is complete.
PHASES=(zones global0 global finalize)
ns=() timeout=48h
while [[ $# -gt 0 ]]; do
  case $1 in
    -n|--namespace) ns=(-n "$2"); shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
k() { kubectl "${ns[@]}" "$@"; }

# TFS_PARTITIONS must be the Jobs' completions, or indexes would be missed.
partitions=$(sed -n 's/^ *TFS_PARTITIONS: *"\([0-9]*\)".*/\1/p' "$here/configmap.yaml")
for p in "${PHASES[@]:0:3}"; do
  c=$(sed -n 's/^ *completions: *\([0-9]*\).*/\1/p' "$here/job-$p.yaml")
  if [[ $c != "$partitions" ]]; then
    echo "run.sh: job-$p.yaml has completions: $c but configmap.yaml TFS_PARTITIONS is $partitions" >&2
    exit 2
  fi
done
if ! k get secret tesserafs-s3 >/dev/null; then
  echo "run.sh: create the Secret tesserafs-s3 first (see $here/secret.yaml)" >&2
  exit 2
fi
k apply -f "$here/configmap.yaml"

for p in "${PHASES[@]}"; do
  job=tesserafs-$p
  # A Job's pod template cannot change: replace the Job of an earlier run.
  k delete job "$job" --ignore-not-found --wait=true
  k apply -f "$here/job-$p.yaml"
  echo "run.sh: waiting for $job"
  # Complete or Failed, whichever comes first.
  k wait --for=condition=complete --timeout="$timeout" "job/$job" &
  ok=$!
  k wait --for=condition=failed --timeout="$timeout" "job/$job" >/dev/null &
  failed=$!
  wait -n "$ok" "$failed" || true
  if k get "job/$job" -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}' | grep -q True; then
    kill "$failed" 2>/dev/null || true
    continue
  fi
  kill "$ok" "$failed" 2>/dev/null || true
  echo "run.sh: $job did not complete; its failed pods:" >&2
  k get pods -l "job-name=$job" --field-selector=status.phase=Failed >&2 || true
  echo "run.sh: see kubectl logs -l job-name=$job; fix it and run again (written objects are kept)" >&2
  exit 1
done
echo "run.sh: done; the store is published at $(sed -n 's/^ *TFS_OUT: *"\(.*\)".*/\1/p' "$here/configmap.yaml")"
