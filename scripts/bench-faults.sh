#!/usr/bin/env bash
# Failures measured: results/churn/ and results/storm/. Loopback only (loadtest starts its
# own server per transport on a free 127.0.0.1 port); every run stops by itself (about 6
# minutes in all on 2 cores).
#
#   scripts/bench-faults.sh [churn|storm|all]   (default: all)
#
# churn: a baseline with the clients tagged but nothing broken (--churn 0), then 5 % of the
#        clients broken per second; the extra requests and bytes are charged against the
#        baseline.
# storm: every client broken at once 5 s into a 10 s window, with the default full-jitter
#        backoff and with --no-jitter.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
cargo build --release -p loadtest -p pushpoll --bins --locked -q
lt=target/release/loadtest
ulimit -n "$(ulimit -Hn)"
clients=200
rate=20
machine="$(nproc) cores, Linux $(uname -r), $(rustc --version)"

if [[ $what == churn || $what == all ]]; then
  mkdir -p results/churn
  echo "==> churn baseline: $clients clients, $rate msg/s, 20 s, tagged, nothing broken"
  $lt compare --clients $clients --rate $rate --duration 20s --churn 0 --out results/churn/baseline
  echo "==> churn 0.05/s"
  $lt compare --clients $clients --rate $rate --duration 20s --churn 0.05 \
    --baseline results/churn/baseline --out results/churn/run | tee results/churn/table.txt
  $lt charts results/churn   # recovery.svg, from run/
  echo "$machine" > results/churn/machine.txt
fi

if [[ $what == storm || $what == all ]]; then
  mkdir -p results/storm
  echo "==> storm at 5 s, full jitter"
  $lt compare --clients $clients --rate $rate --duration 10s --storm 5s \
    --out results/storm/jitter | tee results/storm/table-jitter.txt
  echo "==> storm at 5 s, no jitter"
  $lt compare --clients $clients --rate $rate --duration 10s --storm 5s --no-jitter \
    --out results/storm/no-jitter | tee results/storm/table-no-jitter.txt
  $lt charts results/storm   # storm.svg, from jitter/ and no-jitter/
  echo "$machine" > results/storm/machine.txt
fi
