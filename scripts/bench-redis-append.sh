#!/usr/bin/env bash
# What one Redis costs the cluster per chat message: the append script of src/engine/redis/scripts.rs
# (take the next id, XADD to the log and the room's history, PUBLISH to every node) driven by
# redis-benchmark, with AOF `appendfsync always` and without persistence, with 20 connections
# appending at once (and 1, 3 and 10 subscribers on the `events` channel standing for nodes) and
# with one connection (one append at a time, as a lightly loaded chat writes). Redis is pinned to core 0,
# redis-benchmark and the subscribers to core 1 (with 2 or more cores).
#
#   scripts/bench-redis-append.sh [--out DIR]     (default results/scale-out/redis-append)
#
# Writes DIR/append.csv (persistence, connections, subscribers, appends/s, Redis CPU µs per
# append, p50 ms)
# and DIR/machine.txt. Starts its own redis-server on a free port in a temporary directory and
# stops it; touches nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/scale-out/redis-append
[ "${1:-}" = --out ] && out=$2
mkdir -p "$out"
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is missing: apt-get install redis-server" >&2; exit 1; }

work=$(mktemp -d)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pin_server=(); pin_load=()
if [ "$(nproc)" -ge 2 ]; then pin_server=(taskset -c 0); pin_load=(taskset -c 1); fi

# The script exactly as the server sends it: the shared prelude, then APPEND's body.
python3 - "$work/append.lua" <<'PY'
import re, sys
s = open("src/engine/redis/scripts.rs").read()
pre = re.search(r'macro_rules! prelude \{.*?r#"(.*?)"#', s, re.S).group(1)
body = re.search(r'pub const APPEND: &str = concat!\(\s*prelude!\(\),\s*r#"(.*?)"#', s, re.S).group(1)
open(sys.argv[1], "w").write(pre + body)
PY
# A message event's JSON after `{"id":N,` as a node sends it (170 bytes in all with the id).
tail='"ts":1796067548356253,"type":"message","room":"lobby","from":"alice","text":"a message of about sixty bytes, typical of the chat tests here"}'

{
  echo "date: $(date -u +%FT%TZ)"
  echo "command: scripts/bench-redis-append.sh $*"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "redis: $(redis-server --version)"
  echo "pinning: redis-server ${pin_server[*]:-none}; redis-benchmark and subscribers ${pin_load[*]:-none}"
  echo "load: redis-benchmark -c C -n 100000 EVALSHA (C connections, one append each at a time)"
} > "$out/machine.txt"

echo "persistence,connections,subscribers,appends_per_s,redis_cpu_us_per_append,p50_ms" > "$out/append.csv"
for persistence in always none; do
  for run in "1 1" "20 1" "20 3" "20 10"; do
    read -r connections subscribers <<< "$run"
    rm -rf "$work/data"; mkdir "$work/data"
    if [ "$persistence" = always ]; then aof=(--appendonly yes --appendfsync always); else aof=(--appendonly no); fi
    "${pin_server[@]}" redis-server --port "$port" --bind 127.0.0.1 --dir "$work/data" --save '' "${aof[@]}" \
      --daemonize yes --pidfile "$work/data/pid" --logfile "$work/data/log"
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    sha=$(redis-cli -p "$port" script load "$(cat "$work/append.lua")")
    for _ in $(seq "$subscribers"); do
      "${pin_load[@]}" redis-cli -p "$port" subscribe pushpoll:events >/dev/null &
    done
    sleep 0.3
    pid=$(cat "$work/data/pid")
    ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
    before=$(ticks)
    line=$("${pin_load[@]}" redis-benchmark -p "$port" -c "$connections" -n 100000 -q \
      EVALSHA "$sha" 0 pushpoll: 0 1796067548356253 message r:lobby "$tail" lobby 100000 2>&1 \
      | tr '\r' '\n' | grep 'requests per second' | tail -1)
    after=$(ticks)
    rate=$(echo "$line" | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/')
    p50=$(echo "$line" | sed -E 's/.*p50=([0-9.]+) msec.*/\1/')
    hz=$(getconf CLK_TCK)
    us=$(python3 -c "print(round(($after - $before) / $hz * 1e6 / 100000, 1))")
    echo "$persistence,$connections,$subscribers,$rate,$us,$p50" | tee -a "$out/append.csv"
    kill $(jobs -p) 2>/dev/null || true
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    sleep 0.3
  done
done
echo "wrote $out/append.csv"
