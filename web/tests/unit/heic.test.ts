import { describe, expect, it, vi } from 'vitest';
import { createClient, isHeic, isHeicBytes, jpegName, type HeicConverter } from '@safelight/client';
import { FakeXhr } from './fakes';

/** An ISO-BMFF `ftyp` box: `major`, minor version 0, then the compatible brands. */
function ftyp(major: string, ...compatible: string[]): Uint8Array<ArrayBuffer> {
  const size = 16 + 4 * compatible.length;
  const bytes = new Uint8Array(size + 8);
  new DataView(bytes.buffer).setUint32(0, size);
  bytes.set(new TextEncoder().encode(`ftyp${major}\0\0\0\0${compatible.join('')}`), 4);
  bytes.set(new TextEncoder().encode('meta'), size + 4);
  return bytes;
}

describe('isHeicBytes', () => {
  it.each(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1'])('recognises the %s brand as HEIC/HEIF', (brand) => {
    expect(isHeicBytes(ftyp(brand))).toBe(true);
    expect(isHeicBytes(ftyp('isom', brand))).toBe(true);
  });

  it("recognises an iPhone photo's box (major heic, compatible mif1 and heic)", () => {
    expect(isHeicBytes(ftyp('heic', 'mif1', 'heic'))).toBe(true);
  });

  it('does not take AVIF for HEIC, though AVIF lists mif1 too', () => {
    expect(isHeicBytes(ftyp('avif', 'avif', 'mif1', 'miaf'))).toBe(false);
    expect(isHeicBytes(ftyp('mif1', 'avif', 'miaf'))).toBe(false);
    expect(isHeicBytes(ftyp('avis', 'msf1'))).toBe(false);
  });

  it('answers no for other files, short files and brands past the box', () => {
    expect(isHeicBytes(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 74, 70, 73, 70, 0, 1, 1, 0, 0, 1]))).toBe(false);
    expect(isHeicBytes(ftyp('isom', 'mp41'))).toBe(false);
    expect(isHeicBytes(ftyp('heic').slice(0, 12))).toBe(false);
    // A box of 16 bytes names no compatible brand: what follows it is not read as one.
    const shortBox = ftyp('isom');
    shortBox.set(new TextEncoder().encode('heic'), 16);
    expect(isHeicBytes(shortBox)).toBe(false);
  });

  it('reads the file, not its name or declared type', async () => {
    expect(await isHeic(new File([ftyp('heic', 'mif1')], 'photo.jpg', { type: 'image/jpeg' }))).toBe(true);
    expect(await isHeic(new File([new Uint8Array([0xff, 0xd8, 0xff])], 'IMG_1.HEIC', { type: 'image/heic' }))).toBe(false);
  });
});

describe('jpegName', () => {
  it('replaces a HEIC extension with .jpg', () => {
    expect(jpegName('IMG_0001.HEIC')).toBe('IMG_0001.jpg');
    expect(jpegName('a.heif')).toBe('a.jpg');
    expect(jpegName('noext')).toBe('noext.jpg');
    expect(jpegName('.heic')).toBe('photo.jpg');
  });
});

describe('client.upload of a HEIC file', () => {
  const ticket = {
    image_id: 'img-1',
    upload: { method: 'PUT', url: 'http://s3.test/o', headers: {}, expires_at: '' },
    upload_post: { method: 'POST' as const, url: 'http://s3.test', fields: {}, expires_at: '' },
    status_url: '',
  };

  function setup(convertHeic: HeicConverter) {
    const fetch = vi.fn(async (_url: string | URL | Request, _init?: RequestInit) => new Response(JSON.stringify(ticket), { status: 201 }));
    FakeXhr.all = [];
    const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch, xhr: () => new FakeXhr(), convertHeic });
    return { client, fetch };
  }

  it('is refused before any request when the browser cannot decode it', async () => {
    const { client, fetch } = setup(async () => null);
    const err = await client.upload(new File([ftyp('heic', 'mif1')], 'IMG_1.HEIC', { type: 'image/heic' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'unsupported_heic', message: expect.stringContaining('IMG_1.HEIC is a HEIC photo') });
    expect(fetch).not.toHaveBeenCalled();
    expect(FakeXhr.all).toHaveLength(0);
  });

  it('uploads the JPEG conversion, with its name, type and size, where the browser decodes it', async () => {
    const jpeg = new File([new Uint8Array([0xff, 0xd8, 0xff, 0xd9])], 'IMG_1.jpg', { type: 'image/jpeg' });
    const convert = vi.fn(async () => jpeg);
    const { client, fetch } = setup(convert);
    const done = client.upload(new File([ftyp('heic', 'mif1')], 'IMG_1.HEIC', { type: 'image/heic' }));
    await vi.waitFor(() => expect(FakeXhr.all).toHaveLength(1));
    expect(JSON.parse(String(fetch.mock.calls[0]![1]?.body))).toMatchObject({ filename: 'IMG_1.jpg', content_type: 'image/jpeg', size: 4 });
    expect(FakeXhr.all[0]!.body).toBe(jpeg);
    FakeXhr.all[0]!.respond(200);
    expect((await done).file).toBe(jpeg);
  });

  it('leaves other files alone', async () => {
    const convert = vi.fn(async () => null);
    const { client } = setup(convert);
    const done = client.upload(new File([new Uint8Array([0xff, 0xd8, 0xff])], 'a.jpg', { type: 'image/jpeg' }));
    await vi.waitFor(() => expect(FakeXhr.all).toHaveLength(1));
    FakeXhr.all[0]!.respond(200);
    await done;
    expect(convert).not.toHaveBeenCalled();
  });
});
