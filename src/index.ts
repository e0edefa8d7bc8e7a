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
import { NativeEventEmitter, NativeModules, Platform, TurboModuleRegistry } from 'react-native';
import { SafeStreamAgent } from './agent';
import type { NativeSafeStreamAgent } from './native';
import type { Spec } from './NativeSafeStreamAgent';

export * from './types';
export { SafeStreamAgent, SafeStreamError, type CommandHandler } from './agent';

const MODULE_NAME = 'SafeStreamAgent';

const LINKING_ERROR =
  "react-native-safestream-agent: the native module is missing. Rebuild the app after installing " +
  (Platform.OS === 'ios' ? "(run 'pod install' in ios/)" : '(Gradle autolinking)') +
  '; Expo Go is not supported.';

/** Which native module the default export talks to. */
export type NativeModuleKind = 'turbo' | 'bridge' | 'missing';

const g = globalThis as { __turboModuleProxy?: unknown; RN$Bridgeless?: boolean };
const newArchitecture = g.__turboModuleProxy != null || g.RN$Bridgeless === true;
// The TurboModule (codegen spec `NativeSafeStreamAgent`) on the New Architecture; the old
// bridge's module otherwise (`TurboModuleRegistry.get` also finds bridge modules, but not on
// every version, so `NativeModules` is asked too).
const turbo: Spec | null = newArchitecture ? TurboModuleRegistry.get<Spec>(MODULE_NAME) : null;
const bridge: NativeSafeStreamAgent | undefined = turbo ? undefined : NativeModules[MODULE_NAME];
const found: NativeSafeStreamAgent | null = turbo ?? bridge ?? null;

/** `turbo` (New Architecture), `bridge` (old bridge) or `missing` (not linked). */
export const nativeModuleKind: NativeModuleKind = turbo ? 'turbo' : bridge ? 'bridge' : 'missing';

const native: NativeSafeStreamAgent =
  found ??
  new Proxy({} as NativeSafeStreamAgent, {
    get() {
      throw new Error(LINKING_ERROR);
    },
  });

/** The app's agent (one per process). */
const SafeStream = new SafeStreamAgent(
  native,
  found ? new NativeEventEmitter(found) : { addListener: () => ({ remove() {} }) },
);

export default SafeStream;
