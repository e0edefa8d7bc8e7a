#!/usr/bin/env bash
# The mobile checks of CI (.ci/run), runnable on a fresh Debian machine as root; idempotent.
# Installs what is missing (Java, JNA, clang/llvm, the npm dev dependencies incl. the
# kotlin-compiler, the rustup targets), then runs:
#   1. scripts/kotlin-test.sh   generated Kotlin on the JVM against a real relay
#   2. npm run codegen-check   React Native codegen on src/NativeSafeStreamAgent.ts
#      scripts/android-stub-check.sh   android/'s own Kotlin against Android/RN API stubs
#      (twice: old bridge, and New Architecture against the generated Java spec)
#   3. npm run typecheck, npm test   the React Native module's TypeScript (vitest)
#   4. scripts/cross-check.sh   staticlibs for 3 Android ABIs and iOS (no NDK/Xcode here)
# Measured from a fresh clone (empty target/ and node_modules/, packages and rustup targets
# already installed) on 2 shared cores at load ~5: 656 s (npm ci 28 s, Kotlin test incl. the
# debug build of bindings + relay ~395 s, TypeScript 6 s, cross-check 227 s). In .ci/run the
# preceding workspace build is reused, so most of the Kotlin test's build is already done
# (run right after scripts/test.sh with the cross targets already built: 121 s).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
step() { echo "== mobile: $1 (${SECONDS}s)"; }

step "install"
pkgs=()
command -v java >/dev/null || pkgs+=(default-jre-headless)
[ -f /usr/share/java/jna.jar ] || pkgs+=(libjna-java)
command -v clang >/dev/null || pkgs+=(clang)
{ command -v llvm-ar && command -v llvm-nm; } >/dev/null || pkgs+=(llvm)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "apt-get install ${pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
command -v npm >/dev/null || { echo "npm missing (this machine kind ships Node.js 20 + npm)"; exit 1; }
if [ ! -x node_modules/kotlin-compiler/bin/kotlinc ] || [ ! -e node_modules/.bin/vitest ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
targets=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android aarch64-apple-ios)
installed="$(rustup target list --installed)"
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done

step "kotlin (JVM) test"
./scripts/kotlin-test.sh

step "react native codegen on the spec (schema, Java + ObjC specs, iOS selectors)"
npm run -s codegen-check

step "android Kotlin against SDK/RN stubs (old bridge, then the codegen spec)"
./scripts/android-stub-check.sh
RN_ARCH=newarch ./scripts/android-stub-check.sh

step "react native: typecheck + unit tests"
npm run -s typecheck
npm test --silent

step "cross-compilation"
./scripts/cross-check.sh

echo "== mobile: all checks passed in ${SECONDS}s"
