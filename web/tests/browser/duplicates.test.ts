/**
 * Hashing before upload in real Chromium: a large file is hashed in a worker and its SHA-256 goes
 * with the presign request (storage then takes the checksum-signed PUT); 20 re-dropped photos the
 * owner already has are shown completed from the API's `duplicate_of` answers, with no bytes sent
 * and no image created; a conditional PUT refused with 412 (the bytes are there) is not a failure.
 */

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Request } from 'playwright-core';
import { PHOTOS, WEB_URL, api, cardStatuses, dropFiles, freshSub, launch, openPage, requestKind, scaledPhotos, sha256Hex, token, waitForStatuses } from './harness';

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

async function openGallery(sub: string) {
  const w = await openPage(browser);
  await w.page.goto(`${WEB_URL}/?sub=${encodeURIComponent(sub)}`);
  await w.page.waitForSelector('[data-testid=connection][data-state=open]', { timeout: 30_000 });
  return w;
}

const isPresign = (r: Request) => r.method() === 'POST' && new URL(r.url()).pathname.endsWith('/api/images/upload');

describe('hashing before upload', () => {
  it('hashes a large file in a worker, sends its SHA-256, and storage takes the checksum-signed PUT', async () => {
    // A real photo padded past the worker threshold (1 MiB) with bytes after its end marker.
    const photo = readFileSync(PHOTOS[0]!.path);
    const bytes = Buffer.concat([photo, Buffer.alloc(1536 * 1024 - photo.length)]);
    const path = join(mkdtempSync(join(tmpdir(), 'safelight-big-')), 'big.jpg');
    writeFileSync(path, bytes);

    const w = await openGallery(freshSub('hash'));
    const workers: string[] = [];
    w.page.on('worker', (worker) => workers.push(worker.url()));
    const presigns: Array<Record<string, unknown>> = [];
    w.page.on('request', (r) => {
      if (isPresign(r)) presigns.push(JSON.parse(r.postData() ?? '{}'));
    });
    await dropFiles(w.page, [{ name: 'big.jpg', type: 'image/jpeg', path }]);
    await w.page.locator('[data-testid=upload-row][data-phase=stored]').waitFor({ timeout: 60_000 });
    expect(presigns).toEqual([{ filename: 'big.jpg', content_type: 'image/jpeg', size: bytes.length, sha256: sha256Hex(bytes) }]);
    expect(workers.length).toBeGreaterThan(0);
    expect(w.errors).toEqual([]);
    await w.context.close();
  });
});

const isStorageWrite = (r: Request) => requestKind(r.url()) === 'original' && (r.method() === 'PUT' || r.method() === 'POST');

describe('re-dropped photos', () => {
  it('create no new image, send no bytes and show the 20 completed at once', async () => {
    const sub = freshSub('dupes');
    const photos = await scaledPhotos(browser, 20);
    const w = await openGallery(sub);
    await dropFiles(w.page, photos);
    const completed = Object.fromEntries(photos.map((p) => [p.name, 'completed']));
    await waitForStatuses(w.page, completed, 180_000);

    // From here on: any card leaving "completed", any byte sent to storage, any new image.
    await w.page.evaluate(() => {
      const left: string[] = [];
      (window as unknown as { __left: string[] }).__left = left;
      new MutationObserver(() => {
        for (const card of document.querySelectorAll<HTMLElement>('[data-testid=image-card]')) {
          if (card.dataset.status !== 'completed') left.push(`${card.dataset.filename}:${card.dataset.status}`);
        }
      }).observe(document.querySelector('.gallery')!, { subtree: true, childList: true, attributes: true });
    });
    const writes: string[] = [];
    const presigns: number[] = [];
    w.page.on('request', (r) => {
      if (isStorageWrite(r)) writes.push(`${r.method()} ${r.url()}`);
    });
    w.page.on('response', (r) => {
      if (isPresign(r.request())) presigns.push(r.status());
    });

    await dropFiles(w.page, photos);
    // Each one answered from the owner's digest index: "Already in your gallery", nothing processed
    // (processing them again takes 15 s and more here). A bound, not a timing: 20 hashes and 20
    // API answers, three at a time, took 1.7 s on the 2-core machine at a load average of 12.
    await w.page.waitForFunction((n) => document.querySelectorAll('[data-testid=upload-row][data-duplicate-of]').length === n, photos.length, {
      timeout: 5_000,
      polling: 100,
    });
    expect(await cardStatuses(w.page)).toEqual(completed);
    expect(await w.page.evaluate(() => (window as unknown as { __left: string[] }).__left)).toEqual([]);
    expect(presigns).toEqual(photos.map(() => 200));
    expect(writes).toEqual([]);
    const { body } = await api<{ items: unknown[] }>(await token({ sub }), 'GET', '/api/images?limit=100');
    expect(body.items).toHaveLength(photos.length);
    expect(w.errors).toEqual([]);
    await w.context.close();
  });

  it('take a PUT answered 412 (the bytes arrived another way meanwhile) as stored, not as a failure', async () => {
    const sub = freshSub('put412');
    const photo = PHOTOS[2]!;
    const w = await openGallery(sub);
    // The page's PUT is held until the same signed PUT, sent from here, has stored the object:
    // storage then refuses the page's conditional PUT with 412.
    let raced = 0;
    await w.page.route(
      (url) => requestKind(url.href) === 'original',
      async (route) => {
        const r = route.request();
        if (r.method() !== 'PUT') return route.continue();
        const signed = (new URL(r.url()).searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
        const headers = Object.fromEntries(Object.entries(await r.allHeaders()).filter(([k]) => signed.includes(k) && k !== 'host' && k !== 'content-length'));
        const first = await fetch(r.url(), { method: 'PUT', headers, body: new Uint8Array(r.postDataBuffer() ?? Buffer.alloc(0)) });
        expect(first.status).toBe(200);
        raced += 1;
        await route.continue();
      },
    );
    const answers: number[] = [];
    w.page.on('response', (r) => {
      if (r.request().method() === 'PUT' && requestKind(r.url()) === 'original') answers.push(r.status());
    });
    await dropFiles(w.page, [photo]);
    await w.page.locator('[data-testid=upload-row][data-phase=stored]').waitFor({ timeout: 30_000 });
    await waitForStatuses(w.page, { [photo.name]: 'completed' }, 120_000);
    expect([raced, ...answers]).toEqual([1, 412]);
    expect(await w.page.locator('[data-testid=upload-row][data-phase=error]').count()).toBe(0);
    expect(await w.page.locator('[data-testid=toast][data-tone=error]').count()).toBe(0);
    const { body } = await api<{ items: unknown[] }>(await token({ sub }), 'GET', '/api/images?limit=100');
    expect(body.items).toHaveLength(1);
    // Chromium logs the refused request itself; nothing else may be logged.
    expect(w.errors.filter((e) => !/status of 412/.test(e))).toEqual([]);
    await w.context.close();
  });
});
