/** `useImages`: the page's images from `list()`, kept live by the provider's feed. */

import { useCallback, useEffect, useMemo, useSyncExternalStore } from 'react';
import { sourcesRenewAt, type ImageList, type ImageState, type SafelightError } from '@safelight/client';
import { useSafelight } from './context.js';
import { refreshImage } from './env.js';
import { useQuery } from './use-query.js';

/** The cache key of the first page of the list. */
const LIST_KEY = 'images:list:100';

/**
 * How far into its URLs' life the list is fetched again, renewing every image of the page with one
 * request: past the link window in which the API hands out the same URLs, before each image would
 * renew its own (`IMAGE_RENEW_FRACTION`).
 */
export const LIST_RENEW_FRACTION = 0.6;

/** The longest delay `setTimeout` takes (about 24.8 days). */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** When the first URL of the page ends its [LIST_RENEW_FRACTION]; `null` when none says. */
function listRenewAt(page: ImageList | undefined): number | null {
  let at: number | null = null;
  for (const item of page?.items ?? []) {
    const t = sourcesRenewAt(item, LIST_RENEW_FRACTION);
    if (t !== null && (at === null || t < at)) at = t;
  }
  return at;
}

/**
 * The page's images, newest first, kept live by [useProcessingUpdates]. When the list carries
 * derivative URLs it is fetched again before they end, and the store takes the fresh ones.
 */
export function useImages(): { images: ImageState[]; loading: boolean; error: SafelightError | null; reload: () => Promise<void> } {
  const env = useSafelight();
  const { client, store } = env;
  const images = useSyncExternalStore(
    useCallback((onChange: () => void) => store.subscribe(onChange), [store]),
    () => store.images,
    () => store.images,
  );
  const list = useQuery(LIST_KEY, async (signal) => {
    const page = await client.list({ limit: 100, signal });
    store.load(page.items);
    // A list item has no failure reason: fetch the full view of failed images (once: a renewal
    // of the list finds the reason known).
    for (const item of page.items) {
      if (item.processing_status === 'failed' && !store.get(item.image_id)?.error) {
        refreshImage(env, item.image_id).catch(() => {
          /* the badge still says failed; the reason comes with a retry's notice */
        });
      }
    }
    return page;
  });

  const { refetch } = list;
  const renewAt = useMemo(() => listRenewAt(list.data), [list.data]);
  useEffect(() => {
    if (renewAt === null) return;
    const timer = setTimeout(() => void refetch(), Math.min(MAX_DELAY_MS, Math.max(0, renewAt - Date.now())));
    return () => clearTimeout(timer);
  }, [refetch, renewAt]);

  return { images, loading: list.status === 'pending' || list.fetching, error: list.error, reload: list.refetch };
}
