import { defineConfig } from 'vitest/config';

// The console's end-to-end test (scripts/web-checks.sh): the relay in dev mode with its
// simulated device, the console it serves, Debian's headless Chromium driven by playwright-core.
export default defineConfig({
  test: {
    include: ['tests/console/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
