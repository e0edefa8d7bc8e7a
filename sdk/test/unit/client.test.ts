import { afterEach, describe, expect, it, vi } from 'vitest';

import { createClient, type SafeStreamClient } from '../../src/index.js';
import { commandView, fakeFetch, fakeIo, flush, tokenFor, type FakeSocket } from './fakes.js';

afterEach(() => {
  vi.useRealTimers();
});

function setup(getToken: () => string | Promise<string>, route = fakeFetch(() => ({ status: 404 }))) {
  const fio = fakeIo();
  const client = createClient({ url: 'http://relay.test', getToken, io: fio.io, fetch: route.fetch, random: () => 1, reconnectDelayMs: 100 });
  return { client, fio, calls: route.calls };
}

async function connected(client: SafeStreamClient, sockets: FakeSocket[]): Promise<FakeSocket> {
  client.connect();
  await flush();
  const s = sockets[0]!;
  s.serverReady();
  return s;
}

describe('connecting', () => {
  it("opens socket.io-client on /api/socket with its own reconnection, the token in auth, the seed's transports", async () => {
    const { client, fio } = setup(() => tokenFor('u1'));
    expect(client.state).toBe('idle');
    expect(client.socket).toBeNull();
    client.connect();
    await flush();
    expect(fio.calls.length).toBe(1);
    expect(fio.calls[0]![0]).toBe('http://relay.test');
    expect(fio.calls[0]![1]).toMatchObject({ path: '/api/socket', reconnection: false, transports: ['polling', 'websocket'] });
    expect(client.state).toBe('connecting');
    expect(client.socket).toBe(fio.sockets[0]);
    fio.sockets[0]!.serverReady(false, 'user-7');
    expect(client.state).toBe('connected');
    expect(client.userId).toBe('user-7');
  });

  it('delivers typed events to on() listeners, each removable', async () => {
    const { client, fio } = setup(() => tokenFor('u1'));
    const s = await connected(client, fio.sockets);
    const got: string[] = [];
    const off = client.on('notification:new', (n) => got.push(n.title));
    s.serverEvent('notification:new', { id: 'n1', title: 'one' }, '2');
    off();
    s.serverEvent('notification:new', { id: 'n2', title: 'two' }, '3');
    expect(got).toEqual(['one']);
  });
});

describe('refused tokens', () => {
  it("connect_error 'token expired' (4401): getToken() again, and a reconnection with the new token", async () => {
    let n = 0;
    const getToken = vi.fn(() => tokenFor('u1', 3600, { n: ++n }));
    const { client, fio } = setup(getToken);
    client.connect();
    await flush();
    const s = fio.sockets[0]!;
    s.connectError('token expired', 4401);
    await flush();
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(s.connectCalls).toBe(2);
    expect(s.authSent[1]!.token).not.toBe(s.authSent[0]!.token);
    s.serverReady();
    expect(client.state).toBe('connected');
  });

  it("stops as 'unauthorized' when getToken() gives the same refused token back", async () => {
    vi.useFakeTimers();
    const t = tokenFor('u1');
    const getToken = vi.fn(() => t);
    const { client, fio } = setup(getToken);
    const states: string[] = [];
    client.onState((x) => states.push(x));
    client.connect();
    await flush();
    const s = fio.sockets[0]!;
    s.connectError('invalid token', 4401);
    await flush();
    expect(client.state).toBe('unauthorized');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.connectCalls).toBe(1);
    expect(states).toEqual(['connecting', 'unauthorized']);
  });

  it("stops when the new token is refused too, or getToken() throws", async () => {
    let n = 0;
    const { client, fio } = setup(() => tokenFor('u1', 3600, { n: ++n }));
    client.connect();
    await flush();
    const s = fio.sockets[0]!;
    s.connectError('token expired', 4401);
    await flush();
    expect(s.connectCalls).toBe(2);
    s.connectError('token expired', 4401);
    await flush();
    expect(client.state).toBe('unauthorized');
    expect(s.connectCalls).toBe(2);

    let calls = 0;
    const b = setup(() => {
      calls += 1;
      if (calls > 1) throw new Error('session over');
      return tokenFor('u1');
    });
    b.client.connect();
    await flush();
    b.fio.sockets[0]!.connectError('token expired', 4401);
    await flush();
    expect(b.client.state).toBe('unauthorized');
  });

  it("closing 4401 then a server disconnect: a new token and a reconnection; closing 4403: 'unauthorized'", async () => {
    let n = 0;
    const getToken = vi.fn(() => tokenFor('u1', 3600, { n: ++n }));
    const { client, fio } = setup(getToken);
    const s = await connected(client, fio.sockets);
    s.serverEvent('closing', { code: 4401, reason: 'token expired' });
    s.serverDisconnect('io server disconnect');
    expect(client.state).toBe('reconnecting');
    await flush();
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(s.connectCalls).toBe(2);
    s.serverReady(true);
    expect(client.state).toBe('connected');
    s.serverEvent('closing', { code: 4403, reason: 'forbidden' });
    s.serverDisconnect('io server disconnect');
    await flush();
    expect(client.state).toBe('unauthorized');
    expect(s.connectCalls).toBe(2);
    // connect() starts again (a new session in the app), on the same socket.
    client.connect();
    await flush();
    expect(s.connectCalls).toBe(3);
    expect(client.state).toBe('connecting');
  });
});

