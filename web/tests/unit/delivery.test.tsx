// @vitest-environment happy-dom
/**
 * Delivery with stable links: list items carry every derivative's URL (no per-image fetch), URLs
 * are renewed before they end (the list for the whole page, each image as a fallback), and a
 * conditional PUT answered 412 means the bytes are already stored.
 */
import { act } from 'react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  GalleryStore,
  createClient,
  fromSummary,
  sendToStorage,
  sourcesRenewAt,
  urlRenewAt,
  withSummaryUrls,
  type ImageState,
  type ImageSummary,
  type UploadTicket,
} from '@safelight/client';
import { ResponsiveImage, SafelightProvider, useImages, useUpload } from '@safelight/react';
import { FakeXhr, completedView } from './fakes';
import { setupTestRoot, until } from './dom';

const dom = setupTestRoot();

/** `20261207T120000Z` for a time in ms. */
function amzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/** The API's link for `name` of `id` in the window of `windowSecs` containing `now`: signed at the
 * window's start, living two windows (as the images function signs them). */
function link(id: string, name: string, now: number, windowSecs = 10): string {
  const start = Math.floor(now / (windowSecs * 1000)) * windowSecs * 1000;
  return `http://s3.test/b/thumbnails/${id}/${name}?X-Amz-Date=${amzDate(start)}&X-Amz-Expires=${2 * windowSecs}&X-Amz-Signature=s`;
}

/** A list item of a completed image with its derivative maps, URLs of the window containing `now`. */
function item(id: string, now: number): ImageSummary {
  const view = completedView(id, (n) => link(id, n, now));
  return {
    image_id: id, filename: `${id}.jpg`, content_type: 'image/jpeg', processing_status: 'completed', placeholder: null,
    created_at: view.created_at, thumbnail_url: view.thumbnails['150.jpg']!.url, thumbnails: view.thumbnails, variants: view.variants,
  };
}

const T0 = Date.UTC(2026, 11, 7, 12, 0, 0);

describe('urlRenewAt', () => {
  it('is a fraction of the way through a presigned URL’s life, past the window that hands it out', () => {
    const url = link('a', '300.jpg', T0 + 3_000);
    expect(urlRenewAt(url)).toBe(T0 + 15_000);
    expect(urlRenewAt(url, 0.6)).toBe(T0 + 12_000);
  });

  it('is before the end of a URL that says only when it ends, and nothing for one that does not say', () => {
    expect(urlRenewAt('https://d1.cloudfront.net/t/x/300.jpg?Expires=1796650000&Signature=s&Key-Pair-Id=K', 0.75)).toBe(1_796_650_000_000 - 60_000);
    expect(urlRenewAt('data:image/png;base64,AAAA')).toBeNull();
  });

  it('of an image is its earliest URL’s', () => {
    const early = link('a', '150.jpg', T0);
    const late = link('a', '300.jpg', T0 + 10_000);
    expect(sourcesRenewAt({ thumbnails: { '150.jpg': { url: late, width: 150, height: 100 } }, original_url: early })).toBe(urlRenewAt(early));
    expect(sourcesRenewAt({ thumbnail_url: null, placeholder: 'x' })).toBeNull();
  });
});

describe('list items with derivative maps', () => {
  it('give an image its whole derivative set; without them the preview alone, as before', () => {
    const full = fromSummary(item('a', T0));
    expect(Object.keys(full.sources.thumbnails ?? {})).toEqual(['150.jpg', '300.jpg', '600.jpg']);
    expect(full.sources.variants?.['2048.webp']?.url).toContain('/a/2048.webp');
    const { thumbnails: _t, variants: _v, ...old } = item('a', T0);
    expect(fromSummary(old).sources).toEqual({ thumbnail_url: old.thumbnail_url, placeholder: null });
  });

  it('renew a known image’s URLs when theirs outlive them, and leave its state alone', () => {
    const store = new GalleryStore();
    store.load([item('a', T0)]);
    store.update('a', (i) => ({ ...i, status: 'failed', error: 'later news' }));
    store.load([item('a', T0 + 10_000)]);
    expect(store.get('a')?.sources.thumbnails?.['300.jpg']?.url).toBe(link('a', '300.jpg', T0 + 10_000));
    expect(store.get('a')).toMatchObject({ status: 'failed', error: 'later news' });
    // An older list (fetched before) does not take them back.
    const known = store.get('a')!;
    expect(withSummaryUrls(known, item('a', T0))).toBe(known);
    const { thumbnails: _t, variants: _v, ...old } = item('a', T0 + 20_000);
    expect(withSummaryUrls(known, old)).toBe(known);
  });
});

