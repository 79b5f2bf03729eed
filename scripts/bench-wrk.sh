#!/usr/bin/env bash
# Generator efficiency: can loadtest push requests as fast as wrk? Both hit /poll/clock on
# the same pushpoll server, with the same connection count and duration, one after the
# other. Target: loadtest reaches at least 0.8 x wrk's requests/s.
#
#   scripts/bench-wrk.sh [CONNECTIONS] [DURATION_S]     (defaults: 64 connections, 10 s)
#
# Writes results/generator-efficiency/{README.md,wrk.txt,summary.json}. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-64}
secs=${2:-10}
out=results/generator-efficiency
mkdir -p "$out"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --workspace --locked -q

log=$(mktemp)
PUSHPOLL_MAX_REQUESTS_PER_PEER=100000 target/release/pushpoll --addr 127.0.0.1:0 --db :memory: --max-connections 100000 >"$log" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q http:// "$log" && break; sleep 0.1; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log")
# A cursor far ahead: every answer is the same small empty batch, as most of loadtest's are.
path="/poll/clock?after=9000000000000"

echo "==> wrk: $conns connections, ${secs}s, 2 threads, $url$path"
wrk -t2 -c"$conns" -d"${secs}s" --latency "$url$path" | tee "$out/wrk.txt"
wrk_rps=$(awk '/^Requests\/sec:/ {print $2}' "$out/wrk.txt")

echo "==> loadtest: $conns closed-loop short-polling clients, ${secs}s"
target/release/loadtest run --transport poll --feed clock --clients "$conns" --poll-interval 0 \
  --duration "${secs}s" --ramp 1s --url "$url" --out "$out/loadtest" >/dev/null
lt_rps=$(python3 -c "import json;print(round(json.load(open('$out/loadtest/summary.json'))['results'][0]['requests_per_s']))")
lt_cpu=$(python3 -c "import json;print(json.load(open('$out/loadtest/summary.json'))['results'][0]['loadtest_cpu_s'])")
ratio=$(python3 -c "print(round($lt_rps / $wrk_rps, 2))")
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

cat >"$out/README.md" <<MD
# Generator efficiency: loadtest vs wrk

Command: \`scripts/bench-wrk.sh $conns $secs\` — $(date -u +%Y-%m-%dT%H:%MZ).
Machine: $machine. Server, wrk and loadtest all on this machine, over loopback.

Both hit \`GET $path\` on one \`pushpoll\` (release build): wrk with 2 threads and $conns
connections, then loadtest with $conns closed-loop short-polling clients, each for ${secs} s.

| generator | requests/s | ratio to wrk |
|---|---:|---:|
| wrk | $wrk_rps | 1.00 |
| loadtest | $lt_rps | $ratio |

Target: loadtest ≥ 0.8 × wrk. loadtest's own CPU during its window: ${lt_cpu} s over ${secs} s.
On 2 cores the server and the generator share the CPU, so requests/s is bounded by both;
what this compares is how much of the machine each generator leaves to the server.
Raw output: \`wrk.txt\`, \`loadtest/summary.json\`.
MD
cat "$out/README.md"
