/** The claims the SDK reads from a parent JWT (never verified: the relay does that). */
export interface TokenClaims {
  /** Expiry, seconds since the epoch. */
  exp?: number;
  /** The user id (`sub`, else `id`). */
  sub?: string;
  /** Whether the parent is an admin. */
  isAdmin: boolean;
}

function base64UrlDecode(s: string): string {
  let b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  while (b64.length % 4 !== 0) b64 += '=';
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** Decodes a JWT's payload without verifying it; `null` when it is not a readable JWT. */
export function decodeJwt(token: string): TokenClaims | null {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return null;
  try {
    const body: unknown = JSON.parse(base64UrlDecode(parts[1]));
    if (typeof body !== 'object' || body === null) return null;
    const o = body as Record<string, unknown>;
    const claims: TokenClaims = { isAdmin: o.isAdmin === true };
    if (typeof o.exp === 'number' && Number.isFinite(o.exp)) claims.exp = o.exp;
    const sub = o.sub ?? o.id;
    if (typeof sub === 'string' || typeof sub === 'number') claims.sub = String(sub);
    return claims;
  } catch {
    return null;
  }
}

/** Longest delay `setTimeout` accepts. */
const MAX_TIMEOUT = 2_147_483_647;

/**
 * When to ask for a new token, in ms from `now`: `refreshBeforeSec` before `exp`, or half of
 * the remaining life when that is already past, never sooner than `minMs`. `null` when the
 * token has no `exp` or is already expired.
 */
export function refreshDelayMs(expSec: number | undefined, refreshBeforeSec: number, now: number, minMs = 1000): number | null {
  if (expSec === undefined) return null;
  const remaining = expSec * 1000 - now;
  if (remaining <= 0) return null;
  let d = remaining - refreshBeforeSec * 1000;
  if (d < 0) d = remaining / 2;
  return Math.min(MAX_TIMEOUT, Math.max(minMs, Math.round(d)));
}
