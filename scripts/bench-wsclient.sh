#!/usr/bin/env bash
# The load tester's WebSocket client against two crates: results/wsclient/. Loopback only
# (loadtest starts its own pushpoll on a free 127.0.0.1 port); the run stops by itself
# (3 clients × 3 rounds × (--seconds + about 3 s)).
#
#   scripts/bench-wsclient.sh [extra loadtest ws-clients flags, e.g. --connections 500]
#
# Each phase: N subscribers of one client kind (loadtest's own wsframe, fastwebsockets,
# tokio-tungstenite with a 4 KiB read buffer) on one chat room, the same open-loop publisher,
# and the CPU time (user + system) of the one thread that runs the subscribers, per message
# received. The kinds take turns, in a rotated order each round.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/machine.sh
cargo build --release -p loadtest -p pushpoll --bins --locked -q
ulimit -n "$(ulimit -Hn)"
out=results/wsclient
mkdir -p "$out"
warn_if_loaded
command="target/release/loadtest ws-clients --out $out $*"
machine_facts "$command" > "$out/machine.txt"
# shellcheck disable=SC2086
$command | tee "$out/table.md"
