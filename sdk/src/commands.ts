import type { CommandStatus, CommandStatusData, CommandType, CommandView } from './generated/wire.js';
import { CommandAbortedError, SafeStreamError } from './errors.js';
import type { CreateCommandBody } from './rest.js';
import type { CommandResult, SendCommandOptions, StatusStep } from './types.js';

/** What the tracker needs from the client. */
export interface TrackerDeps {
  /** POST /api/dashboard/remote-control. */
  createCommand(b: CreateCommandBody): Promise<CommandView>;
  /** GET /api/dashboard/remote-control/{id}. */
  getCommand(id: string): Promise<CommandView>;
  /** Adds a `command:status` listener; returns its removal. */
  subscribeStatus(cb: (d: CommandStatusData) => void): () => void;
  /** How long after `expiresAt` a command without a final status is read again, ms. */
  graceMs: number;
}

/** How far a status is in a command's life (the three final ones are equal). */
export function statusRank(s: CommandStatus): number {
  switch (s) {
    case 'PENDING':
      return 0;
    case 'DELIVERED':
      return 1;
    default:
      return 2;
  }
}

/** True for EXECUTED, FAILED and EXPIRED. */
export function isFinal(s: CommandStatus): boolean {
  return statusRank(s) === 2;
}

const RECENT_MAX = 256;

/** One sendCommand waiting for its final status. */
class InFlight {
  command: CommandView;
  readonly trail: StatusStep[] = [];
  private rank = 0;
  private unsubscribe: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private done = false;
  private checking = false;

  constructor(
    command: CommandView,
    private readonly deps: TrackerDeps,
    private readonly onStatus: SendCommandOptions['onStatus'],
    private readonly finish: (r: CommandResult | Error) => void,
  ) {
    this.command = { ...command };
    this.push({ status: 'PENDING', at: command.createdAt, deviceId: command.deviceId, error: null });
  }

  /** Subscribes, takes the statuses buffered before the POST answered, arms the expiry check. */
  start(buffered: CommandStatusData[]): void {
    this.unsubscribe = this.deps.subscribeStatus((d) => {
      if (d.commandId === this.command.id) this.applyEvent(d);
    });
    for (const d of buffered) {
      if (this.done) return;
      this.applyEvent(d);
    }
    if (this.done) return;
    if (isFinal(this.command.status)) {
      this.settle();
      return;
    }
    const life = Date.parse(this.command.expiresAt) - Date.parse(this.command.createdAt);
    this.arm((Number.isFinite(life) ? Math.max(0, life) : 300_000) + this.deps.graceMs);
  }

