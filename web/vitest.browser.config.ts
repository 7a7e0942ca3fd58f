import { defineConfig } from 'vitest/config';

// Browser tests: real Chromium (Debian's package via playwright-core) against the local stack
// named by SAFELIGHT_STACK_ENV. One file at a time; generous timeouts, never a timed assertion.
export default defineConfig({
  test: {
    include: ['tests/browser/**/*.test.ts'],
    environment: 'node',
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
