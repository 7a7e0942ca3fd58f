/**
 * Delivery of a 20-photo gallery in real Chromium, counted through the DevTools protocol: a second
 * load fetches no derivative it already has (stable links + immutable caching), and once the
 * links handed out have ended (the link window shortened to 10 s, links living 20 s) no image is
 * broken and no expired link is ever asked for, because the page renews its links before they end.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import {
  NetworkLog,
  WEB_URL,
  freshSub,
  launch,
  linkLife,
  loadAllPreviews,
  openPage,
  previews,
  scaledPhotos,
  sleep,
  someLink,
  token,
  uploadAll,
  waitUntilSettled,
  withLinkWindow,
} from './harness';

const PHOTOS = 20;
let browser: Browser;
let sub: string;
let tok: string;

beforeAll(async () => {
  browser = await launch();
  sub = freshSub('delivery');
  tok = await token({ sub });
  const ids = await uploadAll(tok, await scaledPhotos(browser, PHOTOS));
  const started = Date.now();
  const settled = await waitUntilSettled(tok, ids, 240_000);
  expect(Object.values(settled).filter((s) => s !== 'completed')).toEqual([]);
  console.log(`[delivery] ${PHOTOS} photos processed ${Math.round((Date.now() - started) / 1000)} s after upload`);
}, 300_000);
afterAll(async () => {
  await browser?.close();
});

const gallery = () => `${WEB_URL}/?sub=${encodeURIComponent(sub)}`;
const isImageView = (url: string) => /\/api\/images\/[^/?]+$/.test(new URL(url).pathname);

/**
 * Waits, when the current link window ends within `marginMs`, until the next one began: both
 * loads of a test then fall in one window (links change from one window to the next, by design).
 */
async function clearOfWindowEnd(marginMs: number): Promise<void> {
  const life = linkLife(await someLink(tok));
  if (!life) throw new Error('the API hands out links without X-Amz-Date/X-Amz-Expires');
  const windowEnd = life.signedAt + (life.expiresAt - life.signedAt) / 2;
  if (windowEnd - Date.now() < marginMs) await sleep(Math.max(0, windowEnd - Date.now()) + 1_000);
}

describe('delivery', () => {
  it('makes no network request on a second load for any derivative the first load fetched', async () => {
    await clearOfWindowEnd(90_000);
    const w = await openPage(browser);
    const log = await NetworkLog.attach(w.page);
    await w.page.goto(gallery());
    await loadAllPreviews(w.page, PHOTOS);
    const first = log.since();
    const fetched = new Set(first.filter((f) => f.kind === 'derivative' && f.network).map((f) => f.url));
    expect(fetched.size).toBeGreaterThanOrEqual(PHOTOS);
    // Derivatives never change under their key: cached for a year, never revalidated.
    const longLived = (cc: string | null) => /\bimmutable\b/.test(cc ?? '') && Number(/max-age=(\d+)/.exec(cc ?? '')?.[1] ?? 0) >= 86_400;
    const policies = new Set(first.filter((f) => f.kind === 'derivative' && f.network).map((f) => f.cacheControl));
    expect([...policies].filter((cc) => !longLived(cc))).toEqual([]);
    // The list's derivative maps give every card its srcset: no GET per completed image.
    expect(first.filter((f) => f.kind === 'api' && isImageView(f.url)).map((f) => f.url)).toEqual([]);

    const mark = log.mark();
    await w.page.reload();
    await loadAllPreviews(w.page, PHOTOS);
    const second = log.since(mark);
    const derivatives = second.filter((f) => f.kind === 'derivative');
    // Nothing seen before went to the network again (a revalidation, 304, would count too).
    expect(derivatives.filter((f) => fetched.has(f.url) && !f.cached).map((f) => `${f.status} ${f.url}`)).toEqual([]);
    // Every card shows a file of the first load, each answered by the cache.
    const shown = await previews(w.page);
    expect(shown.filter((p) => !fetched.has(p.src)).map((p) => `${p.filename}: ${p.src}`)).toEqual([]);
    expect(derivatives.filter((f) => f.cached).length).toBeGreaterThanOrEqual(PHOTOS);
    expect(second.filter((f) => f.kind === 'api' && isImageView(f.url)).map((f) => f.url)).toEqual([]);
    expect(w.errors).toEqual([]);
    await w.context.close();
  });

  it('shows no broken image once the links handed out have ended, and never asks for an expired one', async () => {
    await withLinkWindow(10, async () => {
      // The images function takes the knob on its next cold start: wait for 20-second links.
      const deadline = Date.now() + 30_000;
      let life = linkLife(await someLink(tok));
      while (life && life.expiresAt - life.signedAt !== 20_000 && Date.now() < deadline) {
        await sleep(500);
        life = linkLife(await someLink(tok));
      }
      expect(life && life.expiresAt - life.signedAt, 'link lifetime with LINK_WINDOW_SECS=10').toBe(20_000);

      const w = await openPage(browser);
      const log = await NetworkLog.attach(w.page);
      await w.page.goto(gallery());
      await loadAllPreviews(w.page, PHOTOS);
      const firstLinks = log.since().filter((f) => f.kind === 'derivative');
      const lastEnd = Math.max(...firstLinks.map((f) => linkLife(f.url)?.expiresAt ?? 0));
      expect(lastEnd - Date.now()).toBeLessThanOrEqual(20_000);
      // Every link the first load used has ended.
      await sleep(lastEnd - Date.now() + 1_000);

      // A narrow window: each card spans the viewport, so the browser wants larger files, each
      // at a link the page must have renewed meanwhile.
      const mark = log.mark();
      await w.page.setViewportSize({ width: 440, height: 900 });
      await w.page.evaluate(() => window.scrollTo(0, 0));
      await loadAllPreviews(w.page, PHOTOS);
      const later = log.since(mark).filter((f) => f.kind === 'derivative');
      expect(later.length).toBeGreaterThanOrEqual(PHOTOS);
      expect(later.filter((f) => (linkLife(f.url)?.expiresAt ?? 0) <= f.at).map((f) => f.url)).toEqual([]);
      expect(later.filter((f) => f.failed || (f.status !== null && f.status !== 200)).map((f) => `${f.status ?? f.failed} ${f.url}`)).toEqual([]);
      const shown = await previews(w.page);
      expect(shown.filter((p) => p.preview !== 'derivative' || p.natural === 0).map((p) => p.filename)).toEqual([]);
      expect(shown.filter((p) => p.width < p.slot).map((p) => `${p.filename}: ${p.width}w file in a ${p.slot} px slot`)).toEqual([]);

      // A reload past the links' end with the cache off: every preview from fresh links.
      await log.session.send('Network.setCacheDisabled', { cacheDisabled: true });
      const reloaded = log.mark();
      await w.page.reload();
      await loadAllPreviews(w.page, PHOTOS);
      expect(log.since(reloaded).filter((f) => f.kind === 'derivative' && (f.failed || f.status !== 200)).map((f) => f.url)).toEqual([]);
      expect(w.errors).toEqual([]);
      await w.context.close();
    });
  });
});
