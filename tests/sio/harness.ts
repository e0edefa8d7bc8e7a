// The real relay binary, driven from Node for the Socket.IO suite: start, stop, SIGKILL,
// restart on the same port and database; tokens; the REST calls a backend and a parent make;
// a round-robin HTTP/WebSocket proxy in front of several nodes; Redis and a fresh PostgreSQL
// database for the multi-node tests.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, existsSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import { join, resolve } from 'node:path';

export const JWT_SECRET = 'sio-suite-secret-0123456789abcdef0123456789';
export const SERVER_KEY = 'sio-suite-server-key-0123456789abcdef012345';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The relay binary: `SAFESTREAM_RELAY_BIN`, else the workspace's debug build. */
export function relayBin(): string {
  const bin = process.env.SAFESTREAM_RELAY_BIN ?? join(ROOT, 'target', 'debug', 'safestream-relay');
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run \`cargo build -p relay --bin safestream-relay\` first`);
  }
  return bin;
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createNetServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => ok(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((ok) => setTimeout(ok, ms));

/** Waits until `cond()` holds, or fails after `ms` with `what`. */
export async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** A parent's JWT (HS256 with the suite's secret), valid for `secs`. */
export function parentToken(user: string, secs = 3600, secret = JWT_SECRET): string {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub: user, email: `${user}@example.com`, isAdmin: false, iat: now, exp: now + secs }));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** One relay process. */
export class Relay {
  readonly port: number;
  readonly url: string;
  private child: ChildProcess | null = null;
  log = '';

  constructor(port: number, readonly env: Record<string, string>) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Starts a relay on a fresh SQLite file (or `env.SAFESTREAM_DB`). */
  static async start(env: Record<string, string> = {}): Promise<Relay> {
    const dir = mkdtempSync(join(tmpdir(), 'sio-suite-'));
    const r = new Relay(await freePort(), { SAFESTREAM_DB: join(dir, 'relay.db'), ...env });
    await r.spawn();
    return r;
  }

