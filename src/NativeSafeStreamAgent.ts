/**
 * The codegen spec of the native module `SafeStreamAgent` (React Native's New Architecture).
 *
 * React Native's codegen reads this file (package.json `codegenConfig`, `jsSrcsDir: src`) and
 * generates `NativeSafeStreamAgentSpec` for Android (Java, package
 * `com.safestream.agent.reactnative`) and for iOS (an Objective-C protocol and its JSI glue
 * in `RNSafeStreamAgentSpec.h`). The native modules in `android/src/reactnative` and
 * `ios/RNSafeStreamAgent` implement it. Codegen rules: only the types it understands
 * (`string`, `number`, `boolean`, `T | null`, `Promise<T>`, object literals, `UnsafeObject`),
 * one `Spec extends TurboModule`, and the default export below.
 *
 * Apps do not import this file: `src/index.ts` picks the TurboModule when there is one and
 * falls back to `NativeModules.SafeStreamAgent` (the old bridge). The typed API is
 * `SafeStreamAgent` (`src/agent.ts`).
 */
import type { TurboModule } from 'react-native';
import { TurboModuleRegistry } from 'react-native';
import type { UnsafeObject } from 'react-native/Libraries/Types/CodegenTypes';

/** The module's name in both architectures. */
export const MODULE_NAME = 'SafeStreamAgent';

/** The native methods; mirrors `NativeSafeStreamAgent` in `./native` (checked there). */
export interface Spec extends TurboModule {
  /** Starts the agent with an `AgentConfig` object; resolves with the first state name. */
  start(config: UnsafeObject): Promise<string>;
  stop(): Promise<void>;
  getState(): Promise<string>;
  /** `status` is `EXECUTED` or `FAILED` (with `error`). */
  completeCommand(id: string, status: string, error: string | null): Promise<void>;
  pair(deviceName: string): Promise<{ pairingId: string; code: string; expiresAt: string }>;
  waitForPairing(): Promise<{ deviceId: string; childId: string }>;
  reportStatus(activeViewing: boolean, currentVideoJson: string | null): void;
  /** A `RestrictedAttempt` object (`url`, `title`, `reason`, `metadataJson`, all optional). */
  reportRestrictedAttempt(attempt: UnsafeObject): Promise<void>;
  /** Minutes used today (0–1440), queued durably. */
  reportScreenTime(minutesUsed: number): Promise<void>;
  /** Resolves `true` once every queued report reached the relay, `false` after `timeoutMs`. */
  waitForReports(timeoutMs: number): Promise<boolean>;
  syncNow(): Promise<number>;
  /** A push woke the app: sync within `budgetMs` (no request while the socket is open). */
  handlePush(budgetMs: number): Promise<{ ran: number; pulled: boolean; acksDone: boolean }>;
  /** `provider` is `fcm` or `apns`; `apnsEnvironment` `production`/`sandbox` (APNs only). */
  registerPushToken(provider: string, token: string, apnsEnvironment: string | null): Promise<void>;
  setToken(token: string): Promise<void>;
  clearToken(): Promise<void>;
  setBackground(background: boolean): void;
  networkAvailable(): void;
  // Required by NativeEventEmitter.
  addListener(eventName: string): void;
  removeListeners(count: number): void;
}

export default TurboModuleRegistry.getEnforcing<Spec>('SafeStreamAgent');
