// @vitest-environment happy-dom
import { act } from 'react';
import { describe, expect, it, vi } from 'vitest';
import { GalleryStore, createClient, type UploadTicket } from '@safelight/client';
import { SafelightProvider, useUpload } from '@safelight/react';
import { FakeXhr } from './fakes';
import { setupTestRoot, until } from './dom';

const dom = setupTestRoot();

const ticket: UploadTicket = {
  image_id: 'img-9',
  upload: { method: 'PUT', url: 'http://s3.test/b/originals/u/img-9', headers: { 'content-type': 'image/jpeg' }, expires_at: '2026-12-07T15:15:00Z' },
  upload_post: { method: 'POST', url: 'http://s3.test/b', fields: { key: 'originals/u/img-9' }, expires_at: '2026-12-07T15:15:00Z' },
  status_url: '/api/images/img-9/processing-status',
};

function Uploader({ onReady }: { onReady: (u: ReturnType<typeof useUpload>) => void }) {
  onReady(useUpload());
  return null;
}

describe('useUpload of an owner over a limit', () => {
  it('shows the upload waiting with the seconds the server asked for, then uploads it', async () => {
    const answers = [
      new Response('{"error":{"code":"too_many_pending_uploads","message":"too many uploads are waiting"}}', {
        status: 429,
        headers: { 'retry-after': '9' },
      }),
      new Response(JSON.stringify(ticket), { status: 201 }),
    ];
    const fetch = vi.fn(async () => answers.shift()!);
    let wake!: () => void;
    const sleep = vi.fn(() => new Promise<void>((resolve) => (wake = resolve)));
    FakeXhr.all = [];
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch, sleep, xhr: () => new FakeXhr(), hasher: async () => null });
    let hook!: ReturnType<typeof useUpload>;
    dom.render(
      <SafelightProvider client={client} store={new GalleryStore()}>
        <Uploader onReady={(u) => (hook = u)} />
      </SafelightProvider>,
    );
    let done!: Promise<void>;
    act(() => {
      done = hook.upload([new File(['x'], 'cat.jpg', { type: 'image/jpeg' })]);
    });
    await until(() => expect(hook.uploads[0]?.progress).toMatchObject({ phase: 'waiting', retryInSecs: 9 }));
    expect(hook.uploads[0]?.error).toBeNull();
    expect(fetch).toHaveBeenCalledTimes(1);
    await act(async () => wake());
    await until(() => expect(FakeXhr.all).toHaveLength(1));
    await act(async () => {
      FakeXhr.all[0]!.respond(200);
      await done;
    });
    expect(hook.uploads[0]).toMatchObject({ imageId: 'img-9', error: null, progress: { phase: 'stored' } });
    expect(fetch).toHaveBeenCalledTimes(2);
  });
});
