/** The seed's hooks on top of `@safelight/client`. */

import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import {
  SafelightError,
  imageCandidates,
  type ConnectionState,
  type ImageSources,
  type ImageState,
  type Notice,
  type UploadProgress,
} from '@safelight/client';
import { useGalleryStore, useSafelightClient } from './context.js';

/** Notices that bring new derivatives, after which the image's URLs are fetched. */
const BRINGS_FILES = new Set<Notice['type']>(['image:processing:thumbnail_complete', 'image:processing:complete']);

export interface ProcessingUpdates {
  /** The WebSocket's state. */
  connection: ConnectionState;
  /** The last notice applied. */
  lastNotice: Notice | null;
}

/**
 * Live notices: subscribes to the page's one WebSocket, applies every notice to the image store
 * (and fetches fresh URLs when derivatives appear), and calls `onNotice` for each (e.g. toasts).
 */
export function useProcessingUpdates(onNotice?: (notice: Notice, info: { replayed: boolean }) => void): ProcessingUpdates {
  const client = useSafelightClient();
  const store = useGalleryStore();
  const [connection, setConnection] = useState<ConnectionState>(client.realtime.state);
  const [lastNotice, setLastNotice] = useState<Notice | null>(null);
  const handler = useRef(onNotice);
  handler.current = onNotice;

  useEffect(() => {
    return client.subscribe({
      state: setConnection,
      notice: (notice, info) => {
        store.applyNotice(notice);
        setLastNotice(notice);
        handler.current?.(notice, info);
        if (BRINGS_FILES.has(notice.type)) {
          client.get(notice.image_id).then(
            (view) => store.applyView(view),
            () => {
              /* the URLs come with the next notice or list; the badge is already right */
            },
          );
        }
      },
    });
  }, [client, store]);

  return { connection, lastNotice };
}

/** The page's images, newest first, kept live by [useProcessingUpdates]. */
export function useImages(): { images: ImageState[]; loading: boolean; error: SafelightError | null; reload: () => Promise<void> } {
  const client = useSafelightClient();
  const store = useGalleryStore();
  const images = useSyncExternalStore(
    useCallback((fn: () => void) => store.subscribe(fn), [store]),
    () => store.images,
    () => store.images,
  );
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<SafelightError | null>(null);
  const reload = useCallback(async () => {
    setLoading(true);
    try {
      const page = await client.list({ limit: 100 });
      store.load(page.items);
      setError(null);
      // A list item has no failure reason: fetch the full view of failed images.
      for (const item of page.items) {
        if (item.processing_status === 'failed') {
          client.get(item.image_id).then(
            (view) => store.applyView(view),
            () => {
              /* the badge still says failed; the reason comes with a retry's notice */
            },
          );
        }
      }
    } catch (e) {
      setError(e instanceof SafelightError ? e : new SafelightError('unknown', String(e)));
    } finally {
      setLoading(false);
    }
  }, [client, store]);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { images, loading, error, reload };
}

/** One file being uploaded by this page. */
export interface UploadEntry {
  key: string;
  file: File;
  imageId: string | null;
  progress: UploadProgress;
  error: SafelightError | null;
}

/**
 * Uploads many files with per-file progress. Each image appears in the store as `pending` as soon
 * as the API created its row (optimistic: before the bytes are sent, before any notice).
 */
