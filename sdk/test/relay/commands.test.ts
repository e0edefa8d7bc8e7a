// sendCommand against the real relay, with a simulated device acknowledging over REST.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { CommandAbortedError, type SafeStreamClient, type StatusStep } from '../../src/index.js';
import { Relay, SERVER_KEY, parentClient, parentToken, requireRelayBinary, sleep, startDevice, until, within, type FakeDevice } from './util.js';

// Fails the file (it is never skipped) when the relay binary is missing.
requireRelayBinary();

let relay: Relay;
let device: { deviceId: string; token: string };
const cleanup: (() => void)[] = [];

beforeAll(async () => {
  relay = await Relay.start();
  device = await relay.family('kid1', 'u1');
});

afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

afterAll(async () => {
  await relay?.stop();
});

function track<T extends SafeStreamClient | FakeDevice>(x: T): T {
  cleanup.push(() => x.close());
  return x;
}

async function connectedClient(): Promise<SafeStreamClient> {
  const c = track(parentClient(relay, 'u1'));
  c.connect();
  await until('the client is connected', () => c.state === 'connected');
  return c;
}

describe('sendCommand', () => {
  it('round trip: PENDING → DELIVERED → EXECUTED, with the trail, as the relay stored it', async () => {
    const c = await connectedClient();
    const dev = track(startDevice(relay, device.token, { status: 'EXECUTED', delayMs: 300 }));
    await until('the device is connected', () => dev.socket.connected);
    const steps: StatusStep[] = [];
    const before = c.listenerCount();
    const r = await within('the command to settle', c.sendCommand('kid1', 'SHOW_MESSAGE', { text: 'dinner' }, { onStatus: (s) => steps.push(s) }));
    expect(r.trail.map((s) => s.status)).toEqual(['PENDING', 'DELIVERED', 'EXECUTED']);
    expect(steps.map((s) => s.status)).toEqual(['PENDING', 'DELIVERED', 'EXECUTED']);
    expect(r.trail[2]!.deviceId).toBe(device.deviceId);
    const times = r.trail.map((s) => Date.parse(s.at));
    expect(times.every((t) => Number.isFinite(t))).toBe(true);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(dev.received).toEqual([r.command.id]);
    await until("the device's ack answered", () => dev.acks.length > 0);
    expect(dev.acks).toEqual([200]);
    const stored = (await relay.ok('GET', `/api/dashboard/remote-control/${r.command.id}`, parentToken('u1'))).command;
    expect(r.command).toMatchObject({
      id: stored.id,
      status: 'EXECUTED',
      executedAt: stored.executedAt,
      ackDeviceId: stored.ackDeviceId,
      payload: { text: 'dinner' },
    });
    expect(r.trail[2]!.at).toBe(stored.executedAt);
    expect(c.listenerCount()).toBe(before);
  });

  it('a device that answers FAILED: the promise resolves with FAILED and its error', async () => {
    const c = await connectedClient();
    const dev = track(startDevice(relay, device.token, { status: 'FAILED', error: 'the player is locked' }));
    await until('the device is connected', () => dev.socket.connected);
    const r = await within('the command to settle', c.sendCommand('kid1', 'PAUSE'));
    expect(r.command.status).toBe('FAILED');
    expect(r.command.error).toBe('the player is locked');
    expect(r.trail[0]!.status).toBe('PENDING');
    expect(r.trail.at(-1)).toMatchObject({ status: 'FAILED', error: 'the player is locked', deviceId: device.deviceId });
    const stored = (await relay.ok('GET', `/api/dashboard/remote-control/${r.command.id}`, parentToken('u1'))).command;
    expect(stored).toMatchObject({ status: 'FAILED', error: 'the player is locked' });
  });

  it('aborted in the middle: rejects CommandAbortedError, listeners gone, and the command lives on at the relay', async () => {
    const c = await connectedClient();
    const baseline = c.listenerCount();
    const ctl = new AbortController();
    const steps: string[] = [];
    let id = '';
    // No device is connected: the command waits at PENDING.
    const p = c.sendCommand('kid1', 'LOCK_DEVICE', {}, {
      signal: ctl.signal,
      onStatus: (s, cmd) => {
        steps.push(s.status);
        id = cmd.id;
      },
    });
    const outcome = p.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    await until('PENDING', () => steps.length === 1);
    expect(c.listenerCount()).toBeGreaterThan(baseline);
    ctl.abort();
    const e = await within('the rejection', outcome, 2_000);
    expect(e).toBeInstanceOf(CommandAbortedError);
    expect(c.listenerCount()).toBe(baseline);
    // Not cancelled: a device that connects now runs it, and the relay has it EXECUTED.
    const stored = await relay.ok('GET', `/api/dashboard/remote-control/${id}`, parentToken('u1'));
    expect(stored.command.status).toBe('PENDING');
    const dev = track(startDevice(relay, device.token));
    await until('the device ran it', () => dev.acks.length > 0);
    expect(dev.received).toContain(id);
    expect((await relay.ok('GET', `/api/dashboard/remote-control/${id}`, parentToken('u1'))).command.status).toBe('EXECUTED');
    await sleep(300);
    expect(steps).toEqual(['PENDING']);
  });

  it('a refused command rejects with a typed error', async () => {
    await relay.ok('PUT', '/api/children/kid-other', SERVER_KEY, { name: 'Other', guardians: ['u2'] });
    const c = await connectedClient();
    await expect(c.sendCommand('kid-other', 'PAUSE')).rejects.toMatchObject({ name: 'SafeStreamError', status: 403, code: 'forbidden' });
  });
});

