import { describe, expect, it } from 'vitest';
import { SafeStreamAgent, SafeStreamError } from '../agent';
import { EVENTS } from '../native';
import { FakeNative } from './fake-native';

function setup() {
  const native = new FakeNative();
  const agent = new SafeStreamAgent(native, native.events);
  return { native, agent };
}

const cmd = (id: string, type: string, payloadJson = '{}') => ({
  id,
  type,
  payloadJson,
  expiresAt: '2026-11-25T21:00:00.000Z',
  createdAt: null,
});

describe('onCommand', () => {
  it('runs the handler and completes with its outcome', async () => {
    const { native, agent } = setup();
    const seen: unknown[] = [];
    agent.onCommand(async (c) => {
      seen.push(c);
      return c.type === 'PAUSE' ? { status: 'EXECUTED' } : { status: 'FAILED', error: 'no device admin' };
    });
    native.emit(EVENTS.command, cmd('c1', 'PAUSE'));
    native.emit(EVENTS.command, cmd('c2', 'SHOW_MESSAGE', '{"text":"Dinner!"}'));
    await native.waitCompleted(2);
    expect(native.completed).toEqual([
      { id: 'c1', status: 'EXECUTED', error: null },
      { id: 'c2', status: 'FAILED', error: 'no device admin' },
    ]);
    expect(seen[1]).toMatchObject({ id: 'c2', type: 'SHOW_MESSAGE', payload: { text: 'Dinner!' } });
  });

  it('reports a rejected handler as FAILED with its message', async () => {
    const { native, agent } = setup();
    agent.onCommand(async () => {
      throw new Error('player not ready');
    });
    native.emit(EVENTS.command, cmd('c1', 'PAUSE'));
    await native.waitCompleted(1);
    expect(native.completed[0]).toEqual({ id: 'c1', status: 'FAILED', error: 'player not ready' });
  });

  it('reports an invalid outcome, no handler, and an unknown type as FAILED', async () => {
    const { native, agent } = setup();
    native.emit(EVENTS.command, cmd('c0', 'PAUSE'));
    await native.waitCompleted(1);
    const sub = agent.onCommand(() => ({ status: 'DONE' }) as never);
    native.emit(EVENTS.command, cmd('c1', 'PAUSE'));
    native.emit(EVENTS.command, cmd('c2', 'SELF_DESTRUCT'));
    await native.waitCompleted(3);
    sub.remove();
    expect([...native.completed].sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: 'c0', status: 'FAILED', error: 'no command handler in the app' },
      { id: 'c1', status: 'FAILED', error: 'the app returned no valid outcome' },
      { id: 'c2', status: 'FAILED', error: 'unsupported command' },
    ]);
  });

  it('keeps going when completeCommand rejects (command timed out meanwhile)', async () => {
    const { native, agent } = setup();
    agent.onCommand(() => ({ status: 'EXECUTED' }));
    native.failNext = { code: 'UnknownCommand', message: 'no running command with this id' };
    native.emit(EVENTS.command, cmd('c1', 'RESUME'));
    native.emit(EVENTS.command, cmd('c2', 'RESUME'));
    await native.waitCompleted(2);
    expect(native.completed.map((c) => c.id)).toEqual(['c1', 'c2']);
  });
});

describe('state and calls', () => {
  it('forwards valid state events to listeners until removed', () => {
    const { native, agent } = setup();
    const states: string[] = [];
    const sub = agent.onStateChange((s) => states.push(s));
    agent.onStateChange(() => {
      throw new Error('listener bug');
    });
    native.emit(EVENTS.state, { state: 'connecting' });
    native.emit(EVENTS.state, { state: 'bogus' });
    native.emit(EVENTS.state, { state: 'connected' });
    sub.remove();
    native.emit(EVENTS.state, { state: 'disconnected' });
    expect(states).toEqual(['connecting', 'connected']);
  });

  it('maps native rejections to SafeStreamError with the Rust code', async () => {
    const { native, agent } = setup();
    native.failNext = { code: 'Config', message: 'invalid configuration: relay_url' };
    const err = await agent.start({ relayUrl: 'http://x' }).catch((e) => e);
    expect(err).toBeInstanceOf(SafeStreamError);
    expect(err.code).toBe('Config');
    await expect(agent.start({ relayUrl: '' })).rejects.toMatchObject({ code: 'Config' });
  });

  it('hands pushes and push tokens to the native module', async () => {
    const { native, agent } = setup();
    expect(await agent.handlePush()).toEqual({ ran: 1, pulled: true, acksDone: true });
    await agent.handlePush(25_000.7);
    await agent.registerPushToken('fcm', 'tok-1');
    await agent.registerPushToken('apns', 'ab'.repeat(32), 'sandbox');
    // @ts-expect-error: not a provider
    await expect(agent.registerPushToken('gcm', 'x')).rejects.toMatchObject({ code: 'Config' });
    expect(native.calls).toEqual([
      ['handlePush', 8000],
      ['handlePush', 25000],
      ['registerPushToken', 'fcm', 'tok-1', null],
      ['registerPushToken', 'apns', 'ab'.repeat(32), 'sandbox'],
    ]);
  });

  it('serializes status and restricted attempts', async () => {
    const { native, agent } = setup();
    agent.reportStatus(true, { videoId: 'v1' });
    agent.reportStatus(false);
    await agent.reportRestrictedAttempt({ url: 'https://x', metadata: { age: 7 } });
    expect(await agent.syncNow()).toBe(2);
    expect(await agent.pair("Mia's tablet")).toMatchObject({ code: 'K7QF-M2XD' });
    expect(native.calls).toEqual([
      ['reportStatus', true, '{"videoId":"v1"}'],
      ['reportStatus', false, null],
      ['reportRestrictedAttempt', { url: 'https://x', metadataJson: '{"age":7}' }],
      ['syncNow'],
      ['pair', "Mia's tablet"],
    ]);
  });

  it('reports screen time and waits for the report queue', async () => {
    const { native, agent } = setup();
    await agent.reportScreenTime(42);
    expect(await agent.waitForReports(1500.7)).toBe(true);
    for (const bad of [-1, 1441, 2.5, Number.NaN]) {
      await expect(agent.reportScreenTime(bad)).rejects.toMatchObject({ code: 'Config' });
    }
    expect(native.calls).toEqual([
      ['reportScreenTime', 42],
      ['waitForReports', 1500],
    ]);
  });
});
