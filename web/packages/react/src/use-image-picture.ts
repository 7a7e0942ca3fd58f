/** `useImagePicture`: the `<picture>` of an image of the store, its derivative set fetched when missing. */

import { useEffect, useMemo } from 'react';
import { hasDerivativeUrls, type ImageState } from '@safelight/client';
import { useSafelight } from './context.js';
import { refreshImage } from './env.js';
import { useImageFallback, type ImageFallback } from './use-image-fallback.js';

/** The image fields the picture needs. */
export type PictureImage = Pick<ImageState, 'id' | 'status' | 'sources' | 'placeholder'>;

/**
 * [useImageFallback] for an image of the store, renewing its URLs when they expire. A completed
 * image the page knows only from `list()` (one preview URL, no widths) has its full view fetched
 * once, so `srcset` can offer every derivative; images that complete while the page is open get
 * theirs with the notice.
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
  const sources = useMemo(() => ({ ...image.sources, placeholder: image.placeholder ?? image.sources.placeholder }), [image.sources, image.placeholder]);
  return useImageFallback(sources, size, { imageId: image.id, sizes });
}
