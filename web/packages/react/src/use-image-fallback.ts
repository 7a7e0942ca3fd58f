/** `useImageFallback`: what `<img>` shows, walking down the candidates when one fails to load. */

import { useCallback, useMemo, useState } from 'react';
import { imageCandidates, type ImageSources } from '@safelight/client';

const NONE: ReadonlySet<string> = new Set();

/**
 * What `<img>` should show for `image` at `size` px: the best derivative, falling back along the
 * candidates (other derivatives, the original, the thumbhash placeholder) when one fails to load.
 */
export function useImageFallback(image: ImageSources, size: number) {
  const candidates = useMemo(() => imageCandidates(image, size), [image, size]);
  const signature = candidates.map((c) => c.url).join('\n');
  // The URLs that failed, for this set of candidates only (a new set starts clean).
  const [failedFor, setFailedFor] = useState<{ signature: string; urls: ReadonlySet<string> }>({ signature, urls: NONE });
  const failed = failedFor.signature === signature ? failedFor.urls : NONE;
  const current = candidates.find((c) => !failed.has(c.url)) ?? null;
  const onError = useCallback(() => {
    if (!current) return;
    setFailedFor((s) => ({ signature, urls: new Set(s.signature === signature ? s.urls : NONE).add(current.url) }));
  }, [current, signature]);
  return { src: current?.url ?? null, kind: current?.kind ?? null, onError };
}
