/**
 * react-native-safestream-agent: the child's app side of SafeStream. Remote commands from
 * the parent's dashboard reach `onCommand`; the handler's outcome is acknowledged to the
 * relay durably by the Rust agent (agent-core, through uniffi).
 *
 * ```ts
 * import SafeStream from 'react-native-safestream-agent';
 * SafeStream.onCommand(async (cmd) => {
 *   if (cmd.type === 'PAUSE') { await player.pause(); return { status: 'EXECUTED' }; }
 *   return { status: 'FAILED', error: 'not supported on this device' };
 * });
 * const state = await SafeStream.start({ relayUrl: 'wss://relay.example.com' });
 * if (state === 'not_paired') { const { code } = await SafeStream.pair("Mia's tablet"); ... }
 * ```
 */
import { NativeEventEmitter, NativeModules, Platform } from 'react-native';
import { SafeStreamAgent } from './agent';
import type { NativeSafeStreamAgent } from './native';

export * from './types';
export { SafeStreamAgent, SafeStreamError, type CommandHandler } from './agent';

const LINKING_ERROR =
  "react-native-safestream-agent: the native module is missing. Rebuild the app after installing " +
  (Platform.OS === 'ios' ? "(run 'pod install' in ios/)" : '(Gradle autolinking)') +
  '; Expo Go is not supported.';

const native: NativeSafeStreamAgent =
  NativeModules.SafeStreamAgent ??
  new Proxy({} as NativeSafeStreamAgent, {
    get() {
      throw new Error(LINKING_ERROR);
    },
  });

/** The app's agent (one per process). */
const SafeStream = new SafeStreamAgent(
  native,
  NativeModules.SafeStreamAgent ? new NativeEventEmitter(NativeModules.SafeStreamAgent) : { addListener: () => ({ remove() {} }) },
);

export default SafeStream;