  async spawn(): Promise<void> {
    const child = spawn(relayBin(), [], {
      env: {
        ...process.env,
        SAFESTREAM_LISTEN: `127.0.0.1:${this.port}`,
        SAFESTREAM_JWT_SECRET: JWT_SECRET,
        SAFESTREAM_SERVER_KEY: SERVER_KEY,
        RUST_LOG: 'warn',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d) => (this.log += d));
    child.stderr?.on('data', (d) => (this.log += d));
    this.child = child;
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      if (child.exitCode !== null) throw new Error(`relay exited: ${this.log}`);
      try {
        const r = await fetch(`${this.url}/readyz`);
        if (r.ok) return;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    throw new Error(`relay not ready in 30 s: ${this.log}`);
  }

  /** SIGKILL: no goodbye to anyone. */
  async kill(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((ok) => c.once('exit', ok));
    c.kill('SIGKILL');
    await gone;
  }

  /** Graceful stop. */
  async stop(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((ok) => c.once('exit', ok));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }

  /** A REST call; returns status and JSON body. */
  async call(method: string, path: string, bearer: string, body?: unknown): Promise<{ status: number; body: any }> {
    const r = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }

  async ok(method: string, path: string, bearer: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, bearer, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** As the backend: a child with one guardian, and a device of it; returns its id and token. */
  async family(child: string, guardian: string): Promise<{ deviceId: string; token: string }> {
    await this.ok('PUT', `/api/children/${child}`, SERVER_KEY, { name: `Child ${child}`, guardians: [guardian] });
    const d = await this.ok('POST', `/api/children/${child}/devices`, SERVER_KEY, { name: `${child}'s tablet` });
    return { deviceId: d.deviceId, token: d.token };
  }

  /** As the backend: a notification for `user` (the `notification:new` event). */
  async notify(user: string, title: string): Promise<void> {
    await this.ok('POST', '/api/dashboard/notifications', SERVER_KEY, {
      userId: user,
      type: 'RESTRICTED_CONTENT',
      title,
      message: title,
    });
  }
}

/** A round-robin proxy in front of `targets`: each HTTP request and each WebSocket upgrade
 * goes to the next node in turn, as a load balancer without sticky sessions does. */
export class RoundRobin {
  private next = 0;
  private server: Server;
  private tunnels = new Set<{ destroy: () => void }>();
  readonly url: string;
  /** Requests sent to each target, by index. */
  readonly counts: number[];

  private constructor(
    readonly port: number,
    private targets: number[],
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.counts = targets.map(() => 0);
    this.server = createServer((req, res) => {
      const i = this.pick();
      const up = httpRequest(
        { host: '127.0.0.1', port: this.targets[i], method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      req.pipe(up);
    });
    this.server.on('upgrade', (req, sock, head) => {
      const i = this.pick();
      const up = netConnect(this.targets[i], '127.0.0.1', () => {
        let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
        for (let k = 0; k < req.rawHeaders.length; k += 2) raw += `${req.rawHeaders[k]}: ${req.rawHeaders[k + 1]}\r\n`;
        up.write(raw + '\r\n');
        if (head.length) up.write(head);
        up.pipe(sock);
        sock.pipe(up);
      });
      this.tunnels.add(up);
      this.tunnels.add(sock);
      up.on('close', () => this.tunnels.delete(up));
      sock.on('close', () => this.tunnels.delete(sock));
      up.on('error', () => sock.destroy());
      sock.on('error', () => up.destroy());
    });
  }

  private pick(): number {
    const i = this.next % this.targets.length;
    this.next += 1;
    this.counts[i] += 1;
    return i;
  }

  static async start(targets: number[]): Promise<RoundRobin> {
    const p = new RoundRobin(await freePort(), targets);
    await new Promise<void>((ok) => p.server.listen(p.port, '127.0.0.1', ok));
    return p;
  }

  async stop(): Promise<void> {
    for (const t of this.tunnels) t.destroy();
    this.server.closeAllConnections();
    await new Promise((ok) => this.server.close(ok));
  }
}

/** A throwaway redis-server on a free port. */
export async function startRedis(): Promise<{ url: string; stop: () => void }> {
  const port = await freePort();
  const bin = process.env.SAFESTREAM_TEST_REDIS_SERVER ?? 'redis-server';
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const end = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((ok) => {
      const s = netConnect(port, '127.0.0.1', () => {
        s.destroy();
        ok(true);
      });
      s.on('error', () => ok(false));
    });
    if (up) break;
    if (Date.now() > end) throw new Error('redis-server did not listen in 10 s');
    await sleep(50);
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

/** A fresh database on `SAFESTREAM_TEST_PG` (scripts/services.sh); fails when it is unset. */
export function freshDatabase(): string {
  const admin = process.env.SAFESTREAM_TEST_PG;
  if (!admin?.startsWith('postgres')) {
    throw new Error('SAFESTREAM_TEST_PG is not set: run `eval "$(scripts/services.sh start)"` first');
  }
  const name = `sio_${randomBytes(8).toString('hex')}`;
  execFileSync('psql', [admin, '-q', '-c', `CREATE DATABASE ${name}`], { stdio: 'ignore' });
  return `${admin.slice(0, admin.lastIndexOf('/'))}/${name}`;
}

/** One received event: its name and arguments. */
export type Got = { ev: string; args: unknown[] };

/** Everything `socket` receives, in order. */
export function record(socket: Socket): Got[] {
  const got: Got[] = [];
  socket.onAny((ev: string, ...args: unknown[]) => got.push({ ev, args }));
  return got;
}

/** The titles of the `notification:new` events received, in order. */
export const titles = (got: Got[]) =>
  got.filter((g) => g.ev === 'notification:new').map((g) => (g.args[0] as { title: string }).title);

/** A parent's socket that reconnects after exactly `delayMs` (recovery tests). */
export function parentSocket(url: string, user: string, delayMs: number): Socket {
  return io(url, {
    path: '/api/socket',
    auth: { token: parentToken(user) },
    reconnectionDelay: delayMs,
    reconnectionDelayMax: delayMs,
    randomizationFactor: 0,
  });
}
