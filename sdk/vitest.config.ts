import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

// `npx vitest run -c sdk/vitest.config.ts` (from the repository root) runs both projects:
// unit tests with fakes (node, or jsdom per file), and tests against the real relay binary
// (SAFESTREAM_RELAY_BIN), one file at a time since each starts its own relays.
export default defineConfig({
  test: {
    // One file at a time (a per-project setting does not exist): the relay files each start
    // relays on a 2-core machine, and the unit files take about a second in all.
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          root,
          include: ['test/unit/**/*.test.{ts,tsx}'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'relay',
          root,
          include: ['test/relay/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
