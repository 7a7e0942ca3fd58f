/**
 * Not a test: the delivery figures of issue 21's closing note, measured in Chromium through the
 * DevTools protocol. Skipped unless `SAFELIGHT_DELIVERY_FIGURES=1` (`web.sh figures` sets it).
 *
 * A gallery of 137 distinct photos (the five test photos in turn at full size, 1280-2560 px, each
 * made distinct by a JPEG comment; `SAFELIGHT_DELIVERY_FIGURES_PHOTOS` changes the count) is
 * uploaded through the API and processed; then, in a fresh browser profile at 1280 x 900:
 *
 * - now: the first load and a reload (same profile), each scrolled to the end so every preview
 *   loads, within one link window (the default hour);
 * - before, approximated: the link window set to 10 s, a first load, the page left for 25 s (every
 *   link changed, as the old per-call presigned URLs did on every call), then loaded again.
 *
 * Requests are counted as reaching the network or answered by the browser's cache; bytes are the
 * network's `encodedDataLength` (headers included). The WebSocket is not counted. Writes the table
 * to test-results/delivery-figures.md and prints it.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import {
  ARTIFACTS,
  NetworkLog,
  WEB_URL,
  distinctPhotos,
  freshSub,
  launch,
  linkLife,
  loadAllPreviews,
  openPage,
  sleep,
  someLink,
  token,
  uploadAll,
  waitUntilSettled,
  withLinkWindow,
  type Fetched,
} from './harness';

const ENABLED = process.env.SAFELIGHT_DELIVERY_FIGURES === '1';
const COUNT = Number(process.env.SAFELIGHT_DELIVERY_FIGURES_PHOTOS ?? 137);

interface Figures {
  requests: number;
  cached: number;
  bytes: number;
}
type Split = Record<'derivatives' | 'api' | 'other' | 'all', Figures>;

function split(fetches: Fetched[]): Split {
  const zero = (): Figures => ({ requests: 0, cached: 0, bytes: 0 });
  const out: Split = { derivatives: zero(), api: zero(), other: zero(), all: zero() };
  for (const f of fetches) {
    const group = f.kind === 'derivative' ? out.derivatives : f.kind === 'api' ? out.api : out.other;
    for (const g of [group, out.all]) {
      if (f.cached) g.cached += 1;
      else g.requests += 1;
      g.bytes += f.bytes;
    }
  }
  return out;
}

/** The requests `go` made (a load of the gallery), split by kind. */
async function load(log: NetworkLog, go: () => Promise<unknown>): Promise<Split> {
  const mark = log.mark();
  await go();
  return split(log.since(mark));
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

function table(rows: Array<[string, Split]>): string {
  const lines = [
    '| load | derivatives: network requests / from cache / bytes | API: requests / bytes | other: requests / from cache / bytes | total network requests / bytes |',
    '|---|---|---|---|---|',
  ];
  for (const [name, s] of rows) {
    lines.push(
      `| ${name} | ${s.derivatives.requests} / ${s.derivatives.cached} / ${kb(s.derivatives.bytes)} | ${s.api.requests} / ${kb(s.api.bytes)} | ${s.other.requests} / ${s.other.cached} / ${kb(s.other.bytes)} | ${s.all.requests} / ${kb(s.all.bytes)} |`,
    );
  }
  return lines.join('\n');
}

describe.skipIf(!ENABLED)('delivery figures (SAFELIGHT_DELIVERY_FIGURES=1)', () => {
  it(`of a ${COUNT}-photo gallery, first and second load, now and before`, { timeout: 45 * 60_000 }, async () => {
    const browser: Browser = await launch();
    try {
      const sub = freshSub('figures');
      const tok = await token({ sub });
      const started = Date.now();
      const ids = await uploadAll(tok, distinctPhotos(COUNT), 6);
      const settled = await waitUntilSettled(tok, ids, 30 * 60_000);
      expect(Object.values(settled).filter((s) => s !== 'completed')).toEqual([]);
      const processed = Math.round((Date.now() - started) / 1000);
      const gallery = `${WEB_URL}/?sub=${encodeURIComponent(sub)}`;

      // Now: both loads within one link window.
      const life = linkLife(await someLink(tok))!;
      const windowEnd = life.signedAt + (life.expiresAt - life.signedAt) / 2;
      if (windowEnd - Date.now() < 180_000) await sleep(Math.max(0, windowEnd - Date.now()) + 1_000);
      const now = await openPage(browser);
      const nowLog = await NetworkLog.attach(now.page);
      const first = await load(nowLog, async () => {
        await now.page.goto(gallery);
        await loadAllPreviews(now.page, COUNT, 300_000);
      });
      const second = await load(nowLog, async () => {
        await now.page.reload();
        await loadAllPreviews(now.page, COUNT, 300_000);
      });
      expect(now.errors).toEqual([]);
      await now.context.close();

      // Before, approximated: every link changed between the loads.
      const before = await withLinkWindow(10, async () => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const l = linkLife(await someLink(tok));
          if (l && l.expiresAt - l.signedAt === 20_000) break;
          if (Date.now() > deadline) throw new Error('LINK_WINDOW_SECS=10 was not taken');
          await sleep(500);
        }
        const w = await openPage(browser);
        const log = await NetworkLog.attach(w.page);
        const a = await load(log, async () => {
          await w.page.goto(gallery);
          await loadAllPreviews(w.page, COUNT, 300_000);
        });
        await w.page.goto('about:blank');
        await sleep(25_000);
        const b = await load(log, async () => {
          await w.page.goto(gallery);
          await loadAllPreviews(w.page, COUNT, 300_000);
        });
        await w.context.close();
        return { a, b };
      });

      const report = [
        `# Delivery figures: a ${COUNT}-photo gallery in Chromium`,
        '',
        `Measured by web/tests/browser/delivery-figures.test.ts (\`web/scripts/web.sh figures\`) on ${new Date().toISOString()}; ` +
          `${COUNT} photos uploaded and processed in ${processed} s; viewport 1280 x 900, device-pixel ratio 1; each load scrolled to the end (previews load lazily, the list's second page on approach).`,
        '',
        table([
          ['now: first load (empty cache)', first],
          ['now: second load (reload, same window)', second],
          ['before (approx.): first load, link window 10 s', before.a],
          ['before (approx.): second load 25 s later (links changed)', before.b],
        ]),
        '',
        '"Before" is an approximation: the links change between the loads as the old per-call presigned URLs did, but the page is',
        "today's (no GET per image: the old gallery also fetched each completed image's view, one more API request per image per load).",
      ].join('\n');
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(join(ARTIFACTS, 'delivery-figures.md'), `${report}\n`);
      console.log(`\n${report}\n`);
    } finally {
      await browser.close();
    }
  });
});
