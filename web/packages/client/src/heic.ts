/**
 * HEIC/HEIF in the browser. The server refuses HEIC (a patent and licence decision), so the client
 * recognises it by its magic bytes before anything is sent: where the browser can decode it
 * (Safari), it is converted to JPEG with its orientation applied and that is uploaded; elsewhere
 * it is refused at once with a message a person can act on. The server's refusal stays the last line.
 */

import { SafelightError } from './errors.js';

/** `ftyp` brands of HEIF images and sequences (HEVC-coded or generic). */
const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1']);
/** AVIF is HEIF-based too (its files often list `mif1`), but it is AV1 and the server takes it. */
const AVIF_BRANDS = new Set(['avif', 'avis']);
/** How much of a file the sniff reads (the `ftyp` box comes first and is short). */
export const SNIFF_BYTES = 512;

/** The `ftyp` box's major and compatible brands, or `[]` when `bytes` does not start with one. */
function ftypBrands(bytes: Uint8Array): string[] {
  if (bytes.length < 16) return [];
  const text = (at: number) => String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);
  if (text(4) !== 'ftyp') return [];
  const size = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
  const end = Math.min(Math.max(size, 16), bytes.length);
  const brands = [text(8)];
  for (let at = 16; at + 4 <= end; at += 4) brands.push(text(at));
  return brands;
}

/** Whether `bytes` (a file's first bytes) are a HEIC/HEIF image: an `ftyp` box naming a HEIF brand and no AVIF one. */
export function isHeicBytes(bytes: Uint8Array): boolean {
  const brands = ftypBrands(bytes);
  return !brands.some((b) => AVIF_BRANDS.has(b)) && brands.some((b) => HEIF_BRANDS.has(b));
}

/** Whether `file` is HEIC/HEIF, from its first bytes (its name and declared type are not trusted). */
export async function isHeic(file: Blob): Promise<boolean> {
  return isHeicBytes(new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer()));
}

/** Decodes a HEIC file and encodes it as JPEG; `null` when this browser cannot decode it. */
export type HeicConverter = (file: File) => Promise<File | null>;

/** `IMG_0001.HEIC` -> `IMG_0001.jpg`. */
export function jpegName(name: string): string {
  const base = name.replace(/\.(heic|heif|hif)$/i, '');
  return `${base || 'photo'}.jpg`;
}

/** Draws `bitmap` on a canvas and encodes it as JPEG. */
async function encodeJpeg(bitmap: ImageBitmap, quality: number): Promise<Blob> {
  if (typeof OffscreenCanvas !== 'undefined') {
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    canvas.getContext('2d')!.drawImage(bitmap, 0, 0);
    return canvas.convertToBlob({ type: 'image/jpeg', quality });
  }
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext('2d')!.drawImage(bitmap, 0, 0);
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the canvas did not encode a JPEG'))), 'image/jpeg', quality),
  );
}

/**
 * The browser's own decoder (`createImageBitmap`, orientation from the file's metadata applied to
 * the pixels), then a canvas's JPEG encoder at quality 0.9. Safari decodes HEIC; Chromium and
 * Firefox do not, and this answers `null` there.
 */
export const browserHeicConverter: HeicConverter = async (file) => {
  if (typeof createImageBitmap !== 'function') return null;
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    return null;
  }
  try {
    const jpeg = await encodeJpeg(bitmap, 0.9);
    return new File([jpeg], jpegName(file.name), { type: 'image/jpeg', lastModified: file.lastModified });
  } finally {
    bitmap.close();
  }
};

/**
 * The JPEG conversion of a HEIC `file`, or, when this browser cannot decode it, the refusal
 * (`unsupported_heic`, before anything is sent).
 */
export async function heicAsJpeg(file: File, convert: HeicConverter = browserHeicConverter): Promise<File> {
  const jpeg = await convert(file);
  if (jpeg) return jpeg;
  throw new SafelightError(
    'unsupported_heic',
    `${file.name} is a HEIC photo, which this browser cannot convert. Open it in Safari, or export it as JPEG (on an iPhone: Settings › Camera › Formats › Most Compatible), and try again.`,
  );
}
