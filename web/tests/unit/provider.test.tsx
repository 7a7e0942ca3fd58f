// @vitest-environment happy-dom
import { act, StrictMode } from 'react';
import { describe, expect, it, vi } from 'vitest';
import { GalleryStore, createClient, type Notice, type RetryAccepted } from '@safelight/client';
import { SafelightProvider, useProcessingUpdates, useQuery, useRetryProcessing } from '@safelight/react';
import { FakeSocket, notice } from './fakes';
import { until, setupTestRoot } from './dom';

const dom = setupTestRoot();
let serial = 0;

/** A client whose socket is a [FakeSocket] (its own URL: the page's socket is shared per URL). */
function testClient(fetch: typeof globalThis.fetch = vi.fn()) {
  return createClient({
    apiUrl: 'http://api.test',
    wsUrl: `ws://live.test/${++serial}`,
    getToken: () => 't',
    fetch,
    realtime: { socket: (url) => new FakeSocket(url) },
  });
}

function Data({ fetcher, id }: { fetcher: (signal: AbortSignal) => Promise<string>; id: string }) {
  const q = useQuery('answer', fetcher);
  return <p data-testid={id}>{`${q.status}:${q.data ?? ''}`}</p>;
}

/** A fetcher that never answers and keeps each call's signal. */
function neverAnswering() {
  const signals: AbortSignal[] = [];
  const fetcher = (signal: AbortSignal) => {
    signals.push(signal);
    return new Promise<string>(() => {});
  };
  return { signals, fetcher };
}

describe('useQuery', () => {
  it('makes one request for two components asking for the same key, and shows both the answer', async () => {
    let answer!: (v: string) => void;
    const fetcher = vi.fn(() => new Promise<string>((r) => (answer = r)));
    dom.render(
      <SafelightProvider client={testClient()}>
        <Data fetcher={fetcher} id="a" />
        <Data fetcher={fetcher} id="b" />
      </SafelightProvider>,
    );
    await until(() => expect(fetcher).toHaveBeenCalledTimes(1));
    await act(async () => answer('42'));
    const text = (id: string) => dom.container.querySelector(`[data-testid=${id}]`)!.textContent;
    expect([text('a'), text('b')]).toEqual(['success:42', 'success:42']);
    expect(fetcher).toHaveBeenCalledTimes(1);
  });

  it('aborts the request when the component waiting for it unmounts', async () => {
    const { signals, fetcher } = neverAnswering();
    dom.render(
      <SafelightProvider client={testClient()}>
        <Data fetcher={fetcher} id="a" />
      </SafelightProvider>,
    );
    await until(() => expect(signals).toHaveLength(1));
    dom.unmount();
    await until(() => expect(signals[0]!.aborted).toBe(true));
  });

  it("keeps the first request through StrictMode's unmount and remount", async () => {
    const { signals, fetcher } = neverAnswering();
    dom.render(
      <StrictMode>
        <SafelightProvider client={testClient()}>
          <Data fetcher={fetcher} id="a" />
        </SafelightProvider>
      </StrictMode>,
    );
    await until(() => expect(signals.length).toBeGreaterThan(0));
    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(false);
  });
});

function Live({ name, heard }: { name: string; heard: string[] }) {
  const { connection } = useProcessingUpdates((n: Notice) => heard.push(`${name}:${n.seq}`));
  return <p data-testid={`conn-${name}`}>{connection}</p>;
}

describe('the live feed', () => {
  it('opens one socket for any number of components, applies each notice once, and closes when the last leaves', async () => {
    FakeSocket.reset();
    const fetch = vi.fn(async (_url: string | URL | Request) => new Response('{"error":{"code":"not_found","message":"gone"}}', { status: 404 }));
    const client = testClient(fetch);
    const store = new GalleryStore();
    const applied = vi.spyOn(store, 'applyNotice');
    const heard: string[] = [];
    dom.render(
      <SafelightProvider client={client} store={store}>
        <Live name="a" heard={heard} />
        <Live name="b" heard={heard} />
      </SafelightProvider>,
    );
    await until(() => expect(FakeSocket.all).toHaveLength(1));
    const socket = FakeSocket.last();
    act(() => socket.open());
    expect(dom.container.querySelector('[data-testid=conn-b]')!.textContent).toBe('open');
    act(() => socket.receive(notice(7, 'img-9', 'image:processing:thumbnail_complete')));
    expect(applied).toHaveBeenCalledTimes(1);
    expect(store.get('img-9')?.status).toBe('processing');
    expect(heard.sort()).toEqual(['a:7', 'b:7']);
    // New derivatives: the image's URLs are fetched once, not once per component.
    await until(() => expect(fetch).toHaveBeenCalledTimes(1));
    expect(String(fetch.mock.calls[0]![0])).toBe('http://api.test/api/images/img-9');
    dom.unmount();
    expect(socket.closedWith).toBe(1000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('opens no socket when nothing asks for live notices', async () => {
    FakeSocket.reset();
    dom.render(
      <SafelightProvider client={testClient()}>
        <Data fetcher={async () => 'x'} id="a" />
      </SafelightProvider>,
    );
    await until(() => expect(dom.container.textContent).toBe('success:x'));
    expect(FakeSocket.all).toHaveLength(0);
  });
});

function Retrier({ onReady }: { onReady: (api: ReturnType<typeof useRetryProcessing>) => void }) {
  const api = useRetryProcessing();
  onReady(api);
  return null;
}

describe('useRetryProcessing', () => {
  it('says which images are being retried while their requests run', async () => {
    const client = testClient();
    const answers: Array<() => void> = [];
    client.retry = vi.fn(() => new Promise<RetryAccepted>((r) => answers.push(() => r({ image_id: 'a', processing_status: 'pending', requeued: [] }))));
    let api!: ReturnType<typeof useRetryProcessing>;
    dom.render(
      <SafelightProvider client={client}>
        <Retrier onReady={(a) => (api = a)} />
      </SafelightProvider>,
    );
    let done!: Promise<boolean>;
    act(() => {
      done = api.retry('a');
    });
    expect([api.isRetrying('a'), api.isRetrying('b')]).toEqual([true, false]);
    await act(async () => {
      answers[0]!();
      await done;
    });
    expect(api.isRetrying('a')).toBe(false);
  });
});
