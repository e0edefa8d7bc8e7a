#!/usr/bin/env node
// Relay memory per idle Socket.IO long-polling session (BENCHMARKS.md): starts the release
// relay on a fresh SQLite file, registers one family, opens N socket.io-client parents with
// `transports: ['polling']`, waits, and prints the relay's RSS growth per session.
//   cargo build --release -p relay && node scripts/sio-polling-idle.mjs 2000
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';

const n = Number(process.argv[2] ?? 2000);
const port = 18000 + Math.floor(Math.random() * 1000);
const secret = 'polling-idle-secret-0123456789abcdef012345';
const dir = mkdtempSync(join(tmpdir(), 'sio-idle-'));
const relay = spawn('target/release/safestream-relay', [], {
  env: { ...process.env, SAFESTREAM_LISTEN: `127.0.0.1:${port}`, SAFESTREAM_DB: join(dir, 'r.db'),
    SAFESTREAM_JWT_SECRET: secret, SAFESTREAM_SERVER_KEY: 'k'.repeat(40), SAFESTREAM_MAX_CONN_PER_USER: String(n + 10),
    RUST_LOG: 'warn' },
  stdio: 'inherit',
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${relay.pid}/status`, 'utf8'))[1]);
const token = (() => {
  const b = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const h = b({ alg: 'HS256', typ: 'JWT' }), p = b({ sub: 'u1', iat: now, exp: now + 3600 });
  return `${h}.${p}.${createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')}`;
})();
for (let i = 0; i < 100; i++) { try { if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break; } catch {} await sleep(100); }
await sleep(1000);
const before = rss();
const sockets = [];
for (let i = 0; i < n; i++) {
  sockets.push(io(`http://127.0.0.1:${port}`, { path: '/api/socket', transports: ['polling'], auth: { token }, forceNew: true }));
  if (i % 100 === 99) await sleep(50);
}
const end = Date.now() + 60_000;
while (sockets.some((s) => !s.connected) && Date.now() < end) await sleep(100);
const up = sockets.filter((s) => s.connected).length;
await sleep(5000);
const after = rss();
console.log(`| ${n} polling sessions (${up} connected) | ${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB | ${((after - before) / up).toFixed(2)} KiB per session |`);
for (const s of sockets) s.close();
relay.kill('SIGKILL');
process.exit(0);
