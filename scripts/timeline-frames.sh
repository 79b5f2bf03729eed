#!/usr/bin/env bash
# Records the live timeline's frame times at 10 ticks/s in all three engines into
# results/browsers/timeline-frames.{json,md}: the compare page with every lane running
# (pushpoll --tick-ms 100) for 20 s per engine, one engine at a time so they do not slow each
# other, each draw read from the browser's own performance timeline (tests/browser/timeline.rs,
# the_timeline_keeps_up_at_10_ticks_a_second). Run scripts/test.sh once first (it installs the
# browsers and geckodriver).
set -euo pipefail
cd "$(dirname "$0")/.."
export GECKODRIVER="${GECKODRIVER:-${CARGO_HOME:-$HOME/.cargo}/bin/geckodriver}"

# Written beside the build, not into results/ (which the binary embeds), then copied.
out="$PWD/target/timeline-frames"
rm -rf "$out"
PUSHPOLL_RECORD="$out" cargo test --locked -p pushpoll --test browser \
  the_timeline_keeps_up_at_10_ticks_a_second -- --test-threads 1
mkdir -p results/browsers
cp "$out/timeline-frames.json" "$out/timeline-frames.md" results/browsers/
cat results/browsers/timeline-frames.md
