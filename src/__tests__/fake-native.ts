import type { EventSource, NativeSafeStreamAgent } from '../native';

/** A fake native module: records calls, lets a test emit events. */
export class FakeNative implements NativeSafeStreamAgent {
  calls: Array<[string, ...unknown[]]> = [];
  completed: Array<{ id: string; status: string; error: string | null }> = [];
  listeners = new Map<string, Array<(d: any) => void>>();
  failNext: { code: string; message: string } | null = null;
  private completedWaiters: Array<() => void> = [];

  /** The events side, as `NativeEventEmitter` would be. */
  events: EventSource = {
    addListener: (event: string, listener: (d: any) => void) => {
      const l = this.listeners.get(event) ?? [];
      l.push(listener);
      this.listeners.set(event, l);
      return { remove: () => undefined };
    },
  };
  addListener(): void {}
  removeListeners(): void {}
  emit(event: string, data: unknown) {
    for (const l of this.listeners.get(event) ?? []) l(data);
  }
  /** Resolves once `n` commands have been completed. */
  async waitCompleted(n: number): Promise<void> {
    while (this.completed.length < n) {
      await new Promise<void>((r) => this.completedWaiters.push(r));
    }
  }
  private maybeFail() {
    if (this.failNext) {
      const f = this.failNext;
      this.failNext = null;
      throw Object.assign(new Error(f.message), { code: f.code });
    }
  }
  async start(config: Record<string, unknown>) {
    this.calls.push(['start', config]);
    this.maybeFail();
    return 'connecting';
  }
  async stop() {
    this.calls.push(['stop']);
  }
  async getState() {
    return 'connected';
  }
  async completeCommand(id: string, status: 'EXECUTED' | 'FAILED', error: string | null) {
    this.completed.push({ id, status, error });
    this.completedWaiters.splice(0).forEach((w) => w());
    this.maybeFail();
  }
  async pair(deviceName: string) {
    this.calls.push(['pair', deviceName]);
    this.maybeFail();
    return { pairingId: 'p1', code: 'K7QF-M2XD', expiresAt: '2026-11-25T21:00:00.000Z' };
  }
  async waitForPairing() {
    return { deviceId: 'd1', childId: 'c1' };
  }
  reportStatus(activeViewing: boolean, currentVideoJson: string | null) {
    this.calls.push(['reportStatus', activeViewing, currentVideoJson]);
  }
  async reportRestrictedAttempt(attempt: Record<string, unknown>) {
    this.calls.push(['reportRestrictedAttempt', attempt]);
    this.maybeFail();
  }
  async reportScreenTime(minutesUsed: number) {
    this.calls.push(['reportScreenTime', minutesUsed]);
    this.maybeFail();
  }
  async waitForReports(timeoutMs: number) {
    this.calls.push(['waitForReports', timeoutMs]);
    return true;
  }
  async syncNow() {
    this.calls.push(['syncNow']);
    return 2;
  }
  async handlePush(budgetMs: number) {
    this.calls.push(['handlePush', budgetMs]);
    return { ran: 1, pulled: true, acksDone: true };
  }
  async registerPushToken(provider: string, token: string, apnsEnvironment: string | null) {
    this.calls.push(['registerPushToken', provider, token, apnsEnvironment]);
    this.maybeFail();
  }
  async setToken(token: string) {
    this.calls.push(['setToken', token]);
  }
  async clearToken() {
    this.calls.push(['clearToken']);
  }
  setBackground(b: boolean) {
    this.calls.push(['setBackground', b]);
  }
  networkAvailable() {
    this.calls.push(['networkAvailable']);
  }
}
