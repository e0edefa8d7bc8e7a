#!/usr/bin/env bash
# Builds ios/SafeStreamFFI.xcframework (device arm64 + simulator arm64/x86_64) from the
# staticlib of `bindings`, with the generated header and module map, and regenerates the
# Swift. For macOS with Xcode (not this CI):
#   scripts/build-ios.sh            # the `mobile` profile (size-optimized release); DEBUG=1 for a debug build
# Then use ios/ as a Swift package or through ios/SafeStream.podspec, or run `pod install`
# in a React Native app that depends on this package.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname)" = Darwin ] || { echo "build-ios.sh needs macOS with Xcode (xcodebuild, lipo)"; exit 1; }
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$TARGET"
export IPHONEOS_DEPLOYMENT_TARGET=13.0
PROFILE=mobile FLAG=(--profile mobile)  # small over fast: see Cargo.toml [profile.mobile]
[ "${DEBUG:-0}" = 1 ] && PROFILE=debug FLAG=()

rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
  cargo rustc -p bindings --lib --crate-type staticlib --target "$t" "${FLAG[@]}"
done

# Swift sources, header and module map (from a host build of the cdylib).
scripts/generate-bindings.sh

OUT="$TARGET/ios-xcframework"
rm -rf "$OUT" ios/SafeStreamFFI.xcframework
mkdir -p "$OUT/headers" "$OUT/sim"
cp ios/Sources/SafeStreamFFI/include/SafeStreamFFI.h ios/Sources/SafeStreamFFI/include/module.modulemap "$OUT/headers/"
lipo -create \
  "$TARGET/aarch64-apple-ios-sim/$PROFILE/libsafestream_ffi.a" \
  "$TARGET/x86_64-apple-ios/$PROFILE/libsafestream_ffi.a" \
  -output "$OUT/sim/libsafestream_ffi.a"
xcodebuild -create-xcframework \
  -library "$TARGET/aarch64-apple-ios/$PROFILE/libsafestream_ffi.a" -headers "$OUT/headers" \
  -library "$OUT/sim/libsafestream_ffi.a" -headers "$OUT/headers" \
  -output ios/SafeStreamFFI.xcframework
echo "built ios/SafeStreamFFI.xcframework"
