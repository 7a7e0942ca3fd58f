import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

// Unit tests of the client and the React layer: fast, no network, no browser.
export default defineConfig({
  resolve: {
    alias: {
      '@safelight/client': fileURLToPath(new URL('./packages/client/src/index.ts', import.meta.url)),
      '@safelight/react': fileURLToPath(new URL('./packages/react/src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['tests/unit/**/*.test.{ts,tsx}'],
    environment: 'node',
  },
});
