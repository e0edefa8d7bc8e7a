import { defineConfig } from 'vitest/config';

// The Socket.IO suite (scripts/sio-checks.sh): socket.io-client from npm against the real
// relay binary. Files run one at a time: each starts its own relays, on 2 shared cores.
export default defineConfig({
  test: {
    include: ['tests/sio/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
