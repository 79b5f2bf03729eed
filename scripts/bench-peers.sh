#!/usr/bin/env bash
# pushpoll side by side with nginx + Nchan: the same load tester and the
# same wrk against each server in turn, the server on one core and the generators on another.
#
#   scripts/bench-peers.sh [--quick] [--out DIR] [--label NAME] [--variant LABEL:VAR=VALUE]... [--no-nchan]
#
#   --quick      100 and 300 subscribers, 3 s windows, 3 s wrk runs (about 2 minutes in all),
#                to check the machinery; the full run is 1,000 and 10,000 subscribers, 20 s
#                windows and 10 s wrk runs (about 15 minutes for both servers).
#   --out DIR    where everything goes (default results/peers).
#   --label NAME names the pushpoll rows (default pushpoll). With PUSHPOLL_BIN=/path/pushpoll
#                an older binary is measured with the same load tester, e.g.
#                PUSHPOLL_BIN=/work/bin-before/pushpoll scripts/bench-peers.sh --label before --no-nchan
#                PUSHPOLL_WS_ENGINE and PUSHPOLL_RUNTIME pass through to the server (and are
#                recorded), e.g. PUSHPOLL_WS_ENGINE=tungstenite ... --label tungstenite --no-nchan
#   --variant LABEL:VAR=VALUE[,VAR=VALUE...]
#                also measure the same binary under another label with these environment
#                variables set (repeatable), in the same run, row by row with the others, e.g.
#                --variant tungstenite:PUSHPOLL_WS_ENGINE=tungstenite
#                --variant multithread:PUSHPOLL_RUNTIME=multi-thread
#                PUSHPOLL_BIN=PATH in a variant runs that binary instead, e.g. an older build:
#                --variant before:PUSHPOLL_BIN=/work/bin-before/pushpoll
#   --no-nchan   measure pushpoll only (nchan's rows of an earlier run in DIR are kept).
#
# Every server is started fresh for each measurement and stopped before the next one starts:
# never two servers at once; each row (transport and size) is measured on every server in
# turn before the next row. When the machine has 2 or more cores the server runs on core 0
# and every generator (loadtest, wrk) on core 1 (taskset -c); nginx's worker inherits the
# affinity of the nginx master that scripts/nchan.sh starts. Then `loadtest side-by-side DIR` writes
# the side-by-side table.md, summary.json, summary.csv and the charts. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/machine.sh
. scripts/lib/machine.sh
root=$(pwd)
invocation="scripts/bench-peers.sh $*"

usage() {
  echo "usage: $0 [--quick] [--out DIR] [--label NAME] [--variant LABEL:VAR=VALUE[,VAR=VALUE]]... [--no-nchan]" >&2
  exit 2
}
quick=0
out=results/peers
label=pushpoll
with_nchan=1
variants=()            # LABEL:VAR=VALUE,...
declare -A variant_env # LABEL -> "VAR=VALUE VAR=VALUE"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --label) [ $# -ge 2 ] || usage; label="$2"; shift 2 ;;
    --variant) [ $# -ge 2 ] || usage; variants+=("$2"); shift 2 ;;
    --no-nchan) with_nchan=0; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
