// ESLint (flat config) for web/: TypeScript's recommended rules and React's hooks rules (the
// rules of hooks, exhaustive effect dependencies, and the compiler's checks: no refs read or
// written during render, no state set synchronously in an effect, pure renders). `web.sh lint`
// runs it with --max-warnings 0, so a warning fails as an error does.
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig([
  globalIgnores(['dist/', 'packages/*/dist/', 'node_modules/', '.cache/', 'test-results/']),
  {
    files: ['**/*.{ts,tsx}'],
    extends: [js.configs.recommended, tseslint.configs.recommended, reactHooks.configs.flat.recommended],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
]);
