/**
 * `useImagePicture`: the `<picture>` of an image of the store, its derivative set fetched when
 * missing and its URLs renewed before they end.
 */

import { useEffect, useMemo } from 'react';
import { hasDerivativeUrls, sourcesRenewAt, type ImageState } from '@safelight/client';
import { useSafelight } from './context.js';
import { refreshImage } from './env.js';
import { useImageFallback, type ImageFallback } from './use-image-fallback.js';

/** The image fields the picture needs. */
export type PictureImage = Pick<ImageState, 'id' | 'status' | 'sources' | 'placeholder'>;

/**
 * How far into its URLs' life an image renews them itself: after the list's renewal
 * (`useImages`, one request for the whole page), which normally comes first and moves
 * this time on; well before they end.
 */
export const IMAGE_RENEW_FRACTION = 0.8;

/** The longest delay `setTimeout` takes (about 24.8 days). */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * [useImageFallback] for an image of the store. A completed image the page knows only from an
 * older server's `list()` (one preview URL, no widths) has its full view fetched once, so `srcset`
 * can offer every derivative; list items that carry the derivative maps need no fetch, and images
 * that complete while the page is open get theirs with the notice. Before its URLs end the image's
 * view is fetched again, so a size the browser picks later (a wider window, a zoom) is never asked
 * at an expired URL: Chromium fires no `error` event when such a change's load fails (the image
 * just turns broken), so [useImageFallback]'s renewal on error cannot catch that case; it still
 * catches first loads that fail.
 */
export function useImagePicture(image: PictureImage, size: number, sizes?: string): ImageFallback {
  const env = useSafelight();
  const missing = image.status === 'completed' && !hasDerivativeUrls(image.sources);
  useEffect(() => {
    if (!missing) return;
    refreshImage(env, image.id).catch(() => {
      /* the list's preview stays */
    });
  }, [env, image.id, missing]);

  // The same time for the same URLs: a renewal that brings them back unchanged does not loop.
  const renewAt = useMemo(() => sourcesRenewAt(image.sources, IMAGE_RENEW_FRACTION), [image.sources]);
  useEffect(() => {
    if (renewAt === null) return;
    const timer = setTimeout(
      () => {
        refreshImage(env, image.id, { fresh: true }).catch(() => {
          /* a failed load renews them again (useImageFallback) */
        });
      },
      Math.min(MAX_DELAY_MS, Math.max(0, renewAt - Date.now())),
    );
    return () => clearTimeout(timer);
  }, [env, image.id, renewAt]);

  const sources = useMemo(() => ({ ...image.sources, placeholder: image.placeholder ?? image.sources.placeholder }), [image.sources, image.placeholder]);
  return useImageFallback(sources, size, { imageId: image.id, sizes });
}
