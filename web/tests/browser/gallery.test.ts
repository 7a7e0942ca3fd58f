/**
 * The demo gallery in real Chromium against the local stack: uploads by drag and drop, badges
 * moved only by live notices (the page never polls and is never reloaded), catching up through
 * `resume` after the socket drops, and Retry once a failure's cause is lifted.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, WebSocketRoute } from 'playwright-core';
import {
  CORRUPT,
  PHOTOS,
  STACK,
  WEB_URL,
  api,
  cardStatuses,
  dropFiles,
  eventually,
  freshSub,
  launch,
  openPage,
  replayFrom,
  screenshotPath,
  stackctl,
  token,
  waitForStatuses,
  type WatchedPage,
} from './harness';

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

async function openGallery(sub: string, before?: (w: WatchedPage) => Promise<void>): Promise<WatchedPage> {
  const w = await openPage(browser);
  await before?.(w);
  await w.page.goto(`${WEB_URL}/?sub=${encodeURIComponent(sub)}`);
  await w.page.waitForSelector('[data-testid=connection][data-state=open]', { timeout: 30_000 });
  return w;
}

interface ListItem {
  image_id: string;
  filename: string;
  processing_status: string;
}

async function apiStatuses(tok: string): Promise<Record<string, string>> {
  const { body } = await api<{ items: ListItem[] }>(tok, 'GET', '/api/images?limit=100');
  return Object.fromEntries(body.items.map((i) => [i.filename, i.processing_status]));
}

const allDone = Object.fromEntries([...PHOTOS.map((p) => [p.name, 'completed']), [CORRUPT.name, 'failed']]);

describe('the gallery', () => {
  it('shows five photos completed and a corrupt file failed with its reason, live and without a reload', async () => {
    const sub = freshSub('gallery');
    const w = await openGallery(sub, async ({ page }) => {
      // Remembers which previews each card showed, so the placeholder stage can be checked after.
      await page.addInitScript(() => {
        const seen = new Set<string>();
        (window as unknown as { __previews: Set<string> }).__previews = seen;
        new MutationObserver(() => {
          for (const el of document.querySelectorAll<HTMLElement>('[data-testid=image-card] [data-preview]')) {
            const card = el.closest<HTMLElement>('[data-testid=image-card]');
            seen.add(`${card?.dataset.filename}:${el.dataset.preview}`);
          }
        }).observe(document, { subtree: true, childList: true, attributes: true });
      });
    });
    const { page } = w;
    await dropFiles(page, [...PHOTOS, CORRUPT]);

    // Every file gets a card at once (optimistic), with a progress bar in the uploads panel.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=image-card]').length === 6, null, { timeout: 30_000 });
    expect(await page.locator('[data-testid=upload-row]').count()).toBe(6);

    await waitForStatuses(page, allDone, 120_000);
    const failed = page.locator(`[data-testid=image-card][data-filename="${CORRUPT.name}"]`);
    const reason = (await failed.locator('[data-testid=failure-reason]').textContent())?.trim() ?? '';
    expect(reason.length).toBeGreaterThan(5);
    await expect(failed.getByRole('button', { name: /retry/i }).isVisible()).resolves.toBe(true);
    // Badges are text, not colour alone.
    await expect(failed.getByRole('status').textContent()).resolves.toContain('Failed');

    // The page agrees with the API, and it got there without reloading.
    expect(await cardStatuses(page)).toEqual(await apiStatuses(await token({ sub })));
    expect(w.loads()).toBe(1);

    // Thumbnails replace the placeholders once they exist: real decoded images.
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll<HTMLElement>('[data-testid=image-card][data-status=completed]')].every((c) => {
          const img = c.querySelector('img');
          return c.querySelector('[data-preview=derivative]') && img && img.complete && img.naturalWidth > 0;
        }),
      null,
      { timeout: 30_000 },
    );
    // Before its thumbnail each photo showed its thumbhash placeholder.
    const previews = await page.evaluate(() => [...(window as unknown as { __previews: Set<string> }).__previews]);
    for (const p of PHOTOS) expect(previews, p.name).toContain(`${p.name}:placeholder`);
    // Toasts told the user.
    expect(await page.locator('[data-testid=toast]').count()).toBeGreaterThan(0);
    await page.screenshot({ path: screenshotPath('gallery'), fullPage: true });
    expect(w.errors).toEqual([]);
    await w.context.close();
  });

  it('catches up through resume after the socket drops mid-run', async () => {
    const sub = freshSub('resume');
    const tok = await token({ sub });
    const fromPage: Array<Record<string, unknown>> = [];
    const fromServer: Array<Record<string, unknown>> = [];
    let outage = false;
    let dropped = false;
    let firstSeq = 0;
    const sockets: WebSocketRoute[] = [];
    const w = await openGallery(sub, async ({ page }) => {
      // Between the page and the real server: forwards every frame both ways, drops the
      // connection at the first notice and refuses reconnects until the test lifts the outage.
      await page.routeWebSocket(/\/_aws\/execute-api\//, (ws) => {
        if (outage) {
          ws.close({ code: 4001, reason: 'network outage (test)' });
          return;
        }
        sockets.push(ws);
        const server = ws.connectToServer();
        ws.onMessage((m) => {
          fromPage.push(JSON.parse(String(m)));
          server.send(m);
        });
        server.onMessage((m) => {
          const frame = JSON.parse(String(m)) as Record<string, unknown>;
          fromServer.push(frame);
          ws.send(m);
          if (!dropped && String(frame.type).startsWith('image:processing:')) {
            // The page has applied one notice; everything after it is missed live.
            dropped = true;
            outage = true;
            firstSeq = Number(frame.seq);
            ws.close({ code: 4001, reason: 'dropped (test)' });
            server.close();
          }
        });
      });
    });
    const { page } = w;
    await dropFiles(page, [...PHOTOS, CORRUPT]);

    // Wait for the drop, then until the server has finished everything while the page is cut off.
    await page.waitForSelector('[data-testid=connection]:not([data-state=open])', { timeout: 90_000 });
    const deadline = Date.now() + 120_000;
    for (;;) {
      const s = await apiStatuses(tok);
      if (Object.keys(allDone).every((k) => s[k] === allDone[k])) break;
      if (Date.now() > deadline) throw new Error(`processing did not finish: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // A row turns terminal before `notify` (fed by the table's stream) has stored its notice; wait
    // until the server would replay a terminal notice for every file, so the page's resume is what
    // catches it up rather than live notices that happen to arrive after it.
    const terminal = (frames: Array<Record<string, unknown>>) =>
      new Set(
        frames
          .filter((f) => f.type === 'image:processing:complete' || f.type === 'image:processing:failed')
          .map((f) => String(f.image_id)),
      ).size;
    const stored = Date.now() + 60_000;
    for (;;) {
      // The page saw `fromServer` live before the drop; the replay must bring the rest.
      const replay = await replayFrom(browser, tok, firstSeq);
      if (terminal([...fromServer, ...replay]) === Object.keys(allDone).length) break;
      if (Date.now() > stored) throw new Error(`notices not stored for replay: ${JSON.stringify(replay)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const before = await cardStatuses(page);
    expect(Object.values(before).filter((s) => s === 'completed').length).toBeLessThan(5);
    outage = false;

    await waitForStatuses(page, allDone, 60_000);
    const resume = fromPage.find((f) => f.action === 'resume');
    expect(resume, 'the page asked for a replay').toBeDefined();
    expect(Number(resume!.since)).toBe(firstSeq);
    // The server posts `resumed` after the replayed notices, so the page can show every status
    // before the frame reaches this side of the proxy.
    const resumed = await eventually("the server's `resumed` frame", 30_000, () => fromServer.find((f) => f.type === 'resumed'));
    expect(Number(resumed.replayed)).toBeGreaterThan(0);
    expect(w.loads()).toBe(1);
    expect(sockets.length).toBeGreaterThanOrEqual(2);
    expect(w.errors).toEqual([]);
    await w.context.close();
  });

  it('completes a failed image on Retry once the cause of the failure is lifted', async () => {
    const sub = freshSub('retry');
    const photo = PHOTOS[0]!;
    const admin = await token({ user: 'admin' });
    const thumbnailFn = STACK.SAFELIGHT_THUMBNAIL_FUNCTION!;
    // Three failures stay under the breaker's threshold (5) from a closed breaker with no
    // failures (an operator's reset forgets them); an open breaker would defer the work instead.
    const resetBreaker = async () => expect((await api(admin, 'POST', '/api/admin/circuits/thumbnail/reset')).status).toBe(200);
    await resetBreaker();
    // Every read of this user's originals by the thumbnail function is refused (access denied:
    // an outage would be waited out as a deferral instead): three receives, failed.
    stackctl('set-env', thumbnailFn, 'SAFELIGHT_FAULTS', `s3_get@originals/${sub}/:1:denied`);
    try {
      const w = await openGallery(sub);
      const { page } = w;
      await dropFiles(page, [photo]);
      await waitForStatuses(page, { [photo.name]: 'failed' }, 150_000);
      const card = page.locator(`[data-testid=image-card][data-filename="${photo.name}"]`);
      await expect(card.locator('[data-testid=failure-reason]').textContent()).resolves.toMatch(/\S/);

      stackctl('set-env', thumbnailFn, 'SAFELIGHT_FAULTS');
      await card.getByRole('button', { name: /retry/i }).click();
      await waitForStatuses(page, { [photo.name]: 'completed' }, 90_000);
      expect(await apiStatuses(await token({ sub }))).toEqual({ [photo.name]: 'completed' });
      expect(w.loads()).toBe(1);
      expect(w.errors).toEqual([]);
      await w.context.close();
    } finally {
      stackctl('set-env', thumbnailFn, 'SAFELIGHT_FAULTS');
      await resetBreaker();
    }
  });
});
