#!/usr/bin/env bash
# Runs pushpoll scaled out on this machine, in the foreground, until Ctrl-C or SIGTERM:
#
#   scripts/cluster.sh N [--base-port P] [--redis-port R] [--listen ADDR:PORT] [--no-nginx]
#                        [--fresh] [-- PUSHPOLL_ARGS...]
#
# starts, all on 127.0.0.1:
#   - redis-server on port R (default 6380, beside a system Redis's 6379), its data in
#     target/cluster/redis: AOF with `appendfsync always` (every acknowledged write is fsynced
#     before Redis replies) and no RDB snapshots;
#   - N pushpoll nodes (1 to 32) on ports P .. P+N-1 (default P = 3001), each with
#     `--redis redis://127.0.0.1:R --db target/cluster/nodeI.db --secret-file
#     target/cluster/secret` (one signing key: a cookie made on one node works on every node)
#     plus PUSHPOLL_ARGS;
#   - nginx on --listen (default 127.0.0.1:8080) balancing across the nodes with
#     deploy/nginx.conf's proxying of the five transports (through scripts/proxy.sh), unless
#     --no-nginx or nginx is not installed.
# Each one's output goes to target/cluster/NAME.log. Ctrl-C or SIGTERM stops nginx, then the
# nodes, then Redis (SIGTERM each, which shuts each down cleanly). A process that dies (say a
# node killed with kill -9 to watch its clients move) is reported and the rest keep running.
# The data stays in target/cluster for the next run; --fresh deletes it first.
#
# redis-server is installed with apt-get when missing (as scripts/test.sh does). The nodes
# are target/release/pushpoll, built with `cargo build --release` (a no-op when it is up to
# date); PUSHPOLL_BIN=PATH runs another binary instead and builds nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

usage() {
  echo "usage: $0 N [--base-port P] [--redis-port R] [--listen ADDR:PORT] [--no-nginx] [--fresh] [-- PUSHPOLL_ARGS...]" >&2
  exit 2
}

# A port number 1..65535, or exit with a clear error.
port_arg() {
  if ! [[ "$2" =~ ^[0-9]{1,5}$ ]] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
    echo "error: $1 takes a port 1..65535, not '$2'" >&2
    exit 2
  fi
}

[ $# -ge 1 ] || usage
nodes="$1"
shift
if ! [[ "$nodes" =~ ^[0-9]{1,2}$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 32 ]; then
  echo "error: N is the number of nodes, 1..32, not '$nodes'" >&2
  exit 2
fi
base_port=3001 redis_port=6380 listen=127.0.0.1:8080 nginx=yes fresh=no
node_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --base-port) [ $# -ge 2 ] || usage; port_arg "$1" "$2"; base_port="$2"; shift 2 ;;
    --redis-port) [ $# -ge 2 ] || usage; port_arg "$1" "$2"; redis_port="$2"; shift 2 ;;
    --listen) [ $# -ge 2 ] || usage; listen="$2"; shift 2 ;;
    --no-nginx) nginx=no; shift ;;
    --fresh) fresh=yes; shift ;;
    --) shift; node_args=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
last_port=$((base_port + nodes - 1))
if [ "$last_port" -gt 65535 ]; then
  echo "error: nodes on $base_port..$last_port: past port 65535" >&2
  exit 2
fi
if [ "$redis_port" -ge "$base_port" ] && [ "$redis_port" -le "$last_port" ]; then
  echo "error: --redis-port $redis_port is one of the nodes' ports ($base_port..$last_port)" >&2
  exit 2
fi
# --listen goes into nginx's config: scripts/proxy.sh accepts only HOST:PORT (it checks the
# characters); here only its port is compared with the others.
listen_port="${listen##*:}"
if [ "$nginx" = yes ] && [[ "$listen_port" =~ ^[0-9]+$ ]] &&
   { [ "$listen_port" = "$redis_port" ] ||
     { [ "$listen_port" -ge "$base_port" ] && [ "$listen_port" -le "$last_port" ]; }; }; then
  echo "error: --listen $listen uses the port of Redis or of a node" >&2
  exit 2
fi

# --- what is needed -------------------------------------------------------------------------
if [ -z "${PUSHPOLL_BIN:-}" ]; then
  echo "==> cargo build --release (pushpoll)" >&2
  cargo build --release --quiet --bin pushpoll
  PUSHPOLL_BIN="$root/target/release/pushpoll"
