/** Options of [`Backoff`]. */
export interface BackoffOptions {
  /** First delay's upper bound, ms (default 500). */
  baseMs?: number;
  /** Cap of every delay, ms (default 15000). */
  maxMs?: number;
  /** A random number in [0, 1) (default `Math.random`); injected by tests. */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (0 = the first retry) with full jitter: a random
 * point in [0, min(max, base · 2^attempt)].
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(exp * r);
}

/** Capped, fully jittered exponential backoff; `reset()` after a success. */
export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  /** Builds a backoff at its first step. */
  constructor(opts: BackoffOptions = {}) {
    this.baseMs = Math.max(0, opts.baseMs ?? 500);
    this.maxMs = Math.max(this.baseMs, opts.maxMs ?? 15_000);
    this.random = opts.random ?? Math.random;
  }

  /** The next delay, ms; each call moves one step up (until the cap). */
  next(): number {
    const d = backoffDelay(this.attempt, this.baseMs, this.maxMs, this.random);
    this.attempt += 1;
    return d;
  }

  /** How many delays were given since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** Back to the first step. */
  reset(): void {
    this.attempt = 0;
  }
}

/**
 * A deterministic random source for tests (mulberry32): the same seed gives the same
 * sequence of numbers in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
