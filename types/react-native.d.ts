// The subset of React Native's API this package uses, for type-checking the package on its
// own (CI installs no React Native). An app type-checks against the real `react-native`.
declare module 'react-native' {
  export const NativeModules: { [name: string]: any };
  export const Platform: { OS: 'ios' | 'android' | 'web' | 'windows' | 'macos' };
  export class NativeEventEmitter {
    constructor(nativeModule?: any);
    addListener(eventType: string, listener: (event: any) => void): { remove(): void };
  }
}
