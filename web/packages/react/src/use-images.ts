/** `useImages`: the page's images from `list()`, kept live by the provider's feed. */

import { useCallback, useSyncExternalStore } from 'react';
import type { ImageState, SafelightError } from '@safelight/client';
import { useSafelight } from './context.js';
import { refreshImage } from './env.js';
import { useQuery } from './use-query.js';

/** The cache key of the first page of the list. */
const LIST_KEY = 'images:list:100';

/** The page's images, newest first, kept live by [useProcessingUpdates]. */
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
    // A list item has no failure reason: fetch the full view of failed images.
    for (const item of page.items) {
      if (item.processing_status === 'failed') {
        refreshImage(env, item.image_id).catch(() => {
          /* the badge still says failed; the reason comes with a retry's notice */
        });
      }
    }
    return page;
  });
  return { images, loading: list.status === 'pending' || list.fetching, error: list.error, reload: list.refetch };
}
