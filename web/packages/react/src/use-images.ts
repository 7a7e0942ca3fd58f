/** `useImages`: the page's images from `list()`, page by page, kept live by the provider's feed. */

import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import { asSafelightError, sourcesRenewAt, type ImageList, type ImageState, type SafelightError } from '@safelight/client';
import { useSafelight } from './context.js';
import { refreshImage, type SafelightEnv } from './env.js';
import { useQuery } from './use-query.js';

/** Items per page (the API's largest page). */
const PAGE = 100;
/** The cache key of the first page of the list; a later page's adds `:{cursor}`. */
const LIST_KEY = `images:list:${PAGE}`;

/**
 * How far into its URLs' life the list is fetched again, renewing every image of the page with one
 * request per page: past the link window in which the API hands out the same URLs, before each
 * image would renew its own (`IMAGE_RENEW_FRACTION`).
 */
export const LIST_RENEW_FRACTION = 0.6;

/** The longest delay `setTimeout` takes (about 24.8 days). */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** What [useImages] gives. */
export interface Images {
  /** Every image the page knows, newest first. */
  images: ImageState[];
  /** The first page is being fetched (or fetched again). */
  loading: boolean;
  error: SafelightError | null;
  reload: () => Promise<void>;
  /** The list goes on past the pages fetched so far. */
  hasMore: boolean;
  /** Fetches the next page (nothing when there is none or one is being fetched). */
  loadMore: () => Promise<void>;
  loadingMore: boolean;
}

/** When the first URL of these pages reaches [LIST_RENEW_FRACTION] of its life; `null` when none says. */
function pagesRenewAt(pages: Array<ImageList | undefined>): number | null {
  let at: number | null = null;
  for (const page of pages) {
    for (const item of page?.items ?? []) {
      const t = sourcesRenewAt(item, LIST_RENEW_FRACTION);
      if (t !== null && (at === null || t < at)) at = t;
    }
  }
  return at;
}

/** Fetches one page into the store (the first when `cursor` is null). */
async function fetchPage(env: SafelightEnv, cursor: string | null, signal: AbortSignal): Promise<ImageList> {
  const page = await env.client.list({ limit: PAGE, cursor, signal });
  env.store.load(page.items);
  // A list item has no failure reason: fetch the full view of failed images (once: a renewal
  // of the list finds the reason known).
  for (const item of page.items) {
    if (item.processing_status === 'failed' && !env.store.get(item.image_id)?.error) {
      refreshImage(env, item.image_id).catch(() => {
        /* the badge still says failed; the reason comes with a retry's notice */
      });
    }
  }
  return page;
}

/**
 * The page's images, newest first, kept live by [useProcessingUpdates]: the first page of the list
 * at once, later ones on `loadMore()`. While the list carries derivative URLs, every page fetched
 * is fetched again before they end, and the store takes the fresh ones.
 */
export function useImages(): Images {
  const env = useSafelight();
  const { store, cache } = env;
  const images = useSyncExternalStore(
    useCallback((onChange: () => void) => store.subscribe(onChange), [store]),
    () => store.images,
    () => store.images,
  );
  const list = useQuery(LIST_KEY, (signal) => fetchPage(env, null, signal));

  // Pages after the first, each with the cursor it was asked with.
  const [more, setMore] = useState<Array<{ cursor: string; page: ImageList }>>([]);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<SafelightError | null>(null);
  const nextCursor = (more.at(-1)?.page ?? list.data)?.next_cursor ?? null;

  const morePage = useCallback(
    (cursor: string) => cache.fetch(`${LIST_KEY}:${cursor}`, (signal) => fetchPage(env, cursor, signal)),
    [cache, env],
  );
  const keep = useCallback((cursor: string, page: ImageList) => {
    setMore((pages) =>
      pages.some((p) => p.cursor === cursor) ? pages.map((p) => (p.cursor === cursor ? { cursor, page } : p)) : [...pages, { cursor, page }],
    );
  }, []);

  const loadMore = useCallback(async () => {
    if (!nextCursor || loadingMore) return;
    setLoadingMore(true);
    try {
      keep(nextCursor, await morePage(nextCursor));
      setMoreError(null);
    } catch (e) {
      setMoreError(asSafelightError(e));
    } finally {
      setLoadingMore(false);
    }
  }, [nextCursor, loadingMore, keep, morePage]);

  const { refetch } = list;
  const renewAt = useMemo(() => pagesRenewAt([list.data, ...more.map((p) => p.page)]), [list.data, more]);
  const cursors = useMemo(() => more.map((p) => p.cursor), [more]);
  useEffect(() => {
    if (renewAt === null) return;
    const timer = setTimeout(
      () => {
        void refetch();
        for (const cursor of cursors) {
          morePage(cursor).then(
            (page) => keep(cursor, page),
            () => {
              /* its images renew on their own (useImagePicture) */
            },
          );
        }
      },
      Math.min(MAX_DELAY_MS, Math.max(0, renewAt - Date.now())),
    );
    return () => clearTimeout(timer);
  }, [refetch, morePage, keep, cursors, renewAt]);

  return {
    images,
    loading: list.status === 'pending' || list.fetching,
    error: list.error ?? moreError,
    reload: list.refetch,
    hasMore: nextCursor !== null,
    loadMore,
    loadingMore,
  };
}
