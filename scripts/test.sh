#!/usr/bin/env bash
# The one command that runs every check: installs what the tests need (Debian's chromium)
# when it is missing, then formatting, lints and every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
[ -x /usr/bin/chromium ] || need_packages+=(chromium)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "==> installing ${need_packages[*]} (apt-get)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null; }; then
    echo "error: could not install ${need_packages[*]}; the browser tests need /usr/bin/chromium" >&2
    exit 1
  fi
fi

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> build (the load tester's tests run the pushpoll binary)"
cargo build --workspace --locked

echo "==> unit tests"
cargo test --workspace --locked --lib --bins

echo "==> integration tests (real server on 127.0.0.1:0)"
# Most of these wait on clock ticks, so they run well side by side even on 2 cores.
cargo test --locked -p pushpoll --test api -- --test-threads 8

echo "==> property tests (the parsers we wrote: cursors, rooms, tags, nicks, durations)"
cargo test --locked -p pushpoll --test props

echo "==> load tester (small compares against spawned servers: delivery, bytes up and down against"
echo "    a counting proxy, churn and storm through the diagnostics kill)"
cargo test --locked -p loadtest --test compare --test bytes --test faults -- --test-threads 2

echo "==> browser tests (headless Chromium)"
cargo test --locked -p pushpoll --test browser -- --test-threads 2
