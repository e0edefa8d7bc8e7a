// The parent token: kept in this tab's sessionStorage only (never localStorage, never a
// cookie). The relay's --dev mode prints `http://<addr>/#token=<jwt>`: the fragment never
// reaches a server; we move it to sessionStorage and out of the address bar at once.

const KEY = 'safestream.console.token';

/** base64url segments separated by dots: header.payload.signature */
const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function looksLikeJwt(token: string): boolean {
  return JWT_RE.test(token);
}

export function readStoredToken(): string | null {
  try {
    return window.sessionStorage.getItem(KEY);
  } catch {
    return null; // storage disabled
  }
}

export function storeToken(token: string): void {
  try {
    window.sessionStorage.setItem(KEY, token);
  } catch {
    // storage disabled: the token lives in memory for this page only
  }
}

export function clearToken(): void {
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // ignore
  }
}

/**
 * Takes `#token=<jwt>` from the address (if any), stores it, and removes the fragment from
 * the address bar and the history entry. Returns the token to use at start-up.
 */
export function takeTokenFromLocation(): string | null {
  const hash = window.location.hash;
  if (hash.length > 1) {
    const params = new URLSearchParams(hash.slice(1));
    const fromHash = params.get('token');
    if (fromHash !== null) {
      params.delete('token');
      const rest = params.toString();
      const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : '');
      window.history.replaceState(window.history.state, '', url);
      const token = fromHash.trim();
      if (token && looksLikeJwt(token)) {
        storeToken(token);
        return token;
      }
    }
  }
  return readStoredToken();
}

export interface TokenInfo {
  subject: string | null;
  email: string | null;
  isAdmin: boolean;
  /** seconds since the epoch, or null */
  exp: number | null;
}

/** Decodes the payload for display only (no verification: the relay verifies it). */
export function decodeToken(token: string): TokenInfo {
  const info: TokenInfo = { subject: null, email: null, isAdmin: false, exp: null };
  const part = token.split('.')[1];
  if (!part) return info;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const payload: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (payload && typeof payload === 'object') {
      const p = payload as Record<string, unknown>;
      const sub = p.sub ?? p.id;
      if (typeof sub === 'string' || typeof sub === 'number') info.subject = String(sub);
      if (typeof p.email === 'string') info.email = p.email;
      info.isAdmin = p.isAdmin === true;
      if (typeof p.exp === 'number') info.exp = p.exp;
    }
  } catch {
    // not a readable JWT payload: the relay will say so
  }
  return info;
}