# The label is a directory name and a table heading: keep it plain.
plain_label() { [[ $1 =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] && [ "$1" != nchan ]; }
if ! plain_label "$label"; then
  echo "error: --label must be [a-z0-9_-], at most 32 characters, and not 'nchan'" >&2
  exit 2
fi
for v in "${variants[@]}"; do
  vlabel=${v%%:*}
  vars=${v#*:}
  if ! plain_label "$vlabel" || [ "$vlabel" = "$label" ] || [ "$vlabel" = "$v" ] \
    || ! [[ $vars =~ ^PUSHPOLL_[A-Z_]+=[a-z0-9_./-]+(,PUSHPOLL_[A-Z_]+=[a-z0-9_./-]+)*$ ]]; then
    echo "error: --variant $v: expected LABEL:PUSHPOLL_VAR=value[,PUSHPOLL_VAR=value], a plain label other than --label's" >&2
    exit 2
  fi
  variant_env[$vlabel]=${vars//,/ }
done

command -v wrk >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
cargo build --release --workspace --locked -q
bin=${PUSHPOLL_BIN:-target/release/pushpoll}
[ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 1; }
lt="$root/target/release/loadtest"
ulimit -n "$(ulimit -Hn)"

if [ $quick -eq 1 ]; then
  sizes=(100 300)
  duration=3s
  wrk_secs=3
  # The RSS 10 s after the clients have gone: for SSE only in a quick run (time).
  after_transports=" sse "
else
  sizes=(1000 10000)
  duration=20s
  wrk_secs=10
  after_transports=" poll longpoll sse ws "
fi
transports=(poll longpoll sse ws)
after_wait=10
ramp_for() { if [ "$1" -ge 5000 ]; then echo 10s; elif [ "$1" -ge 1000 ]; then echo 2s; else echo 1s; fi; }

cores=$(nproc)
if [ "$cores" -ge 2 ]; then
  server_pin=(taskset -c 0)
  gen_pin=(taskset -c 1)
  pinning="Pinned: the server (pushpoll, or nginx's master and its one worker) on core 0 and every generator (loadtest, wrk) on core 1, with \`taskset -c\` ($cores cores online)."
else
  server_pin=()
  gen_pin=()
  pinning="Not pinned: this machine has $cores core, so the server and the generators share it."
fi

mkdir -p "$out/runs" "$out/wrk" "$out/invocations"
out=$(cd "$out" && pwd)

# --- one server at a time ------------------------------------------------------------------
server_pid=""   # pushpoll, or the setsid'd scripts/nchan.sh (its own process group)
server_kind=""
server_url=""
rss_pid=""      # the process whose VmRSS is the server's: pushpoll, or the nginx worker
srv_log=$(mktemp)
cleanup() {
  stop_server
  rm -f "$srv_log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_server() {
  [ -n "$server_pid" ] || return 0
  if [ "$server_kind" = nchan ]; then
    # The script, nginx's master and its worker: the whole process group setsid made.
    kill -TERM -- "-$server_pid" 2>/dev/null || true
  else
    kill -TERM "$server_pid" 2>/dev/null || true
  fi
  for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "warning: server $server_pid did not stop in 10 s; killing it" >&2
    if [ "$server_kind" = nchan ]; then kill -KILL -- "-$server_pid" 2>/dev/null || true
    else kill -KILL "$server_pid" 2>/dev/null || true; fi
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  server_kind=""
  rss_pid=""
}

wait_for_url() {
  for _ in $(seq 100); do grep -q http:// "$srv_log" && break; sleep 0.1; done
  server_url=$(grep -o -m1 'http://127.0.0.1:[0-9]*' "$srv_log") || {
    echo "error: the $server_kind server printed no URL" >&2
    exit 1
  }
  for _ in $(seq 100); do curl -sf -o /dev/null "$server_url/healthz" && return 0; sleep 0.1; done
  echo "error: $server_url/healthz does not answer" >&2
  exit 1
}

start_pushpoll() { # [VAR=VALUE...]: a variant's environment; PUSHPOLL_BIN=PATH runs that binary
  : >"$srv_log"
  local run=$bin a
  for a in "$@"; do [[ $a == PUSHPOLL_BIN=* ]] && run=${a#PUSHPOLL_BIN=}; done
  [ -x "$run" ] || { echo "error: $run is not an executable" >&2; exit 1; }
  env "$@" PUSHPOLL_LOG=warn PUSHPOLL_MAX_REQUESTS_PER_PEER=100000 PUSHPOLL_RATE_LIMIT_BYTES=1073741824 "${server_pin[@]}" "$run" --addr 127.0.0.1:0 --db :memory: \
    --max-connections 100000 --rate-limit 1000000 >"$srv_log" 2>/dev/null &
  server_pid=$!
  server_kind=pushpoll
  rss_pid=$server_pid
  wait_for_url
}

start_nchan() {
  : >"$srv_log"
  setsid "${server_pin[@]}" bash scripts/nchan.sh >"$srv_log" 2>/dev/null &
  server_pid=$!
  server_kind=nchan
  wait_for_url
  # scripts/nchan.sh (bash) -> nginx master -> its one worker (worker_processes 1).
  local master="" worker=""
  for _ in $(seq 50); do
    master=$(pgrep -P "$server_pid" -x nginx | head -1 || true)
    [ -n "$master" ] && worker=$(pgrep -P "$master" -x nginx | head -1 || true)
    [ -n "$worker" ] && break
    sleep 0.1
  done
  [ -n "$worker" ] || { echo "error: no nginx worker under $server_pid" >&2; exit 1; }
  rss_pid=$worker
}

start_server() {
  if [ "$1" = nchan ]; then
    start_nchan
  else
    # shellcheck disable=SC2086 # "VAR=VALUE VAR=VALUE", split on purpose
    start_pushpoll ${variant_env[$1]:-}
  fi
}

rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$rss_pid/status"; }

# --- machine, invocation -------------------------------------------------------------------
{
  machine_facts
  echo "wrk: $(dpkg-query -W -f '${Version}' wrk 2>/dev/null || echo unknown)"
  echo "nginx-light: $(dpkg-query -W -f '${Version}' nginx-light 2>/dev/null || echo 'not installed')"
  echo "libnginx-mod-nchan: $(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null || echo 'not installed')"
} >"$out/machine.txt"
warn_if_loaded

servers=("$label")
for v in "${variants[@]}"; do servers+=("${v%%:*}"); done
[ $with_nchan -eq 1 ] && servers+=(nchan)
inv="$out/invocations/$label.md"
{
  echo "### \`$label\`$(for v in "${variants[@]}"; do printf ', `%s`' "${v%%:*}"; done)$([ $with_nchan -eq 1 ] && echo ' and `nchan`')"
  echo
  echo "Command: \`${PUSHPOLL_BIN:+PUSHPOLL_BIN=$PUSHPOLL_BIN }$invocation\`, started $(date -u +%Y-%m-%dT%H:%M:%SZ)."
  echo "pushpoll binary: \`$bin\` ($(sha256sum "$bin" | cut -c1-12)), flags \`--db :memory: --max-connections 100000 --rate-limit 1000000\`, environment \`PUSHPOLL_MAX_REQUESTS_PER_PEER=100000 PUSHPOLL_RATE_LIMIT_BYTES=1073741824${PUSHPOLL_WS_ENGINE:+ PUSHPOLL_WS_ENGINE=$PUSHPOLL_WS_ENGINE}${PUSHPOLL_RUNTIME:+ PUSHPOLL_RUNTIME=$PUSHPOLL_RUNTIME}\`."
  for v in "${variants[@]}"; do
    echo "Variant \`${v%%:*}\`: the same flags and environment, and \`${variant_env[${v%%:*}]}\`$(for a in ${variant_env[${v%%:*}]}; do [[ $a == PUSHPOLL_BIN=* ]] && echo " (that binary: $(sha256sum "${a#PUSHPOLL_BIN=}" | cut -c1-12))"; done)."
  done
  echo "$pinning"
  echo "Subscribers: ${sizes[*]}; chat feed, 10 msg/s, $duration window; short-poll interval 1 s (loadtest's default)."
  echo
} >"$inv"

# --- req/s with wrk ------------------------------------------------------------------------
# pushpoll's empty batch: a cursor far ahead, so every answer is `200` with an empty batch.
# nchan's "nothing new": interval-poll with the cursor of the newest message (its
# Last-Modified and Etag), so every answer is `304 Not Modified` with no body.
wrk_one() { # NAME SERVER URL [HEADER...]
  local name=$1 server=$2 url=$3
  shift 3
  local hdrs=() h
  for h in "$@"; do hdrs+=(-H "$h"); done
  local dir="$out/wrk/$server"
  mkdir -p "$dir"
  # What one answer is, measured with curl: status, header bytes, body bytes.
  curl -s -o /dev/null "${hdrs[@]}" -w '%{http_code} %{size_header} %{size_download}\n' "$url" >"$dir/$name.answer"
  echo "==> wrk $server $name: $url ($(cat "$dir/$name.answer"))"
  "${gen_pin[@]}" wrk -t1 -c50 -d"${wrk_secs}s" --latency "${hdrs[@]}" "$url" >"$dir/$name.txt"
  grep -E '^(Requests/sec|Non-2xx)' "$dir/$name.txt" | sed 's/^/    /'
}

for server in "${servers[@]}"; do
  start_server "$server"
  if [ "$server" = nchan ]; then
    id=$(curl -sf -X POST -H 'Accept: application/json' --data-binary '{"id":0,"ts":0,"type":"tick"}' \
      "$server_url/pub/clock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_message_id"])')
    secs=${id%%:*}
    tag=${id##*:}
    since=$(date -u -d "@$secs" '+%a, %d %b %Y %H:%M:%S GMT')
    wrk_one poll-empty nchan "$server_url/sub/poll/clock" "If-Modified-Since: $since" "If-None-Match: $tag"
  else
    wrk_one poll-empty "$server" "$server_url/poll/clock?after=9000000000000"
  fi
  wrk_one healthz "$server" "$server_url/healthz"
  stop_server
done

# --- loadtest runs -------------------------------------------------------------------------
# Row by row, each server in turn: the rows to be divided run a minute apart rather than a
# pass apart, since this machine's speed drifts by up to a fifth over half an hour (two
# passes of the same build, results/README.md section 6).
for n in "${sizes[@]}"; do
  for t in "${transports[@]}"; do
    for server in "${servers[@]}"; do
      dir="$out/runs/$server/$t-$n"
      rm -rf "$dir"
      mkdir -p "$dir"
      start_server "$server"
      peer=()
      [ "$server" = nchan ] && peer=(--peer nchan)
      before=$(rss_bytes)
      # The server's CPU affinity as the kernel reports it (nginx: the worker's, inherited).
      taskset -pc "$rss_pid" >"$dir/affinity.txt"
      echo "==> $server $t, $n subscribers ($server_url, RSS before $((before / 1024)) KiB)"
      cmd=("$lt" run "${peer[@]}" --transport "$t" --feed chat --clients "$n" --rate 10
        --duration "$duration" --ramp "$(ramp_for "$n")" --url "$server_url" --out "$dir")
      echo "${gen_pin[*]} ${cmd[*]}" >"$dir/command.txt"
      if ! "${gen_pin[@]}" "${cmd[@]}" >"$dir/loadtest.txt" 2>&1; then
        echo "    loadtest failed (see $dir/loadtest.txt)" >&2
        tail -3 "$dir/loadtest.txt" >&2
      fi
      after=null
      if [[ $after_transports == *" $t "* ]]; then
        # loadtest has exited: its clients' sockets are closed. The issue's check is RSS
        # 10 s after the streams close.
        sleep "$after_wait"
        after=$(rss_bytes)
      fi
      echo "{\"rss_before_bytes\": $before, \"rss_after_bytes\": $after, \"after_wait_s\": $after_wait}" >"$dir/rss.json"
      stop_server
    done
  done
done

# --- the report ----------------------------------------------------------------------------
"$lt" side-by-side "$out"
{
  echo "# pushpoll and nginx + Nchan, side by side"
  echo
  echo "Written by \`scripts/bench-peers.sh\`; the table is \`loadtest peers $out\`'s table.md."
  echo "Machine: \`machine.txt\`. Raw runs: \`runs/SERVER/TRANSPORT-SUBSCRIBERS/\` (loadtest's"
  echo "summary.json, its output, the command, and \`rss.json\`: the server's VmRSS before the"
  echo "subscribers connect and $after_wait s after the load tester exited), \`affinity.txt\`"
  echo "(the server's CPU affinity list, from \`taskset -p\`) and \`command.txt\` (the load tester's"
  echo "command line, with its \`taskset -c\`); wrk: \`wrk/SERVER/\`."
  echo
  echo "## Runs"
  echo
  cat "$out"/invocations/*.md
  echo
  cat "$out/table.md"
} >"$out/README.md"
cat "$out/table.md"
echo "results: $out"