describe('REST helpers against the relay', () => {
  it('children, devices with presence, notifications and markNotificationRead, pairing claim / approve / reject', async () => {
    const c = await connectedClient();
    expect((await c.children()).map((k) => k.id)).toEqual(['kid1']);
    expect((await c.child('kid1')).guardians).toEqual(['u1']);
    const dev = track(startDevice(relay, device.token));
    await until('the device is connected', () => dev.socket.connected);
    let listed = await c.devices('kid1');
    for (let i = 0; i < 50 && !listed.find((d) => d.id === device.deviceId)?.online; i += 1) {
      await sleep(100);
      listed = await c.devices('kid1');
    }
    expect(listed.find((d) => d.id === device.deviceId)).toMatchObject({ online: true, revoked: false, childId: 'kid1' });

    await relay.notify('u1', 'to read');
    const [n] = await c.notifications({ limit: 1 });
    expect(n).toMatchObject({ title: 'to read', read: false });
    await c.markNotificationRead(n!.id);
    expect((await c.notifications({ limit: 1 }))[0]).toMatchObject({ id: n!.id, read: true });

    const pairing = async () => (await fetch(`${relay.url}/api/pairing`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceName: 'Tab' }) })).json() as Promise<{ pairingId: string; code: string }>;
    const p1 = await pairing();
    const claimed = await c.claimPairing(p1.code);
    expect(claimed).toMatchObject({ kind: 'claimed', pairing: { id: p1.pairingId, deviceName: 'Tab', status: 'CLAIMED' } });
    await c.rejectPairing(p1.pairingId);
    const p2 = await pairing();
    await c.claimPairing(p2.code);
    const approved = await c.approvePairing(p2.pairingId, 'kid1', 'Tablet 2');
    expect(approved.childId).toBe('kid1');
    const p3 = await pairing();
    const direct = await c.claimPairing(p3.code.toLowerCase(), 'kid1');
    expect(direct).toMatchObject({ kind: 'approved', childId: 'kid1', pairingId: p3.pairingId });
    const names = (await c.devices('kid1')).map((d) => d.name);
    expect(names).toContain('Tablet 2');
    await c.revokeDevice(approved.deviceId);
    expect((await c.devices('kid1')).find((d) => d.id === approved.deviceId)?.revoked).toBe(true);
    const err = await c.command('00000000-0000-7000-8000-000000000000').catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'SafeStreamError', status: 404, code: 'not_found' });
  });
});
