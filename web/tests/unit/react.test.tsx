// @vitest-environment happy-dom
import { act } from 'react';
import { describe, expect, it, vi } from 'vitest';
import { GalleryStore, SafelightError, createClient, type ImageState, type SafelightClient } from '@safelight/client';
import { ImageProcessingStatus, SafelightProvider, useImageFallback, useImages, useRetryProcessing } from '@safelight/react';

import { setupTestRoot } from './dom';

const dom = setupTestRoot();
const render = dom.render;

const failed: ImageState = {
  id: 'img-1', filename: 'cat.jpg', status: 'failed', thumbnailStatus: 'failed', variantStatus: 'completed',
  error: 'the jpeg file is corrupt', errorKind: 'permanent', retryable: false, attempts: 1, placeholder: null,
  sources: {}, lastSeq: 3, updatedAt: '2026-11-30T12:00:00Z', createdAt: '2026-11-30T11:59:00Z', upload: null, pending: null,
};

describe('<ImageProcessingStatus>', () => {
  it('says failed in words, gives the reason and offers Retry', () => {
    const onRetry = vi.fn();
    render(<ImageProcessingStatus image={failed} onRetry={onRetry} />);
    const badge = dom.container.querySelector('[role=status]')!;
    expect(badge.textContent).toContain('Failed');
    expect(badge.getAttribute('aria-label')).toBe('cat.jpg: Failed');
    expect(dom.container.textContent).toContain('the jpeg file is corrupt');
    const button = dom.container.querySelector('button')!;
    expect(button.getAttribute('aria-label')).toBe('Retry processing cat.jpg');
    act(() => button.click());
    expect(onRetry).toHaveBeenCalledWith('img-1');
  });

  it('shows upload progress, then the status, with no Retry unless failed', () => {
    render(<ImageProcessingStatus image={{ ...failed, status: 'pending', error: null, upload: { phase: 'uploading', loaded: 2, total: 5, fraction: 0.4 } }} onRetry={() => {}} />);
    expect(dom.container.textContent).toContain('Uploading 40%');
    expect(dom.container.querySelector('button')).toBeNull();
    render(<ImageProcessingStatus image={{ ...failed, status: 'completed', error: null }} onRetry={() => {}} />);
    expect(dom.container.querySelector('[role=status]')!.textContent).toContain('Completed');
    expect(dom.container.querySelector('button')).toBeNull();
  });
});

function Fallback({ sources }: { sources: Parameters<typeof useImageFallback>[0] }) {
  const { src, kind, onError } = useImageFallback(sources, 300);
  return (
    <button type="button" data-src={src ?? ''} data-kind={kind ?? ''} onClick={onError}>
      fail
    </button>
  );
}

describe('useImageFallback', () => {
  it('walks from the best derivative to the next one, then the original, when images fail to load', () => {
    const sources = {
      thumbnails: { '300': { url: 't300', width: 300, height: 200 }, '600': { url: 't600', width: 600, height: 400 } },
      original_url: 'orig',
    };
    render(<Fallback sources={sources} />);
    const b = () => dom.container.querySelector('button')!;
    expect(b().dataset.src).toBe('t300');
    act(() => b().click());
    expect(b().dataset.src).toBe('t600');
    act(() => b().click());
    expect([b().dataset.src, b().dataset.kind]).toEqual(['orig', 'original']);
    act(() => b().click());
    expect(b().dataset.src).toBe('');
  });
});

function RetryProbe({ onReady }: { onReady: (retry: (id: string) => Promise<boolean>) => void }) {
  const { retry } = useRetryProcessing();
  onReady(retry);
  return null;
}

function clientWith(retry: () => Promise<unknown>): SafelightClient {
  const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch: vi.fn() });
  client.retry = retry as SafelightClient['retry'];
  return client;
}

describe('useRetryProcessing', () => {
  it('turns the badge pending at once and keeps it when the API accepts', async () => {
    const store = new GalleryStore();
    store.put(failed);
    let accept!: () => void;
    const client = clientWith(() => new Promise<void>((r) => (accept = r)));
    let retry!: (id: string) => Promise<boolean>;
    render(
      <SafelightProvider client={client} store={store}>
        <RetryProbe onReady={(r) => (retry = r)} />
      </SafelightProvider>,
    );
    let done!: Promise<boolean>;
    act(() => {
      done = retry('img-1');
    });
    expect(store.get('img-1')).toMatchObject({ status: 'pending', error: null, pending: 'retry' });
    await act(async () => {
      accept();
      await done;
    });
    expect(store.get('img-1')).toMatchObject({ status: 'pending', pending: null });
  });

  it('puts the failure back when the API refuses', async () => {
    const store = new GalleryStore();
    store.put(failed);
    const client = clientWith(() => Promise.reject(new SafelightError('not_failed', 'image is not failed', 409)));
    let retry!: (id: string) => Promise<boolean>;
    render(
      <SafelightProvider client={client} store={store}>
        <RetryProbe onReady={(r) => (retry = r)} />
      </SafelightProvider>,
    );
    let ok = true;
    await act(async () => {
      ok = await retry('img-1');
    });
    expect(ok).toBe(false);
    expect(store.get('img-1')).toEqual(failed);
  });
});

function List() {
  const { images } = useImages();
  return <ul>{images.map((i) => <li key={i.id} data-error={i.error ?? ''}>{i.filename}:{i.status}</li>)}</ul>;
}

describe('useImages', () => {
  it('lists the images and fetches the reason of a failed one', async () => {
    const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200 });
    const fetch = vi.fn(async (url: string | URL | Request) => {
      const u = String(url);
      if (u.endsWith('/api/images?limit=100')) {
        return json({
          items: [
            { image_id: 'a', filename: 'a.jpg', content_type: 'image/jpeg', processing_status: 'failed', placeholder: null, created_at: '2026-11-30T12:00:00Z', thumbnail_url: null },
            { image_id: 'b', filename: 'b.jpg', content_type: 'image/jpeg', processing_status: 'completed', placeholder: null, created_at: '2026-11-30T11:00:00Z', thumbnail_url: 'tb' },
          ],
          next_cursor: null,
        });
      }
      if (u.endsWith('/api/images/a')) {
        return json({
          image_id: 'a', filename: 'a.jpg', content_type: 'image/jpeg', byte_size: 1, width: null, height: null, upload_state: 'stored',
          processing_status: 'failed', thumbnail_status: 'failed', variant_status: 'failed', processing_error: 'corrupt', processing_attempts: 1,
          processing_started_at: null, processing_completed_at: null, error_kind: 'permanent', placeholder: null,
          created_at: '2026-11-30T12:00:00Z', updated_at: '2026-11-30T12:00:01Z', original_url: 'o', thumbnails: {}, variants: {},
        });
      }
      return new Response('{"error":{"code":"not_found","message":"no"}}', { status: 404 });
    });
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch });
    render(
      <SafelightProvider client={client}>
        <List />
      </SafelightProvider>,
    );
    await act(async () => {
      await vi.waitFor(() => expect(dom.container.querySelector('li[data-error=corrupt]')).not.toBeNull());
    });
    expect([...dom.container.querySelectorAll('li')].map((li) => li.textContent)).toEqual(['a.jpg:failed', 'b.jpg:completed']);
  });
});
