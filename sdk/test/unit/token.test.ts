import { afterEach, describe, expect, it, vi } from 'vitest';

import { createClient, decodeJwt } from '../../src/index.js';
import { refreshDelayMs } from '../../src/token.js';
import { fakeFetch, fakeIo, flush, jwt, tokenFor, type FakeSocket } from './fakes.js';

describe('JWT claims', () => {
  it('reads exp, sub (or id) and isAdmin without verifying; null for garbage', () => {
    expect(decodeJwt(jwt({ sub: 'u1', exp: 123, isAdmin: true }))).toEqual({ sub: 'u1', exp: 123, isAdmin: true });
    expect(decodeJwt(jwt({ id: 42 }))).toEqual({ sub: '42', isAdmin: false });
    // base64url with characters that differ from base64, and UTF-8.
    expect(decodeJwt(jwt({ sub: 'ü?>>~~', exp: 1 }))?.sub).toBe('ü?>>~~');
    expect(decodeJwt('not-a-jwt')).toBeNull();
    expect(decodeJwt('a.!!!.c')).toBeNull();
  });

  it('refresh delay: before exp, half the life when that is past, at least 1 s, none when expired', () => {
    const now = 1_000_000;
    expect(refreshDelayMs(now / 1000 + 3600, 60, now)).toBe(3_540_000);
    expect(refreshDelayMs(now / 1000 + 5, 60, now)).toBe(2_500);
    expect(refreshDelayMs(now / 1000 + 1, 60, now)).toBe(1_000);
    expect(refreshDelayMs(now / 1000 - 1, 60, now)).toBeNull();
    expect(refreshDelayMs(undefined, 60, now)).toBeNull();
  });
});

describe('token refresh', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('asks getToken() refreshBeforeExpirySec before exp, emits auth:refresh, and reconnects with the new token', async () => {
    vi.useFakeTimers();
    const { io, sockets } = fakeIo();
    const { fetch } = fakeFetch(() => ({ status: 200, body: { children: [] } }));
    let n = 0;
    const issued: string[] = [];
    const getToken = vi.fn(() => {
      n += 1;
      const t = tokenFor('u1', 120, { n, isAdmin: n === 1 });
      issued.push(t);
      return t;
    });
    const c = createClient({ url: 'http://relay.test', getToken, io, fetch, refreshBeforeExpirySec: 30 });
    c.connect();
    await flush();
    const s = sockets[0]!;
    expect(s.authSent).toEqual([{ token: issued[0] }]);
    s.serverReady();
    expect(c.isAdmin).toBe(true);
    await vi.advanceTimersByTimeAsync(89_000);
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(s.emitted).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(s.emitted).toEqual([{ event: 'auth:refresh', args: [{ token: issued[1] }] }]);
    expect(c.isAdmin).toBe(false); // claims follow the token
    // REST calls use the new token.
    await c.children();
    // The next refresh is scheduled from the new token's exp.
    await vi.advanceTimersByTimeAsync(90_000);
    expect(getToken).toHaveBeenCalledTimes(3);
    expect(s.emitted.length).toBe(2);
    // A reconnection's CONNECT carries the newest token.
    s.serverDisconnect('transport close');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(s.authSent.at(-1)).toEqual({ token: issued.at(-1) });
    c.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  /** Connected with token A (2 min); 90 s later getToken() gave B (1 h), sent as auth:refresh. */
  async function refreshedOnce() {
    vi.useFakeTimers();
    const { io, sockets } = fakeIo();
    const { fetch } = fakeFetch(() => ({ status: 200, body: {} }));
    const a = tokenFor('u1', 120, { n: 'a' });
    const b = tokenFor('u1', 3600, { n: 'b' });
    let calls = 0;
    const c = createClient({ url: 'http://relay.test', getToken: () => (++calls === 1 ? a : b), io, fetch, refreshBeforeExpirySec: 30 });
    c.connect();
    await flush();
    const s = sockets[0]!;
    s.serverReady();
    await vi.advanceTimersByTimeAsync(90_000);
    expect(s.emitted).toEqual([{ event: 'auth:refresh', args: [{ token: b }] }]);
    return { c, s, b };
  }

  /** The relay closes the socket with 4401 (its token expired or was refused). */
  async function closed4401(s: FakeSocket): Promise<void> {
    s.serverEvent('closing', { code: 4401, reason: 'token expired' });
    s.serverDisconnect('io server disconnect');
    await vi.advanceTimersByTimeAsync(1_000);
  }

  it('a refresh the relay refused (token not valid yet) does not stop the client when the socket\'s own token expires', async () => {
    const { c, s, b } = await refreshedOnce();
    // The relay refuses B (its nbf is a little ahead of the relay's clock): the socket keeps A.
    s.serverEvent('error', { code: 'unauthorized', message: 'token not valid yet' });
    // A expires: the relay closes 4401. getToken() gives B again, and B is valid by now.
    await closed4401(s);
    expect(c.state).not.toBe('unauthorized');
    expect(s.authSent.at(-1)).toEqual({ token: b });
    s.serverReady();
    expect(c.state).toBe('connected');
    c.close();
  });

  it('after an accepted refresh, a 4401 with the same token from getToken() stops (no loop)', async () => {
    const { c, s, b } = await refreshedOnce();
    s.serverEvent('auth:refreshed', { expiresAt: new Date(decodeJwt(b)!.exp! * 1000).toISOString() });
    // The relay refuses B anyway (4401): it is the socket's token, and getToken() has nothing newer.
    await closed4401(s);
    expect(c.state).toBe('unauthorized');
    c.close();
  });

  it('REST calls carry the token as Bearer and retry once with a new token after a 401', async () => {
    let n = 0;
    const getToken = vi.fn(() => `tok${++n}`);
    const { fetch, calls } = fakeFetch((c) =>
      c.headers.authorization === 'Bearer tok2'
        ? { status: 200, body: { children: [{ id: 'kid1' }] } }
        : { status: 401, body: { error: { code: 'unauthorized', message: 'token expired' } } },
    );
    const c = createClient({ url: 'http://relay.test/', getToken, fetch, io: fakeIo().io });
    expect(await c.children()).toEqual([{ id: 'kid1' }]);
    expect(calls.map((x) => [x.url, x.headers.authorization])).toEqual([
      ['http://relay.test/api/children', 'Bearer tok1'],
      ['http://relay.test/api/children', 'Bearer tok2'],
    ]);
    expect(getToken).toHaveBeenCalledTimes(2);
  });
});
