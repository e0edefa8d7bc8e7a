// socket.io-client from npm against one real relay: the seed's client code, both transports
// and the upgrade, refused tokens, token expiry, the command round trip, client emits,
// recovery after a transport drop and after a SIGKILL, `resync`, and isolation of families.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';

import { JWT_SECRET, Relay, parentSocket, parentToken, record, sleep, titles, until } from './harness';

const sockets: Socket[] = [];
function track<T extends Socket>(s: T): T {
  sockets.push(s);
  return s;
}

function connected(s: Socket, ms = 10_000): Promise<void> {
  return until('connect', () => s.connected, ms);
}

let relay: Relay;
let device: { deviceId: string; token: string };

beforeAll(async () => {
  // A short heartbeat: token expiry is checked eight times per interval.
  relay = await Relay.start({ SAFESTREAM_HEARTBEAT_SECS: '2' });
  device = await relay.family('kid1', 'u1');
});

afterEach(() => {
  for (const s of sockets.splice(0)) s.disconnect();
});

afterAll(async () => {
  await relay?.stop();
});

describe('the seed plan, unchanged', () => {
  it("Phase 3: the dashboard's io({ path, auth }) connects by polling, upgrades, and gets notification:new", async () => {
    // A page served from the relay's origin: `io()` without a URL connects to `location`.
    (globalThis as { location?: unknown }).location = new URL(`${relay.url}/`);
    const session = { customToken: parentToken('u1') };
    const events: string[] = [];
    const notifications: { title: string }[] = [];

    // ---- verbatim from the seed (lib/socket-provider.tsx, the effect's body) ----
    const socketInstance = io({
      path: '/api/socket',
      auth: {
        token: session.customToken
      }
    })

    socketInstance.on('connect', () => {
      events.push('connect')
    })

    socketInstance.on('disconnect', () => {
      events.push('disconnect')
    })
    // ---- and from app/dashboard/notifications/page.tsx ----
    socketInstance.on('notification:new', (notification) => {
      notifications.push(notification)
    })
    // ---- end of the seed's code ----
    track(socketInstance);
    let first = '';
    socketInstance.io.on('open', () => (first = socketInstance.io.engine.transport.name));

    await connected(socketInstance);
    expect(first).toBe('polling');
    await until('the upgrade to WebSocket', () => socketInstance.io.engine.transport.name === 'websocket');
    await relay.notify('u1', 'hello from the backend');
    await until('notification:new', () => notifications.length === 1);
    expect(notifications[0].title).toBe('hello from the backend');
    expect(events).toEqual(['connect']);
    delete (globalThis as { location?: unknown }).location;
  });

  it("Phase 4: the child app's socket gets command:new, acknowledges it, and the parent sees every status", async () => {
    const parent = track(io(relay.url, { path: '/api/socket', auth: { token: parentToken('u1') } }));
    const seen = record(parent);
    await connected(parent);
    const childDeviceToken = device.token;
    const videoPlayer = { paused: 0, pause() { this.paused += 1; } };
    let locked = 0;
    const lockDevice = () => { locked += 1; };
    const acks: Promise<Response>[] = [];
    // The seed's `fetch` is relative and relies on the page's session; a device calls the
    // relay by URL with its token (docs/protocol.md), which is the one change here.
    const fetch = (path: string, init: RequestInit) =>
      globalThis.fetch(relay.url + path, {
        ...init,
        headers: { authorization: `Bearer ${childDeviceToken}`, 'content-type': 'application/json' },
      });

    // ---- verbatim from the seed (Phase 4.1) ----
    const socket = io(relay.url, {
      path: '/api/socket',
      auth: {
        token: childDeviceToken  // Special device token
      }
    })

    // Listen for remote commands
    socket.on('command:new', (command) => {
      switch (command.commandType) {
        case 'PAUSE':
          videoPlayer.pause()
          break
        case 'LOCK_DEVICE':
          lockDevice()
          break
        // ... other commands
      }

      // Send acknowledgment
      acks.push(fetch('/api/dashboard/remote-control/' + command.id, {
        method: 'PATCH',
        body: JSON.stringify({ status: 'EXECUTED' })
      }))
    })
    // ---- end of the seed's code ----
    track(socket);
    await connected(socket);

    const { command: pause } = await relay.ok('POST', '/api/dashboard/remote-control', parentToken('u1'), {
      childId: 'kid1',
      commandType: 'PAUSE',
    });
    const { command: lock } = await relay.ok('POST', '/api/dashboard/remote-control', parentToken('u1'), {
      childId: 'kid1',
      commandType: 'LOCK_DEVICE',
    });
    await until('both commands run', () => videoPlayer.paused === 1 && locked === 1);
    const statuses = await Promise.all(acks);
    expect(statuses.map((r) => r.status)).toEqual([200, 200]);
    const statusOf = (id: string) =>
      seen
        .filter((g) => g.ev === 'command:status' && (g.args[0] as { commandId: string }).commandId === id)
        .map((g) => (g.args[0] as { status: string }).status);
    await until('EXECUTED for both', () =>
      statusOf(pause.id).includes('EXECUTED') && statusOf(lock.id).includes('EXECUTED'),
    );
    // DELIVERED is sent unless the acknowledgment beat the delivery record (then the
    // command goes from PENDING straight to EXECUTED); EXECUTED is always the last.
    for (const id of [pause.id, lock.id]) {
      expect([['DELIVERED', 'EXECUTED'], ['EXECUTED']]).toContainEqual(statusOf(id));
    }
    const sent = seen.filter((g) => g.ev === 'command:sent').map((g) => (g.args[0] as { commandId: string }).commandId);
    expect(sent).toEqual([pause.id, lock.id]);
    // Each ran once, and the relay has them EXECUTED.
    await sleep(300);
    expect([videoPlayer.paused, locked]).toEqual([1, 1]);
    const stored = await relay.ok('GET', `/api/dashboard/remote-control/${lock.id}`, parentToken('u1'));
    expect(stored.command.status).toBe('EXECUTED');
  });
});

