import type { CommandType, RestrictedAttempt } from './generated/wire';

/** The kinds of remote command the parent can send: generated from the `wire` crate. */
export type { CommandType };

/**
 * A restricted-content attempt (`reportRestrictedAttempt`): `url`, `title`, `reason` (cut to
 * 2,000 characters) and `metadata` (a JSON object of at most 8 KiB), all optional. The relay's
 * request body, generated from the `wire` crate.
 */
export type { RestrictedAttempt };

/** A command to run, given to the `onCommand` handler. */
export interface AgentCommand {
  /** The relay's command id. */
  id: string;
  /** What to do. */
  type: CommandType;
  /** The command's payload (e.g. `{ text }` for SHOW_MESSAGE); `{}` when empty. */
  payload: Record<string, unknown>;
  /** When the command expires (RFC 3339). */
  expiresAt: string;
  /** When the parent sent it (RFC 3339), when known. */
  createdAt: string | null;
}

/** How the app finished a command: what the parent's dashboard shows. */
export type CommandOutcome = { status: 'EXECUTED' } | { status: 'FAILED'; error: string };

/** The connection state of the agent. */
export type ConnectionState =
  | 'stopped'
  | 'not_paired'
  | 'connecting'
  | 'connected'
  | 'disconnected'
  | 'unauthorized';

/** How to start the agent. Only `relayUrl` is required. */
export interface AgentConfig {
  /** `wss://relay.example.com` (or `ws://` for a local relay). */
  relayUrl: string;
  /** The HTTP API base URL; defaults to the relay's host over https. */
  apiUrl?: string;
  /** Foreground heartbeat in seconds (25–600); default: the relay's. */
  heartbeatSecs?: number;
  /** Heartbeat in the background (25–600, default 300). */
  backgroundHeartbeatSecs?: number;
  /** Extra trusted CA certificates (PEM) for a self-hosted relay. */
  extraCaPem?: string;
  /** Seconds before an unfinished command is reported FAILED "timeout" (default 120). */
  commandTimeoutSecs?: number;
  /** The most verbose Rust log level sent to Logcat / os_log (default `info`). */
  logLevel?: 'error' | 'warn' | 'info' | 'debug' | 'trace';
}

/** The code to show to the parent while pairing. */
export interface PairingCode {
  pairingId: string;
  /** The code the parent types (`K7QF-M2XD`). */
  code: string;
  /** When it expires (RFC 3339). */
  expiresAt: string;
}

/** The device record pairing produced. */
export interface PairedDevice {
  deviceId: string;
  childId: string;
}

/** A subscription returned by `onCommand` / `onStateChange`; call `remove()` to stop. */
export interface Subscription {
  remove(): void;
}

/** Error codes of rejected promises (the Rust `SafeStreamError` variants). */
export type SafeStreamErrorCode =
  | 'Config'
  | 'Storage'
  | 'Network'
  | 'Relay'
  | 'Unauthorized'
  | 'UnknownCommand'
  | 'Pairing'
  | 'Stopped'
  | 'Callback'
  | 'Internal';
