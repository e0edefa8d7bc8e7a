import { afterEach, describe, expect, it, vi } from 'vitest';

import { CommandAbortedError, createClient, type StatusStep } from '../../src/index.js';
import { commandView, deferred, fakeFetch, fakeIo, flush, statusEvent, tokenFor, type Answer, type FetchCall } from './fakes.js';

afterEach(() => {
  vi.useRealTimers();
});

async function setup(route: (c: FetchCall) => Answer | Promise<Answer>) {
  const fio = fakeIo();
  const f = fakeFetch(route);
  const client = createClient({ url: 'http://relay.test', getToken: () => tokenFor('u1'), io: fio.io, fetch: f.fetch });
  client.connect();
  await flush();
  const socket = fio.sockets[0]!;
  socket.serverReady();
  return { client, socket, calls: f.calls };
}

const created = (over: Record<string, unknown> = {}): Answer => ({ status: 201, body: { command: commandView('c1', over) } });

describe('sendCommand', () => {
  it('POSTs the command and resolves at EXECUTED with the trail, every step given to onStatus in order', async () => {
    const { client, socket, calls } = await setup(() => created());
    const seen: [StatusStep['status'], string][] = [];
    const p = client.sendCommand('kid1', 'SHOW_MESSAGE', { text: 'dinner' }, {
      deviceId: 'd1',
      expiresInSeconds: 60,
      onStatus: (step, cmd) => seen.push([step.status, cmd.status]),
    });
    await flush(20);
    expect(calls[0]).toMatchObject({
      method: 'POST',
      path: '/api/dashboard/remote-control',
      body: { childId: 'kid1', commandType: 'SHOW_MESSAGE', payload: { text: 'dinner' }, deviceId: 'd1', expiresInSeconds: 60 },
    });
    expect(seen).toEqual([['PENDING', 'PENDING']]);
    socket.serverEvent('command:status', statusEvent('other', 'EXECUTED'), '5');
    socket.serverEvent('command:status', statusEvent('c1', 'DELIVERED'), '6');
    socket.serverEvent('command:status', statusEvent('c1', 'DELIVERED'), '6'); // a duplicate
    socket.serverEvent('command:status', statusEvent('c1', 'EXECUTED'), '7');
    const r = await p;
    expect(seen).toEqual([
      ['PENDING', 'PENDING'],
      ['DELIVERED', 'DELIVERED'],
      ['EXECUTED', 'EXECUTED'],
    ]);
    expect(r.trail.map((s) => s.status)).toEqual(['PENDING', 'DELIVERED', 'EXECUTED']);
    expect(r.trail[0]).toEqual({ status: 'PENDING', at: '2030-01-01T00:00:00.000Z', deviceId: null, error: null });
    expect(r.trail[2]).toEqual({ status: 'EXECUTED', at: '2030-01-01T00:00:02.000Z', deviceId: 'd1', error: null });
    expect(r.command).toMatchObject({ id: 'c1', status: 'EXECUTED', executedAt: '2030-01-01T00:00:02.000Z', ackDeviceId: 'd1' });
    expect(client.listenerCount()).toBe(0);
  });

  it('keeps statuses that arrive before the POST answers', async () => {
    const answer = deferred<Answer>();
    const { client, socket } = await setup(() => answer.promise);
    const p = client.sendCommand('kid1', 'PAUSE');
    await flush(10);
    // The device was fast: both statuses come while the POST's answer is on its way.
    socket.serverEvent('command:status', statusEvent('c1', 'DELIVERED'), '3');
    socket.serverEvent('command:status', statusEvent('c1', 'EXECUTED'), '4');
    answer.resolve(created());
    const r = await p;
    expect(r.trail.map((s) => s.status)).toEqual(['PENDING', 'DELIVERED', 'EXECUTED']);
    expect(r.command.status).toBe('EXECUTED');
  });

  it('ignores a status that goes backwards (DELIVERED after EXECUTED skipped DELIVERED)', async () => {
    const { client, socket } = await setup(() => created());
    const p = client.sendCommand('kid1', 'PAUSE');
    await flush(20);
    socket.serverEvent('command:status', statusEvent('c1', 'EXECUTED'), '3');
    socket.serverEvent('command:status', statusEvent('c1', 'DELIVERED'), '4');
    expect((await p).trail.map((s) => s.status)).toEqual(['PENDING', 'EXECUTED']);
  });

  it('resolves (does not reject) at FAILED and at EXPIRED', async () => {
    let n = 0;
    const { client, socket } = await setup(() => ({ status: 201, body: { command: commandView(`c${++n}`) } }));
    const p = client.sendCommand('kid1', 'LOCK_DEVICE');
    await flush(20);
    socket.serverEvent('command:status', statusEvent('c1', 'FAILED', { error: 'no permission' }), '3');
    const failed = await p;
    expect(failed.command).toMatchObject({ status: 'FAILED', error: 'no permission' });
    expect(failed.trail.at(-1)).toMatchObject({ status: 'FAILED', error: 'no permission', deviceId: 'd1' });

    const q = client.sendCommand('kid1', 'LOCK_DEVICE');
    await flush(20);
    socket.serverEvent('command:status', statusEvent('c2', 'EXPIRED', { deviceId: null }), '4');
    const expired = await q;
    expect(expired.command).toMatchObject({ status: 'EXPIRED', error: 'expired' });
    expect(expired.trail.map((s) => [s.status, s.at])).toEqual([
      ['PENDING', '2030-01-01T00:00:00.000Z'],
      ['EXPIRED', '2030-01-01T00:05:00.000Z'],
    ]);
  });

  it('reads the command again past expiresAt + grace when no final status came', async () => {
    vi.useFakeTimers();
    let gets = 0;
    const { client } = await setup((c) => {
      if (c.method === 'POST') return created({ expiresAt: '2030-01-01T00:00:10.000Z' });
      gets += 1;
      return { status: 200, body: { command: commandView('c1', gets === 1 ? {} : { status: 'EXPIRED', error: 'expired', expiresAt: '2030-01-01T00:00:10.000Z' }) } };
    });
    const p = client.sendCommand('kid1', 'PAUSE');
    await flush(20);
    await vi.advanceTimersByTimeAsync(39_999);
    expect(gets).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(gets).toBe(1); // still PENDING: asked again after another grace period
    await vi.advanceTimersByTimeAsync(30_000);
    const r = await p;
    expect(gets).toBe(2);
    expect(r.command.status).toBe('EXPIRED');
    expect(vi.getTimerCount()).toBe(1); // only the token refresh timer is left
  });

  it('a recheck the relay refuses (403: no longer this parent\'s) rejects instead of asking again forever', async () => {
    vi.useFakeTimers();
    let gets = 0;
    const { client } = await setup((c) => {
      if (c.method === 'POST') return created({ expiresAt: '2030-01-01T00:00:10.000Z' });
      gets += 1;
      return { status: 403, body: { error: { code: 'forbidden', message: 'not a guardian' } } };
    });
    const p = client.sendCommand('kid1', 'PAUSE');
    const outcome = p.then(() => 'resolved', (e: unknown) => e);
    await flush(20);
    await vi.advanceTimersByTimeAsync(40_000);
    expect(gets).toBe(1);
    expect(await outcome).toMatchObject({ name: 'SafeStreamError', status: 403 });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(gets).toBe(1);
    expect(client.listenerCount()).toBe(0);
  });

  it('sent before the first connection: the command is read once connected (its statuses may have gone by)', async () => {
    const fio = fakeIo();
    const f = fakeFetch((c) =>
      c.method === 'POST' ? created() : { status: 200, body: { command: commandView('c1', { status: 'EXECUTED', deliveredAt: '2030-01-01T00:00:01.000Z', executedAt: '2030-01-01T00:00:02.000Z', ackDeviceId: 'd1' }) } },
    );
    const client = createClient({ url: 'http://relay.test', getToken: () => tokenFor('u1'), io: fio.io, fetch: f.fetch });
    client.connect();
    const p = client.sendCommand('kid1', 'LOCK_DEVICE');
    await flush(20);
    expect(f.calls.map((c) => c.method)).toEqual(['POST']);
    fio.sockets[0]!.serverReady();
    const r = await p;
    expect(f.calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /api/dashboard/remote-control', 'GET /api/dashboard/remote-control/c1']);
    expect(r.trail.map((s) => s.status)).toEqual(['PENDING', 'DELIVERED', 'EXECUTED']);
    client.close();
  });

  it('a POST answered after a reconnection that was not recovered reads the command once', async () => {
    const answer = deferred<Answer>();
    let gets = 0;
    const { client, socket } = await setup((c) => {
      if (c.method === 'POST') return answer.promise;
      gets += 1;
      return { status: 200, body: { command: commandView('c1', { status: 'EXECUTED', executedAt: '2030-01-01T00:00:02.000Z', ackDeviceId: 'd1' }) } };
    });
    const p = client.sendCommand('kid1', 'PAUSE');
    await flush(10);
    socket.serverDisconnect('transport close');
    await new Promise((ok) => setTimeout(ok, 700));
    socket.serverReady(false); // not recovered: the statuses of that gap are not replayed
    await flush(10);
    expect(gets).toBe(0);
    answer.resolve(created());
    const r = await p;
    expect(gets).toBe(1);
    expect(r.command.status).toBe('EXECUTED');
  });

  it('rejects with the REST error when the POST is refused', async () => {
    const { client } = await setup(() => ({ status: 403, body: { error: { code: 'forbidden', message: 'not your child' } } }));
    await expect(client.sendCommand('kid9', 'PAUSE')).rejects.toMatchObject({ name: 'SafeStreamError', status: 403, code: 'forbidden' });
    expect(client.listenerCount()).toBe(0);
  });
});

describe('sendCommand with an AbortSignal', () => {
  function spiedSignal() {
    const ctl = new AbortController();
    const added = vi.spyOn(ctl.signal, 'addEventListener');
    const removed = vi.spyOn(ctl.signal, 'removeEventListener');
    return { ctl, live: () => added.mock.calls.length - removed.mock.calls.length };
  }

  it('aborted while waiting for statuses: rejects CommandAbortedError, and every listener is gone', async () => {
    vi.useFakeTimers();
    const { client, socket, calls } = await setup(() => created());
    const before = { client: client.listenerCount(), socket: socket.listenerCount(), timers: vi.getTimerCount() };
    const { ctl, live } = spiedSignal();
    const steps: string[] = [];
    const p = client.sendCommand('kid1', 'PAUSE', {}, { signal: ctl.signal, onStatus: (s) => steps.push(s.status) });
    await flush(20);
    socket.serverEvent('command:status', statusEvent('c1', 'DELIVERED'), '3');
    expect(client.listenerCount()).toBe(before.client + 2); // its command:status listener, and it is in flight
    expect(vi.getTimerCount()).toBe(before.timers + 1); // its expiry check
    expect(live()).toBe(1);
    ctl.abort();
    await expect(p).rejects.toBeInstanceOf(CommandAbortedError);
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(client.listenerCount()).toBe(before.client);
    expect(socket.listenerCount()).toBe(before.socket);
    expect(vi.getTimerCount()).toBe(before.timers);
    expect(live()).toBe(0);
    // Later statuses change nothing, and nothing asked the relay to cancel.
    socket.serverEvent('command:status', statusEvent('c1', 'EXECUTED'), '4');
    expect(steps).toEqual(['PENDING', 'DELIVERED']);
    expect(calls.map((c) => c.method)).toEqual(['POST']);
  });

  it('aborted before the POST answered: rejects at once; the late answer adds no listener', async () => {
    const answer = deferred<Answer>();
    const { client } = await setup(() => answer.promise);
    const before = client.listenerCount();
    const { ctl, live } = spiedSignal();
    const p = client.sendCommand('kid1', 'PAUSE', {}, { signal: ctl.signal });
    await flush(10);
    ctl.abort();
    await expect(p).rejects.toBeInstanceOf(CommandAbortedError);
    answer.resolve(created());
    await flush(20);
    expect(client.listenerCount()).toBe(before);
    expect(live()).toBe(0);
  });

  it('an already aborted signal rejects without sending anything', async () => {
    const { client, calls } = await setup(() => created());
    const ctl = new AbortController();
    ctl.abort();
    await expect(client.sendCommand('kid1', 'PAUSE', {}, { signal: ctl.signal })).rejects.toBeInstanceOf(CommandAbortedError);
    expect(calls).toEqual([]);
  });
});
