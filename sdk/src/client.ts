import { io as realIo, type Socket } from 'socket.io-client';

import type {
  AdminOverview,
  ChildView,
  CommandStatusData,
  CommandType,
  CommandView,
  NotificationView,
  ParentReady,
  ServerEvents,
} from './generated/wire.js';
import { Backoff } from './backoff.js';
import { CommandTracker } from './commands.js';
import { CommandAbortedError } from './errors.js';
import { RestClient, type TokenSource } from './rest.js';
import { decodeJwt, refreshDelayMs, type TokenClaims } from './token.js';
import type {
  ClaimResult,
  CommandResult,
  CommandsQuery,
  ConnectionState,
  DeviceWithPresence,
  NotificationsQuery,
  SafeStreamClient,
  SafeStreamOptions,
  SendCommandOptions,
} from './types.js';

type Listener = (data: unknown) => void;

/** `connect_error` messages that mean "this token is refused" (close 4401). */
const AUTH_MESSAGES = new Set(['token expired', 'invalid token', 'missing token', 'unauthorized', 'device token superseded']);
/** `connect_error` messages that mean "forbidden for good" (close 4403). */
const FORBIDDEN_MESSAGES = new Set(['device revoked', 'forbidden']);

/** How close to `exp` a token is no longer used for a REST call, ms. */
const EXPIRY_MARGIN_MS = 5_000;
/** A connection that stayed up this long (ms) sends the backoff back to its first step. */
const STABLE_CONNECTION_MS = 10_000;

function errorCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const data = (err as { data?: unknown }).data;
  if (typeof data !== 'object' || data === null) return undefined;
  const code = (data as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/** The client; see [`SafeStreamClient`]. Build it with [`createClient`]. */
class Client implements SafeStreamClient {
  private _state: ConnectionState = 'idle';
  private _socket: Socket | null = null;
  private _userId: string | null = null;
  private token: string | null = null;
  private claims: TokenClaims | null = null;
  private pendingToken: Promise<string> | null = null;
  /** Bumped by connect() and close(): async work of an older run does nothing. */
  private run = 0;
  private everReady = false;
  private authRetried = false;
  private closeCode: number | null = null;
  private justResynced = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly stateListeners = new Set<(s: ConnectionState) => void>();
  private readonly resyncListeners = new Set<() => void>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly backoff: Backoff;
  /** The token the open socket is authenticated with (its CONNECT's, or the last refresh the relay accepted). */
  private socketToken: string | null = null;
  /** Tokens sent as `auth:refresh` on this socket, not answered yet (answers come in order). */
  private refreshSent: string[] = [];
  /** When the current connection got `ready` (ms), null while not connected. */
  private readyAt: number | null = null;
  private readonly rest: RestClient;
  private readonly tracker: CommandTracker;
  private readonly ioFn: NonNullable<SafeStreamOptions['io']>;

  constructor(private readonly opts: SafeStreamOptions) {
    this.backoff = new Backoff({
      baseMs: opts.reconnectDelayMs ?? 500,
      maxMs: opts.reconnectDelayMaxMs ?? 15_000,
      random: opts.random,
    });
    this.ioFn = opts.io ?? realIo;
    const fetchFn: typeof fetch = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const tokens: TokenSource = {
      current: () => this.currentToken(),
      renew: (used) => this.renewToken(used),
    };
    this.rest = new RestClient(opts.url ?? '', fetchFn, tokens, opts.requestTimeoutMs ?? 30_000);
    this.tracker = new CommandTracker({
      createCommand: (b) => this.rest.createCommand(b),
      getCommand: (id) => this.rest.command(id),
      subscribeStatus: (cb) => this.addListener('command:status', cb as Listener),
      graceMs: opts.commandGraceMs ?? 30_000,
    });
  }

  get state(): ConnectionState {
    return this._state;
  }

  get userId(): string | null {
    return this._userId;
  }

  get isAdmin(): boolean {
    return this.claims?.isAdmin ?? false;
  }

  get socket(): Socket | null {
    return this._socket;
  }

  // ---------------------------------------------------------------- listeners

  onState(cb: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(cb);
    return () => {
      this.stateListeners.delete(cb);
    };
  }

  on<E extends keyof ServerEvents>(event: E, cb: (data: ServerEvents[E]) => void): () => void {
    return this.addListener(event, cb as Listener);
  }

  onResync(cb: () => void): () => void {
    this.resyncListeners.add(cb);
    return () => {
      this.resyncListeners.delete(cb);
    };
  }

  listenerCount(): number {
    let n = this.stateListeners.size + this.resyncListeners.size + this.tracker.size;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  private addListener(event: string, cb: Listener): () => void {
    let set = this.listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(event, set);
    }
    // A wrapper per registration: the same function added twice is removed one at a time.
    const entry: Listener = (d) => cb(d);
    set.add(entry);
    return () => {
      const s = this.listeners.get(event);
      if (s === undefined) return;
      s.delete(entry);
      if (s.size === 0) this.listeners.delete(event);
    };
  }

  private dispatch(event: string, data: unknown): void {
    const set = this.listeners.get(event);
    if (set === undefined) return;
    for (const cb of [...set]) {
      try {
        cb(data);
      } catch (e) {
        reportError(e);
      }
    }
  }

  private setState(s: ConnectionState): void {
    if (this._state === s) return;
    this._state = s;
    for (const cb of [...this.stateListeners]) {
      try {
        cb(s);
      } catch (e) {
        reportError(e);
      }
    }
  }

  // ---------------------------------------------------------------- tokens

  private get running(): boolean {
    return this._state === 'connecting' || this._state === 'connected' || this._state === 'reconnecting';
  }

  /** Takes a token from getToken(): remembers it, announces it on an open socket, re-arms the refresh. */
  private setToken(t: string): void {
    const changed = t !== this.token;
    this.token = t;
    this.claims = decodeJwt(t);
    if (changed && this._socket?.connected) {
      this.refreshSent.push(t);
      this._socket.emit('auth:refresh', { token: t });
    }
    if (this.running) this.scheduleRefresh();
  }

  /** getToken(), one call at a time. */
  private fetchToken(): Promise<string> {
    if (this.pendingToken === null) {
      const p = Promise.resolve()
        .then(() => this.opts.getToken())
        .then((t) => {
          if (typeof t !== 'string' || t === '') throw new Error('getToken() gave no token');
          return t;
        })
        .finally(() => {
          if (this.pendingToken === p) this.pendingToken = null;
        });
      this.pendingToken = p;
    }
    return this.pendingToken;
  }

  private async currentToken(): Promise<string> {
    const exp = this.claims?.exp;
    if (this.token !== null && (exp === undefined || exp * 1000 > Date.now() + EXPIRY_MARGIN_MS)) return this.token;
    const t = await this.fetchToken();
    this.setToken(t);
    return t;
  }

  private async renewToken(used: string): Promise<string | null> {
    if (this.token !== null && this.token !== used) return this.token;
    const t = await this.fetchToken();
    this.setToken(t);
    return t === used ? null : t;
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const delay = refreshDelayMs(this.claims?.exp, this.opts.refreshBeforeExpirySec ?? 60, Date.now());
    if (delay === null) return;
    const run = this.run;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      void this.refresh(run);
    }, delay);
  }

  private async refresh(run: number): Promise<void> {
    let t: string;
    try {
      t = await this.fetchToken();
    } catch {
      // Try again later (half the remaining life, at least 1 s); at expiry the relay closes 4401.
      if (run === this.run && this.running) this.scheduleRefresh();
      return;
    }
    if (run !== this.run || !this.running) return;
    // A different token is sent as `auth:refresh` by setToken; the same one re-arms the timer.
    this.setToken(t);
  }

  // ---------------------------------------------------------------- connection

  connect(): void {
    if (this.running) return;
    this.run += 1;
    this.backoff.reset();
    this.authRetried = false;
    // The socket exists at once (for `useSocket().socket`); it connects once a token is there.
    this.ensureSocket();
    this.setState('connecting');
    void this.attempt(this.run);
  }

  close(): void {
    this.run += 1;
    this.clearTimers();
    const s = this._socket;
    this._socket = null;
    if (s !== null) {
      s.offAny();
      s.removeAllListeners();
      s.disconnect();
    }
    this.everReady = false;
    this.tracker.abortAll(new CommandAbortedError('the client was closed: the command was not cancelled on the relay'));
    this.setState('closed');
    this.stateListeners.clear();
    this.resyncListeners.clear();
    this.listeners.clear();
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.retryTimer = null;
    this.refreshTimer = null;
  }

  /** Stops for good (until connect()): 'unauthorized'. */
  private stop(): void {
    this.run += 1;
    this.clearTimers();
    this._socket?.disconnect();
    this.setState('unauthorized');
  }

  private async attempt(run: number, token?: string): Promise<void> {
    try {
      this.setToken(token ?? (await this.fetchToken()));
    } catch {
      if (run === this.run) this.scheduleRetry();
      return;
    }
    if (run !== this.run) return;
    this.ensureSocket().connect();
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const run = this.run;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (run === this.run) void this.attempt(run);
    }, this.backoff.next());
  }

  private ensureSocket(): Socket {
    if (this._socket !== null) return this._socket;
    const socketOpts = {
      path: '/api/socket',
      // Read at every CONNECT: the newest token (socket.io-client adds its pid and offset).
      auth: (cb: (data: object) => void) => {
        const t = this.token ?? '';
        this.socketToken = t;
        this.refreshSent = [];
        cb({ token: t });
      },
      transports: this.opts.transports ?? ['polling', 'websocket'],
      reconnection: false,
      autoConnect: false,
      forceNew: true,
    };
    const s = this.opts.url ? this.ioFn(this.opts.url, socketOpts) : this.ioFn(socketOpts);
    s.on('connect_error', (err: Error) => this.onConnectError(s, err));
    s.on('disconnect', (reason: string) => this.onDisconnect(s, reason));
    s.onAny((event: string, ...args: unknown[]) => this.onEvent(s, event, args[0]));
    this._socket = s;
    return s;
  }

  private onEvent(s: Socket, event: string, data: unknown): void {
    if (s !== this._socket) return;
    if (event === 'ready') {
      this.onReady(s, data as ParentReady);
    } else if (event === 'closing') {
      const code = (data as { code?: unknown } | null)?.code;
      this.closeCode = typeof code === 'number' ? code : null;
    } else if (event === 'auth:refreshed') {
      // The accepted token is the one whose `exp` the answer names (else the oldest sent).
      const at = Date.parse(String((data as { expiresAt?: unknown } | null)?.expiresAt ?? ''));
      let i = this.refreshSent.findIndex((t) => (decodeJwt(t)?.exp ?? NaN) * 1000 === at);
      if (i < 0) i = 0;
      const t = this.refreshSent[i];
      if (t !== undefined) this.socketToken = t;
      this.refreshSent.splice(0, i + 1);
      this.justResynced = false;
    } else if (event === 'error' && (data as { code?: unknown } | null)?.code === 'unauthorized') {
      this.refreshSent.shift(); // a refresh refused: the socket keeps its token
      this.justResynced = false;
    } else if (event === 'resync') {
      if (this.justResynced) {
        // The reconnection was already found unrecovered and consumers already refetched.
        this.justResynced = false;
      } else {
        this.fireResync();
      }
    } else {
      this.justResynced = false;
      if (event === 'command:status') this.tracker.record(data as CommandStatusData);
    }
    this.dispatch(event, data);
  }

  private onReady(s: Socket, data: ParentReady): void {
    if (typeof data?.userId === 'string') this._userId = data.userId;
    const again = this.everReady;
    this.everReady = true;
    this.authRetried = false;
    this.closeCode = null;
    this.readyAt = Date.now();
    this.setState('connected');
    if (!again) {
      // Commands sent before the first connection: their statuses may have gone by.
      this.tracker.recheckAll();
      return;
    }
    if (s.recovered === true) {
      // Missed events are replayed; a GET also catches a status that the replay precedes.
      this.tracker.recheckAll();
    } else {
      this.justResynced = true;
      this.fireResync();
    }
  }

  private fireResync(): void {
    for (const cb of [...this.resyncListeners]) {
      try {
        cb();
      } catch (e) {
        reportError(e);
      }
    }
    this.tracker.recheckAll();
  }

  private onConnectError(s: Socket, err: Error): void {
    if (s !== this._socket || !this.running) return;
    const code = errorCode(err);
    if (code === 4403 || (code === undefined && FORBIDDEN_MESSAGES.has(err.message))) {
      this.stop();
    } else if (code === 4401 || (code === undefined && AUTH_MESSAGES.has(err.message))) {
      void this.authFailure();
    } else {
      this.lost();
    }
  }

  private onDisconnect(s: Socket, reason: string): void {
    if (s !== this._socket || !this.running || reason === 'io client disconnect') return;
    const code = this.closeCode;
    this.closeCode = null;
    if (reason === 'io server disconnect' && code === 4403) {
      this.stop();
    } else if (reason === 'io server disconnect' && code === 4401) {
      this.setState('reconnecting');
      void this.authFailure();
    } else {
      this.lost();
    }
  }

  /** Connection lost or refused for a reason other than the token: retry with backoff. */
  private lost(): void {
    // Back to the shortest delay only after a connection that lasted: a relay that closes
    // right after `ready` (slow consumer, rate limit) is not hammered.
    if (this.readyAt !== null && Date.now() - this.readyAt >= STABLE_CONNECTION_MS) this.backoff.reset();
    this.readyAt = null;
    this.setState(this.everReady ? 'reconnecting' : 'connecting');
    this.scheduleRetry();
  }

  /** The token was refused: one more getToken(); the same token or a second refusal stops. */
  private async authFailure(): Promise<void> {
    const run = this.run;
    if (this.authRetried) {
      this.stop();
      return;
    }
    this.authRetried = true;
    // The token the relay refused is the socket's own, which is not `this.token` when a
    // refresh was refused (a token not valid yet): that newer one may work now.
    const used = this.socketToken ?? this.token;
    let fresh: string;
    try {
      fresh = await this.fetchToken();
    } catch {
      if (run === this.run) this.stop();
      return;
    }
    if (run !== this.run) return;
    if (fresh === used) {
      this.stop();
      return;
    }
    void this.attempt(run, fresh);
  }

  // ---------------------------------------------------------------- commands and REST

  sendCommand(
    childId: string,
    type: CommandType,
    payload: Record<string, unknown> = {},
    opts: SendCommandOptions = {},
  ): Promise<CommandResult> {
    return this.tracker.send(childId, type, payload, opts);
  }

  children(): Promise<ChildView[]> {
    return this.rest.children();
  }
  child(childId: string): Promise<ChildView> {
    return this.rest.child(childId);
  }
  devices(childId: string): Promise<DeviceWithPresence[]> {
    return this.rest.devices(childId);
  }
  revokeDevice(deviceId: string): Promise<void> {
    return this.rest.revokeDevice(deviceId);
  }
  commands(q?: CommandsQuery): Promise<CommandView[]> {
    return this.rest.commands(q);
  }
  command(id: string): Promise<CommandView> {
    return this.rest.command(id);
  }
  notifications(q?: NotificationsQuery): Promise<NotificationView[]> {
    return this.rest.notifications(q);
  }
  markNotificationRead(id: string): Promise<void> {
    return this.rest.markNotificationRead(id);
  }
  claimPairing(code: string, childId?: string): Promise<ClaimResult> {
    return this.rest.claimPairing(code, childId);
  }
  approvePairing(pairingId: string, childId: string, name?: string): Promise<{ deviceId: string; childId: string }> {
    return this.rest.approvePairing(pairingId, childId, name);
  }
  rejectPairing(pairingId: string): Promise<void> {
    return this.rest.rejectPairing(pairingId);
  }
  adminOverview(): Promise<AdminOverview> {
    return this.rest.adminOverview();
  }
}

/** A listener threw: report it without breaking the client (as an uncaught error would). */
function reportError(e: unknown): void {
  setTimeout(() => {
    throw e;
  }, 0);
}

/**
 * Creates a client. Nothing happens until `connect()` (REST calls work without it): no
 * socket, no timer, no access to `window`, so it can be created during a render.
 */
export function createClient(opts: SafeStreamOptions): SafeStreamClient {
  return new Client(opts);
}
