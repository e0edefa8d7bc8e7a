#!/usr/bin/env bash
# Builds libsafestream_ffi.so for the Android ABIs into android/src/main/jniLibs/<abi>/ with
# cargo-ndk, and regenerates the Kotlin. For a machine with the Android NDK (not this CI):
#   export ANDROID_NDK_HOME=$HOME/Android/Sdk/ndk/27.2.12479018
#   cargo install cargo-ndk
#   scripts/build-android.sh            # the `mobile` profile (size-optimized release); DEBUG=1 for a debug build
# Then build the library (android/) or the app that includes it with Gradle.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to the NDK (r26 or newer)}"
command -v cargo-ndk >/dev/null || { echo "cargo-ndk missing: cargo install cargo-ndk"; exit 1; }
rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android

PROFILE=(--profile mobile)  # small over fast: see Cargo.toml [profile.mobile]
[ "${DEBUG:-0}" = 1 ] && PROFILE=()
# API 23 = the library's minSdk; the NDK's clang compiles ring and links the .so.
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -P 23 -o android/src/main/jniLibs \
  build -p bindings --lib "${PROFILE[@]}"
# Only the shared library belongs in jniLibs.
find android/src/main/jniLibs -name '*.a' -delete
ls -l android/src/main/jniLibs/*/libsafestream_ffi.so

scripts/generate-bindings.sh
