/**
 * The admin dashboard in real Chromium: the counts it shows are the API's, it refreshes by
 * itself, and someone who is not an admin sees a refusal and no data.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { CORRUPT, PHOTOS, WEB_URL, api, freshSub, launch, openPage, screenshotPath, token, uploadViaApi, waitUntilSettled } from './harness';

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

type Counts = Record<'pending' | 'processing' | 'completed' | 'failed', number>;

async function pageCounts(page: Page): Promise<Counts> {
  return page.$eval('[data-testid=status-counts]', (el) => {
    const n = (s: string) => Number(el.querySelector(`[data-testid=count-${s}]`)?.textContent ?? NaN);
    return { pending: n('pending'), processing: n('processing'), completed: n('completed'), failed: n('failed') };
  });
}

async function apiCounts(adminToken: string): Promise<Counts> {
  const { status, body } = await api<{ counts: Counts }>(adminToken, 'GET', '/api/admin/processing-queue');
  expect(status).toBe(200);
  return body.counts;
}

/** The API's counts once two reads a second apart agree (nothing moving). */
async function settledCounts(adminToken: string): Promise<Counts> {
  let last = await apiCounts(adminToken);
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const next = await apiCounts(adminToken);
    if (JSON.stringify(next) === JSON.stringify(last)) return next;
    last = next;
  }
  throw new Error(`the counts kept moving: ${JSON.stringify(last)}`);
}

/** Waits until the page shows exactly `want`. */
async function pageShows(page: Page, want: Counts, timeoutMs: number): Promise<void> {
  await page
    .waitForFunction(
      (w) =>
        Object.entries(w).every(([k, v]) => Number(document.querySelector(`[data-testid=count-${k}]`)?.textContent) === v),
      want,
      { timeout: timeoutMs, polling: 250 },
    )
    .catch(async (e: Error) => {
      throw new Error(`the dashboard shows ${JSON.stringify(await pageCounts(page))}, the API ${JSON.stringify(want)}: ${e.message.split('\n')[0]}`);
    });
}

describe('the processing queue dashboard', () => {
  it('shows the same counts as the API and keeps them current by itself', async () => {
    const admin = await token({ user: 'admin' });
    const sub = freshSub('dash');
    const user = await token({ sub });
    const ids = [await uploadViaApi(user, PHOTOS[1]!), await uploadViaApi(user, CORRUPT)];
    await waitUntilSettled(user, ids, 120_000);

    const w = await openPage(browser);
    const { page } = w;
    await page.goto(`${WEB_URL}/admin/processing/`);
    await page.waitForSelector('[data-testid=status-counts]', { timeout: 30_000 });
    const before = await settledCounts(admin);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await pageShows(page, before, 15_000);
    expect(before.failed).toBeGreaterThanOrEqual(1);
    expect(before.completed).toBeGreaterThanOrEqual(1);
    await expect(page.locator('[data-testid=recent-failures]').textContent()).resolves.toContain(sub);
    await expect(page.getByRole('button', { name: 'Retry all failed' }).isEnabled()).resolves.toBe(true);
    await expect(page.locator('[data-testid=circuit-thumbnail]').textContent()).resolves.toMatch(/closed|open|half-open/);
    await expect(page.locator('[data-testid=queue-thumbnail]').count()).resolves.toBe(1);

    // One more image completes; the dashboard shows it on its own (10 s refresh), no click.
    const id = await uploadViaApi(user, PHOTOS[2]!);
    await waitUntilSettled(user, [id], 120_000);
    const after = await settledCounts(admin);
    expect(after.completed).toBeGreaterThanOrEqual(before.completed + 1);
    await pageShows(page, after, 30_000);
    await page.screenshot({ path: screenshotPath('dashboard'), fullPage: true });
    expect(w.errors).toEqual([]);
    await w.context.close();
  });

  it('shows someone who is not an admin a refusal and no admin data', async () => {
    const demo = await token({ user: 'demo' });
    expect((await api(demo, 'GET', '/api/admin/processing-queue')).status).toBe(403);

    const w = await openPage(browser);
    const { page } = w;
    await page.goto(`${WEB_URL}/admin/processing/?user=demo`);
    const alert = page.locator('[data-testid=dashboard-error]');
    await alert.waitFor({ timeout: 30_000 });
    await expect(alert.textContent()).resolves.toContain('administrators');
    expect(await page.locator('[data-testid=status-counts]').count()).toBe(0);
    expect(await page.locator('table').count()).toBe(0);
    await page.screenshot({ path: screenshotPath('dashboard-not-admin'), fullPage: true });
    // The refused request is the only error the browser logs.
    // A gateway refusal may come without CORS headers: the browser then logs a blocked request.
    expect(w.errors.filter((e) => !/status of 403|blocked by CORS policy|net::ERR_FAILED/.test(e))).toEqual([]);
    expect(w.errors.length).toBeGreaterThanOrEqual(1);
    await w.context.close();
  });
});
