#!/usr/bin/env bash
# The committed baselines in results/: the default compare, then scale runs on this
# machine with the load tester beside the server. Loopback only; every run stops by itself.
#
#   scripts/bench-scale.sh [compare|push|poll|longpoll|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
cargo build --release --workspace --locked -q
lt=target/release/loadtest
ulimit -n "$(ulimit -Hn)"

if [[ $what == compare || $what == all ]]; then
  echo "==> compare at the default workload (200 clients, 20 msg/s, 20 s)"
  $lt compare --out results/compare-default
fi

if [[ $what == push || $what == all ]]; then
  for t in sse ws iframe; do
    echo "==> $t: 10,000 chat subscribers, 10 msg/s"
    $lt run --transport "$t" --clients 10000 --rate 10 --duration 20s --ramp 10s --out "results/scale-$t-10k"
  done
fi

if [[ $what == poll || $what == all ]]; then
  echo "==> poll: 10,000 clients, 1 s interval, 10 msg/s"
  $lt run --transport poll --clients 10000 --rate 10 --duration 20s --ramp 10s --poll-interval 1s --out results/scale-poll-10k
fi

if [[ $what == longpoll || $what == all ]]; then
  # Raise the client count until long polling's p99 passes 1 s.
  for n in 1000 2000 4000 6000 8000 10000; do
    echo "==> longpoll: $n clients, 10 msg/s"
    $lt run --transport longpoll --clients "$n" --rate 10 --duration 20s --ramp 10s --out "results/scale-longpoll-$n"
    p99=$(python3 -c "import json;print(json.load(open('results/scale-longpoll-$n/summary.json'))['results'][0]['latency_us']['p99'])")
    echo "    p99 = $((p99 / 1000)) ms"
    if (( p99 > 1000000 )); then break; fi
  done
fi
