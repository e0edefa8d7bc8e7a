#!/usr/bin/env bash
# The bindings on the desktop JVM: builds the cdylib (libsafestream_ffi.so), the uniffi-bindgen
# binary and the relay; generates the Kotlin; checks the committed copy under android/ is
# current; compiles the generated Kotlin with the test program (bindings/tests/kotlin/) using
# the kotlinc of the npm package `kotlin-compiler` and JNA from Debian's `libjna-java`; runs it
# against a real relay. Exits non-zero when a check fails; the last line is "N passed, M failed".
#
# Needs: java (17), /usr/share/java/jna.jar (apt-get install libjna-java), node + npm (for
# kotlin-compiler, installed by `npm ci` into node_modules/, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET"
WORK="$TARGET/kotlin-test"
rm -rf "$WORK"
mkdir -p "$WORK"

KOTLINC="$ROOT/node_modules/kotlin-compiler/bin/kotlinc"
if [ ! -x "$KOTLINC" ]; then
  echo "== npm ci (kotlin-compiler into node_modules/)"
  npm ci --no-audit --no-fund --loglevel=error
fi
KLIB="$ROOT/node_modules/kotlin-compiler/lib"
JNA="${JNA_JAR:-/usr/share/java/jna.jar}"
[ -f "$JNA" ] || { echo "JNA missing: apt-get install libjna-java (or set JNA_JAR)"; exit 1; }
command -v java >/dev/null || { echo "java missing: apt-get install default-jre-headless"; exit 1; }

echo "== cargo build (bindings cdylib, uniffi-bindgen, relay)"
cargo build -q -p bindings -p relay --features bindings/cli --lib --bins

echo "== generate Kotlin"
"$TARGET/debug/uniffi-bindgen" generate --no-format --library "$TARGET/debug/libsafestream_ffi.so" \
  --language kotlin --out-dir "$WORK/gen" >/dev/null
GEN="$WORK/gen/com/safestream/agent/safestream.kt"
COMMITTED="android/src/main/java/com/safestream/agent/safestream.kt"
if ! diff -q "$GEN" "$COMMITTED" >/dev/null 2>&1; then
  echo "FAIL: $COMMITTED is stale: run scripts/generate-bindings.sh and commit"
  diff -u "$COMMITTED" "$GEN" | head -20 || true
  echo "0 passed, 1 failed"
  exit 1
fi

echo "== kotlinc"
CP="$JNA:$KLIB/kotlinx-coroutines-core-jvm.jar"
"$KOTLINC" -nowarn -cp "$CP" -d "$WORK/test.jar" "$GEN" bindings/tests/kotlin/AgentTest.kt 2>&1 \
  | grep -v "^warning: unable to find kotlin-stdlib.jar" || true
[ -f "$WORK/test.jar" ] || { echo "kotlinc failed"; echo "0 passed, 1 failed"; exit 1; }

echo "== run (JVM + JNA + libsafestream_ffi.so + relay)"
RUST_BACKTRACE=0 java -Djna.library.path="$TARGET/debug" \
  -cp "$WORK/test.jar:$CP:$KLIB/kotlin-stdlib.jar" \
  AgentTestKt "$TARGET/debug/safestream-relay" "$WORK/scratch"
