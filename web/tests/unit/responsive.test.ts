import { describe, expect, it } from 'vitest';
import { derivativeFormat, responsiveSet, urlExpired, urlExpiry, type ImageSources } from '@safelight/client';

const d = (url: string, width: number, height: number, format: string, bytes = 0) => ({ url, width, height, format, bytes });

/** The default set of a 4000 x 3000 photo: three JPEG thumbnails, two widths of JPEG and WebP variants. */
const photo: ImageSources = {
  thumbnails: { '150.jpg': d('t150', 150, 113, 'jpeg'), '300.jpg': d('t300', 300, 225, 'jpeg'), '600.jpg': d('t600', 600, 450, 'jpeg') },
  variants: {
    '1280.jpg': d('v1280j', 1280, 960, 'jpeg', 90_000),
    '1280.webp': d('v1280w', 1280, 960, 'webp', 60_000),
    '2048.jpg': d('v2048j', 2048, 1536, 'jpeg', 200_000),
    '2048.webp': d('v2048w', 2048, 1536, 'webp', 140_000),
  },
  original_url: 'orig',
};

describe('responsiveSet', () => {
  it('offers every JPEG width in the <img> srcset, narrowest first, with width descriptors', () => {
    expect(responsiveSet(photo)?.srcset).toBe('t150 150w, t300 300w, t600 600w, v1280j 1280w, v2048j 2048w');
  });

  it('puts a WebP source first that fills the widths without a WebP file with the JPEG ones', () => {
    expect(responsiveSet(photo)?.sources).toEqual([{ type: 'image/webp', srcset: 't150 150w, t300 300w, t600 600w, v1280w 1280w, v2048w 2048w' }]);
  });

  it('puts AVIF before WebP when the deployment produces it', () => {
    const withAvif = { ...photo, variants: { ...photo.variants, '1280.avif': d('v1280a', 1280, 960, 'avif', 40_000) } };
    const set = responsiveSet(withAvif)!;
    expect(set.sources.map((s) => s.type)).toEqual(['image/avif', 'image/webp']);
    expect(set.sources[0]!.srcset).toBe('t150 150w, t300 300w, t600 600w, v1280a 1280w, v2048w 2048w');
    expect(set.sources[1]!.srcset).toContain('v1280w 1280w');
    expect(set.srcset).not.toMatch(/v1280a|v1280w/);
  });

  it('has no <source> when the set holds JPEG only', () => {
    expect(responsiveSet({ thumbnails: photo.thumbnails })).toEqual({ sources: [], srcset: 't150 150w, t300 300w, t600 600w' });
  });

  it('lists a width once when a small original made several specs the same size (never upscaled)', () => {
    const small = {
      thumbnails: { '300.jpg': d('t300', 300, 200, 'jpeg', 9_000), '600.jpg': d('t600', 600, 400, 'jpeg', 30_000) },
      variants: { '1280.jpg': d('v1280j', 800, 533, 'jpeg', 70_000), '2048.jpg': d('v2048j', 800, 533, 'jpeg', 71_000) },
    };
    expect(responsiveSet(small)?.srcset).toBe('t300 300w, t600 600w, v1280j 800w');
  });

  it('leaves out derivatives without a URL and the URLs that failed, and is null when none is left', () => {
    const fromNotice = { thumbnails: { '300.jpg': { width: 300, height: 225 } } };
    expect(responsiveSet(fromNotice)).toBeNull();
    expect(responsiveSet(photo, new Set(['t300', 'v1280w']))?.sources[0]!.srcset).toBe('t150 150w, t600 600w, v1280j 1280w, v2048w 2048w');
    expect(responsiveSet({ thumbnails: { '300.jpg': d('t300', 300, 225, 'jpeg') } }, new Set(['t300']))).toBeNull();
  });

  it('reads the format from the name when the answer does not give it', () => {
    expect(derivativeFormat('1280.webp', undefined)).toBe('webp');
    expect(derivativeFormat('300.JPG', undefined)).toBe('jpeg');
    expect(derivativeFormat('300', 'jpeg')).toBe('jpeg');
    expect(derivativeFormat('300.tiff', undefined)).toBeNull();
  });
});

describe('urlExpiry', () => {
  const s3 = 'http://127.0.0.1:4566/bucket/thumbnails/x/300.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261130T120000Z&X-Amz-Expires=900&X-Amz-Signature=abc';

  it("reads an S3 presigned URL's signing time plus its lifetime", () => {
    expect(urlExpiry(s3)).toBe(Date.UTC(2026, 10, 30, 12, 15, 0));
  });

  it("reads a CloudFront signed URL's Expires", () => {
    expect(urlExpiry('https://d1.cloudfront.net/thumbnails/x/300.jpg?Expires=1796650000&Signature=s&Key-Pair-Id=K')).toBe(1_796_650_000_000);
  });

  it('says nothing for URLs that do not carry an expiry', () => {
    expect(urlExpiry('data:image/png;base64,AAAA')).toBeNull();
    expect(urlExpiry('https://cdn.example/thumbnails/x/300.jpg')).toBeNull();
    expect(urlExpiry('not a url')).toBeNull();
  });

  it('counts a URL as expired from 30 s before its end', () => {
    const end = Date.UTC(2026, 10, 30, 12, 15, 0);
    expect(urlExpired(s3, end - 31_000)).toBe(false);
    expect(urlExpired(s3, end - 29_000)).toBe(true);
    expect(urlExpired('https://cdn.example/a.jpg', end)).toBe(false);
  });
});
