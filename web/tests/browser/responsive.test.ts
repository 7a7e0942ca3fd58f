/**
 * Responsive previews in real Chromium: the gallery's `<picture>` offers every derivative in
 * `srcset` with the card's `sizes`, and the browser picks by its device-pixel ratio.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { PHOTOS, WEB_URL, freshSub, launch, openPage, token, uploadViaApi, waitUntilSettled } from './harness';

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

interface Chosen {
  dpr: number;
  /** The derivative's file name (`300.jpg`) of the URL the browser loaded. */
  file: string;
  /** Its width in pixels, as its `srcset` entry says (`naturalWidth` is density-corrected). */
  width: number;
  /** The `<img>`'s width in CSS px. */
  slot: number;
}

/** Opens `sub`'s gallery at `scale` and reads which derivative the browser loaded from `srcset`. */
async function chosenAt(sub: string, scale: number): Promise<Chosen> {
  const w = await openPage(browser, { deviceScaleFactor: scale });
  try {
    await w.page.goto(`${WEB_URL}/?sub=${encodeURIComponent(sub)}`);
    const img = '[data-testid=image-card] [data-preview=derivative] picture img';
    // Loaded from the srcset (the list's preview URL is not in it): complete, with no pending request.
    await w.page.waitForFunction(
      (sel) => {
        const el = document.querySelector<HTMLImageElement>(sel);
        if (!el || !el.srcset || !el.complete || el.naturalWidth === 0) return false;
        const offered = [...el.parentElement!.querySelectorAll('source, img')].flatMap((e) =>
          (e.getAttribute('srcset') ?? '').split(',').map((c) => c.trim().split(' ')[0]),
        );
        return offered.includes(el.currentSrc);
      },
      img,
      { timeout: 60_000, polling: 250 },
    );
    const got = await w.page.$eval(img, (el) => {
      const image = el as HTMLImageElement;
      const entries = [...image.parentElement!.querySelectorAll('source, img')].flatMap((e) =>
        (e.getAttribute('srcset') ?? '').split(',').map((c) => c.trim().split(' ')),
      );
      const entry = entries.find(([url]) => url === image.currentSrc);
      return {
        dpr: window.devicePixelRatio,
        file: new URL(image.currentSrc).pathname.split('/').pop() ?? '',
        width: Number.parseInt(entry?.[1] ?? '0', 10),
        slot: image.clientWidth,
      };
    });
    expect(w.errors).toEqual([]);
    return got;
  } finally {
    await w.context.close();
  }
}

describe('responsive previews', () => {
  it('load a larger derivative at devicePixelRatio 2 than at 1, each covering the slot', async () => {
    const sub = freshSub('dpr');
    const tok = await token({ sub });
    const id = await uploadViaApi(tok, PHOTOS[0]!);
    expect(await waitUntilSettled(tok, [id], 120_000)).toEqual({ [id]: 'completed' });

    const one = await chosenAt(sub, 1);
    const two = await chosenAt(sub, 2);
    expect([one.dpr, two.dpr]).toEqual([1, 2]);
    expect(two.width, `${one.file} at 1x, ${two.file} at 2x`).toBeGreaterThan(one.width);
    expect(one.width).toBeGreaterThanOrEqual(one.slot);
    expect(two.width).toBeGreaterThanOrEqual(2 * two.slot);
  });
});
