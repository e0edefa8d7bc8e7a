// Stands in for `react-native` in the package's tests (vitest.config.ts aliases it).
import { FakeNative } from './fake-native';

export const fake = new FakeNative();
export const NativeModules: Record<string, unknown> = { SafeStreamAgent: fake };
/** TurboModules `TurboModuleRegistry` finds (a test puts one here for the New Architecture). */
export const turboModules: Record<string, unknown> = {};
export const TurboModuleRegistry = {
  get: (name: string) => turboModules[name] ?? null,
  getEnforcing: (name: string) => {
    const m = turboModules[name];
    if (!m) throw new Error(`TurboModuleRegistry.getEnforcing(...): '${name}' could not be found`);
    return m;
  },
};
export const Platform = { OS: 'android' as const };
export class NativeEventEmitter {
  constructor(private readonly module: FakeNative) {}
  addListener(event: string, listener: (d: any) => void) {
    return this.module.events.addListener(event, listener);
  }
}
