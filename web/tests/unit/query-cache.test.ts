import { describe, expect, it, vi } from 'vitest';
import { SafelightError } from '@safelight/client';
import { QueryCache } from '@safelight/react';

/** A fetcher whose answers the test hands out one by one; it records each call's signal. */
function scripted<T>() {
  const calls: Array<{ signal: AbortSignal; resolve: (v: T) => void; reject: (e: unknown) => void }> = [];
  const fetcher = vi.fn(
    (signal: AbortSignal) =>
      new Promise<T>((resolve, reject) => {
        calls.push({ signal, resolve, reject });
      }),
  );
  return { fetcher, calls };
}

const tick = () => new Promise<void>((r) => setTimeout(r, 0));

describe('QueryCache', () => {
  it('gives callers that ask while a fetch runs that same fetch', async () => {
    const cache = new QueryCache();
    const { fetcher, calls } = scripted<string>();
    const a = cache.fetch('k', fetcher);
    const b = cache.fetch('k', fetcher);
    await tick();
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(cache.snapshot('k')).toMatchObject({ status: 'pending', fetching: true });
    calls[0]!.resolve('v');
    expect(await Promise.all([a, b])).toEqual(['v', 'v']);
    expect(cache.snapshot('k')).toEqual({ status: 'success', data: 'v', error: null, fetching: false });
  });

  it('aborts the fetch only once every caller that can cancel has cancelled', async () => {
    const cache = new QueryCache();
    const { fetcher, calls } = scripted<string>();
    const one = new AbortController();
    const two = new AbortController();
    const first = cache.fetch('k', fetcher, { signal: one.signal });
    void cache.fetch('k', fetcher, { signal: two.signal }).catch(() => {});
    await tick();
    one.abort();
    await tick();
    expect(calls[0]!.signal.aborted).toBe(false);
    two.abort();
    await tick();
    expect(calls[0]!.signal.aborted).toBe(true);
    expect(cache.snapshot('k')).toMatchObject({ status: 'pending', fetching: false, error: null });
    calls[0]!.reject(new DOMException('aborted', 'AbortError'));
    await expect(first).rejects.toMatchObject({ code: 'aborted' });
    // The abandoned fetch left no error behind, and the next caller starts a new fetch.
    expect(cache.snapshot('k').error).toBeNull();
    void cache.fetch('k', fetcher);
    await tick();
    expect(fetcher).toHaveBeenCalledTimes(2);
  });

  it('keeps a fetch running for a caller that cannot cancel', async () => {
    const cache = new QueryCache();
    const { fetcher, calls } = scripted<string>();
    const ctl = new AbortController();
    void cache.fetch('k', fetcher, { signal: ctl.signal });
    const pinned = cache.fetch('k', fetcher);
    await tick();
    ctl.abort();
    await tick();
    expect(calls[0]!.signal.aborted).toBe(false);
    calls[0]!.resolve('v');
    expect(await pinned).toBe('v');
  });

  it('lets a caller who leaves and comes back at once (a StrictMode remount) keep the fetch', async () => {
    const cache = new QueryCache();
    const { fetcher, calls } = scripted<string>();
    const first = new AbortController();
    void cache.fetch('k', fetcher, { signal: first.signal }).catch(() => {});
    first.abort();
    void cache.fetch('k', fetcher, { signal: new AbortController().signal });
    await tick();
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(calls[0]!.signal.aborted).toBe(false);
  });

  it('runs one more fetch after the one in flight for fresh requests, however many', async () => {
    const cache = new QueryCache();
    const { fetcher, calls } = scripted<string>();
    const stale = cache.fetch('k', fetcher);
    await tick();
    const fresh1 = cache.fetch('k', fetcher, { fresh: true });
    const fresh2 = cache.fetch('k', fetcher, { fresh: true });
    await tick();
    expect(fetcher).toHaveBeenCalledTimes(1);
    calls[0]!.resolve('before the change');
    expect(await stale).toBe('before the change');
    await vi.waitFor(() => expect(fetcher).toHaveBeenCalledTimes(2));
    calls[1]!.resolve('after the change');
    expect(await Promise.all([fresh1, fresh2])).toEqual(['after the change', 'after the change']);
    expect(cache.snapshot('k').data).toBe('after the change');
  });

  it('keeps the last data when a refetch fails, and clears the error on the next success', async () => {
    const cache = new QueryCache();
    const { fetcher, calls } = scripted<string>();
    const done = (p: Promise<unknown>) => p.catch(() => {});
    const a = done(cache.fetch('k', fetcher));
    await tick();
    calls[0]!.resolve('v1');
    await a;
    const b = done(cache.fetch('k', fetcher));
    await tick();
    calls[1]!.reject(new SafelightError('network', 'no answer'));
    await b;
    expect(cache.snapshot('k')).toMatchObject({ status: 'error', data: 'v1', error: { code: 'network' } });
    const c = done(cache.fetch('k', fetcher));
    await tick();
    calls[2]!.resolve('v2');
    await c;
    expect(cache.snapshot('k')).toEqual({ status: 'success', data: 'v2', error: null, fetching: false });
  });

  it('tells subscribers of the key, and only them, about each change', async () => {
    const cache = new QueryCache();
    const { fetcher, calls } = scripted<string>();
    const onK = vi.fn();
    const onOther = vi.fn();
    const off = cache.subscribe('k', onK);
    cache.subscribe('other', onOther);
    const p = cache.fetch('k', fetcher);
    await tick();
    calls[0]!.resolve('v');
    await p;
    expect(onK).toHaveBeenCalledTimes(2); // fetching, then the answer
    expect(onOther).not.toHaveBeenCalled();
    off();
    void cache.fetch('k', fetcher);
    expect(onK).toHaveBeenCalledTimes(2);
  });
});
