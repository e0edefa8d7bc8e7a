// Fakes for the unit tests: a socket with the socket.io-client surface the SDK uses (plus
// "server" helpers to drive it), an `io` that hands them out, a routed `fetch`, and tokens.
import type { io as realIo } from 'socket.io-client';

type Fn = (...args: unknown[]) => void;

/** A fake socket.io-client Socket. */
export class FakeSocket {
  connected = false;
  recovered = false;
  auth: unknown;
  connectCalls = 0;
  disconnectCalls = 0;
  /** What each CONNECT would carry (the auth callback's data). */
  readonly authSent: Record<string, unknown>[] = [];
  /** Every client emit. */
  readonly emitted: { event: string; args: unknown[] }[] = [];
  private readonly handlers = new Map<string, Fn[]>();
  private anyHandlers: Fn[] = [];

  constructor(readonly opts: Record<string, unknown>) {
    this.auth = opts.auth;
  }

  on(ev: string, fn: Fn): this {
    this.handlers.set(ev, [...(this.handlers.get(ev) ?? []), fn]);
    return this;
  }
  off(ev?: string, fn?: Fn): this {
    if (ev === undefined) this.handlers.clear();
    else if (fn === undefined) this.handlers.delete(ev);
    else this.handlers.set(ev, (this.handlers.get(ev) ?? []).filter((f) => f !== fn));
    return this;
  }
  onAny(fn: Fn): this {
    this.anyHandlers.push(fn);
    return this;
  }
  offAny(fn?: Fn): this {
    this.anyHandlers = fn === undefined ? [] : this.anyHandlers.filter((f) => f !== fn);
    return this;
  }
  removeAllListeners(ev?: string): this {
    return this.off(ev);
  }
  listeners(ev: string): Fn[] {
    return [...(this.handlers.get(ev) ?? [])];
  }
  /** Every listener, reserved events and onAny included. */
  listenerCount(): number {
    let n = this.anyHandlers.length;
    for (const l of this.handlers.values()) n += l.length;
    return n;
  }
  emit(event: string, ...args: unknown[]): this {
    this.emitted.push({ event, args });
    return this;
  }
  connect(): this {
    this.connectCalls += 1;
    if (typeof this.auth === 'function') {
      (this.auth as (cb: (d: Record<string, unknown>) => void) => void)((d) => this.authSent.push(d));
    }
    return this;
  }
  disconnect(): this {
    this.disconnectCalls += 1;
    if (this.connected) {
      this.connected = false;
      this.fire('disconnect', 'io client disconnect');
    }
    return this;
  }

  // ---- the "server" side ----
  private fire(ev: string, ...args: unknown[]): void {
    for (const f of this.handlers.get(ev) ?? []) f(...args);
  }
  /** CONNECT answered. */
  serverConnect(recovered = false): void {
    this.connected = true;
    this.recovered = recovered;
    this.fire('connect');
  }
  /** An event from the relay (what onAny and per-event listeners see). */
  serverEvent(ev: string, ...args: unknown[]): void {
    for (const f of [...this.anyHandlers]) f(ev, ...args);
    this.fire(ev, ...args);
  }
  /** CONNECT answered and `ready`. */
  serverReady(recovered = false, userId = 'u1'): void {
    this.serverConnect(recovered);
    this.serverEvent('ready', { role: 'parent', userId, heartbeatSec: 25, seq: 1, resumed: recovered }, '1');
  }
  /** CONNECT_ERROR (or a transport failure when `code` is undefined). */
  connectError(message: string, code?: number): void {
    const err = Object.assign(new Error(message), code === undefined ? {} : { data: { code } });
    this.fire('connect_error', err);
  }
  /** The connection ends with `reason` ('transport close', 'io server disconnect', ...). */
  serverDisconnect(reason: string): void {
    this.connected = false;
    this.fire('disconnect', reason);
  }
}

/** A fake `io`: each call gives a new FakeSocket. */
export function fakeIo(): { io: typeof realIo; sockets: FakeSocket[]; calls: unknown[][] } {
  const sockets: FakeSocket[] = [];
  const calls: unknown[][] = [];
  const io = (...args: unknown[]) => {
    calls.push(args);
    const opts = (typeof args[0] === 'string' ? args[1] : args[0]) as Record<string, unknown>;
    const s = new FakeSocket(opts);
    sockets.push(s);
    return s;
  };
  return { io: io as unknown as typeof realIo, sockets, calls };
}

/** One recorded fetch call. */
export interface FetchCall {
  method: string;
  url: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

/** What a route answers: a status, a JSON body, headers; or a thrown error (network). */
export type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | Error;

/** A fake fetch: `route` answers each call (may be async). */
export function fakeFetch(route: (c: FetchCall) => Answer | Promise<Answer>): { fetch: typeof fetch; calls: FetchCall[] } {
  const calls: FetchCall[] = [];
  const f = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries((init?.headers ?? {}) as Record<string, string>)) headers[k.toLowerCase()] = v;
    const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as unknown) : undefined;
    const u = new URL(url, 'http://relay.test');
    const call: FetchCall = { method: init?.method ?? 'GET', url, path: u.pathname + u.search, headers, body };
    calls.push(call);
    const a = await route(call);
    if (a instanceof Error) throw a;
    return new Response(a.body === undefined ? '' : JSON.stringify(a.body), { status: a.status, headers: a.headers });
  };
  return { fetch: f as typeof fetch, calls };
}

/** An unsigned JWT with these claims (the SDK never verifies). */
export function jwt(claims: Record<string, unknown>): string {
  const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'HS256', typ: 'JWT' })}.${b(claims)}.c2ln`;
}

/** A parent token for `sub` expiring `secs` from now (by `Date.now()`, fake timers included). */
export function tokenFor(sub: string, secs = 3600, extra: Record<string, unknown> = {}): string {
  return jwt({ sub, exp: Math.floor(Date.now() / 1000) + secs, ...extra });
}

/** A command as the REST API shows it. */
export function commandView(id: string, over: Partial<Record<string, unknown>> = {}): Record<string, unknown> {
  return {
    id,
    childId: 'kid1',
    deviceId: null,
    commandType: 'PAUSE',
    payload: {},
    status: 'PENDING',
    createdBy: 'u1',
    createdAt: '2030-01-01T00:00:00.000Z',
    expiresAt: '2030-01-01T00:05:00.000Z',
    deliveredAt: null,
    executedAt: null,
    error: null,
    ackDeviceId: null,
    ...over,
  };
}

/** A `command:status` event's data. */
export function statusEvent(commandId: string, status: string, over: Partial<Record<string, unknown>> = {}): Record<string, unknown> {
  const final = status === 'EXECUTED' || status === 'FAILED';
  return {
    commandId,
    status,
    deviceId: 'd1',
    executedAt: final ? '2030-01-01T00:00:02.000Z' : null,
    error: status === 'FAILED' ? 'boom' : status === 'EXPIRED' ? 'expired' : null,
    childId: 'kid1',
    ...over,
  };
}

/** A promise with its resolve, for answers that come later. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((ok) => (resolve = ok));
  return { promise, resolve };
}

/** Lets pending promise callbacks run. */
export async function flush(times = 5): Promise<void> {
  for (let i = 0; i < times; i += 1) await Promise.resolve();
}