describe('transports', () => {
  for (const transports of [['websocket'], ['polling']] as const) {
    it(`${transports[0]} only: events both ways`, async () => {
      const parent = track(io(relay.url, { path: '/api/socket', transports: [...transports], auth: { token: parentToken('u1') } }));
      const seen = record(parent);
      const dev = track(io(relay.url, { path: '/api/socket', transports: [...transports], auth: { token: device.token } }));
      await connected(parent);
      await connected(dev);
      expect(parent.io.engine.transport.name).toBe(transports[0]);
      // A child's emit behaves as its native frame: guardians get device:status.
      dev.emit('device:status', { activeViewing: true, currentVideo: { id: 'v1', title: 'Cartoons' } });
      await until('device:status with activeViewing', () =>
        seen.some((g) => g.ev === 'device:status' && (g.args[0] as { activeViewing: boolean }).activeViewing),
      );
      await relay.notify('u1', `over ${transports[0]}`);
      await until('notification:new', () => titles(seen).includes(`over ${transports[0]}`));
      // An emit with an ack callback is acknowledged.
      const acked = await new Promise<boolean>((ok) => dev.emit('ping', { n: 1 }, () => ok(true)));
      expect(acked).toBe(true);
    });
  }
});

describe('refused tokens', () => {
  async function refusal(token: string): Promise<{ message: string; code: unknown; connected: boolean }> {
    const s = track(io(relay.url, { path: '/api/socket', auth: { token }, reconnection: false }));
    let wasConnected = false;
    s.on('connect', () => (wasConnected = true));
    // A close without a CONNECT_ERROR (the bug this guards against) would hang: it fails.
    const err = await new Promise<Error & { data?: { code?: number } }>((ok) => {
      s.on('connect_error', ok);
      s.on('disconnect', (reason) => ok(Object.assign(new Error(`disconnect: ${reason}`), { data: {} })));
    });
    await sleep(200);
    return { message: err.message, code: err.data?.code, connected: wasConnected };
  }

  it('each refusal says why, and the socket never connects', async () => {
    expect(await refusal('not-a-jwt')).toEqual({ message: 'invalid token', code: 4401, connected: false });
    expect(await refusal(parentToken('u1', -120))).toEqual({ message: 'token expired', code: 4401, connected: false });
    expect(await refusal(parentToken('u1', 3600, `${JWT_SECRET}-other`))).toEqual({
      message: 'invalid token',
      code: 4401,
      connected: false,
    });
    const s = track(io(relay.url, { path: '/api/socket', auth: {}, reconnection: false }));
    const missing = await new Promise<Error>((ok) => s.on('connect_error', ok));
    expect(missing.message).toBe('missing token');
  });

  it('a revoked device is refused, and its open socket is closed for good', async () => {
    const d = await relay.family('kid-revoked', 'u9');
    const s = track(io(relay.url, { path: '/api/socket', auth: { token: d.token } }));
    const seen = record(s);
    const reasons: string[] = [];
    s.on('disconnect', (r) => reasons.push(r));
    await connected(s);
    await relay.ok('DELETE', `/api/devices/${d.deviceId}`, parentToken('u9'));
    await until('disconnect', () => reasons.length > 0);
    expect(reasons).toEqual(['io server disconnect']);
    expect(seen.find((g) => g.ev === 'closing')?.args[0]).toMatchObject({ code: 4403 });
    expect((await refusal(d.token)).message).toBe('device revoked');
  });
});

