import type {
  AgentCommand,
  AgentConfig,
  CommandOutcome,
  CommandType,
  ConnectionState,
  PairedDevice,
  PairingCode,
  RestrictedAttempt,
  SafeStreamErrorCode,
  Subscription,
} from './types';
import { EVENTS, type EventSource, type NativeCommandEvent, type NativeSafeStreamAgent } from './native';

const COMMAND_TYPES: readonly string[] = ['PAUSE', 'RESUME', 'LOCK_DEVICE', 'UNLOCK_DEVICE', 'SHOW_MESSAGE'];
const STATES: readonly string[] = ['stopped', 'not_paired', 'connecting', 'connected', 'disconnected', 'unauthorized'];

/** A command handler: runs the command (e.g. pauses the player) and resolves with the outcome. */
export type CommandHandler = (command: AgentCommand) => Promise<CommandOutcome> | CommandOutcome;

/** An error from the agent; `code` is the Rust `SafeStreamError` variant. */
export class SafeStreamError extends Error {
  readonly code: SafeStreamErrorCode;
  constructor(code: SafeStreamErrorCode, message: string) {
    super(message);
    this.name = 'SafeStreamError';
    this.code = code;
  }
}

function wrapError(e: unknown): SafeStreamError {
  const err = e as { code?: string; message?: string } | undefined;
  const code = (err?.code ?? 'Internal') as SafeStreamErrorCode;
  return new SafeStreamError(code, err?.message ?? String(e));
}

async function call<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw wrapError(e);
  }
}

