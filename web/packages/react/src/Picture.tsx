/** `<picture>` from [useImageFallback]: AVIF and WebP sources first, the JPEG `<img>` last. */

import type { ImgHTMLAttributes } from 'react';
import type { ImageFallback } from './use-image-fallback.js';

export interface PictureProps extends Omit<ImgHTMLAttributes<HTMLImageElement>, 'src' | 'srcSet' | 'sizes' | 'onError'> {
  fallback: ImageFallback;
  alt: string;
}

/** Nothing when there is nothing to show yet. */
export function Picture({ fallback, alt, ...img }: PictureProps) {
  if (!fallback.src) return null;
  return (
    <picture>
      {fallback.sources.map((s) => (
        <source key={s.type} type={s.type} srcSet={s.srcset} sizes={fallback.sizes} />
      ))}
      <img {...img} src={fallback.src} srcSet={fallback.srcSet} sizes={fallback.sizes} alt={alt} onError={fallback.onError} />
    </picture>
  );
}