describe('resync', () => {
  it('a resync event calls onResync listeners, then on("resync"), and re-reads every in-flight command', async () => {
    const route = fakeFetch((c) => {
      if (c.method === 'POST') return { status: 201, body: { command: commandView('c1') } };
      return { status: 200, body: { command: commandView('c1', { status: 'EXECUTED', deliveredAt: '2030-01-01T00:00:01.000Z', executedAt: '2030-01-01T00:00:02.000Z', ackDeviceId: 'd1' }) } };
    });
    const { client, fio, calls } = setup(() => tokenFor('u1'), route);
    const s = await connected(client, fio.sockets);
    const order: string[] = [];
    client.onResync(() => order.push('onResync'));
    client.on('resync', (d) => order.push(`event ${d.reason}`));
    const p = client.sendCommand('kid1', 'PAUSE');
    await flush(20);
    expect(calls.map((c) => c.method)).toEqual(['POST']);
    s.serverEvent('resync', { reason: 'history_gap', seq: 9 });
    expect(order).toEqual(['onResync', 'event history_gap']);
    const r = await p;
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /api/dashboard/remote-control', 'GET /api/dashboard/remote-control/c1']);
    expect(r.trail.map((x) => [x.status, x.at])).toEqual([
      ['PENDING', '2030-01-01T00:00:00.000Z'],
      ['DELIVERED', '2030-01-01T00:00:01.000Z'],
      ['EXECUTED', '2030-01-01T00:00:02.000Z'],
    ]);
  });

  it('a reconnection that was not recovered fires onResync once (not again for the resync event that follows); a recovered one does not', async () => {
    vi.useFakeTimers();
    const { client, fio } = setup(() => tokenFor('u1'));
    const s = await connected(client, fio.sockets);
    let resyncs = 0;
    client.onResync(() => (resyncs += 1));
    s.serverDisconnect('transport close');
    await vi.advanceTimersByTimeAsync(100);
    s.serverReady(true);
    expect(resyncs).toBe(0);
    s.serverDisconnect('ping timeout');
    await vi.advanceTimersByTimeAsync(100);
    s.serverReady(false);
    expect(resyncs).toBe(1);
    s.serverEvent('resync', { reason: 'history_gap', seq: 3 });
    expect(resyncs).toBe(1);
    // A later resync on the open socket is a new gap.
    s.serverEvent('notification:new', { id: 'n', title: 't' }, '4');
    s.serverEvent('resync', { reason: 'history_gap', seq: 10 });
    expect(resyncs).toBe(2);
  });
  it('a recovered reconnection re-reads in-flight commands (a missed step is caught up) without onResync', async () => {
    vi.useFakeTimers();
    const route = fakeFetch((c) =>
      c.method === 'POST'
        ? { status: 201, body: { command: commandView('c1') } }
        : { status: 200, body: { command: commandView('c1', { status: 'DELIVERED', deliveredAt: '2030-01-01T00:00:01.000Z', ackDeviceId: 'd1' }) } },
    );
    const { client, fio, calls } = setup(() => tokenFor('u1'), route);
    const s = await connected(client, fio.sockets);
    let resyncs = 0;
    client.onResync(() => (resyncs += 1));
    const steps: string[] = [];
    const waiting = client.sendCommand('kid1', 'PAUSE', {}, { onStatus: (x) => steps.push(x.status) }).catch((e: Error) => e.name);
    await flush(20);
    s.serverDisconnect('transport close');
    await vi.advanceTimersByTimeAsync(100);
    s.serverReady(true);
    await flush(20);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /api/dashboard/remote-control', 'GET /api/dashboard/remote-control/c1']);
    expect(steps).toEqual(['PENDING', 'DELIVERED']);
    expect(resyncs).toBe(0);
    client.close();
    expect(await waiting).toBe('AbortError');
  });
});

describe('close()', () => {
  it('stops everything: state closed, every listener removed, pending commands rejected, no timers', async () => {
    vi.useFakeTimers();
    const route = fakeFetch(() => ({ status: 201, body: { command: commandView('c1') } }));
    const { client, fio } = setup(() => tokenFor('u1', 3600), route);
    const s = await connected(client, fio.sockets);
    const states: string[] = [];
    client.onState((x) => states.push(x));
    client.on('notification:new', () => undefined);
    client.onResync(() => undefined);
    const p = client.sendCommand('kid1', 'LOCK_DEVICE');
    const settled = p.catch((e: Error) => e.name);
    await flush(20);
    expect(client.listenerCount()).toBeGreaterThan(3);
    client.close();
    expect(await settled).toBe('AbortError');
    expect(states).toEqual(['closed']);
    expect(client.state).toBe('closed');
    expect(client.listenerCount()).toBe(0);
    expect(s.listenerCount()).toBe(0);
    expect(s.disconnectCalls).toBe(1);
    expect(client.socket).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
    s.serverEvent('notification:new', { id: 'x' });
  });
});

