#!/usr/bin/env bash
# The soak: a freshly started release pushpoll on 127.0.0.1, SOAK_SECS (default 600) of mixed
# traffic from `loadtest soak` (all five transports on clock and chat, chat senders,
# reconnects from the cursor, a few hostile clients), with the server's RSS, open connections
# and the clients' delivery p99 sampled at start and every SOAK_SAMPLE_SECS (default 60) into
# results/soak/ (samples.csv, summary.json, chart.svg, README.md with the reading).
#
#   scripts/soak.sh                        # the 10-minute soak
#   SOAK_SECS=90 SOAK_SAMPLE_SECS=10 scripts/soak.sh   # a quick one while developing
#   (also SOAK_CLIENTS per transport and feed, default 30; SOAK_RATE chat msg/s, default 40, which fills the server's bounded caches (the chat's
#   4,096-event window, SQLite's 2 MB page cache as the database grows past it) within the
#   4-minute warm-up; at 20 msg/s the page cache was still filling at minute 9;
#   SOAK_OUT, default results/soak; SOAK_HOSTILE=0 to leave the hostile clients out)
#
# Loopback only; bounded in clients, rates and time (the load tester stops by itself, and is
# killed SOAK_SECS + 120 s after it started if it has not); the server is stopped on exit,
# however the script ends. The server runs with its default limits: the normal clients fit
# under the per-peer cap, and the hostile ones come from their own 127.0.0.x addresses.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${SOAK_SECS:-600}
sample=${SOAK_SAMPLE_SECS:-60}
clients=${SOAK_CLIENTS:-30}
rate=${SOAK_RATE:-40}
out=${SOAK_OUT:-results/soak}
# SOAK_HOSTILE=0 leaves the hostile clients out, to tell their effect from the normal traffic's.
hostile_flag=()
[[ ${SOAK_HOSTILE:-1} == 0 ]] && hostile_flag=(--no-hostile)
for v in "$secs" "$sample" "$clients"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "soak: SOAK_SECS, SOAK_SAMPLE_SECS and SOAK_CLIENTS take whole numbers" >&2; exit 2; }
done

cargo build --release --workspace --locked -q
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d "${TMPDIR:-/tmp}/pushpoll-soak.XXXXXX")
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A fresh server on a free loopback port, with a fresh SQLite file (the real store, not
# :memory:), logging warnings only. It prints its URL on its first line.
server_flags=(--addr 127.0.0.1:0 --db "$work/soak.sqlite")
PUSHPOLL_LOG=warn target/release/pushpoll "${server_flags[@]}" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
url=
for _ in $(seq 100); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.out" 2>/dev/null | head -n 1 || true)
  [[ -n $url ]] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "soak: pushpoll exited at start:" >&2; cat "$work/server.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n $url ]] || { echo "soak: pushpoll printed no URL within 10 s" >&2; exit 1; }
echo "soak: pushpoll (pid $server_pid) at $url; $secs s, sampled every $sample s, into $out"

timeout --signal=INT --kill-after=10 $((secs + 120)) \
  target/release/loadtest soak --url "$url" --duration "${secs}s" --sample-every "${sample}s" \
  --clients "$clients" --rate "$rate" --out "$out" "${hostile_flag[@]}" \
  --invoked-as "SOAK_SECS=$secs SOAK_SAMPLE_SECS=$sample SOAK_CLIENTS=$clients SOAK_RATE=$rate SOAK_HOSTILE=${SOAK_HOSTILE:-1} scripts/soak.sh (server: pushpoll --addr 127.0.0.1:0 --db FILE, default limits)"

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "soak: the server died during the soak; its stderr:" >&2
  tail -n 20 "$work/server.err" >&2
  exit 1
fi
