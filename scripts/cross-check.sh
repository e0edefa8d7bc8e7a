#!/usr/bin/env bash
# Cross-compilation check of the Rust side for the phones, runnable on a Linux machine with
# no NDK and no Xcode: builds the staticlib of `bindings` (agent-core, rustls on ring, tokio,
# reqwest) for aarch64/armv7/x86_64 Android and aarch64 iOS, and checks the archive exports
# the uniffi entry points. It does not link: linking an Android .so needs the NDK
# (scripts/build-android.sh) and an iOS app needs Xcode (scripts/build-ios.sh).
#
# How the C parts (ring) are compiled without the NDK/Xcode sysroots: Debian's clang with
# --target, -ffreestanding -nostdlibinc and RING_CORE_NOSTDLIBINC=1 (ring's C needs no libc
# headers then); for iOS, SDKROOT points at a stub SDK holding only TargetConditionals.h.
#
# Needs: clang, llvm (llvm-ar, llvm-nm); `rustup target add` of the four targets.
# Usage: scripts/cross-check.sh [TARGET...]   (default: all four)
#        PROFILE=mobile scripts/cross-check.sh  (the shipped, size-optimized profile; slower)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$TARGET_DIR"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android aarch64-apple-ios)

for tool in clang llvm-ar llvm-nm; do
  command -v "$tool" >/dev/null || { echo "$tool missing: apt-get install clang llvm"; exit 1; }
done

# A stub iOS SDK: ring's headers include <TargetConditionals.h> on Apple targets.
STUB="$TARGET_DIR/ios-sdk-stub"
mkdir -p "$STUB/usr/include"
cat > "$STUB/usr/include/TargetConditionals.h" <<'H'
/* Stub for cross-checking without Xcode (scripts/cross-check.sh): an iOS device. */
#pragma once
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 0
#define TARGET_OS_IPHONE 1
#define TARGET_OS_IOS 1
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_VISION 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_OS_EMBEDDED 1
#define TARGET_CPU_ARM64 1
H

installed="$(rustup target list --installed)"
fail=0
for t in "${TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
  e="${t//-/_}"
  case "$t" in
    aarch64-linux-android) clang_target=aarch64-linux-android21 ;;
    armv7-linux-androideabi) clang_target=armv7a-linux-androideabi21 ;;
    x86_64-linux-android) clang_target=x86_64-linux-android21 ;;
    aarch64-apple-ios) clang_target=arm64-apple-ios13.0 ;;
    *) echo "unknown target $t"; exit 2 ;;
  esac
  env_args=(
    "CC_$e=clang" "AR_$e=llvm-ar"
    "CFLAGS_$e=--target=$clang_target -ffreestanding -nostdlibinc -DRING_CORE_NOSTDLIBINC=1"
  )
  if [[ "$t" == *apple-ios ]]; then
    # -nostdlibinc also drops the sysroot's headers: name the stub's include dir explicitly.
    env_args[2]+=" -isystem $STUB/usr/include"
    env_args+=("SDKROOT=$STUB" "IPHONEOS_DEPLOYMENT_TARGET=13.0")
  fi
  echo "== $t"
  start=$(date +%s)
  profile="${PROFILE:-dev}"
  dir=debug; [ "$profile" != dev ] && dir="$profile"
  if env "${env_args[@]}" cargo rustc -q -p bindings --lib --crate-type staticlib --target "$t" --profile "$profile"; then
    lib="$TARGET_DIR/$t/$dir/libsafestream_ffi.a"
    # Debian's llvm-nm (LLVM 14) cannot read the bitcode of some std members and exits 1:
    # only its symbol list matters here.
    n=$( { llvm-nm --defined-only "$lib" 2>/dev/null || true; } | grep -cE " T _?uniffi_safestream_ffi_fn_" || true)
    if [ "${n:-0}" -gt 20 ]; then
      echo "ok   $t ($profile): $(du -h "$lib" | cut -f1) staticlib, $(stat -c %s "$lib") bytes, exports $n uniffi functions ($(( $(date +%s) - start ))s)"
    else
      echo "FAIL $t: $lib exports too few uniffi functions (${n:-0})"; fail=1
    fi
  else
    echo "FAIL $t: build failed"; fail=1
  fi
done
exit $fail
