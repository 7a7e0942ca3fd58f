/**
 * What the browser tests share: the stack under test (from `SAFELIGHT_STACK_ENV`, written by
 * infra/local), dev tokens, direct API calls, stack knobs (fault injection, event sources) and a
 * headless Chromium (Debian's package, driven by playwright-core) that records console errors.
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type ConsoleMessage, type Page } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const WEB = resolve(here, '../..');
export const ROOT = resolve(WEB, '..');
/** Screenshots land here (test artifacts). */
export const ARTIFACTS = join(WEB, 'test-results');

function parseEnvFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2]!;
    if (v.startsWith("'") && v.endsWith("'")) v = v.slice(1, -1).replace(/'\\''/g, "'");
    env[m[1]!] = v;
  }
  return env;
}

const envPath = process.env.SAFELIGHT_STACK_ENV ?? join(ROOT, '.local/stack.env');
/** The stack's env file (URLs, names). */
export const STACK = parseEnvFile(envPath);
export const WEB_URL = STACK.SAFELIGHT_ISSUER_URL!;
export const API_URL = STACK.SAFELIGHT_API_URL!;

/** A fresh subject per test, so tests never see each other's images. */
export function freshSub(what: string): string {
  return `web-${what}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export async function token(params: Record<string, string>): Promise<string> {
  const res = await fetch(`${WEB_URL}/dev/token?${new URLSearchParams(params)}`);
  if (!res.ok) throw new Error(`token: ${res.status} ${await res.text()}`);
  return (await res.text()).trim();
}

/** A direct API call (the test's own view, to compare the page with). */
export async function api<T = unknown>(tok: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(API_URL + path, {
    method,
    headers: { Authorization: `Bearer ${tok}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

/** infra/local/stackctl.py against the stack under test (`set-env` for faults, `event-source`). */
export function stackctl(...args: string[]): void {
  const localDir = dirname(envPath);
  const r = spawnSync(join(ROOT, '.venv/bin/python'), [join(ROOT, 'infra/local/stackctl.py'), ...args], {
    env: { ...process.env, ...STACK, SAFELIGHT_LOCAL_DIR: localDir, STACK_NAME: STACK.SAFELIGHT_STACK_NAME ?? 'safelight' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`stackctl ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
}

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export async function launch(): Promise<Browser> {
  // Playwright gives every launch a fresh temporary profile (the fresh --user-data-dir).
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A page that records console errors and uncaught exceptions, and counts main-frame loads. */
export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  errors: string[];
  /** How many times the main frame loaded a document (1 = never reloaded). */
  loads: () => number;
}

export async function openPage(browser: Browser, options: BrowserContextOptions = {}): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  const errors: string[] = [];
  let loads = 0;
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('load', () => {
    loads += 1;
  });
  return { context, page, errors, loads: () => loads };
}

export function screenshotPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, `${name}.png`);
}

/** The five real photos (web/scripts/web.sh photos) and the corrupt JPEG of the engine corpus. */
export const PHOTOS = ['FreshFlower.jpg', 'GreenMeadow.jpg', 'Aqua.jpg', 'Garden.jpg', 'LadyBird.jpg'].map((name) => ({
  name,
  type: 'image/jpeg',
  path: join(WEB, '.cache/photos', name),
}));
export const CORRUPT = { name: 'corrupt-scan.jpg', type: 'image/jpeg', path: join(ROOT, 'shared/tests/fixtures/corrupt-scan.jpg') };

/** Drops files on the gallery's drop zone the way a person's drag and drop does. */
export async function dropFiles(page: Page, files: Array<{ name: string; type: string; path: string }>): Promise<void> {
  const payload = files.map((f) => ({ name: f.name, type: f.type, b64: readFileSync(f.path).toString('base64') }));
  const dataTransfer = await page.evaluateHandle((items) => {
    const dt = new DataTransfer();
    for (const f of items) {
      const bin = atob(f.b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      dt.items.add(new File([bytes], f.name, { type: f.type }));
    }
    return dt;
  }, payload);
  await page.dispatchEvent('[data-testid=dropzone]', 'dragover', { dataTransfer });
  await page.dispatchEvent('[data-testid=dropzone]', 'drop', { dataTransfer });
}

/** Status of each card by file name, as the page shows it. */
export async function cardStatuses(page: Page): Promise<Record<string, string>> {
  return page.$$eval('[data-testid=image-card]', (cards) =>
    Object.fromEntries(cards.map((c) => [(c as HTMLElement).dataset.filename ?? '', (c as HTMLElement).dataset.status ?? ''])),
  );
}

/** Waits until the page shows `expected` (file name -> status) for every named card. */
export async function waitForStatuses(page: Page, expected: Record<string, string>, timeoutMs: number): Promise<void> {
  try {
    await waitForStatusesOnce(page, expected, timeoutMs);
  } catch (e) {
    // Say what the page showed, not only that time ran out.
    const shown = await cardStatuses(page).catch(() => ({}));
    throw new Error(`the page did not reach ${JSON.stringify(expected)} in ${timeoutMs} ms; it shows ${JSON.stringify(shown)} (${(e as Error).message.split('\n')[0]})`, { cause: e });
  }
}

async function waitForStatusesOnce(page: Page, expected: Record<string, string>, timeoutMs: number): Promise<void> {
  await page.waitForFunction(
    (want) => {
      const cards = [...document.querySelectorAll<HTMLElement>('[data-testid=image-card]')];
      const got = Object.fromEntries(cards.map((c) => [c.dataset.filename ?? '', c.dataset.status ?? '']));
      return Object.entries(want).every(([k, v]) => got[k] === v);
    },
    expected,
    { timeout: timeoutMs, polling: 250 },
  );
}

/**
 * What the server would replay to `tok`'s owner after `since`: a throwaway page (its own context,
 * on the gallery's origin) opens a socket, sends `resume` and collects the frames up to `resumed`.
 */
export async function replayFrom(browser: Browser, tok: string, since: number): Promise<Array<Record<string, unknown>>> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(WEB_URL);
    return await page.evaluate(
      ({ url, since }) =>
        new Promise<Array<Record<string, unknown>>>((resolve, reject) => {
          const frames: Array<Record<string, unknown>> = [];
          const ws = new WebSocket(url);
          const timer = setTimeout(() => {
            ws.close();
            reject(new Error(`no 'resumed' within 15 s; got ${JSON.stringify(frames)}`));
          }, 15_000);
          ws.onopen = () => ws.send(JSON.stringify({ action: 'resume', since }));
          ws.onerror = () => reject(new Error('the probe socket failed'));
          ws.onmessage = (m) => {
            const frame = JSON.parse(String(m.data)) as Record<string, unknown>;
            frames.push(frame);
            if (frame.type === 'resumed') {
              clearTimeout(timer);
              ws.close();
              resolve(frames);
            }
          };
        }),
      { url: `${STACK.SAFELIGHT_WS_URL}?token=${encodeURIComponent(tok)}`, since },
    );
  } finally {
    await context.close();
  }
}

/** Uploads a file the way any client would (presigned PUT), from the test itself; with `sha256`,
 * the request carries the file's hash (and the PUT its signed checksum). The answer when it is not
 * a 201 ticket (a duplicate) is returned as is. */
export async function uploadViaApi(tok: string, file: { name: string; type: string; path: string }, opts: { sha256?: boolean } = {}): Promise<string> {
  const bytes = readFileSync(file.path);
  const { status, body } = await api<{ image_id: string; upload: { method: string; url: string; headers: Record<string, string> } }>(
    tok,
    'POST',
    '/api/images/upload',
    { filename: file.name, content_type: file.type, size: bytes.length, ...(opts.sha256 ? { sha256: sha256Hex(bytes) } : {}) },
  );
  if (status !== 201) throw new Error(`upload ticket: ${status} ${JSON.stringify(body)}`);
  const headers = Object.fromEntries(Object.entries(body.upload.headers).filter(([k]) => k.toLowerCase() !== 'content-length'));
  const put = await fetch(body.upload.url, { method: body.upload.method, headers, body: bytes });
  if (!put.ok) throw new Error(`PUT to storage: ${put.status} ${await put.text()}`);
  return body.image_id;
}

/** Lower-case hex SHA-256. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Waits until the API reports every listed image of the token's owner in a final state. */
export async function waitUntilSettled(tok: string, ids: string[], timeoutMs: number): Promise<Record<string, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out: Record<string, string> = {};
    for (const id of ids) {
      const { body } = await api<{ processing_status: string }>(tok, 'GET', `/api/images/${id}/processing-status`);
      out[id] = body.processing_status;
    }
    if (Object.values(out).every((s) => s === 'completed' || s === 'failed')) return out;
    if (Date.now() > deadline) throw new Error(`images did not settle: ${JSON.stringify(out)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
