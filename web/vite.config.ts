import { defineConfig, type Plugin } from 'vite';
import { fileURLToPath } from 'node:url';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// What every page's <head> holds besides its title, written once: app/*.html carry only their title
// and entry script (<head> and <body> are implied, as HTML allows).
const sharedHead: Plugin = {
  name: 'safelight-shared-head',
  transformIndexHtml: () => [
    { tag: 'meta', attrs: { charset: 'utf-8' }, injectTo: 'head-prepend' },
    { tag: 'meta', attrs: { name: 'viewport', content: 'width=device-width, initial-scale=1' }, injectTo: 'head-prepend' },
    { tag: 'link', attrs: { rel: 'icon', href: 'data:,' }, injectTo: 'head-prepend' },
  ],
};

// The demo gallery (/) and the admin dashboard (/admin/processing/), built to web/dist, which the
// local issuer serves (infra/local/issuer.py, WEB_DIR). The libraries are bundled from source.
export default defineConfig({
  root: here('./app'),
  base: '/',
  publicDir: false,
  plugins: [sharedHead],
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
