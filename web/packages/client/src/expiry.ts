/**
 * When a signed URL stops working, read from the URL itself: an S3 presigned GET
 * (`X-Amz-Date` + `X-Amz-Expires`) or a CloudFront signed URL (`Expires`, epoch seconds); and when
 * a page should fetch its replacement, so that the browser never asks for a URL that has ended.
 */

import type { ImageSources } from './images.js';

interface Life {
  /** When it was signed (ms), when the URL says. */
  signedAt: number | null;
  /** When it ends (ms). */
  expiresAt: number;
}

function lifeOf(url: string): Life | null {
  let params: URLSearchParams;
  try {
    params = new URL(url).searchParams;
  } catch {
    return null;
  }
  const date = params.get('X-Amz-Date');
  const lifetime = Number(params.get('X-Amz-Expires'));
  const m = date ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date) : null;
  if (m && Number.isFinite(lifetime) && lifetime > 0) {
    const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
    const signedAt = Date.UTC(y, mo - 1, d, h, mi, s);
    return { signedAt, expiresAt: signedAt + lifetime * 1000 };
  }
  const expires = Number(params.get('Expires'));
  return params.has('Expires') && Number.isFinite(expires) && expires > 0 ? { signedAt: null, expiresAt: expires * 1000 } : null;
}

/** The URL's expiry in ms since the epoch, or `null` when it does not say (a data URL, a cookie-signed URL). */
export function urlExpiry(url: string): number | null {
  return lifeOf(url)?.expiresAt ?? null;
}

/** Whether `url` has expired at `now` (or will within `marginMs`); `false` when it does not say. */
export function urlExpired(url: string, now: number, marginMs = 30_000): boolean {
  const at = urlExpiry(url);
  return at !== null && at - marginMs <= now;
}

/**
 * How far into a signed URL's life its replacement is fetched by default. The API signs a link as
 * of the start of its link window and lets it live two windows, handing out the very same URL all
 * through the first (so the browser's cache serves it); a replacement exists from half-way, and
 * the old URL still works until its end.
 */
export const RENEW_FRACTION = 0.75;

/** For a URL that says only when it ends: how long before its end the fraction 0 would be. */
const UNKNOWN_LIFE_MS = 4 * 60_000;

/**
 * When to fetch `url`'s replacement (ms since the epoch): `fraction` of the way through the life of
 * a URL that says when it was signed (S3's `X-Amz-Date` + `X-Amz-Expires`); for one that says only
 * when it ends (CloudFront's `Expires`), `(1 - fraction)` × 4 minutes before the end; `null` when
 * the URL does not say.
 */
export function urlRenewAt(url: string, fraction = RENEW_FRACTION): number | null {
  const life = lifeOf(url);
  if (!life) return null;
  if (life.signedAt === null) return life.expiresAt - (1 - fraction) * UNKNOWN_LIFE_MS;
  return life.signedAt + fraction * (life.expiresAt - life.signedAt);
}

/** The earliest [urlRenewAt] of every URL `image` offers (derivatives, list preview, original). */
export function sourcesRenewAt(image: ImageSources, fraction = RENEW_FRACTION): number | null {
  let at: number | null = null;
  const urls = [image.thumbnail_url, image.original_url];
  for (const group of [image.thumbnails, image.variants]) for (const d of Object.values(group ?? {})) urls.push(d.url);
  for (const url of urls) {
    const t = url ? urlRenewAt(url, fraction) : null;
    if (t !== null && (at === null || t < at)) at = t;
  }
  return at;
}
