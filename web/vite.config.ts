import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// The demo gallery (/) and the admin dashboard (/admin/processing/), built to web/dist, which the
// local issuer serves (infra/local/issuer.py, WEB_DIR). The libraries are bundled from source.
export default defineConfig({
  root: here('./app'),
  base: '/',
  publicDir: false,
  resolve: {
    alias: {
      '@safelight/client': here('./packages/client/src/index.ts'),
      '@safelight/react': here('./packages/react/src/index.ts'),
    },
  },
  build: {
    outDir: here('./dist'),
    emptyOutDir: true,
    sourcemap: true,
    target: 'es2022',
    rollupOptions: {
      input: {
        gallery: here('./app/index.html'),
        admin: here('./app/admin/processing/index.html'),
      },
    },
  },
});
