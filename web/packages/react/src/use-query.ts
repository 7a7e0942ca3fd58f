/** `useQuery`: a keyed fetch through the provider's cache. */

import { useCallback, useEffect, useRef, useSyncExternalStore } from 'react';
import type { SafelightError } from '@safelight/client';
import { useQueryCache } from './context.js';
import type { Fetcher, QueryStatus } from './query-cache.js';
import { useLatest } from './use-latest.js';

/** What a query gives its component. */
export interface QueryResult<T> {
  status: QueryStatus;
  data: T | undefined;
  error: SafelightError | null;
  /** A fetch is in flight (the first one or a refetch). */
  fetching: boolean;
  /** Fetches again (joining a fetch in flight); resolves when it ended, whatever its outcome. */
  refetch: () => Promise<void>;
}

/**
 * The data under `key`, fetched when the component mounts (or the key changes) and shared with
 * every other component asking for the same key while a fetch runs. The fetch is aborted when the
 * last component waiting for it unmounts.
 */
export function useQuery<T>(key: string, fetcher: Fetcher<T>): QueryResult<T> {
  const cache = useQueryCache();
  const latest = useLatest(fetcher);
  // The mounted component's interest, aborted on unmount; refetches join it.
  const interest = useRef<AbortController | null>(null);
  const snapshot = useSyncExternalStore(
    useCallback((onChange: () => void) => cache.subscribe(key, onChange), [cache, key]),
    () => cache.snapshot<T>(key),
    () => cache.snapshot<T>(key),
  );

  useEffect(() => {
    const controller = new AbortController();
    interest.current = controller;
    cache.fetch(key, (signal) => latest.current(signal), { signal: controller.signal }).catch(() => {});
    return () => controller.abort();
  }, [cache, key, latest]);

  const refetch = useCallback(
    () =>
      cache.fetch(key, (signal) => latest.current(signal), { signal: interest.current?.signal }).then(
        () => undefined,
        () => undefined,
      ),
    [cache, key, latest],
  );

  return { status: snapshot.status, data: snapshot.data, error: snapshot.error, fetching: snapshot.fetching, refetch };
}
