/**
 * `@safestream/sdk`: the parent SDK of SafeStream Realtime. One socket.io-client socket with
 * resume, token refresh and backoff; commands with their live status; typed REST calls.
 * React bindings are in `@safestream/sdk/react`.
 */
export * from './generated/wire.js';
export type {
  ClaimResult,
  CommandResult,
  CommandsQuery,
  ConnectionState,
  DeviceWithPresence,
  NotificationsQuery,
  SafeStreamClient,
  SafeStreamOptions,
  SendCommandOptions,
  StatusStep,
} from './types.js';
export { SafeStreamError, CommandAbortedError } from './errors.js';
export { createClient } from './client.js';
export { Backoff, backoffDelay, seededRandom, type BackoffOptions } from './backoff.js';
export { decodeJwt, type TokenClaims } from './token.js';
export { isFinal, statusRank } from './commands.js';
