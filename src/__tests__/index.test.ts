import { afterEach, expect, it, vi } from 'vitest';
import { EVENTS } from '../native';
import { FakeNative } from './fake-native';

const g = globalThis as { __turboModuleProxy?: unknown };

/** A fresh `react-native` mock and a fresh `index` (which picks its native module at load). */
async function load(setup: (rn: typeof import('./react-native-mock')) => void) {
  vi.resetModules();
  const rn = await import('./react-native-mock');
  setup(rn);
  const index = await import('../index');
  return { rn, index };
}

afterEach(() => {
  delete g.__turboModuleProxy;
});

it('on the old bridge the default export is wired to NativeModules.SafeStreamAgent and its events', async () => {
  const { rn, index } = await load(() => {});
  const SafeStream = index.default;
  expect(index.nativeModuleKind).toBe('bridge');
  SafeStream.onCommand(() => ({ status: 'EXECUTED' }));
  expect(await SafeStream.start({ relayUrl: 'wss://relay.example.com', logLevel: 'debug' })).toBe('connecting');
  rn.fake.emit(EVENTS.command, { id: 'c9', type: 'LOCK_DEVICE', payloadJson: '{}', expiresAt: 'x', createdAt: null });
  await rn.fake.waitCompleted(1);
  expect(rn.fake.completed).toEqual([{ id: 'c9', status: 'EXECUTED', error: null }]);
  expect(rn.fake.calls[0]).toEqual(['start', { relayUrl: 'wss://relay.example.com', logLevel: 'debug' }]);
});

it('on the New Architecture the default export uses the TurboModule, not NativeModules', async () => {
  const turbo = new FakeNative();
  const { rn, index } = await load((rn) => {
    g.__turboModuleProxy = {};
    rn.turboModules.SafeStreamAgent = turbo;
  });
  expect(index.nativeModuleKind).toBe('turbo');
  const SafeStream = index.default;
  SafeStream.onCommand(() => ({ status: 'FAILED', error: 'no player' }));
  expect(await SafeStream.start({ relayUrl: 'wss://relay.example.com' })).toBe('connecting');
  turbo.emit(EVENTS.command, { id: 'c1', type: 'PAUSE', payloadJson: '{}', expiresAt: 'x', createdAt: null });
  await turbo.waitCompleted(1);
  expect(turbo.completed).toEqual([{ id: 'c1', status: 'FAILED', error: 'no player' }]);
  expect(rn.fake.calls).toEqual([]);
});

it('without any native module every call fails with the linking hint', async () => {
  const { index } = await load((rn) => {
    g.__turboModuleProxy = {};
    delete rn.NativeModules.SafeStreamAgent;
  });
  expect(index.nativeModuleKind).toBe('missing');
  await expect(index.default.start({ relayUrl: 'wss://relay.example.com' })).rejects.toThrow(/native module is missing/);
});
