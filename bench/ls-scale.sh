#!/usr/bin/env bash
# Issue 14, point 7 (local half): `ukpm ls` of 10,000 local packages under 150 ms, release build.
#
# Writes a store of COUNT packages (default 10000) through the library (crates/ukpm/examples/
# ls_scale.rs: every package packed as `ukpm pack` packs it, with its own blobs; the names set
# in one write of index.json), then times `ukpm ls` in each output format, RUNS times each
# (default 10) after one warm-up run, and prints the median and the best wall-clock time.
# The store is kept in STORE (default: a folder under /tmp, reused when it already holds COUNT
# packages), so a second run measures at once.
#
#   bash bench/ls-scale.sh                 # 10,000 packages, 10 runs
#   COUNT=1000 RUNS=5 bash bench/ls-scale.sh
#   PROFILE=1 bash bench/ls-scale.sh       # also `perf record` one run (perf.data in the store)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-10000}
RUNS=${RUNS:-10}
STORE=${STORE:-/tmp/ukpm-ls-scale-$COUNT}
LIMIT_MS=${LIMIT_MS:-150}

cargo build --release --locked -q -p ukpm-cli
cargo build --release --locked -q -p ukpm --example ls_scale
ukpm=target/release/ukpm

if [ "$("$ukpm" --store "$STORE" ls --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))' 2>/dev/null)" != "$COUNT" ]; then
  rm -rf "$STORE"
  echo "writing $COUNT packages into $STORE ..."
  start=$(date +%s%N)
  target/release/examples/ls_scale "$STORE" "$COUNT"
  echo "  written in $(( ($(date +%s%N) - start) / 1000000 )) ms"
fi

# Prints the median and best of RUNS timings of a command whose stdout is thrown away.
measure() {
  local label=$1
  shift
  "$@" >/dev/null # warm-up: the page cache holds the store, as it does for anyone listing twice
  local times=()
  for _ in $(seq "$RUNS"); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
  done
  python3 - "$label" "$LIMIT_MS" "${times[@]}" <<'EOF'
import statistics, sys
label, limit, times = sys.argv[1], float(sys.argv[2]), [int(t) / 1000 for t in sys.argv[3:]]
median = statistics.median(times)
verdict = "ok" if median < limit else f"OVER {limit:.0f} ms"
print(f"{label:<28} median {median:7.1f} ms   best {min(times):7.1f} ms   ({len(times)} runs; {verdict})")
EOF
}

echo "ukpm ls of $COUNT packages ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)):"
measure "ls (table)" "$ukpm" --store "$STORE" ls
measure "ls -o list" "$ukpm" --store "$STORE" ls -o list
measure "ls --json" "$ukpm" --store "$STORE" ls --json
measure "ls --name 'bench.local/app1*'" "$ukpm" --store "$STORE" ls --name 'bench.local/app1*'
measure "ls --plat fc/arm64" "$ukpm" --store "$STORE" ls --plat fc/arm64
measure "inspect (one of them)" "$ukpm" --store "$STORE" inspect bench.local/app1:latest

if [ "${PROFILE:-}" = 1 ]; then
  perf record -g -o "$STORE/perf.data" "$ukpm" --store "$STORE" ls >/dev/null
  perf report -i "$STORE/perf.data" --no-children --stdio 2>/dev/null | head -60
fi
