import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// React Native is not installed for the package's own tests: `react-native` resolves to a
// mock whose native module is a fake (src/__tests__/react-native-mock.ts).
export default defineConfig({
  resolve: {
    alias: { 'react-native': fileURLToPath(new URL('./src/__tests__/react-native-mock.ts', import.meta.url)) },
  },
  test: { include: ['src/__tests__/**/*.test.ts'] },
});
