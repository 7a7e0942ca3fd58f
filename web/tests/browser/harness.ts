/**
 * What the browser tests share: the stack under test (from `SAFELIGHT_STACK_ENV`, written by
 * infra/local), dev tokens, direct API calls, stack knobs (fault injection, event sources) and a
 * headless Chromium (Debian's package, driven by playwright-core) that records console errors.
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type CDPSession, type ConsoleMessage, type Page } from 'playwright-core';

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

/** infra/local/stackctl.py against the stack under test (`set-env` for faults, `event-source`);
 * returns what it printed (`set-env` prints the variable's previous value). */
export function stackctl(...args: string[]): string {
  const localDir = dirname(envPath);
  const r = spawnSync(join(ROOT, '.venv/bin/python'), [join(ROOT, 'infra/local/stackctl.py'), ...args], {
    env: { ...process.env, ...STACK, SAFELIGHT_LOCAL_DIR: localDir, STACK_NAME: STACK.SAFELIGHT_STACK_NAME ?? 'safelight' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`stackctl ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

/**
 * Runs `fn` with the images function's link window (`LINK_WINDOW_SECS`) set to `secs`, and puts
 * the previous value back afterwards, whatever happens.
 */
export async function withLinkWindow<T>(secs: number, fn: () => Promise<T>): Promise<T> {
  const images = STACK.SAFELIGHT_IMAGES_FUNCTION ?? 'images';
  const before = stackctl('set-env', images, 'LINK_WINDOW_SECS', String(secs));
  try {
    return await fn();
  } finally {
    stackctl('set-env', images, 'LINK_WINDOW_SECS', ...(before ? [before] : []));
  }
}

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Launch attempts: a browser that dies while starting (seen once under a load average of 6:
 * SIGSEGV before its first page) is the machine's hiccup, not a verdict on the page. */
const LAUNCH_ATTEMPTS = 3;

export async function launch(): Promise<Browser> {
  for (let attempt = 1; ; attempt++) {
    try {
      // Playwright gives every launch a fresh temporary profile (the fresh --user-data-dir).
      return await chromium.launch({
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
    } catch (e) {
      if (attempt >= LAUNCH_ATTEMPTS) throw e;
      console.warn(`chromium did not start (attempt ${attempt} of ${LAUNCH_ATTEMPTS}): ${String(e).split('\n')[0]}`);
    }
  }
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

/**
 * Polls `probe` every 250 ms until it returns a value other than `undefined`; throws naming `what`
 * after `timeoutMs`. For events that arrive on their own schedule (a frame the server sends after
 * the ones the page has already acted on), never for timing claims.
 */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`${what}: not seen in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
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

/** A photo file on disk, as `dropFiles` and `uploadViaApi` take it. */
export interface PhotoFile {
  name: string;
  type: string;
  path: string;
}

/**
 * `n` distinct, valid JPEGs: the five photos in turn, each copy given its own comment segment
 * (`FF FE`, right after the start marker) so its bytes and SHA-256 differ while it decodes to the
 * same picture. Named `p07-Aqua.jpg`; the same `n` gives the same files (and hashes) every run.
 */
export function distinctPhotos(n: number): PhotoFile[] {
  const dir = join(tmpdir(), 'safelight-distinct-photos');
  mkdirSync(dir, { recursive: true });
  const width = String(n).length;
  return Array.from({ length: n }, (_, i) => {
    const photo = PHOTOS[i % PHOTOS.length]!;
    const name = `p${String(i + 1).padStart(Math.max(2, width), '0')}-${photo.name}`;
    const path = join(dir, name);
    const bytes = readFileSync(photo.path);
    const note = Buffer.from(`safelight browser test photo ${i + 1}`);
    const segment = Buffer.concat([Buffer.from([0xff, 0xfe, (note.length + 2) >> 8, (note.length + 2) & 0xff]), note]);
    writeFileSync(path, Buffer.concat([bytes.subarray(0, 2), segment, bytes.subarray(2)]));
    return { name, type: photo.type, path };
  });
}

/** Uploads `files` through the API (with their SHA-256), `parallel` at a time; their image ids in order. */
export async function uploadAll(tok: string, files: PhotoFile[], parallel = 4): Promise<string[]> {
  const ids: string[] = new Array(files.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, files.length) }, async () => {
      while (next < files.length) {
        const i = next++;
        ids[i] = await uploadViaApi(tok, files[i]!, { sha256: true });
      }
    }),
  );
  return ids;
}

/** What a page's request was for. */
export type RequestKind = 'derivative' | 'original' | 'api' | 'other';

/** One request of a page as the DevTools protocol reported it. */
export interface Fetched {
  url: string;
  kind: RequestKind;
  method: string;
  /** When the request was sent (ms since the epoch, the browser's clock). */
  at: number;
  /** The response came from the network (not the memory or disk cache); `false` until it answered. */
  network: boolean;
  /** Answered from a cache (memory or disk). */
  cached: boolean;
  status: number | null;
  /** The response's `Cache-Control`, when it had one. */
  cacheControl: string | null;
  /** Bytes received over the network for it, headers included (`encodedDataLength`); 0 from a cache. */
  bytes: number;
  /** Why it failed (`net::ERR_…`); a request the page itself dropped (a `srcset` that changed
   * meanwhile) is `canceled` instead. */
  failed: string | null;
  canceled: boolean;
}

/** Derivatives (`thumbnails/`, `variants/`) and originals in the bucket, the API, the rest. */
export function requestKind(url: string): RequestKind {
  if (url.startsWith(API_URL)) return 'api';
  const bucket = STACK.SAFELIGHT_BUCKET;
  const path = (() => {
    try {
      return new URL(url).pathname;
    } catch {
      return '';
    }
  })();
  if (bucket && path.includes(`/${bucket}/thumbnails/`)) return 'derivative';
  if (bucket && path.includes(`/${bucket}/variants/`)) return 'derivative';
  if (bucket && path.includes(`/${bucket}/originals/`)) return 'original';
  return 'other';
}

/**
 * Every request of a page through the Chrome DevTools Protocol (`Network.*`): whether it reached
 * the network or was served from the browser's cache, its status and its bytes on the wire.
 */
export class NetworkLog {
  private readonly byId = new Map<string, Fetched>();
  private readonly order: Fetched[] = [];

  /** The DevTools session (to disable the cache, say). */
  private constructor(readonly session: CDPSession) {}

  static async attach(page: Page): Promise<NetworkLog> {
    const cdp = await page.context().newCDPSession(page);
    const log = new NetworkLog(cdp);
    cdp.on('Network.requestWillBeSent', (e) => {
      // A redirect reuses the id: the earlier hop has ended.
      const f: Fetched = {
        url: e.request.url,
        kind: requestKind(e.request.url),
        method: e.request.method,
        at: e.wallTime * 1000,
        network: false,
        cached: false,
        status: null,
        cacheControl: null,
        bytes: 0,
        failed: null,
        canceled: false,
      };
      log.byId.set(e.requestId, f);
      log.order.push(f);
    });
    cdp.on('Network.requestServedFromCache', (e) => {
      const f = log.byId.get(e.requestId);
      if (f) f.cached = true;
    });
    cdp.on('Network.responseReceived', (e) => {
      const f = log.byId.get(e.requestId);
      if (!f) return;
      const r = e.response as {
        status: number;
        headers: Record<string, string>;
        fromDiskCache?: boolean;
        fromMemoryCache?: boolean;
        fromServiceWorker?: boolean;
        fromPrefetchCache?: boolean;
      };
      f.status = r.status;
      f.cacheControl = Object.entries(r.headers).find(([k]) => k.toLowerCase() === 'cache-control')?.[1] ?? null;
      if (r.fromDiskCache || r.fromMemoryCache || r.fromPrefetchCache) f.cached = true;
      f.network = !f.cached && !r.fromServiceWorker;
    });
    cdp.on('Network.loadingFinished', (e) => {
      const f = log.byId.get(e.requestId);
      if (f) f.bytes = f.network ? e.encodedDataLength : 0;
    });
    cdp.on('Network.loadingFailed', (e) => {
      const f = log.byId.get(e.requestId);
      if (!f) return;
      if (e.canceled) f.canceled = true;
      else f.failed = e.errorText;
    });
    await cdp.send('Network.enable');
    return log;
  }

  /** How many requests were logged so far: `since(mark())` is what comes after. */
  mark(): number {
    return this.order.length;
  }

  /** The requests logged from `mark` on (all by default), in the order they were sent. */
  since(mark = 0): Fetched[] {
    return this.order.slice(mark);
  }
}

/**
 * Scrolls through the gallery (its previews and later pages load lazily) and waits until each of its `count` cards
 * shows a derivative loaded from its `srcset`: complete, decoded (`naturalWidth` > 0), at a URL the
 * `<picture>` offers (not the blur, not the list's preview). Says what the page showed on timeout.
 */
export async function loadAllPreviews(page: Page, count: number, timeoutMs = 60_000): Promise<void> {
  // Later pages of the list load as the end of the gallery comes near.
  await page.waitForFunction(
    (n) => {
      window.scrollTo(0, document.documentElement.scrollHeight);
      return document.querySelectorAll('[data-testid=image-card]').length >= n;
    },
    count,
    { timeout: timeoutMs, polling: 250 },
  );
  await page.evaluate(async () => {
    const step = Math.max(200, window.innerHeight - 100);
    for (let y = 0; y < document.documentElement.scrollHeight; y += step) {
      window.scrollTo(0, y);
      await new Promise((r) => setTimeout(r, 50));
    }
    window.scrollTo(0, document.documentElement.scrollHeight);
  });
  try {
    await page.waitForFunction(
      (n) => {
        const cards = [...document.querySelectorAll<HTMLElement>('[data-testid=image-card]')];
        const loaded = cards.filter((card) => {
          const img = card.querySelector<HTMLImageElement>('[data-preview=derivative] picture img');
          if (!img || !img.complete || img.naturalWidth === 0 || !/^https?:/.test(img.currentSrc)) return false;
          const offered = [...img.parentElement!.querySelectorAll('source, img')].flatMap((e) =>
            (e.getAttribute('srcset') ?? '').split(',').map((c) => c.trim().split(' ')[0]),
          );
          return offered.includes(img.currentSrc);
        });
        return loaded.length >= n;
      },
      count,
      { timeout: timeoutMs, polling: 250 },
    );
  } catch (e) {
    const shown = await page.$$eval('[data-testid=image-card]', (cards) =>
      cards.map((c) => {
        const img = c.querySelector('img');
        return `${(c as HTMLElement).dataset.filename}:${c.querySelector('[data-preview]')?.getAttribute('data-preview')}:${img ? `${img.complete}/${img.naturalWidth}` : 'no img'}`;
      }),
    );
    throw new Error(`the previews did not all load in ${timeoutMs} ms: ${shown.join(', ')}`, { cause: e });
  }
}

/**
 * What each card's `<img>` shows: `currentSrc`, whether it decoded (`natural`: density-corrected,
 * so about the slot's width), the file's width as its `srcset` entry says, and the slot in CSS px.
 */
export async function previews(page: Page): Promise<Array<{ filename: string; preview: string; src: string; natural: number; width: number; slot: number }>> {
  return page.$$eval('[data-testid=image-card]', (cards) =>
    cards.map((c) => {
      const img = c.querySelector<HTMLImageElement>('picture img');
      const entries = img
        ? [...img.parentElement!.querySelectorAll('source, img')].flatMap((e) => (e.getAttribute('srcset') ?? '').split(',').map((x) => x.trim().split(' ')))
        : [];
      const entry = entries.find(([url]) => url === img?.currentSrc);
      return {
        filename: (c as HTMLElement).dataset.filename ?? '',
        preview: c.querySelector<HTMLElement>('[data-preview]')?.dataset.preview ?? '',
        src: img?.currentSrc ?? '',
        natural: img?.naturalWidth ?? 0,
        width: Number.parseInt(entry?.[1] ?? '0', 10),
        slot: img?.clientWidth ?? 0,
      };
    }),
  );
}

/** When a presigned link was signed and when it ends (ms), from its `X-Amz-Date` and `X-Amz-Expires`. */
export function linkLife(url: string): { signedAt: number; expiresAt: number } | null {
  const q = new URL(url).searchParams;
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(q.get('X-Amz-Date') ?? '');
  const secs = Number(q.get('X-Amz-Expires'));
  if (!m || !(secs > 0)) return null;
  const signedAt = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  return { signedAt, expiresAt: signedAt + secs * 1000 };
}

/** The first list item's smallest thumbnail URL of the token's owner (waits for one to exist). */
export async function someLink(tok: string): Promise<string> {
  const { body } = await api<{ items: Array<{ thumbnail_url: string | null }> }>(tok, 'GET', '/api/images?limit=1');
  const url = body.items[0]?.thumbnail_url;
  if (!url) throw new Error(`no completed image to read a link from: ${JSON.stringify(body)}`);
  return url;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `n` distinct photos of at most `edge` px (long edge): the five photos in turn, scaled in Chromium
 * (canvas, JPEG quality 0.85) with their number drawn in a corner, so each has its own pixels and
 * hash. Smaller than the originals, so a 20-photo gallery is processed quickly; kept in the temp
 * directory and made again only when missing. Named `s07-Aqua.jpg`.
 */
export async function scaledPhotos(browser: Browser, n: number, edge = 1280): Promise<PhotoFile[]> {
  const dir = join(tmpdir(), `safelight-scaled-photos-${edge}`);
  mkdirSync(dir, { recursive: true });
  const files = Array.from({ length: n }, (_, i) => {
    const photo = PHOTOS[i % PHOTOS.length]!;
    return { i, photo, file: { name: `s${String(i + 1).padStart(Math.max(2, String(n).length), '0')}-${photo.name}`, type: photo.type, path: '' } };
  });
  for (const f of files) f.file.path = join(dir, f.file.name);
  const missing = files.filter((f) => !existsSync(f.file.path));
  if (missing.length > 0) {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      for (const { i, photo, file } of missing) {
        const b64 = await page.evaluate(
          async ({ src, label, edge }) => {
            const bin = atob(src);
            const bytes = new Uint8Array(bin.length);
            for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
            const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/jpeg' }));
            const scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
            const canvas = new OffscreenCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
            const ctx = canvas.getContext('2d')!;
            ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
            ctx.fillStyle = 'rgba(0, 0, 0, 0.6)';
            ctx.fillRect(0, 0, 160, 64);
            ctx.fillStyle = '#fff';
            ctx.font = 'bold 44px sans-serif';
            ctx.fillText(label, 12, 48);
            const out = new Uint8Array(await (await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.85 })).arrayBuffer());
            let s = '';
            for (let k = 0; k < out.length; k += 0x8000) s += String.fromCharCode(...out.subarray(k, k + 0x8000));
            return btoa(s);
          },
          { src: readFileSync(photo.path).toString('base64'), label: `#${i + 1}`, edge },
        );
        writeFileSync(file.path, Buffer.from(b64, 'base64'));
      }
    } finally {
      await context.close();
    }
  }
  return files.map((f) => f.file);
}
