// Token refresh against the real relay: short-lived tokens are replaced on the open socket
// before they expire; a token that cannot be replaced ends as 'unauthorized'.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { SafeStreamClient } from '../../src/index.js';
import { Relay, parentClient, parentToken, requireRelayBinary, sleep, until } from './util.js';

// Fails the file (it is never skipped) when the relay binary is missing.
requireRelayBinary();

let relay: Relay;
const clients: SafeStreamClient[] = [];

beforeAll(async () => {
  // A 2 s heartbeat: the relay checks token expiry eight times per interval.
  relay = await Relay.start({ SAFESTREAM_HEARTBEAT_SECS: '2' });
  await relay.family('kid1', 'u1');
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  await relay?.stop();
});

describe('token refresh', () => {
  it('5 s tokens refreshed 3 s before exp: the socket stays connected well past the first token’s exp', async () => {
    const issued: number[] = [];
    const c = parentClient(relay, 'u1', {
      getToken: () => {
        issued.push(Date.now());
        return parentToken('u1', 5);
      },
      refreshBeforeExpirySec: 3,
    });
    clients.push(c);
    const states: string[] = [];
    const refreshed: (string | null)[] = [];
    const titles: string[] = [];
    c.onState((s) => states.push(s));
    c.on('auth:refreshed', (d) => refreshed.push(d.expiresAt));
    c.on('notification:new', (n) => titles.push(n.title));
    c.connect();
    await until('connected', () => c.state === 'connected');
    const start = issued[0]!;
    await sleep(9_000);
    // Past the first token's exp (5 s) and the second's: still the same connection.
    expect(Date.now() - start).toBeGreaterThan(8_000);
    expect(states).toEqual(['connecting', 'connected']);
    expect(c.socket?.connected).toBe(true);
    expect(issued.length).toBeGreaterThanOrEqual(4);
    expect(refreshed.length).toBeGreaterThanOrEqual(3);
    expect(refreshed.every((x) => x !== null && Date.parse(x) > start)).toBe(true);
    await relay.notify('u1', 'still here');
    await until('an event on the refreshed socket', () => titles.includes('still here'));
    // REST calls use the current token too.
    expect((await c.children()).map((k) => k.id)).toEqual(['kid1']);
  });

  it("a token that getToken() cannot replace: closed at exp (4401), then 'unauthorized', no more attempts", async () => {
    const token = parentToken('u1', 4);
    let calls = 0;
    const c = parentClient(relay, 'u1', {
      getToken: () => {
        calls += 1;
        return token;
      },
      refreshBeforeExpirySec: 1,
    });
    clients.push(c);
    const states: string[] = [];
    c.onState((s) => states.push(s));
    c.connect();
    await until('connected', () => c.state === 'connected');
    await until('unauthorized', () => c.state === 'unauthorized', 10_000);
    expect(states).toEqual(['connecting', 'connected', 'reconnecting', 'unauthorized']);
    const n = calls;
    await sleep(1_500);
    expect(calls).toBe(n);
    expect(c.socket?.connected).toBe(false);
  });
});
