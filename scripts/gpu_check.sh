#!/usr/bin/env bash
# The prepared GPU check (issue 14): one bounded run, one JSON, one table.  Run it from anywhere:
#
#   bash scripts/gpu_check.sh                 # writes $OUT/gpu_check.json and $OUT/gpu_check.log
#   DEADLINE=300 bash scripts/gpu_check.sh --parts softnms_correctness,softnms_speed
#
# OUT defaults to bench/results (git-ignored).  The check stops cleanly at DEADLINE seconds
# (default 480), its watchdog ends it 20 s later; `timeout` is the last stop 60 s after that.
# Exit status: 0 all parts ran or were skipped with a reason, 1 a part failed or the fused
# Soft-NMS kernel differs from the reference, 2 the JSON broke its schema, 3 watchdog, 124 timeout.
set -u
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
deadline="${DEADLINE:-480}"
py="$(command -v python || command -v python3)"
mkdir -p "$out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv \
    > "$out/gpu_check.log" 2>&1
timeout -k 5 "$((${deadline%.*} + 80))" "$py" -m bench.gpu_check --out "$out/gpu_check.json" --deadline "$deadline" "$@" \
    2>&1 | tee -a "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
