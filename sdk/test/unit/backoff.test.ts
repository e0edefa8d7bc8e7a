import { afterEach, describe, expect, it, vi } from 'vitest';

import { Backoff, backoffDelay, createClient, seededRandom } from '../../src/index.js';
import { fakeFetch, fakeIo, flush, tokenFor } from './fakes.js';

describe('backoff', () => {
  it('doubles from the base up to the cap (random = 1 is the upper bound)', () => {
    const b = new Backoff({ baseMs: 500, maxMs: 15_000, random: () => 1 });
    expect(Array.from({ length: 8 }, () => b.next())).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    b.reset();
    expect(b.next()).toBe(500);
  });

  it('is fully jittered: every delay in [0, step], deterministic for a seed', () => {
    const run = (seed: number) => {
      const b = new Backoff({ baseMs: 500, maxMs: 4000, random: seededRandom(seed) });
      return Array.from({ length: 20 }, () => b.next());
    };
    const a = run(42);
    expect(run(42)).toEqual(a);
    expect(run(43)).not.toEqual(a);
    a.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(4000, 500 * 2 ** i));
    });
    // Jitter: not all at the bound.
    expect(a.filter((d, i) => d === Math.min(4000, 500 * 2 ** i)).length).toBeLessThan(a.length);
    expect(backoffDelay(3, 100, 10_000, () => 0.5)).toBe(400);
    expect(backoffDelay(0, 100, 10_000, () => 0)).toBe(0);
  });
});

describe("the client's reconnect loop", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries a failing connection with capped backoff on the same socket, getToken() before each attempt, reset after a connection that lasted', async () => {
    vi.useFakeTimers();
    const { io, sockets, calls } = fakeIo();
    const { fetch } = fakeFetch(() => ({ status: 500 }));
    const getToken = vi.fn(() => tokenFor('u1'));
    const c = createClient({ url: 'http://relay.test', getToken, io, fetch, random: () => 1, reconnectDelayMs: 100, reconnectDelayMaxMs: 400 });
    const states: string[] = [];
    c.onState((s) => states.push(s));
    c.connect();
    c.connect(); // idempotent
    await flush();
    expect(calls.length).toBe(1);
    const s = sockets[0]!;
    expect(s.connectCalls).toBe(1);
    // Four failures: waits of 100, 200, 400, 400.
    const waits = [100, 200, 400, 400];
    for (const w of waits) {
      s.connectError('xhr poll error');
      await vi.advanceTimersByTimeAsync(w - 1);
      const before = s.connectCalls;
      await vi.advanceTimersByTimeAsync(1);
      expect(s.connectCalls).toBe(before + 1);
    }
    expect(getToken).toHaveBeenCalledTimes(1 + waits.length);
    expect(calls.length).toBe(1); // always the same Socket: socket.io-client's recovery needs it
    s.serverReady();
    expect(c.state).toBe('connected');
    // Closed right after `ready` (a slow consumer, a rate limit): the backoff goes on from
    // where it was (capped at 400), no fast loop.
    s.serverDisconnect('transport close');
    expect(c.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(399);
    expect(s.connectCalls).toBe(5);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.connectCalls).toBe(6);
    // Lost after a connection that lasted: the backoff starts again at its base.
    s.serverReady();
    await vi.advanceTimersByTimeAsync(10_000);
    s.serverDisconnect('transport close');
    await vi.advanceTimersByTimeAsync(99);
    expect(s.connectCalls).toBe(6);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.connectCalls).toBe(7);
    expect(states).toEqual(['connecting', 'connected', 'reconnecting', 'connected', 'reconnecting']);
    c.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});
