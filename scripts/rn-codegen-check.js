#!/usr/bin/env node
// Runs React Native's codegen (@react-native/codegen, a dev dependency) on the package's spec
// the way an app build does (package.json `codegenConfig`): parses `src/Native*.ts` into a
// schema (fails on anything codegen rejects), validates it, and generates the Android Java
// spec and the iOS Objective-C++ spec into target/rn-codegen/. Then checks, as text, that
// the iOS module (Swift + its .m) exports every selector of the generated protocol (no Xcode
// here to compile it). `RN_ARCH=newarch scripts/android-stub-check.sh` then type-checks the
// Android module against the generated Java.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const out = path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), 'rn-codegen');
const pkg = require(path.join(root, 'package.json'));
const cfg = pkg.codegenConfig;
const { combineSchemasInFileList } = require('@react-native/codegen/lib/cli/combine/combine-js-to-schema');
const RNCodegen = require('@react-native/codegen/lib/generators/RNCodegen');

function fail(msg) {
  console.error(`FAIL rn codegen: ${msg}`);
  process.exit(1);
}

const srcDir = path.join(root, cfg.jsSrcsDir);
const specs = fs.readdirSync(srcDir).filter((f) => /^Native.+\.ts$/.test(f)).map((f) => path.join(srcDir, f));
if (specs.length !== 1) fail(`expected one src/Native*.ts spec, found ${specs.length}`);
const schema = combineSchemasInFileList(specs, null, null, cfg.name);
const mod = schema.modules.NativeSafeStreamAgent;
if (!mod || mod.type !== 'NativeModule') fail('no NativeModule NativeSafeStreamAgent in the schema');
if (!mod.moduleName || mod.moduleName !== 'SafeStreamAgent') fail(`module name ${mod.moduleName}, expected SafeStreamAgent`);
const methods = mod.spec.methods.map((m) => m.name);

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'schema.json'), JSON.stringify(schema, null, 2));
RNCodegen.generate(
  { libraryName: cfg.name, schema, outputDirectory: out, packageName: cfg.android.javaPackageName },
  { generators: ['modulesAndroid', 'modulesIOS'] },
);
const javaSpec = path.join(out, 'java', ...cfg.android.javaPackageName.split('.'), 'NativeSafeStreamAgentSpec.java');
const objcHeader = path.join(out, cfg.name, `${cfg.name}.h`);
for (const f of [javaSpec, objcHeader]) if (!fs.existsSync(f)) fail(`codegen did not write ${f}`);

// The generated protocol's selectors, e.g. `start:resolve:reject:`.
const header = fs.readFileSync(objcHeader, 'utf8');
const proto = header.split('@protocol NativeSafeStreamAgentSpec')[1]?.split('@end')[0];
if (!proto) fail('no NativeSafeStreamAgentSpec protocol in the generated header');
const selectors = proto
  .split('- (void)')
  .slice(1)
  .map((decl) => {
    const parts = [...decl.matchAll(/(\w+):\(/g)].map((m) => `${m[1]}:`);
    return parts.length ? parts.join('') : decl.trim().replace(/;.*$/s, '');
  });
if (selectors.length !== methods.length) fail(`${selectors.length} protocol selectors for ${methods.length} methods`);

// What the iOS module exports: Swift `@objc(selector)` and the .m's RCT_EXTERN_METHOD lines.
const iosDir = path.join(root, 'ios', 'RNSafeStreamAgent');
const swift = fs.readFileSync(path.join(iosDir, 'SafeStreamAgentModule.swift'), 'utf8');
const objc = fs.readFileSync(path.join(iosDir, 'SafeStreamAgentModule.m'), 'utf8');
const swiftSelectors = new Set([...swift.matchAll(/@objc\(([\w:]+)\)/g)].map((m) => m[1]));
const externSelectors = new Set(
  [...objc.matchAll(/RCT_EXTERN_METHOD\(([^\n]*)\)\s*$/gm)].map((m) => {
    const parts = [...m[1].matchAll(/(\w+):\(/g)].map((p) => `${p[1]}:`);
    return parts.length ? parts.join('') : m[1].trim();
  }),
);
// RCTEventEmitter (the Swift module's superclass) implements these two.
const inherited = new Set(['addListener:', 'removeListeners:']);
const missing = [];
for (const sel of selectors) {
  if (inherited.has(sel)) continue;
  if (!swiftSelectors.has(sel)) missing.push(`Swift @objc(${sel})`);
  if (!externSelectors.has(sel)) missing.push(`RCT_EXTERN_METHOD(${sel})`);
}
if (missing.length) fail(`the iOS module lacks selectors of the generated protocol: ${missing.join(', ')}`);

console.log(
  `ok   rn codegen: spec ${path.relative(root, specs[0])} -> ${methods.length} methods; ` +
    `Java spec and ObjC protocol generated in ${path.relative(root, out)}; ` +
    `iOS module exports all ${selectors.length - inherited.size} own selectors`,
);
