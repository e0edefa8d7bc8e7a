#!/usr/bin/env bash
# The Socket.IO suite (tests/sio, issue 16): socket.io-client from npm drives the real relay
# binary: the seed plan's client code, both transports and the upgrade, refused and expiring
# tokens, recovery (transport drop, SIGKILL, another node), three nodes on PostgreSQL + Redis
# behind a round-robin proxy. Also tests/sio/webhooks.test.ts: a receiver that verifies every
# webhook with the Standard Webhooks spec's npm library (`standardwebhooks`), two secrets,
# an outage with Retry-After. Needs SAFESTREAM_TEST_PG (scripts/test.sh sets it) and Node.js.
# About 30 s on 2 cores once the relay is built.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "npm missing (this machine kind ships Node.js 20 + npm)"; exit 1; }
if [ ! -d node_modules/socket.io-client ] || [ ! -e node_modules/.bin/vitest ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ -z "${SAFESTREAM_RELAY_BIN:-}" ]; then
  cargo build -q -p relay --bin safestream-relay
fi
npx tsc --noEmit -p tests/sio/tsconfig.json
npx vitest run -c tests/sio/vitest.config.ts
