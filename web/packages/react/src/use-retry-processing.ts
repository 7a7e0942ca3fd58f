/** `useRetryProcessing`: the retry of a failed image, shown at once and undone if refused. */

import { useCallback } from 'react';
import type { SafelightError } from '@safelight/client';
import { useSafelight } from './context.js';
import { useMutation } from './use-mutation.js';

/**
 * Retries a failed image. Optimistic: the badge turns `pending` at once and goes back to
 * `failed` (with the refusal as the reason) if the API refuses.
 */
export function useRetryProcessing(opts: { onError?: (imageId: string, error: SafelightError) => void } = {}) {
  const { client, store } = useSafelight();
  const { mutate, pending } = useMutation(
    async (imageId: string) => {
      const before = store.get(imageId);
      store.update(imageId, (img) => ({ ...img, status: 'pending', error: null, pending: 'retry' }));
      try {
        const accepted = await client.retry(imageId);
        store.update(imageId, (img) => (img.pending === 'retry' ? { ...img, pending: null } : img));
        return accepted;
      } catch (e) {
        if (before) store.update(imageId, (img) => (img.pending === 'retry' ? before : img));
        throw e;
      }
    },
    { onError: (error, imageId) => opts.onError?.(imageId, error) },
  );
  const retry = useCallback(async (imageId: string) => (await mutate(imageId)).ok, [mutate]);
  const isRetrying = useCallback((imageId: string) => pending.includes(imageId), [pending]);
  return { retry, isRetrying };
}
