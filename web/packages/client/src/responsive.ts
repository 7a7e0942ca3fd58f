/**
 * `srcset` for `<picture>`: from an image's derivative set, one `<source>` per modern format the
 * set holds (AVIF first when a deployment produces it, then WebP), and the `<img>`'s own `srcset`
 * in the formats every browser decodes (JPEG last). The browser picks the width from `sizes` and
 * its device-pixel ratio.
 *
 * A source lists, for every width the set holds, the best file its type lets it use: the WebP
 * source offers the 1280 and 2048 WebP variants and the JPEG thumbnails at the widths that have no
 * WebP file, so a 300 px slot never falls on a 1280 px file because it is the only WebP one.
 */

import type { ImageSources } from './images.js';

/** One `<source>` of a `<picture>`. */
export interface PictureSource {
  /** `image/avif` or `image/webp`. */
  type: string;
  srcset: string;
}

/** What a `<picture>` needs; `sizes` is the caller's (the slot's width). */
export interface ResponsiveSet {
  /** Most capable format first; empty when the set holds only universal formats. */
  sources: PictureSource[];
  /** The `<img>`'s `srcset`: JPEG (PNG, GIF) only; empty when the set holds none. */
  srcset: string;
}

/** Formats in order of preference; each `<source>` may use its own and any later one. */
const MODERN: Array<{ format: string; type: string }> = [
  { format: 'avif', type: 'image/avif' },
  { format: 'webp', type: 'image/webp' },
];
const UNIVERSAL = new Set(['jpeg', 'png', 'gif']);
const RANK: Record<string, number> = { avif: 0, webp: 1, jpeg: 2, png: 3, gif: 4 };

interface File {
  url: string;
  width: number;
  bytes: number;
  format: string;
}

/** `jpeg` for `300.jpg`'s `format` or name, `webp`, `avif`, …; `null` when neither says. */
export function derivativeFormat(name: string, format: string | undefined): string | null {
  const f = (format ?? name.split('.').pop() ?? '').toLowerCase();
  if (f === 'jpg' || f === 'jpeg') return 'jpeg';
  return f in RANK ? f : null;
}

function files(image: ImageSources, exclude: ReadonlySet<string>): File[] {
  const out: File[] = [];
  for (const group of [image.thumbnails, image.variants]) {
    for (const [name, d] of Object.entries(group ?? {})) {
      const format = derivativeFormat(name, d.format);
      if (d.url && format && d.width > 0 && !exclude.has(d.url)) out.push({ url: d.url, width: d.width, bytes: d.bytes ?? 0, format });
    }
  }
  return out;
}

/** Between two files of one width: the lighter, or the better format when the sizes do not tell. */
function better(a: File, b: File): boolean {
  if (a.bytes && b.bytes && a.bytes !== b.bytes) return a.bytes < b.bytes;
  return RANK[a.format]! < RANK[b.format]!;
}

/** Per width, the best allowed file, as `url {w}w`, narrowest first. */
function srcsetOf(all: File[], allowed: (format: string) => boolean): string {
  const best = new Map<number, File>();
  for (const f of all) {
    const held = best.get(f.width);
    if (allowed(f.format) && (!held || better(f, held))) best.set(f.width, f);
  }
  return [...best.values()]
    .sort((a, b) => a.width - b.width)
    .map((f) => `${f.url} ${f.width}w`)
    .join(', ');
}

/**
 * The `<picture>` of `image`'s derivatives that have a URL (a notice names keys, not URLs), less
 * `exclude` (URLs that failed to load); `null` when none is left.
 */
export function responsiveSet(image: ImageSources, exclude: ReadonlySet<string> = new Set()): ResponsiveSet | null {
  const all = files(image, exclude);
  if (all.length === 0) return null;
  const sources: PictureSource[] = [];
  MODERN.forEach(({ format, type }, i) => {
    if (!all.some((f) => f.format === format)) return;
    const usable = new Set([...MODERN.slice(i).map((m) => m.format), ...UNIVERSAL]);
    sources.push({ type, srcset: srcsetOf(all, (f) => usable.has(f)) });
  });
  return { sources, srcset: srcsetOf(all, (f) => UNIVERSAL.has(f)) };
}

/** Whether `image` carries its derivative set with URLs (not only the list's preview). */
export function hasDerivativeUrls(image: ImageSources): boolean {
  return [image.thumbnails, image.variants].some((g) => Object.values(g ?? {}).some((d) => Boolean(d.url)));
}
