import { expect, it } from 'vitest';
import SafeStream from '../index';
import { EVENTS } from '../native';
import { fake } from './react-native-mock';

it('the default export is wired to NativeModules.SafeStreamAgent and its events', async () => {
  SafeStream.onCommand(() => ({ status: 'EXECUTED' }));
  expect(await SafeStream.start({ relayUrl: 'wss://relay.example.com', logLevel: 'debug' })).toBe('connecting');
  fake.emit(EVENTS.command, { id: 'c9', type: 'LOCK_DEVICE', payloadJson: '{}', expiresAt: 'x', createdAt: null });
  await fake.waitCompleted(1);
  expect(fake.completed).toEqual([{ id: 'c9', status: 'EXECUTED', error: null }]);
  expect(fake.calls[0]).toEqual(['start', { relayUrl: 'wss://relay.example.com', logLevel: 'debug' }]);
});
