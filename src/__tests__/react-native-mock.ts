// Stands in for `react-native` in the package's tests (vitest.config.ts aliases it).
import { FakeNative } from './fake-native';

export const fake = new FakeNative();
export const NativeModules: Record<string, unknown> = { SafeStreamAgent: fake };
export const Platform = { OS: 'android' as const };
export class NativeEventEmitter {
  constructor(private readonly module: FakeNative) {}
  addListener(event: string, listener: (d: any) => void) {
    return this.module.events.addListener(event, listener);
  }
}