fi
[ -x "$PUSHPOLL_BIN" ] || { echo "error: $PUSHPOLL_BIN is not an executable" >&2; exit 1; }

redis_bin="$(command -v redis-server || true)"
if [ -z "$redis_bin" ]; then
  echo "==> installing redis-server (apt-get)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null; }; then
    echo "error: redis-server is missing and could not be installed" >&2
    exit 1
  fi
  redis_bin=/usr/bin/redis-server
fi
if [ "$nginx" = yes ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "note: nginx is not installed: the nodes run without a balancer in front" \
    "(apt-get install nginx-light for one; --no-nginx silences this)" >&2
  nginx=no
fi

dir="$root/target/cluster"
[ "$fresh" = no ] || rm -rf "$dir"
mkdir -p "$dir/redis"
# The session signing key, made here once rather than by the nodes: N nodes starting at the
# same time must not race to create it. 32 random bytes, the flag's minimum; readable by
# this user only.
if [ ! -s "$dir/secret" ]; then
  (umask 077 && head -c 32 /dev/urandom >"$dir/secret")
fi

# --- processes ------------------------------------------------------------------------------
# name and pid of each started process, in start order (stopped in reverse).
names=() pids=()

stop_all() {
  trap - INT TERM
  [ ${#pids[@]} -gt 0 ] || return 0
  echo >&2
  echo "==> stopping" >&2
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      kill -TERM "${pids[$i]}" 2>/dev/null || true
      # One at a time, so Redis outlives every node and each node's last writes reach it.
      # Bounded: a process still there after 10 s gets SIGKILL.
      local waited=0
      while kill -0 "${pids[$i]}" 2>/dev/null && [ "$waited" -lt 100 ]; do
        sleep 0.1
        waited=$((waited + 1))
      done
      if kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "    ${names[$i]} did not stop within 10 s: SIGKILL" >&2
        kill -KILL "${pids[$i]}" 2>/dev/null || true
      fi
      wait "${pids[$i]}" 2>/dev/null || true
      echo "    ${names[$i]} stopped" >&2
    fi
  done
}
# Also on any exit (an error while starting): nothing is left running behind the script.
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Whether something accepts connections on HOST:PORT (bash's /dev/tcp, no client needed).
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Waits until PID is up: it printed READY (a fixed string) into its log, and HOST:PORT accepts
# connections. Fails with the end of its log if it exits first or 30 s pass. (The log line
# matters: a port answering could be another process's, when ours failed to bind it.)
wait_up() {
  local name="$1" pid="$2" host="$3" port="$4" log="$5" ready="$6" tries=0
  until { [ -z "$ready" ] || grep -qF -- "$ready" "$log"; } && listening "$host" "$port"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$tries" -ge 300 ]; then
      echo "error: $name did not come up on $host:$port; the end of $log:" >&2
      tail -n 15 "$log" >&2 || true
      exit 1
    fi
    sleep 0.1
    tries=$((tries + 1))
  done
}

# Every port must be free before anything starts: a clear error now rather than a half-started
# cluster (a Redis or node left from another run, say).
ports=("$redis_port")
for ((i = 0; i < nodes; i++)); do ports+=($((base_port + i))); done
[ "$nginx" = no ] || ports+=("$listen_port")
for port in "${ports[@]}"; do
  if listening 127.0.0.1 "$port"; then
    echo "error: port $port on 127.0.0.1 is in use (another cluster.sh, Redis or pushpoll?)" >&2
    exit 1
  fi
done

# Each in a session of its own (setsid): Ctrl-C in the terminal then reaches this script only,
# which stops them in order (nodes before Redis), instead of all of them at once.
start() {
  local name="$1"
  shift
  setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
  names+=("$name")
  pids+=("$!")
}

# Redis: no config file, only these options, so a system Redis (/etc/redis, /var/lib/redis,
# port 6379) is neither read nor touched. --save "": no RDB snapshots, the AOF is the data.
start redis "$redis_bin" --port "$redis_port" --bind 127.0.0.1 --protected-mode no \
  --daemonize no --dir "$dir/redis" --appendonly yes --appendfsync always --save ""
wait_up redis "${pids[0]}" 127.0.0.1 "$redis_port" "$dir/redis.log" "Ready to accept connections"

origin=()
[ "$nginx" = no ] || origin=(--allow-origin "http://$listen")
# Every client of a local cluster comes from 127.0.0.1 (nginx, or the load tester with --url
# per node): one peer to each node, which would hold the whole load in its share of
# requests in flight (128 by default). PUSHPOLL_MAX_REQUESTS_PER_PEER set by the caller wins.
export PUSHPOLL_MAX_REQUESTS_PER_PEER="${PUSHPOLL_MAX_REQUESTS_PER_PEER:-100000}"
for ((i = 0; i < nodes; i++)); do
  port=$((base_port + i))
  start "node$i" "$PUSHPOLL_BIN" --addr "127.0.0.1:$port" \
    --redis "redis://127.0.0.1:$redis_port" --db "$dir/node$i.db" \
    --secret-file "$dir/secret" "${origin[@]}" "${node_args[@]}"
done
for ((i = 0; i < nodes; i++)); do
  wait_up "node$i" "${pids[$((i + 1))]}" 127.0.0.1 "$((base_port + i))" "$dir/node$i.log" \
    "http://127.0.0.1:$((base_port + i))"
done

if [ "$nginx" = yes ]; then
  # deploy/nginx.conf with its one-server upstream replaced by the N nodes. least_conn: the
  # next request goes to the node with the fewest open connections. Long polls, SSE, the
  # iframe and WebSockets hold a connection for seconds to hours, so round robin (which
  # counts requests, not what they hold) would leave one node with more held streams after
  # reconnect waves; least_conn evens them out. No stickiness (ip_hash, hash $cookie_...):
  # every node serves every session (one signing key, sessions and the chat's log in Redis),
  # and a client's cursor resumes on any node, so any node may answer any request. When a node
  # is down, nginx's defaults (proxy_next_upstream error timeout; max_fails=1 fail_timeout=10s)
  # send a request whose connection is refused to the next node and skip the dead one for
  # 10 s. least_conn must come before `keepalive` (nginx's upstream docs).
  # X-Pushpoll-Node says which node answered.
  awk -v base="$base_port" -v n="$nodes" '
    NR == 1 {
      print "# Written by scripts/cluster.sh from deploy/nginx.conf: the upstream is " n " nodes,"
      print "# least_conn; X-Pushpoll-Node names the node that answered. Do not edit: rewritten each run."
      print "#"
    }
    /^[[:space:]]*server @UPSTREAM@;/ {
      print "        least_conn;"
      for (i = 0; i < n; i++) printf "        server 127.0.0.1:%d;\n", base + i
      next
    }
    { print }
    /^[[:space:]]*add_header X-Proxy-Config / {
      print "        add_header X-Pushpoll-Node $upstream_addr always;"
    }
  ' deploy/nginx.conf >"$dir/nginx.conf"
  grep -q "least_conn;" "$dir/nginx.conf" || {
    echo "error: deploy/nginx.conf has no 'server @UPSTREAM@;' line to replace" >&2
    exit 1
  }
  start nginx scripts/proxy.sh --listen "$listen" --upstream "127.0.0.1:$base_port" \
    --config "$dir/nginx.conf"
  listen_host="${listen%:*}"
  listen_host="${listen_host#[}"
  wait_up nginx "${pids[-1]}" "${listen_host%]}" "$listen_port" "$dir/nginx.log" ""
fi

echo
echo "pushpoll on $nodes node(s), one chat through redis://127.0.0.1:$redis_port"
[ "$nginx" = no ] || echo "  http://$listen        nginx, least_conn over the nodes"
for ((i = 0; i < nodes; i++)); do
  echo "  http://127.0.0.1:$((base_port + i))        node$i (pid ${pids[$((i + 1))]})"
done
echo "  redis://127.0.0.1:$redis_port   redis-server (pid ${pids[0]}), data in $dir/redis"
echo "logs: $dir/*.log; Ctrl-C stops everything"

# Wait for the processes; report any that ends by itself and keep the others running.
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  ended=""
  wait -n -p ended "${running[@]}" || true
  [ -n "$ended" ] || continue
  for i in "${!pids[@]}"; do
    if [ "${pids[$i]}" = "$ended" ]; then
      echo "==> ${names[$i]} (pid $ended) exited; the end of $dir/${names[$i]}.log:" >&2
      tail -n 5 "$dir/${names[$i]}.log" >&2 || true
    fi
  done
  still=()
  for pid in "${running[@]}"; do [ "$pid" = "$ended" ] || still+=("$pid"); done
  running=("${still[@]}")
done
echo "==> every process has exited" >&2