describe('token expiry', () => {
  it('a socket whose token expires is disconnected; one that refreshed in time stays', async () => {
    const short = track(io(relay.url, { path: '/api/socket', auth: { token: parentToken('u1', 2) } }));
    const shortSeen = record(short);
    const reasons: string[] = [];
    short.on('disconnect', (r) => reasons.push(r));
    const refreshed = track(io(relay.url, { path: '/api/socket', auth: { token: parentToken('u1', 2) } }));
    const refreshedSeen = record(refreshed);
    await connected(short);
    await connected(refreshed);
    refreshed.emit('auth:refresh', { token: parentToken('u1', 3600) });
    await until('auth:refreshed', () => refreshedSeen.some((g) => g.ev === 'auth:refreshed'));
    await until('the expired socket is disconnected', () => reasons.length > 0, 8_000);
    expect(reasons).toEqual(['io server disconnect']);
    expect(shortSeen.find((g) => g.ev === 'closing')?.args[0]).toEqual({ code: 4401, reason: 'token expired' });
    await sleep(1_000);
    expect(refreshed.connected).toBe(true);
  });
});

describe('recovery', () => {
  it('after the transport drops: every missed event, in order, once, and socket.recovered', async () => {
    const s = track(
      parentSocket(relay.url, 'u1', 1_500),
    );
    const seen = record(s);
    await connected(s);
    await relay.notify('u1', 'before');
    await until('the first event', () => titles(seen).includes('before'));
    expect(s.recovered).toBe(false);
    s.io.engine.close();
    await until('disconnected', () => !s.connected);
    for (const t of ['missed 1', 'missed 2', 'missed 3']) await relay.notify('u1', t);
    await connected(s);
    expect(s.recovered).toBe(true);
    await until('the missed events', () => titles(seen).includes('missed 3'));
    // The resumed `ready` carries the offset the replay starts from (the client's own), not
    // the newest: a drop during the replay must not make the client skip the rest of it.
    const offsetOf = (title: string) =>
      seen.find((g) => g.ev === 'notification:new' && (g.args[0] as { title: string }).title === title)?.args[1];
    const readies = seen.filter((g) => g.ev === 'ready');
    expect(readies.length).toBe(2);
    expect(readies[1].args[1]).toBe(offsetOf('before'));
    expect(Number(offsetOf('missed 3'))).toBe(Number(offsetOf('before')) + 3);
    await relay.notify('u1', 'after');
    await until('a live event after them', () => titles(seen).includes('after'));
    expect(titles(seen)).toEqual(['before', 'missed 1', 'missed 2', 'missed 3', 'after']);
  });

  it('after a relay SIGKILL and restart on the same database', async () => {
    const r = await Relay.start({ SAFESTREAM_HEARTBEAT_SECS: '2' });
    try {
      await r.family('kid1', 'u1');
      const s = track(
        parentSocket(r.url, 'u1', 1_000),
      );
      const seen = record(s);
      await connected(s);
      await r.notify('u1', 'before the crash');
      await until('the first event', () => titles(seen).includes('before the crash'));
      await r.kill();
      await until('disconnected', () => !s.connected);
      await r.spawn();
      for (const t of ['while away 1', 'while away 2']) await r.notify('u1', t);
      await connected(s, 15_000);
      expect(s.recovered).toBe(true);
      await until('the missed events', () => titles(seen).includes('while away 2'));
      expect(titles(seen)).toEqual(['before the crash', 'while away 1', 'while away 2']);
    } finally {
      await r.stop();
    }
  });

  it('when the history cannot prove completeness: not recovered, and resync', async () => {
    const r = await Relay.start();
    try {
      await r.family('kid1', 'u1');
      const s = track(
        parentSocket(r.url, 'u1', 1_000),
      );
      const seen = record(s);
      await connected(s);
      for (const t of ['a', 'b']) await r.notify('u1', t);
      await until('two events', () => titles(seen).length === 2);
      // The relay comes back with its history gone (a new database): the client's offset
      // is ahead of anything it knows.
      await r.kill();
      r.env.SAFESTREAM_DB = `${r.env.SAFESTREAM_DB}.new`;
      await r.spawn();
      await r.family('kid1', 'u1');
      await until('reconnected', () => s.connected && seen.some((g) => g.ev === 'resync'), 15_000);
      expect(s.recovered).toBe(false);
      expect(seen.find((g) => g.ev === 'resync')?.args[0]).toMatchObject({ reason: 'history_gap' });
    } finally {
      await r.stop();
    }
  });
});

