import { afterEach, describe, expect, it, vi } from 'vitest';
import { Limiter, SafelightError, contentTypeOf, createClient, parseRetryAfter, sendToStorage, type UploadProgress, type UploadTicket } from '@safelight/client';
import { FakeXhr } from './fakes';

const ticket: UploadTicket = {
  image_id: 'img-1',
  upload: {
    method: 'PUT',
    url: 'http://s3.test/bucket/originals/u/img-1?X-Amz-Signature=abc',
    headers: { 'content-type': 'image/jpeg', 'content-length': '5', 'x-amz-checksum-sha256': 'c2hh' },
    expires_at: '2026-11-30T12:15:00Z',
  },
  upload_post: {
    method: 'POST',
    url: 'http://s3.test/bucket',
    fields: { key: 'originals/u/img-1', 'Content-Type': 'image/jpeg', policy: 'p', 'x-amz-signature': 's' },
    expires_at: '2026-11-30T12:15:00Z',
  },
  status_url: '/api/images/img-1/processing-status',
};

afterEach(() => {
  FakeXhr.all = [];
});

describe('sendToStorage', () => {
  it('PUTs the file with the signed headers a browser may set, reporting progress', async () => {
    const file = new Blob(['hello'], { type: 'image/jpeg' });
    const seen: number[] = [];
    const done = sendToStorage(ticket, file, { xhr: () => new FakeXhr(), onProgress: (l) => seen.push(l) });
    const x = FakeXhr.all[0]!;
    expect([x.method, x.url]).toEqual(['PUT', ticket.upload.url]);
    expect(x.headers).toEqual({ 'content-type': 'image/jpeg', 'x-amz-checksum-sha256': 'c2hh' });
    expect(x.body).toBe(file);
    x.progress(2, 5);
    x.respond(200);
    await done;
    expect(seen).toEqual([2, 5]);
  });

  it('POSTs the policy fields first and the file last', async () => {
    const file = new Blob(['hello'], { type: 'image/jpeg' });
    const done = sendToStorage(ticket, file, { method: 'post', xhr: () => new FakeXhr() });
    const x = FakeXhr.all[0]!;
    expect([x.method, x.url]).toEqual(['POST', 'http://s3.test/bucket']);
    const form = x.body as FormData;
    expect([...form.keys()]).toEqual(['key', 'Content-Type', 'policy', 'x-amz-signature', 'file']);
    x.respond(204);
    await done;
  });

  it("turns storage's XML refusal into a readable error", async () => {
    const done = sendToStorage(ticket, new Blob(['x']), { xhr: () => new FakeXhr() });
    FakeXhr.all[0]!.respond(403, '<Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error>');
    await expect(done).rejects.toMatchObject({ code: 'upload_failed', status: 403, message: expect.stringContaining('SignatureDoesNotMatch') });
  });

  it('aborts on the signal', async () => {
    const ctl = new AbortController();
    const done = sendToStorage(ticket, new Blob(['x']), { xhr: () => new FakeXhr(), signal: ctl.signal });
    ctl.abort();
    await expect(done).rejects.toMatchObject({ code: 'aborted' });
    expect(FakeXhr.all[0]!.aborted).toBe(true);
  });
});

describe('contentTypeOf', () => {
  it('uses the declared type or guesses from the extension', () => {
    expect(contentTypeOf({ name: 'a.png', type: 'image/png' })).toBe('image/png');
    expect(contentTypeOf({ name: 'IMG_1.JPG', type: '' })).toBe('image/jpeg');
    expect(contentTypeOf({ name: 'notes.txt', type: '' })).toBe('application/octet-stream');
  });
});

