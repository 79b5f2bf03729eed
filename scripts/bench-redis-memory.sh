#!/usr/bin/env bash
# What one kept chat message costs Redis in memory: the append script of src/engine/redis/scripts.rs
# (exactly as the server sends it) driven by redis-benchmark into an empty Redis, N room
# messages of each size, then `MEMORY USAGE` of the log and of the room's history (SAMPLES 0:
# every element counted) and `INFO memory`'s used_memory before and after. Sizes are the
# event's JSON as stored, `{"id":…,"ts":…,"type":"message","room":"lobby","from":"alice",
# "text":…}`, with a one-digit id (ids here reach N, so each stored event is up to
# ${#N} - 1 bytes longer): 170 bytes (a short chat line, the size the older figures used),
# 1 KiB, 8 KiB, and 12 KiB, about the largest event a client can make (2000 characters that
# JSON escapes to 6 bytes each, `\u0001`; docs/API.md's byte budget).
#
#   scripts/bench-redis-memory.sh [--out DIR] [--scripts FILE] [--n N]
#
# --scripts measures another version of the scripts (`git show REV:src/engine/redis/scripts.rs >
# FILE`); --n sets the messages per size (default 20000, below the default retention of
# 100000, so nothing is trimmed). Writes DIR/memory.csv (default results/scale-out/redis-memory)
# and DIR/machine.txt. Starts its own redis-server (no persistence: memory is the question) on
# a free port in a temporary directory and stops it; touches nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/machine.sh
out=results/scale-out/redis-memory
scripts=src/engine/redis/scripts.rs
n=20000
args="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --scripts) scripts=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is missing: apt-get install redis-server" >&2; exit 1; }

work=$(mktemp -d)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# The script as the server sends it: the shared prelude, then APPEND's body.
python3 - "$scripts" "$work/append.lua" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
pre = re.search(r'macro_rules! prelude \{.*?r#"(.*?)"#', s, re.S).group(1)
body = re.search(r'pub const APPEND: &str = concat!\(\s*prelude!\(\),\s*r#"(.*?)"#', s, re.S).group(1)
open(sys.argv[2], "w").write(pre + body)
PY

{
  machine_facts "scripts/bench-redis-memory.sh $args"
  echo "redis: $(redis-server --version)"
  echo "scripts: $scripts ($(sha256sum "$scripts" | cut -c1-12))"
  echo "load: redis-benchmark -c 1 -P 16 -n $n EVALSHA (APPEND) per size, into an empty Redis (FLUSHALL, no persistence)"
} > "$out/machine.txt"

redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  --daemonize yes --pidfile "$work/pid" --logfile "$work/log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
sha=$(redis-cli -p "$port" script load "$(cat "$work/append.lua")")
used() { redis-cli -p "$port" info memory | tr -d '\r' | awk -F: '/^used_memory:/{print $2}'; }
usage() { redis-cli -p "$port" memory usage "$1" samples 0; }

echo "event_bytes,messages,log_entries,log_bytes_per_message,room_entries,room_bytes_per_message,used_memory_per_message" > "$out/memory.csv"
for size in 170 1024 8192 12288; do
  head='{"id":0,'
  prefix='"ts":1796067548356253,"type":"message","room":"lobby","from":"alice","text":"'
  pad=$((size - ${#head} - ${#prefix} - 2))
  tail="$prefix$(head -c "$pad" /dev/zero | tr '\0' 'x')\"}"
  [ $((${#head} + ${#tail})) -eq "$size" ] || { echo "built a ${#tail}-byte tail for $size" >&2; exit 1; }
  redis-cli -p "$port" flushall >/dev/null
  sleep 0.2
  before=$(used)
  redis-benchmark -p "$port" -c 1 -P 16 -n "$n" -q \
    EVALSHA "$sha" 0 pushpoll: 0 1796067548356253 message r:lobby "$tail" lobby 100000 >/dev/null
  after=$(used)
  log_entries=$(redis-cli -p "$port" xlen pushpoll:log)
  room_entries=$(redis-cli -p "$port" xlen pushpoll:room:lobby)
  log=$(usage pushpoll:log)
  room=$(usage pushpoll:room:lobby)
  python3 - "$size" "$n" "$log_entries" "$log" "$room_entries" "$room" "$before" "$after" <<'PY' | tee -a "$out/memory.csv"
import sys
size, n, le, log, re_, room, before, after = map(int, sys.argv[1:])
print(f"{size},{n},{le},{log / le:.0f},{re_},{room / re_:.0f},{(after - before) / n:.0f}")
PY
done
echo "wrote $out/memory.csv"