export function useUpload(opts: { onError?: (file: File, error: SafelightError) => void; onStored?: (file: File, imageId: string) => void } = {}) {
  const client = useSafelightClient();
  const store = useGalleryStore();
  const [entries, setEntries] = useState<UploadEntry[]>([]);
  const serial = useRef(0);
  const cbs = useRef(opts);
  cbs.current = opts;

  const patch = useCallback((key: string, change: Partial<UploadEntry>) => {
    setEntries((list) => list.map((e) => (e.key === key ? { ...e, ...change } : e)));
  }, []);

  const upload = useCallback(
    async (files: Iterable<File>) => {
      const batch = [...files].map((file) => ({
        key: `u${++serial.current}`,
        file,
        imageId: null as string | null,
        progress: { phase: 'requesting', loaded: 0, total: file.size, fraction: 0 } as UploadProgress,
        error: null as SafelightError | null,
      }));
      setEntries((list) => [...batch, ...list]);
      await Promise.all(
        batch.map(async (entry) => {
          let imageId: string | null = null;
          try {
            await client.upload(entry.file, {
              onTicket: (ticket) => {
                imageId = ticket.image_id;
                patch(entry.key, { imageId });
                store.put({
                  id: ticket.image_id,
                  filename: entry.file.name,
                  status: 'pending',
                  thumbnailStatus: 'pending',
                  variantStatus: 'pending',
                  error: null,
                  errorKind: null,
                  retryable: true,
                  attempts: 0,
                  placeholder: null,
                  sources: {},
                  lastSeq: 0,
                  updatedAt: null,
                  createdAt: new Date().toISOString(),
                  upload: entry.progress,
                  pending: 'upload',
                });
              },
              onProgress: (progress) => {
                patch(entry.key, { progress });
                if (imageId) store.update(imageId, (img) => ({ ...img, upload: progress.phase === 'stored' ? null : progress }));
              },
            });
            if (imageId) cbs.current.onStored?.(entry.file, imageId);
          } catch (e) {
            const error = e instanceof SafelightError ? e : new SafelightError('unknown', String(e));
            patch(entry.key, { error });
            if (imageId) {
              // The row exists but the bytes never arrived: show it failed here (the server will
              // expire the row). Undo the optimistic "pending".
              store.update(imageId, (img) => ({
                ...img,
                status: 'failed',
                error: `upload failed: ${error.message}`,
                errorKind: 'rejected',
                retryable: false,
                upload: null,
                pending: null,
              }));
            }
            cbs.current.onError?.(entry.file, error);
          }
        }),
      );
    },
    [client, store, patch],
  );

  const clearFinished = useCallback(() => setEntries((list) => list.filter((e) => e.progress.phase !== 'stored' && !e.error)), []);

  return { upload, uploads: entries, clearFinished };
}

/**
 * Retries a failed image. Optimistic: the badge turns `pending` at once and goes back to
 * `failed` (with the refusal as the reason) if the API refuses.
 */
export function useRetryProcessing(opts: { onError?: (imageId: string, error: SafelightError) => void } = {}) {
  const client = useSafelightClient();
  const store = useGalleryStore();
  const [inFlight, setInFlight] = useState<ReadonlySet<string>>(new Set());
  const cbs = useRef(opts);
  cbs.current = opts;

  const retry = useCallback(
    async (imageId: string): Promise<boolean> => {
      const before = store.get(imageId);
      setInFlight((s) => new Set(s).add(imageId));
      store.update(imageId, (img) => ({ ...img, status: 'pending', error: null, pending: 'retry' }));
      try {
        await client.retry(imageId);
        store.update(imageId, (img) => (img.pending === 'retry' ? { ...img, pending: null } : img));
        return true;
      } catch (e) {
        const error = e instanceof SafelightError ? e : new SafelightError('unknown', String(e));
        if (before) store.update(imageId, (img) => (img.pending === 'retry' ? before : img));
        cbs.current.onError?.(imageId, error);
        return false;
      } finally {
        setInFlight((s) => {
          const next = new Set(s);
          next.delete(imageId);
          return next;
        });
      }
    },
    [client, store],
  );

  return { retry, isRetrying: (id: string) => inFlight.has(id) };
}

/**
 * What `<img>` should show for `image` at `size` px: the best derivative, falling back along the
 * candidates (other derivatives, the original, the thumbhash placeholder) when one fails to load.
 */
export function useImageFallback(image: ImageSources, size: number) {
  const candidates = useMemo(() => imageCandidates(image, size), [image, size]);
  const signature = candidates.map((c) => c.url).join('\n');
  const [failed, setFailed] = useState<ReadonlySet<string>>(new Set());
  useEffect(() => setFailed(new Set()), [signature]);
  const current = candidates.find((c) => !failed.has(c.url)) ?? null;
  const onError = useCallback(() => {
    if (current) setFailed((s) => new Set(s).add(current.url));
  }, [current]);
  return { src: current?.url ?? null, kind: current?.kind ?? null, onError };
}
