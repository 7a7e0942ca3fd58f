/**
 * When a signed URL stops working, read from the URL itself: an S3 presigned GET
 * (`X-Amz-Date` + `X-Amz-Expires`) or a CloudFront signed URL (`Expires`, epoch seconds).
 */

/** The URL's expiry in ms since the epoch, or `null` when it does not say (a data URL, a cookie-signed URL). */
export function urlExpiry(url: string): number | null {
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
    return Date.UTC(y, mo - 1, d, h, mi, s) + lifetime * 1000;
  }
  const expires = Number(params.get('Expires'));
  return params.has('Expires') && Number.isFinite(expires) && expires > 0 ? expires * 1000 : null;
}

/** Whether `url` has expired at `now` (or will within `marginMs`); `false` when it does not say. */
export function urlExpired(url: string, now: number, marginMs = 30_000): boolean {
  const at = urlExpiry(url);
  return at !== null && at - marginMs <= now;
}
