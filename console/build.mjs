#!/usr/bin/env node
// Builds the console into relay/console/ (index.html, app.js, app.css), which the relay
// compiles into its binary and serves at `/`, `/console/app.js`, `/console/app.css`.
//
//   node console/build.mjs           build (deterministic: same sources, same bytes)
//   node console/build.mjs --check   build into a temp dir and fail when relay/console/ differs
import * as esbuild from 'esbuild';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const outDir = resolve(root, 'relay/console');
const FILES = ['index.html', 'app.js', 'app.css'];

const common = {
  absWorkingDir: here,
  bundle: true,
  minify: true,
  target: 'es2020',
  legalComments: 'none',
  sourcemap: false,
  write: false,
  logLevel: 'warning',
  charset: 'ascii',
};

/** Builds the three files in memory: { name: Uint8Array }. */
async function buildFiles() {
  const js = await esbuild.build({
    ...common,
    entryPoints: [join(here, 'src/main.tsx')],
    outfile: 'app.js',
    platform: 'browser',
    format: 'iife',
    // '@safestream/sdk' resolves to sdk/src through the package's "source" export condition.
    conditions: ['source'],
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const css = await esbuild.build({
    ...common,
    entryPoints: [join(here, 'src/styles.css')],
    outfile: 'app.css',
  });
  if (js.outputFiles.length !== 1 || css.outputFiles.length !== 1) {
    throw new Error(`unexpected esbuild outputs: ${[...js.outputFiles, ...css.outputFiles].map((f) => f.path).join(', ')}`);
  }

  const html = (await readFile(join(here, 'index.html'), 'utf8')).replace(/\r\n?/g, '\n');
  // The relay's CSP allows only same-origin script and style: no inline code in the page.
  if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html) || /<style[\s>]/i.test(html) || /\son[a-z]+\s*=/i.test(html) || /\sstyle\s*=/i.test(html)) {
    throw new Error('console/index.html must not hold inline scripts, styles or event handlers (CSP)');
  }
  for (const ref of ['src="/console/app.js"', 'href="/console/app.css"']) {
    if (!html.includes(ref)) throw new Error(`console/index.html must reference ${ref}`);
  }

  return {
    'index.html': new TextEncoder().encode(html),
    'app.js': js.outputFiles[0].contents,
    'app.css': css.outputFiles[0].contents,
  };
}

async function writeInto(dir, files) {
  await mkdir(dir, { recursive: true });
  for (const name of FILES) await writeFile(join(dir, name), files[name]);
}

async function listDir(dir) {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function readOrNull(path) {
  try {
    return await readFile(path);
  } catch {
    return null;
  }
}

async function check() {
  const tmp = await mkdtemp(join(tmpdir(), 'safestream-console-'));
  try {
    await writeInto(tmp, await buildFiles());
    const problems = [];
    for (const name of FILES) {
      const fresh = await readFile(join(tmp, name));
      const committed = await readOrNull(join(outDir, name));
      if (committed === null) problems.push(`${name} is missing`);
      else if (!committed.equals(fresh)) problems.push(`${name} differs (${committed.length} bytes committed, ${fresh.length} bytes built)`);
    }
    for (const name of await listDir(outDir)) {
      if (!FILES.includes(name)) problems.push(`${name} should not be there`);
    }
    const where = relative(process.cwd(), outDir) || '.';
    if (problems.length > 0) {
      console.error(`console build is stale: ${where}/ does not match console/ sources:`);
      for (const p of problems) console.error(`  - ${p}`);
      console.error('Run `node console/build.mjs` and commit relay/console/.');
      process.exitCode = 1;
    } else {
      console.log(`console build is up to date (${where}/).`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function build() {
  const files = await buildFiles();
  await writeInto(outDir, files);
  for (const name of await listDir(outDir)) {
    if (!FILES.includes(name)) await rm(join(outDir, name), { recursive: true, force: true });
  }
  const where = relative(process.cwd(), outDir) || '.';
  for (const name of FILES) console.log(`${where}/${name}  ${files[name].length} bytes`);
}

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== '--check');
if (unknown.length > 0) {
  console.error(`usage: node console/build.mjs [--check]   (unknown: ${unknown.join(' ')})`);
  process.exit(2);
}
try {
  await (args.includes('--check') ? check() : build());
} catch (err) {
  // esbuild has already printed its errors (logLevel); others are ours.
  const logged = err && typeof err === 'object' && Array.isArray(err.errors);
  console.error(logged ? 'console build failed (see the errors above)' : `console build failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
