/** The shape of the native module (`android/src/reactnative`, `ios/RNSafeStreamAgent`). */
export interface NativeSafeStreamAgent {
  start(config: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
  getState(): Promise<string>;
  completeCommand(id: string, status: 'EXECUTED' | 'FAILED', error: string | null): Promise<void>;
  pair(deviceName: string): Promise<{ pairingId: string; code: string; expiresAt: string }>;
  waitForPairing(): Promise<{ deviceId: string; childId: string }>;
  reportStatus(activeViewing: boolean, currentVideoJson: string | null): void;
  reportRestrictedAttempt(attempt: Record<string, unknown>): Promise<void>;
  syncNow(): Promise<number>;
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
