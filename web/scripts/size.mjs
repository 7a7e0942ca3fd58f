// The JS budget: every page's scripts together under 100 kB gzipped (issue 10's acceptance).
// Reads the built HTML pages, follows their module scripts and preloads, and sums gzip sizes.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const dist = new URL('../dist/', import.meta.url).pathname;
const BUDGET = 100 * 1024;

function pages(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return pages(p);
    return name.endsWith('.html') ? [p] : [];
  });
}

let failed = false;
for (const page of pages(dist)) {
  const html = readFileSync(page, 'utf8');
  const refs = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  const seen = new Set();
  const queue = [...refs];
  let total = 0;
  while (queue.length) {
    const ref = queue.shift();
    if (seen.has(ref)) continue;
    seen.add(ref);
    const code = readFileSync(join(dist, ref));
    total += gzipSync(code, { level: 9 }).length;
    // static imports between chunks
    for (const m of code.toString().matchAll(/from\s*"\.\/([^"]+\.js)"/g)) queue.push(`/assets/${m[1]}`);
  }
  const kb = (total / 1024).toFixed(1);
  const ok = total < BUDGET;
  failed ||= !ok;
  console.log(`${ok ? 'ok  ' : 'OVER'} ${relative(dist, page).padEnd(28)} ${kb} kB gzipped JS (${seen.size} files; budget 100 kB)`);
}
if (failed) process.exit(1);