function toCommand(e: NativeCommandEvent): AgentCommand | null {
  if (!e || typeof e.id !== 'string' || !COMMAND_TYPES.includes(e.type)) return null;
  let payload: Record<string, unknown> = {};
  try {
    const v: unknown = JSON.parse(e.payloadJson || '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) payload = v as Record<string, unknown>;
  } catch {
    // the agent only hands over JSON objects; keep {} if not
  }
  return { id: e.id, type: e.type as CommandType, payload, expiresAt: e.expiresAt, createdAt: e.createdAt ?? null };
}

function normalizeOutcome(o: unknown): { status: 'EXECUTED' | 'FAILED'; error: string | null } {
  const v = o as { status?: unknown; error?: unknown } | undefined;
  if (v && v.status === 'EXECUTED') return { status: 'EXECUTED', error: null };
  if (v && v.status === 'FAILED') {
    return { status: 'FAILED', error: typeof v.error === 'string' && v.error.trim() ? v.error : 'failed' };
  }
  return { status: 'FAILED', error: 'the app returned no valid outcome' };
}

/** The agent's JavaScript API over a native module; `index.ts` builds the app's instance. */
export class SafeStreamAgent {
  private handler: CommandHandler | null = null;
  private readonly stateListeners = new Set<(s: ConnectionState) => void>();

  constructor(
    private readonly native: NativeSafeStreamAgent,
    events: EventSource,
  ) {
    events.addListener(EVENTS.command, (e: NativeCommandEvent) => {
      void this.dispatch(e);
    });
    events.addListener(EVENTS.state, (e: { state?: string }) => {
      const s = e?.state;
      if (typeof s === 'string' && STATES.includes(s)) {
        for (const l of this.stateListeners) {
          try {
            l(s as ConnectionState);
          } catch {
            // a listener's bug must not stop the others
          }
        }
      }
    });
  }

  /** Runs one command through the handler and reports its outcome; never throws. */
  private async dispatch(e: NativeCommandEvent): Promise<void> {
    const command = toCommand(e);
    if (!command) {
      if (e && typeof e.id === 'string') {
        await this.native.completeCommand(e.id, 'FAILED', 'unsupported command').catch(() => undefined);
      }
      return;
    }
    let outcome: { status: 'EXECUTED' | 'FAILED'; error: string | null };
    const handler = this.handler;
    if (!handler) {
      outcome = { status: 'FAILED', error: 'no command handler in the app' };
    } else {
      try {
        outcome = normalizeOutcome(await handler(command));
      } catch (err) {
        outcome = { status: 'FAILED', error: err instanceof Error ? err.message || 'failed' : String(err) };
      }
    }
    // UnknownCommand: the command timed out meanwhile (already reported FAILED "timeout").
    await this.native.completeCommand(command.id, outcome.status, outcome.error).catch(() => undefined);
  }

  /**
   * Sets the handler of remote commands (one at a time; a new call replaces it). The
   * handler resolves with the outcome; a rejection or an invalid outcome is reported as
   * FAILED with its message. Register it before `start()`.
   */
  onCommand(handler: CommandHandler): Subscription {
    this.handler = handler;
    return {
      remove: () => {
        if (this.handler === handler) this.handler = null;
      },
    };
  }

  /** Listens to connection-state changes. */
  onStateChange(listener: (state: ConnectionState) => void): Subscription {
    this.stateListeners.add(listener);
    return { remove: () => void this.stateListeners.delete(listener) };
  }

  /** Starts the agent (idempotent); resolves with the current state (`not_paired`: pair first). */
  async start(config: AgentConfig): Promise<ConnectionState> {
    if (!config || typeof config.relayUrl !== 'string' || !config.relayUrl) {
      throw new SafeStreamError('Config', 'relayUrl is required');
    }
    return (await call(() => this.native.start({ ...config }))) as ConnectionState;
  }

  /** Stops the agent (queued acks stay on disk for the next start). */
  stop(): Promise<void> {
    return call(() => this.native.stop());
  }

  /** The current connection state. */
  async state(): Promise<ConnectionState> {
    return (await call(() => this.native.getState())) as ConnectionState;
  }

  /** Starts pairing: resolves with the code to show to the parent. */
  pair(deviceName: string): Promise<PairingCode> {
    return call(() => this.native.pair(deviceName));
  }

  /** Waits for the parent's approval; then the token is stored and the agent connects. */
  waitForPairing(): Promise<PairedDevice> {
    return call(() => this.native.waitForPairing());
  }

  /** Reports whether the child is watching and what. */
  reportStatus(activeViewing: boolean, currentVideo?: Record<string, unknown> | string | null): void {
    const v = currentVideo == null ? null : typeof currentVideo === 'string' ? currentVideo : JSON.stringify(currentVideo);
    this.native.reportStatus(!!activeViewing, v);
  }

  /**
   * Reports a restricted-content attempt; the relay notifies the child's guardians.
   * Resolves once the report is in the agent's queue on disk (not when the relay has it):
   * the agent posts it, retrying with backoff and across restarts, until the relay answers
   * (see `waitForReports`). At most 300 attempts wait unsent (the oldest is dropped beyond
   * that); a retry after a lost answer may notify twice. Rejects with `Config` when
   * `metadata` is over 8 KiB, `Storage` when the queue cannot be written.
   */
  reportRestrictedAttempt(attempt: RestrictedAttempt): Promise<void> {
    const { metadata, ...rest } = attempt ?? {};
    return call(() =>
      this.native.reportRestrictedAttempt({ ...rest, metadataJson: metadata ? JSON.stringify(metadata) : null }),
    );
  }

  /**
   * Reports the minutes the child used today (a whole number from 0 to 1440), for the child
   * of the device token; the relay alerts the guardians the first time a day's value reaches
   * the child's limit. Durable like `reportRestrictedAttempt`; a newer value replaces one not
   * yet sent. Rejects with `Config` for a value out of range.
   */
  reportScreenTime(minutesUsed: number): Promise<void> {
    if (!Number.isInteger(minutesUsed) || minutesUsed < 0 || minutesUsed > 1440) {
      return Promise.reject(
        new SafeStreamError('Config', 'minutesUsed must be a whole number from 0 to 1440'),
      );
    }
    return call(() => this.native.reportScreenTime(minutesUsed));
  }

  /**
   * Waits until every queued report (screen time, restricted attempts) has been answered by
   * the relay, at most `timeoutMs`; resolves whether none is left. For an app about to be
   * suspended.
   */
  waitForReports(timeoutMs: number): Promise<boolean> {
    return call(() => this.native.waitForReports(Math.max(0, Math.floor(timeoutMs))));
  }

  /** Fetches and runs pending commands (after a push message); resolves with how many ran. */
  syncNow(): Promise<number> {
    return call(() => this.native.syncNow());
  }

  /**
   * Call it from the app's background message handler when a SafeStream push arrives (its
   * data is `{ safestream: 'sync' }`), e.g. `@react-native-firebase/messaging`'s
   * `setBackgroundMessageHandler`: pulls and runs the pending commands within `budgetMs`
   * (default 8,000 ms; iOS gives a remote notification about 30 s) unless the socket is open
   * or a sync already runs, then waits for the acks. Resolves with what it did.
   */
  handlePush(budgetMs = 8000): Promise<{ ran: number; pulled: boolean; acksDone: boolean }> {
    return call(() => this.native.handlePush(Math.max(0, Math.floor(budgetMs))));
  }

  /**
   * Registers the push token so that the relay can wake this phone: the FCM registration
   * token (`provider: 'fcm'`) or the APNs device token in hex (`'apns'`, with the
   * environment, `'production'` by default). Call it with every token the platform gives
   * (`messaging().getToken()`, `onTokenRefresh`); it is kept and re-sent after a failure.
   */
  registerPushToken(
    provider: 'fcm' | 'apns',
    token: string,
    apnsEnvironment?: 'production' | 'sandbox',
  ): Promise<void> {
    if (provider !== 'fcm' && provider !== 'apns') {
      return Promise.reject(
        new SafeStreamError('Config', 'provider must be "fcm" or "apns"'),
      );
    }
    return call(() =>
      this.native.registerPushToken(provider, token, apnsEnvironment ?? null),
    );
  }

  /** Stores a device token issued by the app's backend and connects. */
  setToken(token: string): Promise<void> {
    return call(() => this.native.setToken(token));
  }

  /** Deletes the token (the agent goes to `not_paired`). */
  clearToken(): Promise<void> {
    return call(() => this.native.clearToken());
  }

  /** Tells the agent the app went to the background (longer heartbeat) or came back. */
  setBackground(background: boolean): void {
    this.native.setBackground(!!background);
  }

  /** Tells the agent the network is back (reconnect now). */
  networkAvailable(): void {
    this.native.networkAvailable();
  }
}
