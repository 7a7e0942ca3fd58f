/** What the provider holds for the hooks below it, and the one fetch of an image's full view. */

import type { GalleryStore, ImageView, SafelightClient } from '@safelight/client';
import type { QueryCache } from './query-cache.js';

/** The provider's client, image store and query cache. */
export interface SafelightEnv {
  client: SafelightClient;
  store: GalleryStore;
  cache: QueryCache;
}

/** The cache key of an image's full view. */
export function imageViewKey(imageId: string): string {
  return `image:${imageId}`;
}

/**
 * Fetches `GET /api/images/{id}` (fresh URLs, the failure's reason) into the store. `fresh`: the
 * image changed since a fetch in flight began, so one more runs after it instead of joining it.
 */
export function refreshImage(env: SafelightEnv, imageId: string, opts: { fresh?: boolean } = {}): Promise<ImageView> {
  return env.cache.fetch(
    imageViewKey(imageId),
    async (signal) => {
      const view = await env.client.get(imageId, { signal });
      env.store.applyView(view);
      return view;
    },
    { fresh: opts.fresh },
  );
}
