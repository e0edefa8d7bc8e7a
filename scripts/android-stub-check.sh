#!/usr/bin/env bash
# Type-checks the Android library's own Kotlin (LogcatLogger, KeystoreSecureStore, the React
# Native module) with the generated Kotlin, against hand-written stubs of the Android SDK and
# React Native classes it uses (android/stubs/, Java sources that kotlinc reads for symbols
# only). Catches syntax and type errors without the Android SDK; it is not a Gradle build.
# Needs what scripts/kotlin-test.sh needs (kotlinc from node_modules, JNA).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
KOTLINC="$PWD/node_modules/kotlin-compiler/bin/kotlinc"
[ -x "$KOTLINC" ] || npm ci --no-audit --no-fund --loglevel=error
KLIB="$PWD/node_modules/kotlin-compiler/lib"
JNA="${JNA_JAR:-/usr/share/java/jna.jar}"
# RN_ARCH=newarch: the React Native module against the codegen Java spec that
# scripts/rn-codegen-check.js generated (New Architecture); default oldarch (old bridge).
ARCH="${RN_ARCH:-oldarch}"
OUT="$TARGET/android-stub-check-$ARCH"
rm -rf "$OUT"
mkdir -p "$OUT"
mapfile -t sources < <(find android/src/main/java android/src/reactnative/java "android/src/reactnative/$ARCH" -name '*.kt' | sort)
gen=(); [ "$ARCH" = newarch ] && gen=("$TARGET/rn-codegen/java")
mapfile -t stubs < <(find android/stubs "${gen[@]}" -name '*.java' | sort)
# kotlinc's exit status decides; its output is shown (less a warning about the stdlib jar,
# which kotlinc finds on its own).
rc=0
"$KOTLINC" -nowarn -cp "$JNA:$KLIB/kotlinx-coroutines-core-jvm.jar" -d "$OUT/classes" \
  "${sources[@]}" "${stubs[@]}" >"$OUT/kotlinc.log" 2>&1 || rc=$?
grep -v "^warning: unable to find kotlin-stdlib.jar" "$OUT/kotlinc.log" || true
if [ "$rc" -ne 0 ]; then
  echo "FAIL android Kotlin does not compile against the stubs (kotlinc exit status $rc, $ARCH)"
  exit 1
fi
# A compile that succeeds must also have produced the classes of android/ and reactnative/.
n=$(find "$OUT/classes" -name '*.class' 2>/dev/null | grep -c -E "android/|reactnative/" || true)
if [ "${n:-0}" -gt 0 ]; then
  echo "ok   android Kotlin type-checks against the stubs (${#sources[@]} files, $n classes of android/ and reactnative/)"
else
  echo "FAIL kotlinc succeeded but wrote no classes of android/ or reactnative/"
  exit 1
fi
