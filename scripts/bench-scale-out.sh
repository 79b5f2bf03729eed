#!/usr/bin/env bash
# pushpoll on 1, 2 and 3 nodes sharing one Redis, at the same workload,
# and a baseline row: 1 node without Redis (the embedded SQLite path).
#
#   scripts/bench-scale-out.sh [--quick] [--out DIR] [--clients N] [--rate R]
#
#   --quick    100 subscribers in all, 5 s windows (about 2 minutes), to check the machinery;
#              the full run is 1,000 subscribers in all, 10 msg/s, 20 s windows (about 5
#              minutes).
#   --out DIR  where everything goes (default results/scale-out).
#   --clients N, --rate R  another workload: N subscribers in all, R messages/s (the
#              message-heavy run of results/scale-out uses --clients 100 --rate 500, where
#              Redis's share per message shows).
#
# For each setup (0-redis, 1-nodes, 2-nodes, 3-nodes) and each transport (sse, ws), fresh
# processes: a redis-server in its own temporary directory on a free loopback port (not for
# 0-redis), then the N nodes (`pushpoll --addr 127.0.0.1:0 --redis redis://127.0.0.1:PORT
# --db :memory:`, each URL read from its first stdout line), then one `loadtest run` with a
# `--url` per node (subscriber i on node i mod N, the publisher on the first) and
# `--redis-pid`, and everything is stopped before the next measurement starts.
#
# Redis persistence: AOF with `appendfsync always` (every write fsynced before Redis answers),
# the setting under which an acknowledged message survives a kill -9 of Redis; RDB snapshots off (`save ""`). So the Redis rows pay for the strictest durability.
#
# Pinning, when the machine has 2 or more cores: Redis and every node on core 0, the load
# tester on core 1 (`taskset -c`), as scripts/bench-peers.sh pins its server and generators.
# On one machine this measures what the Redis path costs, not added capacity: every node
# and Redis share the one core.
#
# Output: DIR/machine.txt; DIR/SETUP/TRANSPORT/ with loadtest's files (summary.json, .csv,
# .md: the per-node table and the Redis process's CPU), command.txt (the load tester's command
# line), nodes.txt (each node's URL, pid and command) and redis.txt (its version, port and
# persistence settings); DIR/scale-out.csv: one line per run, from the summaries.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/machine.sh
. scripts/lib/machine.sh
root=$(pwd)
invocation="scripts/bench-scale-out.sh $*"

usage() {
  echo "usage: $0 [--quick] [--out DIR] [--clients N] [--rate R]" >&2
  exit 2
}
quick=0
out=results/scale-out
want_clients=""
want_rate=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --clients) [ $# -ge 2 ] || usage; want_clients="$2"; shift 2 ;;
    --rate) [ $# -ge 2 ] || usage; want_rate="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done

command -v redis-server >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}
command -v redis-cli >/dev/null || { echo "error: redis-cli is missing" >&2; exit 1; }
cargo build --release --workspace --locked -q
bin=${PUSHPOLL_BIN:-target/release/pushpoll}
[ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 1; }
lt="$root/target/release/loadtest"
ulimit -n "$(ulimit -Hn)"

if [ $quick -eq 1 ]; then
  clients=100
  duration=5s
  ramp=1s
else
  clients=1000
  duration=20s
  ramp=2s
fi
rate=10
[ -n "$want_clients" ] && clients=$want_clients
[ -n "$want_rate" ] && rate=$want_rate
transports=(sse ws)
setups=(0-redis 1-nodes 2-nodes 3-nodes)
node_flags=(--db :memory: --max-connections 100000 --rate-limit 1000000 --login-rate 1000000)

cores=$(nproc)
if [ "$cores" -ge 2 ]; then
  server_pin=(taskset -c 0)
  gen_pin=(taskset -c 1)
  pinning="Pinned: Redis and every node on core 0, the load tester on core 1 (\`taskset -c\`, $cores cores online)."
