#!/usr/bin/env bash
# CI's chaos block (issue 6), after ./scripts/test.sh (which already runs the abuse suite,
# tests/tests/abuse/, and the agent's token-refresh scenarios as part of
# `cargo test --workspace`):
#   1. lints of the chaos suite (built only with --features chaos, so not in test.sh's clippy);
#   2. the short chaos profile (50 devices, 1,000 commands, faults, SIGKILLs; ~3-4 min);
#   3. each cargo-fuzz target for FUZZ_SECS seconds (default 45) on its committed corpus,
#      with memory limits; any crash, panic, timeout or over-limit allocation fails.
#      -entropic=0: the relay targets run a whole relay (tokio, SQLite threads) whose
#      coverage makes the entropic schedule's bookkeeping dominate (10x fewer executions).
# Installs what it needs: cargo-fuzz from crates.io if missing (nightly is on the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECS="${FUZZ_SECS:-45}"
start=$(date +%s)
lap() { echo "-- $1 done at +$(( $(date +%s) - start )) s"; }

echo "== chaos: clippy (chaos feature)"
cargo clippy -p safestream-tests --all-targets --features chaos -- -D warnings
lap clippy

echo "== chaos: short profile"
./scripts/chaos.sh --short
lap chaos

echo "== fuzz"
rustup toolchain list | grep -q nightly || { echo "nightly toolchain missing"; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd fuzz
# --dev: an unoptimized (but instrumented, address-sanitized) build: it compiles faster than
# the release one, which matters more than execution speed for a bounded run.
cargo +nightly fuzz build --dev
lap "fuzz build"
for t in relay_body relay_frame agent_frame sio_packet; do
  mkdir -p "corpus/$t"
  # The run works on a scratch copy so that CI does not grow the committed corpus.
  work=$(mktemp -d)
  cp -r "corpus/$t/." "$work/"
  log="$work.log"
  set +e
  cargo +nightly fuzz run --dev "$t" "$work" -- \
    -max_total_time="$FUZZ_SECS" -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -max_len=70000 -timeout=20 -entropic=0 -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  grep -aE "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  [ "$status" -eq 0 ] || tail -60 "$log"
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $t failed (exit $status); reproduce: cd fuzz && cargo +nightly fuzz run --dev $t artifacts/$t/<file>"
    exit 1
  fi
  lap "fuzz $t"
done
echo "== chaos checks passed in $(( $(date +%s) - start )) s"
