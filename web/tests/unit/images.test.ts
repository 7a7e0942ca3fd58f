import { describe, expect, it } from 'vitest';
import { rgbaToThumbHash } from 'thumbhash';
import { imageCandidates, imageUrl, placeholderUrl } from '@safelight/client';

const d = (url: string, width: number, height: number, bytes = 1000) => ({ url, width, height, bytes });

function thumbhashOfGradient(): string {
  const w = 32;
  const h = 24;
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    rgba[i * 4] = (i % w) * 8;
    rgba[i * 4 + 1] = Math.floor(i / w) * 10;
    rgba[i * 4 + 2] = 128;
    rgba[i * 4 + 3] = 255;
  }
  return Buffer.from(rgbaToThumbHash(w, h, rgba)).toString('base64');
}

describe('imageUrl', () => {
  const full = {
    thumbnails: { '150': d('t150', 150, 113), '300': d('t300', 300, 225), '600': d('t600', 600, 450) },
    variants: { '1280.jpg': d('v1280j', 1280, 960, 90_000), '1280.webp': d('v1280w', 1280, 960, 60_000) },
    original_url: 'orig',
    placeholder: thumbhashOfGradient(),
  };

  it('picks the smallest derivative that covers the size', () => {
    expect(imageUrl(full, 200)?.url).toBe('t300');
    expect(imageUrl(full, 300)?.url).toBe('t300');
    expect(imageUrl(full, 100)?.url).toBe('t150');
  });

  it('prefers the lighter file between derivatives of the same size', () => {
    expect(imageUrl(full, 1000)?.url).toBe('v1280w');
  });

  it('takes the largest smaller derivative when none covers the size', () => {
    expect(imageUrl(full, 4000)?.url).toBe('v1280w');
    expect(imageUrl({ thumbnails: full.thumbnails }, 4000)?.url).toBe('t600');
  });

  it('falls back to the original, then to the placeholder, then to nothing', () => {
    expect(imageUrl({ original_url: 'orig', placeholder: full.placeholder }, 300)).toMatchObject({ kind: 'original', url: 'orig' });
    const ph = imageUrl({ placeholder: full.placeholder }, 300);
    expect(ph?.kind).toBe('placeholder');
    expect(ph?.url.startsWith('data:image/png;base64,')).toBe(true);
    expect(imageUrl({}, 300)).toBeNull();
  });

  it('skips derivatives it has no URL for (a notice names keys, not URLs)', () => {
    const fromNotice = { thumbnails: { '300': { width: 300, height: 225 } }, original_url: 'orig' };
    expect(imageUrl(fromNotice, 300)?.kind).toBe('original');
  });

  it('lists every fallback once, best first, for an <img> onerror chain', () => {
    const list = imageCandidates({ ...full, thumbnail_url: 't150' }, 300).map((c) => c.url);
    expect(list.slice(0, 3)).toEqual(['t300', 't600', 'v1280w']);
    expect(list.filter((u) => u === 't150')).toHaveLength(1);
    expect(list.at(-2)).toBe('orig');
    expect(list.at(-1)?.startsWith('data:image/png')).toBe(true);
  });

  it('ignores a malformed placeholder instead of throwing', () => {
    expect(placeholderUrl('!!not base64!!')).toBeNull();
    expect(placeholderUrl('')).toBeNull();
  });
});