else
  server_pin=()
  gen_pin=()
  pinning="Not pinned: this machine has $cores core, so Redis, the nodes and the load tester share it."
fi

# A node started without --redis would silently measure the embedded path: refuse instead.
has_redis_flag=0
"$bin" --help 2>/dev/null | grep -q -- '--redis ' && has_redis_flag=1

mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- processes: one measurement's Redis and nodes at a time ----------------------------------
tmp=$(mktemp -d)
redis_pid=""
redis_port=""
node_pids=()
node_urls=()
cleanup() {
  stop_all
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # PID: TERM, wait up to 10 s, then KILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "warning: process $pid did not stop in 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  local pid
  for pid in "${node_pids[@]}"; do stop_pid "$pid"; done
  node_pids=()
  node_urls=()
  if [ -n "$redis_pid" ]; then
    stop_pid "$redis_pid"
    redis_pid=""
  fi
  rm -rf "${tmp:?}"/*
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_redis() {
  local dir="$tmp/redis"
  mkdir -p "$dir"
  redis_port=$(free_port)
  "${server_pin[@]}" redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" \
    --save "" --appendonly yes --appendfsync always --daemonize no --logfile "$dir/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "error: redis-server did not answer on port $redis_port (see its log below)" >&2
  tail -5 "$dir/redis.log" >&2 || true
  exit 1
}

start_node() { # [EXTRA FLAG...]
  local i=${#node_pids[@]}
  local log="$tmp/node-$i.log"
  PUSHPOLL_LOG=warn PUSHPOLL_MAX_REQUESTS_PER_PEER=100000 PUSHPOLL_RATE_LIMIT_BYTES=1073741824 "${server_pin[@]}" "$bin" --addr 127.0.0.1:0 "${node_flags[@]}" "$@" \
    >"$log" 2>"$tmp/node-$i.err" &
  node_pids+=($!)
  local url=""
  for _ in $(seq 100); do
    url=$(grep -o -m1 'http://127.0.0.1:[0-9]*' "$log" || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || {
    echo "error: node $i printed no URL; its stderr:" >&2
    tail -5 "$tmp/node-$i.err" >&2 || true
    exit 1
  }
  for _ in $(seq 100); do curl -sf -o /dev/null "$url/healthz" && break; sleep 0.1; done
  curl -sf -o /dev/null "$url/healthz" || { echo "error: $url/healthz does not answer" >&2; exit 1; }
  node_urls+=("$url")
}

# --- machine, invocation -------------------------------------------------------------------
{
  machine_facts "$invocation"
  echo "redis-server: $(redis-server --version)"
  echo "redis persistence: appendonly yes, appendfsync always, save \"\" (AOF in a temporary directory on $(stat -f -c %T "$tmp"))"
  echo "pushpoll binary: $bin ($(sha256sum "$bin" | cut -c1-12)), node flags: ${node_flags[*]}"
  echo "workload: chat feed, $clients subscribers in all, $rate msg/s, $duration window, $ramp ramp; transports ${transports[*]}"
  echo "$pinning"
} >"$out/machine.txt"
warn_if_loaded

# --- the runs --------------------------------------------------------------------------------
missing_redis=0
for setup in "${setups[@]}"; do
  if [ "$setup" != 0-redis ] && [ $has_redis_flag -eq 0 ]; then
    echo "error: $bin has no --redis flag: the Redis rows cannot run (the 0-redis row is in $out)" >&2
    missing_redis=1
    break
  fi
  for t in "${transports[@]}"; do
    dir="$out/$setup/$t"
    rm -rf "$dir"
    mkdir -p "$dir"
    redis_args=()
    if [ "$setup" = 0-redis ]; then
      start_node
    else
      start_redis
      n=${setup%%-*}
      for _ in $(seq "$n"); do start_node --redis "redis://127.0.0.1:$redis_port"; done
      redis_args=(--redis-pid "$redis_pid")
      {
        echo "version: $(redis-server --version)"
        echo "pid: $redis_pid, port: $redis_port"
        redis-cli -p "$redis_port" config get appendonly | paste -sd' '
        redis-cli -p "$redis_port" config get appendfsync | paste -sd' '
        redis-cli -p "$redis_port" config get save | paste -sd' '
        echo "affinity: $(taskset -pc "$redis_pid" 2>/dev/null | cut -d: -f2 | xargs)"
      } >"$dir/redis.txt"
    fi
    : >"$dir/nodes.txt"
    url_args=()
    for i in "${!node_urls[@]}"; do
      url_args+=(--url "${node_urls[$i]}")
      echo "${node_urls[$i]} pid ${node_pids[$i]} affinity $(taskset -pc "${node_pids[$i]}" 2>/dev/null | cut -d: -f2 | xargs)" >>"$dir/nodes.txt"
    done
    cmd=("$lt" run --transport "$t" --feed chat --clients "$clients" --rate "$rate"
      --duration "$duration" --ramp "$ramp" "${url_args[@]}" "${redis_args[@]}" --out "$dir")
    echo "${gen_pin[*]} ${cmd[*]}" >"$dir/command.txt"
    echo "==> $setup $t: ${#node_urls[@]} node(s)${redis_port:+, Redis on port $redis_port}"
    if ! "${gen_pin[@]}" "${cmd[@]}" >"$dir/loadtest.txt" 2>&1; then
      echo "    loadtest failed (see $dir/loadtest.txt)" >&2
      tail -3 "$dir/loadtest.txt" >&2
    fi
    stop_all
    redis_port=""
  done
done

# --- one line per run ------------------------------------------------------------------------
python3 - "$out" "${setups[@]}" <<'EOF'
import csv, json, os, sys

out, setups = sys.argv[1], sys.argv[2:]
fields = ["setup", "nodes", "redis", "transport", "clients", "events_expected", "events_received",
          "lost", "duplicates", "latency_p50_us", "latency_p99_us", "server_cpu_s",
          "server_cpu_us_per_event", "redis_cpu_s", "redis_cpu_us_per_event", "loadtest_cpu_s",
          "errors"]
rows = []
for setup in setups:
    base = os.path.join(out, setup)
    if not os.path.isdir(base):
        continue
    for transport in sorted(os.listdir(base)):
        path = os.path.join(base, transport, "summary.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)["results"][0]
        received = r["events_received"]
        redis = r.get("redis_cpu_s")
        rows.append({
            "setup": setup,
            "nodes": max(1, len(r.get("nodes", []))),
            "redis": "no" if setup == "0-redis" else "yes",
            "transport": r["transport"],
            "clients": r["clients"],
            "events_expected": r["events_expected"],
            "events_received": received,
            "lost": r["lost"],
            "duplicates": r["duplicates"],
            "latency_p50_us": r["latency_us"]["p50"],
            "latency_p99_us": r["latency_us"]["p99"],
            "server_cpu_s": r["server_cpu_s"],
            "server_cpu_us_per_event": r["server_cpu_us_per_event"],
            "redis_cpu_s": "" if redis is None else redis,
            "redis_cpu_us_per_event": "" if redis is None or received == 0 else redis * 1e6 / received,
            "loadtest_cpu_s": r["loadtest_cpu_s"],
            "errors": ";".join(f"{k}={v}" for k, v in sorted(r["errors"].items())),
        })
with open(os.path.join(out, "scale-out.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
print(f"{'setup':8} {'transport':9} {'lost':>5} {'p99 ms':>7} {'srv µs/ev':>9} {'redis µs/ev':>11}")
for r in rows:
    redis = r["redis_cpu_us_per_event"]
    redis = f"{redis:.1f}" if redis != "" else "-"
    print(f"{r['setup']:8} {r['transport']:9} {r['lost']:>5} {r['latency_p99_us'] / 1000:>7.1f} "
          f"{r['server_cpu_us_per_event']:>9.1f} {redis:>11}")
EOF
echo "results: $out"
exit $missing_redis
