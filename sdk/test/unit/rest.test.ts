import { describe, expect, it, vi } from 'vitest';

import { SafeStreamError, createClient } from '../../src/index.js';
import { parseRetryAfter } from '../../src/errors.js';
import { commandView, fakeFetch, fakeIo, tokenFor, type Answer, type FetchCall } from './fakes.js';

function setup(route: (c: FetchCall) => Answer, url = 'https://relay.example.com') {
  const f = fakeFetch(route);
  const client = createClient({ url, getToken: () => 'tok', fetch: f.fetch, io: fakeIo().io });
  return { client, calls: f.calls };
}

async function caught(p: Promise<unknown>): Promise<SafeStreamError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SafeStreamError);
    return e as SafeStreamError;
  }
  throw new Error('did not throw');
}

describe('typed REST errors', () => {
  it('carry the status, the code and the message of the error body', async () => {
    const { client } = setup(() => ({ status: 404, body: { error: { code: 'not_found', message: 'no such command' } } }));
    const e = await caught(client.command('nope'));
    expect([e.status, e.code, e.message, e.retryAfterSec]).toEqual([404, 'not_found', 'no such command', undefined]);
  });

  it('429 carries Retry-After in seconds (also from an HTTP date)', async () => {
    const { client } = setup(() => ({ status: 429, headers: { 'retry-after': '7' }, body: { error: { code: 'rate_limited', message: 'slow down' } } }));
    const e = await caught(client.notifications());
    expect([e.status, e.code, e.retryAfterSec]).toEqual([429, 'rate_limited', 7]);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(30);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });

  it('a body that is not an error body falls back to the status; a network failure is status 0 "network"', async () => {
    const a = setup(() => ({ status: 503 }));
    expect(await caught(a.client.children())).toMatchObject({ status: 503, code: 'unavailable' });
    const b = setup(() => new TypeError('fetch failed'));
    expect(await caught(b.client.children())).toMatchObject({ status: 0, code: 'network', message: 'fetch failed' });
  });
});

describe('a relay that does not answer', () => {
  it('a call fails after requestTimeoutMs with a "network" error, instead of waiting forever', async () => {
    const hang = ((_url: unknown, init?: RequestInit) =>
      new Promise<Response>((_ok, fail) => {
        init?.signal?.addEventListener('abort', () => fail(init.signal?.reason));
      })) as typeof fetch;
    const { io } = fakeIo();
    const client = createClient({ url: 'http://relay.test', getToken: () => tokenFor('u1'), io, fetch: hang, requestTimeoutMs: 50 });
    const t0 = Date.now();
    await expect(client.children()).rejects.toMatchObject({ name: 'SafeStreamError', status: 0, code: 'network', message: 'no answer in 50 ms' });
    expect(Date.now() - t0).toBeLessThan(5_000);
    // sendCommand's POST too: the promise rejects, nothing is left waiting.
    await expect(client.sendCommand('kid1', 'LOCK_DEVICE')).rejects.toMatchObject({ code: 'network' });
    expect(client.listenerCount()).toBe(0);
  });
});

describe('REST calls', () => {
  it('each endpoint: method, path, query, body, and the unwrapped answer', async () => {
    const { client, calls } = setup((c) => {
      switch (`${c.method} ${c.path.split('?')[0]}`) {
        case 'GET /api/children':
          return { status: 200, body: { children: [{ id: 'kid1' }] } };
        case 'GET /api/children/kid%201':
          return { status: 200, body: { child: { id: 'kid 1' } } };
        case 'GET /api/children/kid1/devices':
          return { status: 200, body: { devices: [{ id: 'd1', online: true }] } };
        case 'DELETE /api/devices/d1':
          return { status: 200, body: { deviceId: 'd1', revoked: true } };
        case 'GET /api/dashboard/remote-control':
          return { status: 200, body: { commands: [commandView('c1')] } };
        case 'GET /api/dashboard/notifications':
          return { status: 200, body: { notifications: [] } };
        case 'POST /api/dashboard/notifications/n1/read':
          return { status: 200, body: {} };
        case 'POST /api/pairing/claim':
          return (c.body as { childId?: string }).childId
            ? { status: 201, body: { deviceId: 'd2', childId: 'kid1', pairingId: 'p1' } }
            : { status: 200, body: { pairing: { id: 'p1', deviceName: 'Tab', status: 'CLAIMED', expiresAt: 'x' } } };
        case 'POST /api/pairing/p1/approve':
          return { status: 201, body: { deviceId: 'd3', childId: 'kid1' } };
        case 'POST /api/pairing/p1/reject':
          return { status: 200, body: {} };
        case 'GET /api/admin/overview':
          return { status: 200, body: { node: { id: 'n1', parents: 1, devices: 0 }, pendingByChild: [], recentFailures: [] } };
        default:
          return { status: 404, body: { error: { code: 'not_found', message: c.path } } };
      }
    });
    expect(await client.children()).toEqual([{ id: 'kid1' }]);
    expect(await client.child('kid 1')).toEqual({ id: 'kid 1' });
    expect(await client.devices('kid1')).toEqual([{ id: 'd1', online: true }]);
    await client.revokeDevice('d1');
    expect((await client.commands({ childId: 'kid1', status: 'PENDING', limit: 5, before: '2030-01-01T00:00:00Z' }))[0]?.id).toBe('c1');
    await client.commands();
    await client.notifications({ limit: 10, before: 'n9' });
    await client.markNotificationRead('n1');
    expect(await client.claimPairing('K7QF-M2XD')).toEqual({
      kind: 'claimed',
      pairing: { id: 'p1', deviceName: 'Tab', status: 'CLAIMED', expiresAt: 'x' },
    });
    expect(await client.claimPairing('K7QF-M2XD', 'kid1')).toEqual({ kind: 'approved', deviceId: 'd2', childId: 'kid1', pairingId: 'p1' });
    expect(await client.approvePairing('p1', 'kid1', 'Tablet')).toEqual({ deviceId: 'd3', childId: 'kid1' });
    await client.rejectPairing('p1');
    expect((await client.adminOverview()).node.id).toBe('n1');
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /api/children',
      'GET /api/children/kid%201',
      'GET /api/children/kid1/devices',
      'DELETE /api/devices/d1',
      'GET /api/dashboard/remote-control?childId=kid1&status=PENDING&limit=5&before=2030-01-01T00%3A00%3A00Z',
      'GET /api/dashboard/remote-control',
      'GET /api/dashboard/notifications?limit=10&before=n9',
      'POST /api/dashboard/notifications/n1/read',
      'POST /api/pairing/claim',
      'POST /api/pairing/claim',
      'POST /api/pairing/p1/approve',
      'POST /api/pairing/p1/reject',
      'GET /api/admin/overview',
    ]);
    expect(calls[10]!.body).toEqual({ childId: 'kid1', name: 'Tablet' });
    expect(calls[8]!.body).toEqual({ code: 'K7QF-M2XD' });
    expect(calls.every((c) => c.headers.authorization === 'Bearer tok' && c.url.startsWith('https://relay.example.com/api/'))).toBe(true);
  });

  it('uses globalThis.fetch and relative URLs when no fetch and no url are given', async () => {
    const spy = vi.spyOn(globalThis, 'fetch').mockResolvedValue(new Response(JSON.stringify({ children: [] }), { status: 200 }));
    try {
      const client = createClient({ getToken: () => 'tok', io: fakeIo().io });
      expect(await client.children()).toEqual([]);
      expect(spy.mock.calls[0]![0]).toBe('/api/children');
    } finally {
      spy.mockRestore();
    }
  });
});
