// Resume across a relay SIGKILL and restart (same port, same database), and resync when the
// relay cannot prove completeness (restarted on a new database).
import { afterEach, describe, expect, it } from 'vitest';

import { SafeStreamError, type CommandResult, type CommandStatusData, type SafeStreamClient } from '../../src/index.js';
import { Relay, parentClient, requireRelayBinary, sleep, startDevice, until, within, type FakeDevice } from './util.js';

// Fails the file (it is never skipped) when the relay binary is missing.
requireRelayBinary();

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function relayWithFamily(): Promise<{ relay: Relay; device: { deviceId: string; token: string } }> {
  const relay = await Relay.start({ SAFESTREAM_HEARTBEAT_SECS: '2' });
  cleanup.push(() => relay.stop());
  const device = await relay.family('kid1', 'u1');
  return { relay, device };
}

function watch(c: SafeStreamClient) {
  const titles: string[] = [];
  const statuses: CommandStatusData[] = [];
  const states: string[] = [];
  let resyncs = 0;
  c.on('notification:new', (n) => titles.push(n.title));
  c.on('command:status', (s) => statuses.push(s));
  c.onState((s) => states.push(s));
  c.onResync(() => (resyncs += 1));
  return { titles, statuses, states, resyncs: () => resyncs };
}

describe('resume', () => {
  it('after a SIGKILL and a restart: missed events once and in order, and an in-flight sendCommand settles', async () => {
    const { relay, device } = await relayWithFamily();
    // A fixed 2 s retry (random = 1): the events below are posted while the client is away.
    const c = parentClient(relay, 'u1', { reconnectDelayMs: 2_000, reconnectDelayMaxMs: 2_000, random: () => 1 });
    cleanup.push(() => c.close());
    const w = watch(c);
    c.connect();
    await until('connected', () => c.state === 'connected');
    await relay.notify('u1', 'before');
    await until('the first event', () => w.titles.includes('before'));

    // No device online: the command waits at PENDING across the crash.
    const steps: string[] = [];
    const sent = c.sendCommand('kid1', 'PAUSE', {}, { onStatus: (s) => steps.push(s.status) });
    await until('PENDING', () => steps.length === 1);

    await relay.kill();
    await until('the client noticed', () => c.state === 'reconnecting');
    await relay.spawn();
    const stateWhilePosting = c.state;
    for (const t of ['after 1', 'after 2', 'after 3']) await relay.notify('u1', t);
    expect(stateWhilePosting).toBe('reconnecting');

    await until('reconnected', () => c.state === 'connected', 15_000);
    expect(c.socket?.recovered).toBe(true);
    await until('the missed events', () => w.titles.includes('after 3'));

    // The device comes online and runs the command the client is still waiting for.
    const dev: FakeDevice = startDevice(relay, device.token, { status: 'EXECUTED', delayMs: 200 });
    cleanup.push(() => dev.close());
    const r: CommandResult = await within('the in-flight command to settle', sent);
    expect(r.command.status).toBe('EXECUTED');
    expect(r.trail.map((s) => s.status)).toEqual(['PENDING', 'DELIVERED', 'EXECUTED']);

    await relay.notify('u1', 'live');
    await until('a live event', () => w.titles.includes('live'));
    await sleep(500);
    expect(w.titles).toEqual(['before', 'after 1', 'after 2', 'after 3', 'live']);
    const mine = w.statuses.filter((s) => s.commandId === r.command.id).map((s) => s.status);
    expect(mine).toEqual(['DELIVERED', 'EXECUTED']);
    expect(w.resyncs()).toBe(0);
    expect(w.states).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
  });

  it('when the history cannot prove completeness: onResync fires once, a refetch sees the new state, in-flight commands are re-read', async () => {
    const { relay } = await relayWithFamily();
    const c = parentClient(relay, 'u1', { reconnectDelayMs: 1_000, reconnectDelayMaxMs: 1_000, random: () => 1 });
    cleanup.push(() => c.close());
    const w = watch(c);
    const refetched: string[][] = [];
    const resyncEvents: string[] = [];
    c.on('resync', (d) => resyncEvents.push(d.reason));
    c.onResync(() => {
      void c.notifications().then((ns) => refetched.push(ns.map((n) => n.title)));
    });
    c.connect();
    await until('connected', () => c.state === 'connected');
    for (const t of ['a', 'b']) await relay.notify('u1', t);
    await until('two events', () => w.titles.length === 2);
    const steps: string[] = [];
    const sent = c.sendCommand('kid1', 'PAUSE', {}, { onStatus: (s) => steps.push(s.status) });
    const outcome = sent.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    await until('PENDING', () => steps.length === 1);

    // The relay comes back with its history gone (a new database): the client's offset is
    // ahead of anything it knows.
    await relay.kill();
    relay.env.SAFESTREAM_DB = `${relay.env.SAFESTREAM_DB}.new`;
    await relay.spawn();
    await relay.family('kid1', 'u1');
    await relay.notify('u1', 'in the new database');

    await until('resync handled', () => refetched.length > 0, 15_000);
    expect(c.state).toBe('connected');
    expect(c.socket?.recovered).toBe(false);
    expect(refetched[0]).toEqual(['in the new database']);
    // The command is unknown to this database: the re-read says so.
    const e = await within('the in-flight command to be re-read', outcome, 5_000);
    expect(e).toBeInstanceOf(SafeStreamError);
    expect((e as SafeStreamError).status).toBe(404);
    await until('the resync event', () => resyncEvents.length > 0, 5_000);
    await sleep(500);
    expect(resyncEvents).toEqual(['history_gap']);
    expect(w.resyncs()).toBe(1);
    // Events after it arrive normally.
    await relay.notify('u1', 'after the resync');
    await until('a live event', () => w.titles.includes('after the resync'));
  });
});