describe('isolation', () => {
  it("another family's socket gets nothing of this family", async () => {
    const other = await relay.family('kid2', 'u2');
    const stranger = track(io(relay.url, { path: '/api/socket', auth: { token: parentToken('u2') } }));
    const strangerDevice = track(io(relay.url, { path: '/api/socket', auth: { token: other.token } }));
    const strangerSeen = record(stranger);
    const strangerDeviceSeen = record(strangerDevice);
    const owner = track(io(relay.url, { path: '/api/socket', auth: { token: parentToken('u1') } }));
    const ownerSeen = record(owner);
    const dev = track(io(relay.url, { path: '/api/socket', auth: { token: device.token } }));
    const devSeen = record(dev);
    await Promise.all([connected(stranger), connected(strangerDevice), connected(owner), connected(dev)]);
    await relay.notify('u1', 'private');
    await relay.ok('POST', '/api/dashboard/remote-control', parentToken('u1'), { childId: 'kid1', commandType: 'PAUSE' });
    dev.emit('device:status', { activeViewing: true });
    await until('the owner got all three', () =>
      titles(ownerSeen).includes('private') &&
      ownerSeen.some((g) => g.ev === 'command:sent') &&
      ownerSeen.some((g) => g.ev === 'device:status'),
    );
    await until('the device got its command', () => devSeen.some((g) => g.ev === 'command:new'));
    await sleep(500);
    // The stranger's own socket saw only its own `ready` and its own device's presence.
    expect(strangerSeen.map((g) => g.ev).filter((e) => e !== 'ready' && e !== 'device:status')).toEqual([]);
    for (const g of strangerSeen.filter((g) => g.ev === 'device:status')) {
      expect((g.args[0] as { childId: string }).childId).toBe('kid2');
    }
    expect(strangerDeviceSeen.map((g) => g.ev)).toEqual(['ready']);
    // And a parent cannot command another family's child.
    const denied = await relay.call('POST', '/api/dashboard/remote-control', parentToken('u2'), {
      childId: 'kid1',
      commandType: 'LOCK_DEVICE',
    });
    expect(denied.status).toBe(403);
  });
});
