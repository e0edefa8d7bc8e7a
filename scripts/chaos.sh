#!/usr/bin/env bash
# The chaos suite (tests/tests/chaos.rs): simulated devices behind a TCP fault proxy, the
# relay and the devices SIGKILLed at random, then the books balanced.
#
#   scripts/chaos.sh               short profile (CI): 50 devices, 1,000 commands, ~3 min
#   scripts/chaos.sh --long        long profile: 100 devices, 5,000 commands, 10 relay kills, ~9 min
#   scripts/chaos.sh --seed N      replay the schedule of a printed seed
#
# Other knobs (environment): CHAOS_DEVICES, CHAOS_COMMANDS, CHAOS_SECS, CHAOS_RELAY_KILLS,
# CHAOS_FAULT_RATE. Exits non-zero when a promise is broken.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHAOS_PROFILE="${CHAOS_PROFILE:-short}"
while [ $# -gt 0 ]; do
  case "$1" in
    --long) CHAOS_PROFILE=long ;;
    --short) CHAOS_PROFILE=short ;;
    --seed) shift; export CHAOS_SEED="$1" ;;
    *) echo "usage: $0 [--long|--short] [--seed N]" >&2; exit 2 ;;
  esac
  shift
done
cargo test -p safestream-tests --features chaos --test chaos -- --nocapture