describe('a conditional PUT answered 412', () => {
  const ticket: UploadTicket = {
    image_id: 'img-1',
    upload: { method: 'PUT', url: 'http://s3.test/o', headers: { 'if-none-match': '*' }, expires_at: '' },
    upload_post: { method: 'POST', url: 'http://s3.test', fields: {}, expires_at: '' },
    status_url: '',
  };
  afterEach(() => {
    FakeXhr.all = [];
  });

  it('is "already stored", not an error; a POST answered 412 still is one', async () => {
    const put = sendToStorage(ticket, new Blob(['x']), { xhr: () => new FakeXhr() });
    FakeXhr.all[0]!.respond(412, '<Error><Code>PreconditionFailed</Code></Error>');
    await expect(put).resolves.toBe('already_stored');
    const post = sendToStorage(ticket, new Blob(['x']), { method: 'post', xhr: () => new FakeXhr() });
    FakeXhr.all[1]!.respond(412, '<Error><Code>PreconditionFailed</Code></Error>');
    await expect(post).rejects.toMatchObject({ code: 'upload_failed', status: 412 });
  });

  it('leaves the image the page shows as it was and fetches its state', async () => {
    const store = new GalleryStore();
    store.applyView(completedView('img-1', (n) => `http://s3.test/known/${n}`));
    const fetch = vi.fn(async (url: string | URL | Request) => {
      const u = String(url);
      if (u.endsWith('/api/images/upload')) return new Response(JSON.stringify(ticket), { status: 201 });
      if (u.endsWith('/api/images/img-1')) return new Response(JSON.stringify(completedView('img-1', (n) => `http://s3.test/fresh/${n}`)), { status: 200 });
      return new Response('{}', { status: 404 });
    });
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch, xhr: () => new FakeXhr(), hasher: async () => 'ab'.repeat(32) });
    let hook!: ReturnType<typeof useUpload>;
    function Uploader() {
      hook = useUpload();
      return null;
    }
    dom.render(
      <SafelightProvider client={client} store={store}>
        <Uploader />
      </SafelightProvider>,
    );
    let done!: Promise<void>;
    act(() => {
      done = hook.upload([new File(['same'], 'cat.jpg', { type: 'image/jpeg' })]);
    });
    await until(() => expect(FakeXhr.all).toHaveLength(1));
    // A new link to the image the page shows completed: it stays completed, not "pending".
    expect(store.get('img-1')?.status).toBe('completed');
    await act(async () => {
      FakeXhr.all[0]!.respond(412);
      await done;
    });
    expect(hook.uploads[0]).toMatchObject({ imageId: 'img-1', error: null, progress: { phase: 'stored' } });
    await until(() => expect(store.get('img-1')?.sources.thumbnails?.['300.jpg']?.url).toBe('http://s3.test/fresh/300.jpg'));
    expect(store.get('img-1')).toMatchObject({ status: 'completed', upload: null, pending: null });
  });
});

