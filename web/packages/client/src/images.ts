/**
 * Picking what to show for an image at a given size: the best existing derivative, else the
 * original, else the thumbhash placeholder (the seed's `useImageFallback`).
 */

import { thumbHashToDataURL } from 'thumbhash';

/** A derivative as any answer describes it (a URL only from `GET /api/images/{id}`). */
export interface DerivativeSource {
  url?: string;
  width: number;
  height: number;
  bytes?: number;
  /** `jpeg`, `webp`, `avif`, … (else read from the name's extension). */
  format?: string;
}

/** What an image offers to show; any of `GET /api/images/{id}`, a list item or a local state. */
export interface ImageSources {
  thumbnails?: Record<string, DerivativeSource>;
  variants?: Record<string, DerivativeSource>;
  /** The list's preview (its smallest thumbnail), size unknown. */
  thumbnail_url?: string | null;
  original_url?: string | null;
  placeholder?: string | null;
}

/** One thing that can be shown. */
export interface ImageChoice {
  kind: 'derivative' | 'original' | 'placeholder';
  url: string;
  /** Long edge in pixels when known. */
  edge: number | null;
  /** The derivative's name (`300`, `1280.webp`, …). */
  name?: string;
}

/**
 * Everything that can be shown for `image` at `size` px (long edge), best first:
 * derivatives at least as large as `size`, smallest first (fewest bytes on ties); then smaller
 * ones, largest first; then the list preview, the original, and the placeholder.
 */
export function imageCandidates(image: ImageSources, size: number): ImageChoice[] {
  const derivatives: Array<ImageChoice & { bytes: number }> = [];
  for (const group of [image.thumbnails, image.variants]) {
    for (const [name, d] of Object.entries(group ?? {})) {
      if (d.url) derivatives.push({ kind: 'derivative', url: d.url, edge: Math.max(d.width, d.height), name, bytes: d.bytes ?? 0 });
    }
  }
  const covering = derivatives
    .filter((d) => (d.edge ?? 0) >= size)
    .sort((a, b) => (a.edge ?? 0) - (b.edge ?? 0) || a.bytes - b.bytes);
  const smaller = derivatives
    .filter((d) => (d.edge ?? 0) < size)
    .sort((a, b) => (b.edge ?? 0) - (a.edge ?? 0) || a.bytes - b.bytes);
  const out: ImageChoice[] = [...covering, ...smaller].map(({ bytes: _bytes, ...c }) => c);
  if (image.thumbnail_url && !out.some((c) => c.url === image.thumbnail_url)) {
    out.push({ kind: 'derivative', url: image.thumbnail_url, edge: null });
  }
  if (image.original_url) out.push({ kind: 'original', url: image.original_url, edge: null });
  const placeholder = placeholderUrl(image.placeholder);
  if (placeholder) out.push({ kind: 'placeholder', url: placeholder, edge: null });
  return out;
}

/** The best thing to show for `image` at `size` px, or `null` when there is nothing yet. */
export function imageUrl(image: ImageSources, size: number): ImageChoice | null {
  return imageCandidates(image, size)[0] ?? null;
}

const placeholderCache = new Map<string, string | null>();

/** The thumbhash (base64) as a PNG data URL; `null` when absent or malformed. */
export function placeholderUrl(thumbhash: string | null | undefined): string | null {
  if (!thumbhash) return null;
  const cached = placeholderCache.get(thumbhash);
  if (cached !== undefined) return cached;
  let url: string | null = null;
  try {
    const bin = atob(thumbhash);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    if (bytes.length >= 5) url = thumbHashToDataURL(bytes);
  } catch {
    url = null;
  }
  if (placeholderCache.size > 500) placeholderCache.clear();
  placeholderCache.set(thumbhash, url);
  return url;
}
