#!/usr/bin/env bash
# Records what the browser tests measure into the tree, in all three engines:
# - results/browsers/recovery.{json,md}: the compare page's "back after" for each transport
#   after "Kill the connection", RUNS runs per engine (default 3), one test at a time so the
#   engines do not slow each other;
# - docs/screenshots/compare-{1280x720,lanes-1280x720,390x844}{,-firefox,-webkit}.png: the
#   compare page's first screen on a projector, its lanes, and its first screen on a phone,
#   in each engine.
# Run scripts/test.sh once first (it installs the browsers and geckodriver).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
export GECKODRIVER="${GECKODRIVER:-${CARGO_HOME:-$HOME/.cargo}/bin/geckodriver}"

# The runs write beside the build, not into results/ (which the binary embeds): the pages
# under test keep showing the committed figures until the last run is done.
out="$PWD/target/browser-results"
rm -rf "$out"
for run in $(seq "$RUNS"); do
  echo "==> recovery run $run of $RUNS"
  PUSHPOLL_RECORD="$out" cargo test --locked -p pushpoll --test browser \
    killing_each_transports_connection_recovers_without_losing_a_chat_message -- --test-threads 1
done
mkdir -p results/browsers
cp "$out/recovery.json" "$out/recovery.md" results/browsers/
echo "==> compare page screenshots"
PUSHPOLL_SCREENSHOTS=1 cargo test --locked -p pushpoll --test browser \
  the_compare_page_reads_on_a_projector_and_a_phone -- --test-threads 1
cat results/browsers/recovery.md