describe('renewal before links end', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(T0 + 2_000);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Advances the clock, letting React commit and promises settle. */
  const advance = (ms: number) => act(async () => void (await vi.advanceTimersByTimeAsync(ms)));

  function Gallery() {
    const { images } = useImages();
    return (
      <>
        {images.map((i: ImageState) => (
          <ResponsiveImage key={i.id} image={i} size={300} alt={i.id} />
        ))}
      </>
    );
  }

  /** An API whose list and views carry the links of the current window; counts each route. */
  function api() {
    const calls = { list: 0, views: 0 };
    const fetch = vi.fn(async (url: string | URL | Request) => {
      const u = String(url);
      const now = Date.now();
      if (u.endsWith('/api/images?limit=100')) {
        calls.list += 1;
        return new Response(JSON.stringify({ items: [item('a', now), item('b', now)], next_cursor: null }), { status: 200 });
      }
      const view = /\/api\/images\/(\w+)$/.exec(u)?.[1];
      if (view) {
        calls.views += 1;
        return new Response(JSON.stringify(completedView(view, (n) => link(view, n, now))), { status: 200 });
      }
      return new Response('{}', { status: 404 });
    });
    return { calls, client: createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch }) };
  }

  const srcsets = () => [...dom.container.querySelectorAll('img')].map((i) => i.getAttribute('srcset') ?? '');

  it('renews every image with one list request, past the window and before any URL ends; no image asks alone', async () => {
    const { calls, client } = api();
    dom.render(
      <SafelightProvider client={client}>
        <Gallery />
      </SafelightProvider>,
    );
    await advance(0);
    // The list's maps give each card its srcset at once: no per-image GET.
    expect(srcsets()).toHaveLength(2);
    expect(srcsets().every((s) => s.includes('2048.jpg') && s.includes(amzDate(T0)))).toBe(true);
    expect(calls).toEqual({ list: 1, views: 0 });

    await advance(9_500); // T0 + 11.5 s: a new window began, the links still have 8.5 s to live
    expect(calls).toEqual({ list: 1, views: 0 });
    await advance(1_000); // T0 + 12.5 s: 60 % of their life
    expect(calls).toEqual({ list: 2, views: 0 });
    expect(srcsets().every((s) => s.includes(amzDate(T0 + 10_000)) && !s.includes(amzDate(T0)))).toBe(true);
    await advance(10_000); // past the old links' end and each image's own renewal time
    expect(calls).toEqual({ list: 3, views: 0 });
  });

  it('renews an image on its own when the list does not, before its URLs end', async () => {
    const { calls, client } = api();
    const store = new GalleryStore();
    store.load([item('a', Date.now())]);
    dom.render(
      <SafelightProvider client={client} store={store}>
        <ResponsiveImage image={store.get('a')!} size={300} alt="a" />
      </SafelightProvider>,
    );
    const rerender = () =>
      dom.render(
        <SafelightProvider client={client} store={store}>
          <ResponsiveImage image={store.get('a')!} size={300} alt="a" />
        </SafelightProvider>,
      );
    store.subscribe(rerender);
    await advance(13_500); // T0 + 15.5 s
    expect(calls.views).toBe(0);
    await advance(1_000); // T0 + 16.5 s: 80 % of the links' life, 3.5 s before they end
    expect(calls.views).toBe(1);
    expect(srcsets()[0]).toContain(amzDate(T0 + 10_000));
    // The fresh links move the next renewal on: no loop.
    await advance(5_000);
    expect(calls.views).toBe(1);
  });

  it('loads later pages on demand and renews every page fetched, each with one request', async () => {
    const calls: string[] = [];
    const fetch = vi.fn(async (url: string | URL | Request) => {
      const u = new URL(String(url));
      const now = Date.now();
      const cursor = u.searchParams.get('cursor');
      calls.push(cursor ?? 'first');
      const ids = cursor ? Array.from({ length: 50 }, (_, i) => `m${i}`) : Array.from({ length: 100 }, (_, i) => `f${i}`);
      return new Response(JSON.stringify({ items: ids.map((id) => item(id, now)), next_cursor: cursor ? null : 'c1' }), { status: 200 });
    });
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch });
    let shown!: ReturnType<typeof useImages>;
    function Count() {
      shown = useImages();
      return null;
    }
    dom.render(
      <SafelightProvider client={client}>
        <Count />
      </SafelightProvider>,
    );
    await advance(0);
    expect([shown.images.length, shown.hasMore]).toEqual([100, true]);
    await act(async () => {
      await Promise.all([shown.loadMore(), shown.loadMore()]);
    });
    expect([shown.images.length, shown.hasMore, calls]).toEqual([150, false, ['first', 'c1']]);
    await act(async () => {
      await shown.loadMore();
    });
    expect(calls).toEqual(['first', 'c1']);
    await advance(10_500); // T0 + 12.5 s: 60 % of the links' life
    expect(calls.sort()).toEqual(['c1', 'c1', 'first', 'first']);
    const renewed = shown.images.find((i) => i.id === 'm7')!;
    expect(renewed.sources.thumbnails?.['300.jpg']?.url).toBe(link('m7', '300.jpg', T0 + 10_000));
  });
});
