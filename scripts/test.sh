#!/usr/bin/env bash
# The project's test command (README, CI): formatting, lints, every test in the workspace
# (the three-node suite included), the Socket.IO suite (Node.js, scripts/sio-checks.sh), the
# parent SDK and the console (scripts/web-checks.sh: vitest, headless Chromium), then the
# relay's own suite again on PostgreSQL.
#
# Debian packages: scripts/deps.sh installs the missing ones (build-essential, openssl,
# postgresql, redis-server, faketime, chromium) when run as root; otherwise it names them and stops.
# PostgreSQL and Redis: when SAFESTREAM_TEST_PG is unset, scripts/services.sh starts a
# throwaway PostgreSQL on 127.0.0.1:55432 and checks redis-server is on the PATH. The tests
# that need them fail, never skip, when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== Debian packages"
./scripts/deps.sh
if [ -z "${SAFESTREAM_TEST_PG:-}" ]; then
  echo "== services (PostgreSQL, Redis)"
  eval "$(./scripts/services.sh start)"
fi
export SAFESTREAM_TEST_PG
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== Socket.IO suite and webhook verifier (socket.io-client, standardwebhooks from npm against the relay binary)"
./scripts/sio-checks.sh
echo "== SDK, console, console in headless Chromium"
./scripts/web-checks.sh
echo "== relay suite on PostgreSQL"
SAFESTREAM_TEST_DB="$SAFESTREAM_TEST_PG" cargo test -p relay
