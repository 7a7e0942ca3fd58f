/** An image of the store as a responsive `<picture>`, with its fallbacks and URL renewal. */

import { Picture, type PictureProps } from './Picture.js';
import { useImagePicture, type PictureImage } from './use-image-picture.js';

export interface ResponsiveImageProps extends Omit<PictureProps, 'fallback'> {
  image: PictureImage;
  /** The slot's long edge in CSS px (for the single-URL fallbacks). */
  size: number;
  /** The slot's width for the browser's `srcset` choice (CSS `sizes`); `{size}px` by default. */
  sizes?: string;
}

/** `<picture>` with every derivative in `srcset`, or the placeholder; nothing when neither exists. */
export function ResponsiveImage({ image, size, sizes, ...picture }: ResponsiveImageProps) {
  return <Picture fallback={useImagePicture(image, size, sizes)} {...picture} />;
}
