#!/usr/bin/env bash
# The one command that runs every check: installs what the tests need when it is missing
# (three browser engines from Debian's packages and geckodriver from crates.io), then
# formatting, lints and every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

GECKODRIVER_VERSION=0.37.0

# Chromium and its driver must be the same build: a chromium upgraded alone breaks chromedriver.
version_of() { "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+' | head -1; }
need_packages=()
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] ||
   [ "$(version_of /usr/bin/chromium)" != "$(version_of /usr/bin/chromedriver)" ]; then
  need_packages+=(chromium chromium-driver)
fi
[ -x /usr/bin/firefox-esr ] || need_packages+=(firefox-esr)
[ -x /usr/bin/WebKitWebDriver ] || need_packages+=(webkit2gtk-driver)
[ -x /usr/bin/xvfb-run ] || need_packages+=(xvfb)
# nginx for the reverse-proxy tests (tests/api/proxy.rs, tests/browser/proxy.rs).
[ -x /usr/sbin/nginx ] || need_packages+=(nginx-light)
# Nchan for the nchan target's tests (loadtest/tests/nchan.rs, sidebyside.rs, scripts/nchan.sh).
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || need_packages+=(libnginx-mod-nchan)
# redis-server for the scale-out tests (tests/support/redis.rs starts its own on a free port)
# and scripts/cluster.sh.
[ -x /usr/bin/redis-server ] || need_packages+=(redis-server)
# iproute2 (`ip netns`, veth) for the tests that make their own network (tests/support/netns.rs).
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /usr/bin/ip ] || need_packages+=(iproute2)
# nftables (`nft`) for the dead-peer tests, which drop a client's packets (tests/api/dead_peer.rs).
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need_packages+=(nftables)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "==> installing ${need_packages[*]} (apt-get)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null; }; then
    echo "error: could not install ${need_packages[*]}; the tests need them" >&2
    exit 1
  fi
fi
geckodriver_bin="${CARGO_HOME:-$HOME/.cargo}/bin/geckodriver"
if ! "$geckodriver_bin" --version 2>/dev/null | grep -q "geckodriver $GECKODRIVER_VERSION"; then
  echo "==> installing geckodriver $GECKODRIVER_VERSION (cargo install)"
  cargo install --quiet --locked geckodriver --version "$GECKODRIVER_VERSION"
fi
export GECKODRIVER="$geckodriver_bin"

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> build (the load tester's tests run the pushpoll binary)"
cargo build --workspace --locked

echo "==> charts (every chart under results/ is what its data draws: loadtest charts --check)"
cargo run --locked -q -p loadtest -- charts --check results

echo "==> architecture (the layers of docs/ARCHITECTURE.md: no cycle, core free of HTTP crates, engines side by side and unnamed by the chat, handlers apart; transport names in src/names.rs only)"
cargo test --locked -p pushpoll --test architecture

echo "==> figures are data (every figure marker is its committed result; no measurement typed outside one)"
cargo test --locked -p pushpoll --test figures

echo "==> facts (shared lists defined once in Rust; no hand copies in pages or the load tester; fact markers current)"
cargo test --locked -p pushpoll --test facts

echo "==> unit tests"
cargo test --workspace --locked --lib --bins

echo "==> integration tests (real server on 127.0.0.1:0, and in network namespaces the LAN tests make)"
# Most of these wait on clock ticks, so they run well side by side even on 2 cores.
cargo test --locked -p pushpoll --test api -- --test-threads 8

echo "==> the integration tests again, every server's WebSocket on tungstenite (--ws-engine; the default is fastwebsockets)"
# The whole suite rather than the modules that open /ws/: those are most of it (18 of its 34
# files), and the whole run takes about 42 s on the 2-core machine.
PUSHPOLL_TEST_WS_ENGINE=tungstenite \
    cargo test --locked -p pushpoll --test api -- --test-threads 8

echo "==> the chat's tests again, against the Redis engine (--redis, one redis-server, a key prefix per server)"
# Every module whose servers (spawn_app) use the chat: its rules, replay through the engine's
# backlog, the kill switch on chat streams, rooms, login budgets behind a proxy, the operator's
# view of cookies and whispers, WebTransport's chat sessions carried by tickets. Tests of one engine by nature (durability, retention, secrets:
# the SQLite file) start their servers on a file and stay on SQLite here.
redis_dir=$(mktemp -d)
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save '' --appendonly no \
    --daemonize yes --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
trap 'kill "$(cat "$redis_dir/redis.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$redis_dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
PUSHPOLL_TEST_REDIS="redis://127.0.0.1:$redis_port" \
    cargo test --locked -p pushpoll --test api -- --test-threads 4 \
    chat backlog:: diagnostics:: input_edges:: lan:: operator:: webtransport::

echo "==> property tests (the parsers we wrote: cursors, rooms, tags, nicks, durations)"
cargo test --locked -p pushpoll --test props

echo "==> load tester (small compares against spawned servers: delivery, bytes up and down against"
echo "    a counting proxy, churn and storm through the diagnostics kill, the nchan target, and the side-by-side report)"
cargo test --locked -p loadtest --test compare --test bytes --test faults --test nchan --test sidebyside -- --test-threads 2

echo "==> load tester across nodes (--url given twice: per-node rows that sum to the total, --redis-pid)"
cargo test --locked -p loadtest --test nodes

echo "==> browser tests: every page in Chromium, Firefox ESR and WebKitGTK (NAME::chromium, ::firefox, ::webkit)"
cargo test --locked -p pushpoll --test browser -- --test-threads 2
