#!/usr/bin/env bash
# Regenerates src/generated/wire.ts (TypeScript types of the wire contract) from the `wire`
# crate with ts-rs. `cargo test -p wire` fails while the committed file is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
SAFESTREAM_WRITE_TS=1 cargo test -q -p wire --lib typescript:: >/dev/null
echo "wrote src/generated/wire.ts and sdk/src/generated/wire.ts"
