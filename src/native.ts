import type { TurboModule } from 'react-native';
import type { Spec } from './NativeSafeStreamAgent';

/**
 * The shape of the native module (`android/src/reactnative`, `ios/RNSafeStreamAgent`), old
 * bridge or TurboModule. The codegen spec (`./NativeSafeStreamAgent`) must have exactly these
 * methods: checked at compile time below.
 */
export interface NativeSafeStreamAgent {
  start(config: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
  getState(): Promise<string>;
  completeCommand(id: string, status: 'EXECUTED' | 'FAILED', error: string | null): Promise<void>;
  pair(deviceName: string): Promise<{ pairingId: string; code: string; expiresAt: string }>;
  waitForPairing(): Promise<{ deviceId: string; childId: string }>;
  reportStatus(activeViewing: boolean, currentVideoJson: string | null): void;
  reportRestrictedAttempt(attempt: Record<string, unknown>): Promise<void>;
  reportScreenTime(minutesUsed: number): Promise<void>;
  waitForReports(timeoutMs: number): Promise<boolean>;
  syncNow(): Promise<number>;
  handlePush(budgetMs: number): Promise<{ ran: number; pulled: boolean; acksDone: boolean }>;
  registerPushToken(provider: string, token: string, apnsEnvironment: string | null): Promise<void>;
  setToken(token: string): Promise<void>;
  clearToken(): Promise<void>;
  setBackground(background: boolean): void;
  networkAvailable(): void;
  addListener(eventName: string): void;
  removeListeners(count: number): void;
}

/** The events the native module emits. */
export const EVENTS = {
  command: 'SafeStreamCommand',
  state: 'SafeStreamState',
  ack: 'SafeStreamAck',
} as const;

/** What the native module sends with `SafeStreamCommand`. */
export interface NativeCommandEvent {
  id: string;
  type: string;
  payloadJson: string;
  expiresAt: string;
  createdAt: string | null;
}

/** The part of `NativeEventEmitter` the module uses. */
export interface EventSource {
  addListener(event: string, listener: (data: any) => void): { remove(): void };
}

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/** Compile-time check: the codegen spec and this interface name the same methods. */
export type SpecMatchesNative = Assert<Same<Exclude<keyof Spec, keyof TurboModule>, keyof NativeSafeStreamAgent>>;
/** Compile-time check: the TurboModule can be used as this interface. */
export type SpecUsableAsNative = Assert<Spec extends NativeSafeStreamAgent ? true : false>;
