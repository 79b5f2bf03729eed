#!/usr/bin/env bash
# Compare global allocators by the server's RSS after a spike of SSE streams.
#
# Builds the release server once per allocator feature, then for each candidate starts it on
# 127.0.0.1, opens N SSE streams (scripts/alloc-spike.py), holds them, closes them and reads
# VmRSS before, at peak and AFTER_S seconds after the close. Every run is bounded (timeout).
# Usage: scripts/alloc-compare.sh [N] [HOLD_S] [AFTER_S]   (defaults 10000 5 10)
# Output: a markdown table on stdout; raw JSON lines in target/alloc/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
HOLD_S=${2:-5}
AFTER_S=${3:-10}
PORT=${PORT:-39411}
out=target/alloc
mkdir -p "$out"
: > "$out/results.jsonl"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

build() { # feature-args... -> copies the binary to $out/pushpoll-$name
  local name=$1; shift
  cargo build --release -q -p pushpoll --bin pushpoll "$@"
  cp target/release/pushpoll "$out/pushpoll-$name"
}
build glibc --no-default-features
build mimalloc --no-default-features --features mimalloc
build jemalloc --no-default-features --features jemalloc

# The glibc `malloc_trim` candidate without changing the server: a preloaded library whose
# thread calls malloc_trim(0) once a second (what a periodic task in the server would do).
cat > "$out/trim.c" <<'C'
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>
static void *trimmer(void *arg) { (void)arg; for (;;) { sleep(1); malloc_trim(0); } return 0; }
__attribute__((constructor)) static void start(void) { pthread_t t; pthread_create(&t, 0, trimmer, 0); pthread_detach(t); }
C
cc -O2 -shared -fPIC -o "$out/trim.so" "$out/trim.c" -lpthread

server_pid=
trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true' EXIT

run() { # name binary env... : one bounded measurement
  local name=$1 bin=$2; shift 2
  # `env` execs the server, so $! is the server's own pid (whose VmRSS is read). It is
  # killed below once the bounded measurement (timeout 120) returns.
  env "$@" "$bin" --addr "127.0.0.1:$PORT" --db :memory: >/dev/null 2>"$out/$name.log" &
  local pid=$!
  server_pid=$pid
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local line
  line=$(timeout 120 python3 scripts/alloc-spike.py "$PORT" "$pid" "$N" "$HOLD_S" "$AFTER_S" || echo '{"error":"timed out"}')
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "{\"allocator\":\"$name\",${line#\{}" >> "$out/results.jsonl"
  sleep 2
}
run glibc "$out/pushpoll-glibc"
run glibc-trim "$out/pushpoll-glibc" GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072
run glibc-malloc_trim-1s "$out/pushpoll-glibc" LD_PRELOAD="$PWD/$out/trim.so"
run mimalloc "$out/pushpoll-mimalloc"
run jemalloc "$out/pushpoll-jemalloc"

echo "| allocator | streams opened | RSS before | RSS peak | RSS ${AFTER_S} s after close |"
echo "|---|---|---|---|---|"
python3 - "$out/results.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    mb = lambda kb: f"{kb / 1024:.1f} MB"
    print(f"| {r['allocator']} | {r['opened']} (failed {r['failed']}) | {mb(r['before_kb'])} | {mb(r['peak_kb'])} | {mb(r['after_kb'])} |")
PY
