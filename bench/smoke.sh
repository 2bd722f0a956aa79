#!/usr/bin/env bash
# Every benchmark scenario once at a tiny size (seconds each), so none can break unseen: the
# results go to a temporary directory and are not judged. CI runs it as root (herd and
# first-pull need network namespaces). Usage: bash bench/smoke.sh   (after `npm ci`)
set -euo pipefail
cd "$(dirname "$0")/.."

results=$(mktemp -d /tmp/shoal-bench-smoke-XXXXXX)
trap 'rm -rf "$results"' EXIT
export SHOAL_BENCH_RESULTS=$results

npx tsc -p .
run() {
  local started=$SECONDS
  echo "--- bench $*"
  node dist/bench/main.js "$@" > "$results/last.log" 2>&1 || { cat "$results/last.log"; echo "--- bench $* failed"; exit 1; }
  echo "--- bench $1 took $((SECONDS - started)) s"
}

run throughput --size-mib 16 --floor-runs 1
run min-size --sizes-mib 1
run memory --size-mib 8 --transfers 2
run latency --dht-nodes 8
run soak --minutes 0.4 --interval-s 4 --blobs 2 --blob-mib 2
if [ "$(id -u)" = 0 ]; then
  run herd --nodes 2 --size-mib 4 --rate-mbit 200
  run first-pull --nodes 3 --size-mib 4
else
  echo "--- bench herd and first-pull skipped: they need root (network namespaces)"
fi
