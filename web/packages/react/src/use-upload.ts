/** `useUpload`: many files uploaded with per-file progress, each image shown as soon as its row exists. */

import { useCallback, useRef, useState } from 'react';
import { asSafelightError, newImage, type DuplicateUpload, type SafelightError, type UploadProgress } from '@safelight/client';
import { useSafelight } from './context.js';
import { refreshImage, type SafelightEnv } from './env.js';
import { useLatest } from './use-latest.js';

/** One file being uploaded by this page. */
export interface UploadEntry {
  key: string;
  file: File;
  imageId: string | null;
  progress: UploadProgress;
  error: SafelightError | null;
  /** The image these bytes already were (nothing was uploaded). */
  duplicateOf: string | null;
}

/**
 * The image the API says these bytes already are: shown at once with the status the answer gives
 * (no notice will come for it), then completed with its full view (URLs, its own name).
 */
function showExisting(env: SafelightEnv, duplicate: DuplicateUpload, sent: File): void {
  const id = duplicate.duplicate_of;
  if (!env.store.get(id)) {
    const done = duplicate.status === 'completed' ? 'completed' : 'pending';
    env.store.put(newImage(id, new Date().toISOString(), { filename: sent.name, status: duplicate.status, thumbnailStatus: done, variantStatus: done }));
  }
  refreshImage(env, id).catch(() => {
    /* the card shows the status; its preview comes with the next list */
  });
}

/**
 * Uploads many files with per-file progress. Each image appears in the store as `pending` as soon
 * as the API created its row (optimistic: before the bytes are sent, before any notice).
 */
export function useUpload(opts: { onError?: (file: File, error: SafelightError) => void; onStored?: (file: File, imageId: string) => void } = {}) {
  const env = useSafelight();
  const { client, store } = env;
  const [entries, setEntries] = useState<UploadEntry[]>([]);
  const serial = useRef(0);
  const callbacks = useLatest(opts);

  const patch = useCallback((key: string, change: Partial<UploadEntry>) => {
    setEntries((list) => list.map((e) => (e.key === key ? { ...e, ...change } : e)));
  }, []);

  const send = useCallback(
    async (entry: UploadEntry) => {
      let imageId: string | null = null;
      try {
        const result = await client.upload(entry.file, {
          onTicket: (ticket, sent) => {
            imageId = ticket.image_id;
            patch(entry.key, { imageId });
            // A new link to an image the page already shows (its bytes were still awaited) keeps
            // what the page knows of it; only a new image starts as pending.
            if (store.get(imageId)) store.update(imageId, (img) => ({ ...img, filename: img.filename ?? sent.name, upload: entry.progress }));
            else store.put(newImage(imageId, new Date().toISOString(), { filename: sent.name, upload: entry.progress, pending: 'upload' }));
          },
          onProgress: (progress) => {
            patch(entry.key, { progress });
            if (imageId) store.update(imageId, (img) => ({ ...img, upload: progress.phase === 'stored' ? null : progress }));
          },
        });
        if (result.duplicate) {
          imageId = result.imageId;
          patch(entry.key, { imageId, duplicateOf: imageId });
          showExisting(env, result.duplicate, result.file);
        } else if (result.alreadyStored) {
          // Its bytes arrived before this send: its notices may have gone by already, so its
          // state comes from the API.
          store.update(result.imageId, (img) => ({ ...img, upload: null, pending: img.pending === 'upload' ? null : img.pending }));
          refreshImage(env, result.imageId, { fresh: true }).catch(() => {
            /* the badge moves with the next notice or list */
          });
        }
        if (imageId) callbacks.current.onStored?.(entry.file, imageId);
      } catch (e) {
        const error = asSafelightError(e);
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
        callbacks.current.onError?.(entry.file, error);
      }
    },
    [env, client, store, patch, callbacks],
  );

  const upload = useCallback(
    async (files: Iterable<File>) => {
      const batch: UploadEntry[] = [...files].map((file) => ({
        key: `u${++serial.current}`,
        file,
        imageId: null,
        progress: { phase: 'requesting', loaded: 0, total: file.size, fraction: 0 },
        error: null,
        duplicateOf: null,
      }));
      setEntries((list) => [...batch, ...list]);
      await Promise.all(batch.map(send));
    },
    [send],
  );

  const clearFinished = useCallback(() => setEntries((list) => list.filter((e) => e.progress.phase !== 'stored' && !e.error)), []);

  return { upload, uploads: entries, clearFinished };
}
