// The subset of React Native's API this package uses, for type-checking the package on its
// own (CI installs no React Native). An app type-checks against the real `react-native`.
declare module 'react-native' {
  export const NativeModules: { [name: string]: any };
  export const Platform: { OS: 'ios' | 'android' | 'web' | 'windows' | 'macos' };
  export class NativeEventEmitter {
    constructor(nativeModule?: any);
    addListener(eventType: string, listener: (event: any) => void): { remove(): void };
  }
  /** The base of a codegen spec (New Architecture). */
  export interface TurboModule {
    getConstants?(): {};
  }
  /** Finds native modules: TurboModules, or bridge modules through the interop layer. */
  export const TurboModuleRegistry: {
    get<T extends TurboModule>(name: string): T | null;
    getEnforcing<T extends TurboModule>(name: string): T;
  };
}

// The codegen types a spec may use (React Native 0.74+ ships this file).
declare module 'react-native/Libraries/Types/CodegenTypes' {
  export type UnsafeObject = object;
}
