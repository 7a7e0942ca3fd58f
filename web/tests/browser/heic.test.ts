/**
 * HEIC in Chromium, which cannot decode it: a HEIC photo dropped on the gallery is refused at
 * once, with a message, before any request to the upload route and without a card.
 */

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { WEB_URL, dropFiles, freshSub, launch, openPage } from './harness';

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

/** The start of an iPhone photo: an `ftyp` box (major brand heic; mif1, heic compatible), then a `meta` box header. */
function heicFile(): { name: string; type: string; path: string } {
  const box = Buffer.alloc(24);
  box.writeUInt32BE(24, 0);
  box.write('ftypheic', 4, 'latin1');
  box.write('mif1heic', 16, 'latin1');
  const meta = Buffer.from('\0\0\0\x0cmeta\0\0\0\0', 'latin1');
  const path = join(mkdtempSync(join(tmpdir(), 'safelight-heic-')), 'IMG_0001.HEIC');
  writeFileSync(path, Buffer.concat([box, meta, Buffer.alloc(256)]));
  return { name: 'IMG_0001.HEIC', type: 'image/heic', path };
}

describe('a HEIC photo in Chromium', () => {
  it('is refused before upload with a message, and no request reaches the upload route', async () => {
    const w = await openPage(browser);
    const uploads: string[] = [];
    w.page.on('request', (r) => {
      if (new URL(r.url()).pathname.endsWith('/api/images/upload') || r.method() === 'PUT') uploads.push(`${r.method()} ${r.url()}`);
    });
    await w.page.goto(`${WEB_URL}/?sub=${encodeURIComponent(freshSub('heic'))}`);
    await w.page.waitForSelector('[data-testid=connection][data-state=open]', { timeout: 30_000 });
    await dropFiles(w.page, [heicFile()]);

    const row = w.page.locator('[data-testid=upload-row][data-phase=error]');
    await row.waitFor({ timeout: 30_000 });
    expect(await row.textContent()).toContain('IMG_0001.HEIC is a HEIC photo, which this browser cannot convert');
    await w.page.locator('[data-testid=toast][data-tone=error]').waitFor({ timeout: 10_000 });
    expect(await w.page.locator('[data-testid=image-card]').count()).toBe(0);
    expect(uploads).toEqual([]);
    expect(w.errors).toEqual([]);
    await w.context.close();
  });
});
