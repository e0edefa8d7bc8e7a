#!/usr/bin/env bash
# Generates the Kotlin and Swift sources of the bindings from the built cdylib and writes
# them where the Android and iOS packages keep them (committed, so they can be read and
# reviewed; scripts/kotlin-test.sh fails when they are stale):
#   android/src/main/java/com/safestream/agent/safestream.kt
#   ios/Sources/SafeStream/SafeStream.swift
#   ios/Sources/SafeStreamFFI/include/SafeStreamFFI.h + module.modulemap
# Usage: scripts/generate-bindings.sh [OUT_DIR]   (default: write into android/ and ios/)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$TARGET"

cargo build -q -p bindings --features cli --lib --bin uniffi-bindgen
LIB="$TARGET/debug/libsafestream_ffi.so"
[ "$(uname)" = Darwin ] && LIB="$TARGET/debug/libsafestream_ffi.dylib"

OUT="${1:-}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$TARGET/debug/uniffi-bindgen" generate --no-format --library "$LIB" --language kotlin --out-dir "$TMP/kotlin" >/dev/null
"$TARGET/debug/uniffi-bindgen" generate --no-format --library "$LIB" --language swift --out-dir "$TMP/swift" >/dev/null

if [ -z "$OUT" ]; then
  KT_DIR=android/src/main/java/com/safestream/agent
  SWIFT_DIR=ios/Sources/SafeStream
  FFI_DIR=ios/Sources/SafeStreamFFI/include
else
  KT_DIR="$OUT/android/src/main/java/com/safestream/agent"
  SWIFT_DIR="$OUT/ios/Sources/SafeStream"
  FFI_DIR="$OUT/ios/Sources/SafeStreamFFI/include"
fi
mkdir -p "$KT_DIR" "$SWIFT_DIR" "$FFI_DIR"
cp "$TMP/kotlin/com/safestream/agent/safestream.kt" "$KT_DIR/safestream.kt"
cp "$TMP/swift/SafeStream.swift" "$SWIFT_DIR/SafeStream.swift"
cp "$TMP/swift/SafeStreamFFI.h" "$FFI_DIR/SafeStreamFFI.h"
# SwiftPM wants the module map named module.modulemap next to the header.
cp "$TMP/swift/SafeStreamFFI.modulemap" "$FFI_DIR/module.modulemap"
echo "generated: $KT_DIR/safestream.kt, $SWIFT_DIR/SafeStream.swift, $FFI_DIR/"
