// @vitest-environment happy-dom
import { act } from 'react';
import { describe, expect, it, vi } from 'vitest';
import { GalleryStore, createClient, type DuplicateUpload, type FileHasher, type ImageState, type UploadProgress } from '@safelight/client';
import { SafelightProvider, useUpload } from '@safelight/react';
import { FakeXhr, completedView } from './fakes';
import { setupTestRoot, until } from './dom';

const dom = setupTestRoot();

/** What the server answers an owner's second upload of the same bytes (200, not 201). */
const duplicate: DuplicateUpload = { image_id: 'old-1', duplicate_of: 'old-1', status: 'completed', status_url: '/api/images/old-1/processing-status' };

/** An API that answers the presign with `answer` and `GET /api/images/old-1` with its view. */
function api(answer: unknown, status = 200) {
  return vi.fn(async (url: string | URL | Request, _init?: RequestInit) => {
    const u = String(url);
    if (u.endsWith('/api/images/upload')) return new Response(JSON.stringify(answer), { status });
    if (u.endsWith('/api/images/old-1')) return new Response(JSON.stringify(completedView('old-1', (n) => `http://s3.test/old-1/${n}`)), { status: 200 });
    return new Response('{"error":{"code":"not_found","message":"no"}}', { status: 404 });
  });
}

function clientWith(fetch: typeof globalThis.fetch, hasher: FileHasher = async () => 'ab'.repeat(32)) {
  FakeXhr.all = [];
  return createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch, xhr: () => new FakeXhr(), hasher });
}

const photo = () => new File(['the same bytes'], 'cat.jpg', { type: 'image/jpeg' });

describe('client.upload of bytes the owner already has', () => {
  it('sends the hash and, answered with duplicate_of, sends no bytes and resolves with the existing image', async () => {
    const fetch = api(duplicate);
    const client = clientWith(fetch);
    const phases: UploadProgress['phase'][] = [];
    const onTicket = vi.fn();
    const result = await client.upload(photo(), { onProgress: (p) => phases.push(p.phase), onTicket });
    expect(JSON.parse(String(fetch.mock.calls[0]![1]?.body))).toEqual({ filename: 'cat.jpg', content_type: 'image/jpeg', size: 14, sha256: 'ab'.repeat(32) });
    expect(result).toMatchObject({ imageId: 'old-1', ticket: null, duplicate });
    expect(phases).toEqual(['requesting', 'stored']);
    expect(onTicket).not.toHaveBeenCalled();
    expect(FakeXhr.all).toHaveLength(0);
  });

  it('asks without sha256 when the hash cannot be computed', async () => {
    const fetch = api(duplicate);
    await clientWith(fetch, async () => null).upload(photo());
    expect(JSON.parse(String(fetch.mock.calls[0]![1]?.body))).not.toHaveProperty('sha256');
  });
});

function Uploader({ onReady }: { onReady: (u: ReturnType<typeof useUpload>) => void }) {
  onReady(useUpload());
  return null;
}

describe('useUpload of bytes the owner already has', () => {
  it('shows the existing image completed at once, with no upload and no notice, then its previews', async () => {
    const store = new GalleryStore();
    const fetch = api(duplicate);
    const firstSeen: ImageState[] = [];
    store.subscribe(() => {
      const image = store.get('old-1');
      if (image && firstSeen.length === 0) firstSeen.push(image);
    });
    let hook!: ReturnType<typeof useUpload>;
    dom.render(
      <SafelightProvider client={clientWith(fetch)} store={store}>
        <Uploader onReady={(u) => (hook = u)} />
      </SafelightProvider>,
    );
    await act(async () => {
      await hook.upload([photo()]);
    });
    // Completed from the answer alone, before its view: no socket exists here, no bytes were sent.
    expect(firstSeen[0]).toMatchObject({ status: 'completed', thumbnailStatus: 'completed', variantStatus: 'completed', filename: 'cat.jpg', sources: {} });
    expect(FakeXhr.all).toHaveLength(0);
    expect(hook.uploads[0]).toMatchObject({ imageId: 'old-1', duplicateOf: 'old-1', error: null, progress: { phase: 'stored' } });
    await until(() => expect(store.get('old-1')?.sources.thumbnails?.['300.jpg']?.url).toBe('http://s3.test/old-1/300.jpg'));
    expect(store.get('old-1')?.filename).toBe('old-1.jpg');
  });

  it('keeps what the page already knows of the existing image', async () => {
    const store = new GalleryStore();
    store.applyView(completedView('old-1', (n) => `http://s3.test/known/${n}`));
    const before = store.get('old-1');
    let hook!: ReturnType<typeof useUpload>;
    dom.render(
      <SafelightProvider client={clientWith(api(duplicate))} store={store}>
        <Uploader onReady={(u) => (hook = u)} />
      </SafelightProvider>,
    );
    await act(async () => {
      await hook.upload([photo()]);
    });
    expect(store.images.filter((i) => i.id === 'old-1')).toHaveLength(1);
    expect(store.get('old-1')?.status).toBe(before?.status);
  });

  it('still uploads new bytes: a 201 ticket is sent to storage', async () => {
    const ticket = {
      image_id: 'new-1',
      upload: { method: 'PUT', url: 'http://s3.test/o', headers: { 'x-amz-checksum-sha256': 'q83vEjRWeJA=' }, expires_at: '' },
      upload_post: { method: 'POST', url: 'http://s3.test', fields: {}, expires_at: '' },
      status_url: '',
    };
    const store = new GalleryStore();
    let hook!: ReturnType<typeof useUpload>;
    dom.render(
      <SafelightProvider client={clientWith(api(ticket, 201))} store={store}>
        <Uploader onReady={(u) => (hook = u)} />
      </SafelightProvider>,
    );
    let done!: Promise<void>;
    act(() => {
      done = hook.upload([photo()]);
    });
    await until(() => expect(FakeXhr.all).toHaveLength(1));
    expect(store.get('new-1')).toMatchObject({ status: 'pending', pending: 'upload' });
    expect(FakeXhr.all[0]!.headers).toEqual({ 'x-amz-checksum-sha256': 'q83vEjRWeJA=' });
    await act(async () => {
      FakeXhr.all[0]!.respond(200);
      await done;
    });
    expect(hook.uploads[0]).toMatchObject({ imageId: 'new-1', duplicateOf: null });
  });
});