describe('Limiter', () => {
  it('never runs more than its limit at once and runs everything', async () => {
    const lim = new Limiter(2);
    let peak = 0;
    const release: Array<() => void> = [];
    const tasks = Array.from({ length: 5 }, (_, i) =>
      lim.run(async () => {
        peak = Math.max(peak, lim.active);
        await new Promise<void>((r) => release.push(r));
        return i;
      }),
    );
    for (let i = 0; i < 5; i++) {
      await vi.waitFor(() => expect(release.length).toBeGreaterThan(i));
      release[i]!();
    }
    expect(await Promise.all(tasks)).toEqual([0, 1, 2, 3, 4]);
    expect(peak).toBe(2);
  });

  it('refuses a limit below one', () => {
    expect(() => new Limiter(0)).toThrow(RangeError);
  });
});

describe('client.upload', () => {
  it('asks for a ticket with the file name, type, size and SHA-256, then sends the bytes', async () => {
    const fetch = vi.fn(async (_url: string | URL | Request, _init?: RequestInit) =>
      new Response(JSON.stringify(ticket), { status: 201, headers: { 'content-type': 'application/json' } }),
    );
    const client = createClient({ apiUrl: 'http://api.test/', wsUrl: 'ws://x', getToken: () => 'tok', fetch, xhr: () => new FakeXhr() });
    const phases: UploadProgress['phase'][] = [];
    const file = new File(['hello'], 'cat.jpg', { type: 'image/jpeg' });
    const done = client.upload(file, { onProgress: (p) => phases.push(p.phase) });
    await vi.waitFor(() => expect(FakeXhr.all).toHaveLength(1));
    const [url, init] = fetch.mock.calls[0]!;
    expect(url).toBe('http://api.test/api/images/upload');
    expect(JSON.parse(String(init?.body))).toEqual({
      filename: 'cat.jpg',
      content_type: 'image/jpeg',
      size: 5,
      sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', // of "hello"
    });
    expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer tok');
    FakeXhr.all[0]!.respond(200);
    expect(await done).toMatchObject({ imageId: 'img-1' });
    expect(phases).toEqual(['requesting', 'uploading', 'stored']);
  });

  it("surfaces the API's refusal with its code", async () => {
    const fetch = vi.fn(async () =>
      new Response(JSON.stringify({ error: { code: 'unsupported_type', message: 'text/plain is not accepted' } }), { status: 415 }),
    );
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 'tok', fetch, xhr: () => new FakeXhr() });
    const err = await client.upload(new File(['x'], 'a.txt', { type: 'text/plain' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafelightError);
    expect(err).toMatchObject({ code: 'unsupported_type', status: 415 });
    expect(FakeXhr.all).toHaveLength(0);
  });
});

describe('Http', () => {
  it('asks for a fresh token once after a 401', async () => {
    const answers = [new Response('{}', { status: 401 }), new Response('{"items":[],"next_cursor":null}', { status: 200 })];
    const fetch = vi.fn(async () => answers.shift()!);
    const getToken = vi.fn(({ fresh }: { fresh: boolean }) => (fresh ? 'new' : 'old'));
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken, fetch });
    expect(await client.list({ limit: 5 })).toEqual({ items: [], next_cursor: null });
    expect(getToken.mock.calls.map((c) => c[0].fresh)).toEqual([false, true]);
    expect(fetch.mock.calls[1]).toBeDefined();
  });

  it('gives up after the second 401', async () => {
    const fetch = vi.fn(async () => new Response('{"error":{"code":"unauthorized","message":"no"}}', { status: 401 }));
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch });
    await expect(client.status('x')).rejects.toMatchObject({ code: 'unauthorized', status: 401 });
    expect(fetch).toHaveBeenCalledTimes(2);
  });

  it("reads API Gateway's own 403 (an admin route's AuthorizationScopes) as forbidden", async () => {
    const fetch = vi.fn(async () => new Response('{"message":"Forbidden"}', { status: 403 }));
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch });
    await expect(client.admin.processingQueue()).rejects.toMatchObject({ code: 'forbidden', status: 403 });
  });
});