  private arm(ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.recheck().then(() => {
        if (!this.done) this.arm(this.deps.graceMs);
      });
    }, ms);
  }

  private push(step: StatusStep): void {
    this.trail.push(step);
    this.rank = statusRank(step.status);
    this.command.status = step.status;
    if (this.onStatus) {
      try {
        this.onStatus({ ...step }, { ...this.command });
      } catch {
        // a throwing callback must not stop the command's tracking
      }
    }
  }

  /** A `command:status` event for this command. */
  applyEvent(d: CommandStatusData): void {
    if (this.done || statusRank(d.status) <= this.rank) return;
    const now = new Date().toISOString();
    if (d.status === 'DELIVERED') {
      this.command.deliveredAt ??= now;
      this.command.ackDeviceId ??= d.deviceId;
      this.push({ status: 'DELIVERED', at: now, deviceId: d.deviceId, error: null });
      return;
    }
    this.command.executedAt = d.executedAt;
    this.command.error = d.error;
    if (d.deviceId !== null) this.command.ackDeviceId = d.deviceId;
    const at = d.executedAt ?? (d.status === 'EXPIRED' ? this.command.expiresAt : now);
    this.push({ status: d.status, at, deviceId: d.deviceId, error: d.error });
    this.settle();
  }

  /** The command as the REST API shows it: catches up on missed steps. */
  applyView(v: CommandView): void {
    if (this.done || v.id !== this.command.id) return;
    const r = statusRank(v.status);
    if (r <= this.rank) return;
    const before = this.command;
    this.command = { ...v, status: before.status };
    if (this.rank < 1 && v.deliveredAt !== null) {
      this.push({ status: 'DELIVERED', at: v.deliveredAt, deviceId: v.ackDeviceId, error: null });
    }
    if (r === 2) {
      const at = v.executedAt ?? (v.status === 'EXPIRED' ? v.expiresAt : new Date().toISOString());
      this.push({ status: v.status, at, deviceId: v.ackDeviceId, error: v.error });
      this.settle();
    }
  }

  /** GETs the command to catch up (after a reconnect, a resync, or past its expiry). */
  async recheck(): Promise<void> {
    if (this.done || this.checking) return;
    this.checking = true;
    try {
      this.applyView(await this.deps.getCommand(this.command.id));
    } catch (e) {
      // A command that is gone (a relay with another database) will never settle; one this
      // parent may no longer read (401 after a token renewal, 403) will never be seen to.
      // Anything else (the relay unreachable) is tried again at the next check.
      if (e instanceof SafeStreamError && [401, 403, 404].includes(e.status)) this.fail(e);
    } finally {
      this.checking = false;
    }
  }

  private settle(): void {
    if (this.done) return;
    this.dispose();
    this.finish({ command: { ...this.command }, trail: this.trail.map((s) => ({ ...s })) });
  }

  /** Stops waiting with `err`. */
  fail(err: Error): void {
    if (this.done) return;
    this.dispose();
    this.finish(err);
  }

  /** Removes the listener and the timer. */
  dispose(): void {
    this.done = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Tracks every sendCommand of one client, and the recent `command:status` events. */
export class CommandTracker {
  private readonly recent = new Map<string, CommandStatusData[]>();
  private readonly inFlight = new Set<InFlight>();
  private readonly waiting = new Set<(err: Error) => void>();
  /** Counts [`recheckAll`] calls: a POST answered after one may have missed its statuses. */
  private epoch = 0;

  /** Builds a tracker. */
  constructor(private readonly deps: TrackerDeps) {}

  /** Records a `command:status` (so one that comes before the POST's answer is not lost). */
  record(d: CommandStatusData): void {
    let list = this.recent.get(d.commandId);
    if (list === undefined) {
      list = [];
      this.recent.set(d.commandId, list);
      if (this.recent.size > RECENT_MAX) {
        const oldest = this.recent.keys().next().value;
        if (oldest !== undefined) this.recent.delete(oldest);
      }
    }
    list.push(d);
  }

  /** Commands waiting for their final status (and POSTs not answered yet). */
  get size(): number {
    return this.inFlight.size + this.waiting.size;
  }

  /** GETs every in-flight command (after a reconnect or a resync). */
  recheckAll(): void {
    this.epoch += 1;
    for (const f of this.inFlight) void f.recheck();
  }

  /** Stops waiting for every command with `err` (the client closed). */
  abortAll(err: Error): void {
    for (const w of [...this.waiting]) w(err);
    for (const f of [...this.inFlight]) f.fail(err);
    this.recent.clear();
  }

  /** POSTs a command and resolves at its final status. See `SafeStreamClient.sendCommand`. */
  send(
    childId: string,
    type: CommandType,
    payload: Record<string, unknown>,
    opts: SendCommandOptions,
  ): Promise<CommandResult> {
    return new Promise<CommandResult>((resolve, reject) => {
      const { signal } = opts;
      if (signal?.aborted) {
        reject(new CommandAbortedError());
        return;
      }
      let done = false;
      let flight: InFlight | null = null;
      const finish = (r: CommandResult | Error): void => {
        if (done) return;
        done = true;
        signal?.removeEventListener('abort', onAbort);
        this.waiting.delete(fail);
        if (flight !== null) {
          flight.dispose();
          this.inFlight.delete(flight);
        }
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      const fail = (err: Error): void => finish(err);
      const onAbort = (): void => finish(new CommandAbortedError());
      signal?.addEventListener('abort', onAbort);
      this.waiting.add(fail);

      const body: CreateCommandBody = { childId, commandType: type, payload };
      if (opts.deviceId !== undefined) body.deviceId = opts.deviceId;
      if (opts.expiresInSeconds !== undefined) body.expiresInSeconds = opts.expiresInSeconds;
      const epoch = this.epoch;
      this.deps.createCommand(body).then(
        (command) => {
          if (done) return;
          this.waiting.delete(fail);
          flight = new InFlight(command, this.deps, opts.onStatus, finish);
          this.inFlight.add(flight);
          flight.start(this.recent.get(command.id) ?? []);
          // A reconnection while the POST was out (unrecovered, or the first connection)
          // may have lost statuses the buffer never saw: read the command once.
          if (this.epoch !== epoch) void flight.recheck();
        },
        (err: unknown) => finish(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }
}
