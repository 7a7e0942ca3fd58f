/**
 * `useImageFallback`: what a `<picture>` shows for an image, walking down the candidates when one
 * fails to load, and renewing the image's URLs when one has expired.
 */

import { useCallback, useMemo, useRef, useState } from 'react';
import { imageCandidates, responsiveSet, urlExpired, type ImageChoice, type ImageSources, type PictureSource } from '@safelight/client';
import { useOptionalSafelight } from './context.js';
import { refreshImage } from './env.js';

export interface ImageFallbackOptions {
  /** The image's id: under a provider, a URL that fails to load fetches the image's URLs again. */
  imageId?: string;
  /** The slot's width for the browser's choice in `srcset` (CSS `sizes`); `{size}px` by default. */
  sizes?: string;
}

/** What to render: `<picture>{sources}<img src srcSet sizes onError/></picture>`. */
export interface ImageFallback {
  /** The best single URL (the `<img>`'s `src`); `null` when there is nothing to show yet. */
  src: string | null;
  kind: ImageChoice['kind'] | null;
  /** The `<img>`'s `srcset` (JPEG) while derivatives are shown; `undefined` otherwise. */
  srcSet: string | undefined;
  sizes: string | undefined;
  /** The `<picture>`'s `<source>`s, best format first (AVIF, WebP); empty unless derivatives are shown. */
  sources: PictureSource[];
  /** For `<img onError>`: drops what failed (the event's `currentSrc`, else `src`). Takes any
   * event (or none): only an `<img>`'s `currentSrc` is read from it. */
  onError: (event?: unknown) => void;
}

const NONE: ReadonlySet<string> = new Set();
/** At most one renewal of an image's URLs this often per component (a file that fails while its
 * URL is valid is not renewed in a loop). */
const RENEW_EVERY_MS = 60_000;

/**
 * What to show for `image` at `size` px (long edge): its derivatives as a responsive `<picture>`,
 * falling back along the candidates (other derivatives, the original, the thumbhash placeholder)
 * when one fails to load. A failure under a provider with `imageId` renews the image's URLs (at
 * most once a minute); when the URL that failed has expired, every expired candidate is dropped
 * at once, so the placeholder shows until the fresh URLs arrive, then the best derivative again.
 */
export function useImageFallback(image: ImageSources, size: number, opts: ImageFallbackOptions = {}): ImageFallback {
  const { imageId, sizes = `${size}px` } = opts;
  const env = useOptionalSafelight();
  const candidates = useMemo(() => imageCandidates(image, size), [image, size]);
  const signature = candidates.map((c) => c.url).join('\n');
  // The URLs that failed, for this set of candidates only (a new set starts clean).
  const [failedFor, setFailedFor] = useState<{ signature: string; urls: ReadonlySet<string> }>({ signature, urls: NONE });
  const failed = failedFor.signature === signature ? failedFor.urls : NONE;
  const current = candidates.find((c) => !failed.has(c.url)) ?? null;
  const responsive = useMemo(() => (current?.kind === 'derivative' ? responsiveSet(image, failed) : null), [current, image, failed]);
  const lastRenewal = useRef(Number.NEGATIVE_INFINITY);

  const onError = useCallback(
    (event?: unknown) => {
      if (!current) return;
      const shown = (event as { currentTarget?: { currentSrc?: unknown } } | undefined)?.currentTarget?.currentSrc;
      const broken = typeof shown === 'string' && candidates.some((c) => c.url === shown) ? shown : current.url;
      let drop = [broken];
      const now = Date.now();
      if (env && imageId && /^https?:/.test(broken) && now - lastRenewal.current >= RENEW_EVERY_MS) {
        lastRenewal.current = now;
        // Signed together, expired together: skip them all rather than try each.
        if (urlExpired(broken, now)) drop = candidates.filter((c) => urlExpired(c.url, now)).map((c) => c.url);
        refreshImage(env, imageId, { fresh: true }).catch(() => {
          /* the walk goes on to the placeholder */
        });
      }
      setFailedFor((s) => ({ signature, urls: new Set([...(s.signature === signature ? s.urls : NONE), ...drop]) }));
    },
    [current, candidates, signature, env, imageId],
  );

  return {
    src: current?.url ?? null,
    kind: current?.kind ?? null,
    srcSet: responsive?.srcset || undefined,
    sizes: responsive ? sizes : undefined,
    sources: responsive?.sources ?? [],
    onError,
  };
}
