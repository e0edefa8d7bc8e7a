import type { ErrorCode } from './generated/wire.js';

const CODES: readonly ErrorCode[] = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'conflict',
  'expired',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'internal',
  'unavailable',
];

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  410: 'expired',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  500: 'internal',
  503: 'unavailable',
};

/**
 * An error answered by the relay's REST API (`{"error": {"code", "message"}}`), or a
 * network failure (`status` 0, `code` `'network'`).
 */
export class SafeStreamError extends Error {
  /** HTTP status (0 for network errors). */
  readonly status: number;
  /** The relay's error code, or `'network'` when no answer came. */
  readonly code: ErrorCode | 'network';
  /** Seconds to wait before trying again, from a `Retry-After` header (429, 503). */
  readonly retryAfterSec?: number;

  /** Builds an error; `message` is the relay's human-readable text. */
  constructor(status: number, code: ErrorCode | 'network', message: string, retryAfterSec?: number) {
    super(message);
    this.name = 'SafeStreamError';
    this.status = status;
    this.code = code;
    if (retryAfterSec !== undefined) this.retryAfterSec = retryAfterSec;
  }
}

/** `sendCommand` was aborted by its `AbortSignal` (the command itself is not cancelled). */
export class CommandAbortedError extends Error {
  /** Always `'AbortError'`, like the DOM's abort errors. */
  override name = 'AbortError';

  /** Builds the error. */
  constructor(message = 'sendCommand aborted: the command was not cancelled on the relay') {
    super(message);
  }
}

/** True for a known REST error code. */
export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && (CODES as readonly string[]).includes(v);
}

/**
 * Reads a `Retry-After` header: seconds, or an HTTP date (seconds from `now`). Undefined when
 * absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/** Builds the [`SafeStreamError`] for a non-2xx answer from its status, headers and body text. */
export function errorFromResponse(status: number, retryAfter: string | null, bodyText: string): SafeStreamError {
  let code: ErrorCode = BY_STATUS[status] ?? (status >= 500 ? 'internal' : 'bad_request');
  let message = `HTTP ${status}`;
  try {
    const body: unknown = JSON.parse(bodyText);
    if (typeof body === 'object' && body !== null && 'error' in body) {
      const e = (body as { error: unknown }).error;
      if (typeof e === 'object' && e !== null) {
        const c = (e as { code?: unknown }).code;
        const m = (e as { message?: unknown }).message;
        if (isErrorCode(c)) code = c;
        if (typeof m === 'string' && m !== '') message = m;
      }
    }
  } catch {
    // not JSON: keep the status's code
  }
  return new SafeStreamError(status, code, message, parseRetryAfter(retryAfter));
}
