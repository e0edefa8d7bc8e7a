import type { Socket, io } from 'socket.io-client';

import type {
  AdminOverview,
  ChildView,
  CommandStatus,
  CommandType,
  CommandView,
  NotificationView,
  ServerEvents,
} from './generated/wire.js';

/** Where the client's connection is. */
export type ConnectionState =
  /** not started (before connect()) */
  | 'idle'
  /** first connection attempt in progress (and retries until the first `ready`) */
  | 'connecting'
  /** `ready` received */
  | 'connected'
  /** lost, retrying with backoff */
  | 'reconnecting'
  /** token refused and getToken() could not give a working one; stopped */
  | 'unauthorized'
  /** close() called */
  | 'closed';

/** Options of [`createClient`]. */
export interface SafeStreamOptions {
  /** Relay base URL, e.g. 'https://relay.example.com' or '' / undefined for same origin. */
  url?: string;
  /** Returns a valid parent JWT. Called at connect, before expiry (refresh), after a 401/4401. */
  getToken: () => string | Promise<string>;
  /** Backoff: first delay ms (default 500); full jitter. */
  reconnectDelayMs?: number;
  /** Backoff: cap ms (default 15000). */
  reconnectDelayMaxMs?: number;
  /** Seconds before the token's `exp` to ask getToken() for a new one (default 60). */
  refreshBeforeExpirySec?: number;
  /** Transports for socket.io-client (default ['polling','websocket'] like the seed). */
  transports?: ('polling' | 'websocket')[];
  /** Injected for tests: socket.io-client's `io`. */
  io?: typeof io;
  /** Injected for tests: `fetch` (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Added: the backoff's random source in [0, 1) (default `Math.random`), for tests. */
  random?: () => number;
  /** Added: a REST call with no answer by then fails with a `'network'` SafeStreamError (ms, default 30000). */
  requestTimeoutMs?: number;
  /** Added: how long after `expiresAt` a command with no final status is read again (ms, default 30000). */
  commandGraceMs?: number;
}

/** One step of a command's life, as [`sendCommand`] saw it. */
export interface StatusStep {
  /** The status reached. */
  status: CommandStatus;
  /** RFC 3339: relay time when known (createdAt, executedAt, deliveredAt), else the local clock. */
  at: string;
  /** The device that received or acknowledged it, when known. */
  deviceId: string | null;
  /** The device's text for FAILED, `"expired"` for EXPIRED, else null. */
  error: string | null;
}

/** What [`sendCommand`] resolves with: the final command and its trail. */
export interface CommandResult {
  /** The command at its final status (EXECUTED, FAILED or EXPIRED). */
  command: CommandView;
  /** PENDING, then each further status seen (DELIVERED may be absent when the ack beat it). */
  trail: StatusStep[];
}

/** Options of [`sendCommand`]. */
export interface SendCommandOptions {
  /** Only this device of the child (else every device of it). */
  deviceId?: string;
  /** Lifetime in seconds, 1–604800 (the relay's default, 300, when absent). */
  expiresInSeconds?: number;
  /** Stops waiting (rejects CommandAbortedError), removes listeners; the command itself is not cancelled on the relay. */
  signal?: AbortSignal;
  /** Every step as it happens (PENDING first, as soon as the POST answered). */
  onStatus?: (step: StatusStep, command: CommandView) => void;
}

/** A device with its live presence, as `GET /api/children/{id}/devices` lists it. */
export interface DeviceWithPresence {
  /** Relay-issued id. */
  id: string;
  /** Its child. */
  childId: string;
  /** Display name. */
  name: string;
  /** RFC 3339. */
  createdAt: string;
  /** Revoked devices are refused everywhere. */
  revoked: boolean;
  /** Whether a socket of it is open. */
  online: boolean;
  /** When its last socket ended (RFC 3339). */
  lastSeen: string | null;
  /** Whether a video is playing. */
  activeViewing: boolean;
  /** Object, string or null — from the device; render as TEXT only. */
  currentVideo: unknown;
}

/** The answer of [`claimPairing`]. */
export type ClaimResult =
  | { kind: 'claimed'; pairing: { id: string; deviceName: string; status: string; expiresAt: string } }
  | { kind: 'approved'; deviceId: string; childId: string; pairingId: string };

/** Query of [`commands`]. */
export interface CommandsQuery {
  /** Only this child's commands. */
  childId?: string;
  /** Only commands in this status. */
  status?: CommandStatus;
  /** 1–200 (default 50). */
  limit?: number;
  /** A `createdAt` (RFC 3339) from a previous page. */
  before?: string;
}

/** Query of [`notifications`]. */
export interface NotificationsQuery {
  /** 1–200 (default 50). */
  limit?: number;
  /** A notification id from a previous page. */
  before?: string;
}

/** A parent's client of the relay: one socket with resume, token refresh, commands and REST. */
export interface SafeStreamClient {
  /** Where the connection is. */
  readonly state: ConnectionState;
  /** From `ready`. */
  readonly userId: string | null;
  /** From the token's isAdmin claim. */
  readonly isAdmin: boolean;
  /** Starts connecting; idempotent (also starts again after close() or 'unauthorized'). */
  connect(): void;
  /** Stops everything, removes listeners. */
  close(): void;
  /** Listens to state changes; returns unsubscribe. */
  onState(cb: (s: ConnectionState) => void): () => void;
  /** Typed event listener; returns unsubscribe. 'resync' is also delivered as received. */
  on<E extends keyof ServerEvents>(event: E, cb: (data: ServerEvents[E]) => void): () => void;
  /** Called after a `resync` (or a reconnection that could not be recovered): consumers refetch their lists. */
  onResync(cb: () => void): () => void;
  /** The raw socket.io-client Socket (for the seed's `useSocket().socket`), null before connect(). */
  readonly socket: Socket | null;
  /** Added: how many listeners (state, events, resync, in-flight commands) are registered. */
  listenerCount(): number;

  /** Sends a command and resolves when it is EXECUTED, FAILED or EXPIRED. */
  sendCommand(
    childId: string,
    type: CommandType,
    payload?: Record<string, unknown>,
    opts?: SendCommandOptions,
  ): Promise<CommandResult>;

  /** GET /api/children. */
  children(): Promise<ChildView[]>;
  /** GET /api/children/{id}. */
  child(childId: string): Promise<ChildView>;
  /** GET /api/children/{id}/devices. */
  devices(childId: string): Promise<DeviceWithPresence[]>;
  /** DELETE /api/devices/{id}. */
  revokeDevice(deviceId: string): Promise<void>;
  /** GET /api/dashboard/remote-control. */
  commands(q?: CommandsQuery): Promise<CommandView[]>;
  /** GET /api/dashboard/remote-control/{id}. */
  command(id: string): Promise<CommandView>;
  /** GET /api/dashboard/notifications. */
  notifications(q?: NotificationsQuery): Promise<NotificationView[]>;
  /** POST /api/dashboard/notifications/{id}/read. */
  markNotificationRead(id: string): Promise<void>;
  /** POST /api/pairing/claim. */
  claimPairing(code: string, childId?: string): Promise<ClaimResult>;
  /** POST /api/pairing/{id}/approve. */
  approvePairing(pairingId: string, childId: string, name?: string): Promise<{ deviceId: string; childId: string }>;
  /** POST /api/pairing/{id}/reject. */
  rejectPairing(pairingId: string): Promise<void>;
  /** GET /api/admin/overview (isAdmin parents). */
  adminOverview(): Promise<AdminOverview>;
}
