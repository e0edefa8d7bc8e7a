#!/usr/bin/env bash
# The parent's side (issue 17): the TypeScript SDK (sdk/: typecheck, build, unit tests with
# fakes, then against the real relay binary), the console (console/: typecheck, and the build
# committed in relay/console/ must be what `node console/build.mjs` makes of the sources), and
# the console end to end in Debian's headless Chromium (tests/console). Needs Node.js and
# chromium (scripts/deps.sh installs it). About a minute on 2 cores once the relay is built.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "npm missing (this machine kind ships Node.js 20 + npm)"; exit 1; }
if [ ! -e node_modules/.bin/vitest ] || [ ! -e node_modules/playwright-core ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ -z "${SAFESTREAM_RELAY_BIN:-}" ]; then
  cargo build -q -p relay --bin safestream-relay
fi
echo "-- SDK: typecheck, build"
npx tsc --noEmit -p sdk/tsconfig.json
npx tsc -p sdk/tsconfig.build.json
echo "-- console: typecheck, committed build fresh"
npx tsc --noEmit -p console/tsconfig.json
node console/build.mjs --check
echo "-- SDK tests (fakes, then the relay binary)"
npx vitest run -c sdk/vitest.config.ts
echo "-- console in headless Chromium"
npx tsc --noEmit -p tests/console/tsconfig.json
npx vitest run -c tests/console/vitest.config.ts
