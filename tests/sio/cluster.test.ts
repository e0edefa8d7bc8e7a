// Three relay nodes on PostgreSQL + Redis behind a round-robin proxy (no sticky sessions):
// socket.io-client's default (long-polling, then the upgrade) works through it, the command
// round trip crosses nodes, and a parent whose node is killed recovers on another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';

import { Relay, RoundRobin, freshDatabase, parentSocket, parentToken, record, startRedis, titles, until } from './harness';

let nodes: Relay[] = [];
let proxy: RoundRobin;
let redis: { stop: () => void };
const sockets: Socket[] = [];

beforeAll(async () => {
  const db = freshDatabase();
  const r = await startRedis();
  redis = r;
  // One node first (it applies the migrations), then the other two.
  nodes.push(await Relay.start({ SAFESTREAM_DB: db, SAFESTREAM_REDIS: r.url, SAFESTREAM_NODE_ID: 'n0', SAFESTREAM_HEARTBEAT_SECS: '5' }));
  nodes = nodes.concat(
    await Promise.all(
      ['n1', 'n2'].map((id) =>
        Relay.start({ SAFESTREAM_DB: db, SAFESTREAM_REDIS: r.url, SAFESTREAM_NODE_ID: id, SAFESTREAM_HEARTBEAT_SECS: '5' }),
      ),
    ),
  );
  proxy = await RoundRobin.start(nodes.map((n) => n.port));
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await proxy?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
  redis?.stop();
});

describe('three nodes behind a round-robin proxy', () => {
  it('the default client (polling, then the upgrade) works without sticky sessions', async () => {
    const device = await nodes[0].family('kid1', 'u1');
    const parent = io(proxy.url, { path: '/api/socket', auth: { token: parentToken('u1') } });
    const dev = io(proxy.url, { path: '/api/socket', auth: { token: device.token } });
    sockets.push(parent, dev);
    const seen = record(parent);
    let firstTransport = '';
    parent.io.on('open', () => (firstTransport = parent.io.engine.transport.name));
    const acks: number[] = [];
    dev.on('command:new', async (command: { id: string }) => {
      // The acknowledgment goes through the balancer too (to whichever node).
      const r = await fetch(`${proxy.url}/api/dashboard/remote-control/${command.id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${device.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ status: 'EXECUTED' }),
      });
      acks.push(r.status);
    });
    await until('both connected', () => parent.connected && dev.connected, 15_000);
    expect(firstTransport).toBe('polling');
    await until('both upgraded', () =>
      parent.io.engine.transport.name === 'websocket' && dev.io.engine.transport.name === 'websocket',
    15_000);
    // Requests reached more than one node: the session's requests were forwarded.
    expect(proxy.counts.filter((c) => c > 0).length).toBe(3);

    // A notification written on each node reaches the parent once, in order.
    for (let i = 0; i < 3; i++) await nodes[i].notify('u1', `from n${i}`);
    await until('three notifications', () => titles(seen).length === 3);
    expect(titles(seen)).toEqual(['from n0', 'from n1', 'from n2']);

    // The command round trip across nodes.
    const { command } = await nodes[1].ok('POST', '/api/dashboard/remote-control', parentToken('u1'), {
      childId: 'kid1',
      commandType: 'LOCK_DEVICE',
    });
    await until('EXECUTED', () =>
      seen.some(
        (g) => g.ev === 'command:status' && (g.args[0] as { commandId: string; status: string }).commandId === command.id &&
          (g.args[0] as { status: string }).status === 'EXECUTED',
      ),
    );
    expect(acks).toEqual([200]);
  });

  it('polling only, through the balancer, for a while: every request finds its session', async () => {
    const parent = io(proxy.url, { path: '/api/socket', transports: ['polling'], auth: { token: parentToken('u2') } });
    sockets.push(parent);
    await nodes[2].family('kid2', 'u2');
    const seen = record(parent);
    await until('connected', () => parent.connected, 15_000);
    for (let i = 0; i < 6; i++) {
      await nodes[i % 3].notify('u2', `p${i}`);
      await until(`p${i}`, () => titles(seen).includes(`p${i}`));
    }
    expect(titles(seen)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5']);
    expect(parent.connected).toBe(true);
  });

  it('a parent whose node is killed recovers on another node, with every missed event', async () => {
    await nodes[0].family('kid3', 'u3');
    const parent = parentSocket(proxy.url, 'u3', 500);
    sockets.push(parent);
    const seen = record(parent);
    await until('connected', () => parent.connected, 15_000);
    await nodes[1].notify('u3', 'first');
    await until('first', () => titles(seen).includes('first'));
    // The session id names its node: kill that one.
    const holder = parent.io.engine.id.split('.').pop();
    const victim = nodes.findIndex((_, i) => `n${i}` === holder);
    expect(victim).toBeGreaterThanOrEqual(0);
    await nodes[victim].kill();
    const alive = nodes.filter((_, i) => i !== victim);
    await until('disconnected', () => !parent.connected, 15_000);
    for (const t of ['missed 1', 'missed 2']) await alive[0].notify('u3', t);
    await until('reconnected', () => parent.connected, 20_000);
    expect(parent.io.engine.id.split('.').pop()).not.toBe(holder);
    expect(parent.recovered).toBe(true);
    await until('the missed events', () => titles(seen).includes('missed 2'));
    await alive[1].notify('u3', 'after');
    await until('after', () => titles(seen).includes('after'));
    expect(titles(seen)).toEqual(['first', 'missed 1', 'missed 2', 'after']);
    await nodes[victim].spawn();
  });
});