describe('client.upload over a limit (429 with Retry-After)', () => {
  const refused = (secs: string | null) =>
    new Response(JSON.stringify({ error: { code: 'rate_limited', message: 'too many upload requests this minute' } }), {
      status: 429,
      headers: secs === null ? {} : { 'retry-after': secs },
    });
  const accepted = () => new Response(JSON.stringify(ticket), { status: 201 });

  it('waits what Retry-After says, shows it is waiting, then asks again and uploads', async () => {
    const answers = [refused('7'), refused('2'), accepted()];
    const fetch = vi.fn(async () => answers.shift()!);
    const slept: number[] = [];
    const sleep = vi.fn(async (ms: number) => {
      slept.push(ms);
    });
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch, sleep, xhr: () => new FakeXhr() });
    const seen: UploadProgress[] = [];
    const done = client.upload(new File(['hello'], 'cat.jpg', { type: 'image/jpeg' }), { onProgress: (p) => seen.push(p) });
    await vi.waitFor(() => expect(FakeXhr.all).toHaveLength(1));
    FakeXhr.all[0]!.respond(200);
    expect(await done).toMatchObject({ imageId: 'img-1' });
    expect(fetch).toHaveBeenCalledTimes(3);
    // Each wait is the server's seconds plus under a second of jitter.
    expect(slept).toHaveLength(2);
    expect(slept[0]).toBeGreaterThanOrEqual(7000);
    expect(slept[0]).toBeLessThanOrEqual(8000);
    expect(slept[1]).toBeGreaterThanOrEqual(2000);
    expect(slept[1]).toBeLessThanOrEqual(3000);
    expect(seen.map((p) => (p.phase === 'waiting' ? `waiting ${p.retryInSecs}` : p.phase))).toEqual([
      'requesting',
      'waiting 7',
      'requesting',
      'waiting 2',
      'requesting',
      'uploading',
      'stored',
    ]);
  });

  it('gives up after a bounded number of tries with the 429 and its Retry-After', async () => {
    const fetch = vi.fn(async () => refused('1'));
    const sleep = vi.fn(async () => {});
    const client = createClient({
      apiUrl: 'http://api.test',
      wsUrl: 'ws://x',
      getToken: () => 't',
      fetch,
      sleep,
      rateLimit: { retries: 2 },
      xhr: () => new FakeXhr(),
    });
    const err = await client.upload(new File(['x'], 'a.jpg', { type: 'image/jpeg' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'rate_limited', status: 429, retryAfterSecs: 1 });
    expect(fetch).toHaveBeenCalledTimes(3);
    expect(sleep).toHaveBeenCalledTimes(2);
    expect(FakeXhr.all).toHaveLength(0);
  });

  it('does not wait on a 429 without Retry-After, or one longer than it is willing to wait', async () => {
    for (const secs of [null, '3600']) {
      const fetch = vi.fn(async () => refused(secs));
      const sleep = vi.fn(async () => {});
      const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch, sleep, xhr: () => new FakeXhr() });
      await expect(client.upload(new File(['x'], 'a.jpg', { type: 'image/jpeg' }))).rejects.toMatchObject({ status: 429 });
      expect(fetch).toHaveBeenCalledTimes(1);
      expect(sleep).not.toHaveBeenCalled();
    }
  });

  it('stops waiting when the upload is cancelled', async () => {
    vi.useFakeTimers();
    try {
      const fetch = vi.fn(async () => refused('30'));
      const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch, xhr: () => new FakeXhr() });
      const abort = new AbortController();
      const done = client.upload(new File(['x'], 'a.jpg', { type: 'image/jpeg' }), { signal: abort.signal }).catch((e: unknown) => e);
      await vi.waitFor(() => expect(fetch).toHaveBeenCalledTimes(1));
      abort.abort();
      expect(await done).toMatchObject({ code: 'aborted' });
      await vi.advanceTimersByTimeAsync(60_000);
      expect(fetch).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds or an HTTP date, and nothing else', () => {
    expect(parseRetryAfter('12')).toBe(12);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter('soon')).toBeNull();
    const now = Date.parse('2026-12-07T15:00:00Z');
    expect(parseRetryAfter('Mon, 07 Dec 2026 15:00:30 GMT', now)).toBe(30);
  });
});
