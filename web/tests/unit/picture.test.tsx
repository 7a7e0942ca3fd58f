// @vitest-environment happy-dom
import { act } from 'react';
import { describe, expect, it, vi } from 'vitest';
import { rgbaToThumbHash } from 'thumbhash';
import { GalleryStore, createClient, fromSummary, type ImageView } from '@safelight/client';
import { ResponsiveImage, SafelightProvider, useGalleryStore } from '@safelight/react';
import { completedView } from './fakes';
import { until, setupTestRoot } from './dom';

const dom = setupTestRoot();

/** S3-style presigned URLs signed at `date` for 15 minutes. */
const signed = (id: string, date: string) => (name: string) =>
  `http://s3.test/b/${name === 'original' ? `originals/u/${id}` : `d/${id}/${name}`}?X-Amz-Date=${date}&X-Amz-Expires=900&X-Amz-Signature=s`;
const LONG_AGO = '20200101T000000Z';
const FAR_AHEAD = '20990101T000000Z';

const placeholder = Buffer.from(rgbaToThumbHash(4, 3, new Uint8Array(4 * 3 * 4).fill(200))).toString('base64');

function Card({ id }: { id: string }) {
  const store = useGalleryStore();
  const image = store.get(id)!;
  return <ResponsiveImage image={image} size={300} sizes="(max-width: 600px) 100vw, 300px" alt="preview" />;
}

/** A provider whose store holds `view`, whose client answers `GET /api/images/{id}` with `next()`. */
function mount(view: ImageView | null, next: () => ImageView, list?: Parameters<typeof fromSummary>[0]) {
  const client = createClient({ apiUrl: 'http://api.test', wsUrl: 'ws://x', getToken: () => 't', fetch: vi.fn() });
  const get = vi.fn(async () => next());
  client.get = get;
  const store = new GalleryStore();
  if (view) store.applyView(view);
  if (list) store.load([list]);
  const id = view?.image_id ?? list!.image_id;
  const rerender = () =>
    dom.render(
      <SafelightProvider client={client} store={store}>
        <Card id={id} />
      </SafelightProvider>,
    );
  store.subscribe(rerender);
  rerender();
  return { get, store };
}

const img = () => dom.container.querySelector('img')!;

/** The browser reports that the candidate it picked (`currentSrc`) failed to load. */
function failLoad(currentSrc: string) {
  Object.defineProperty(img(), 'currentSrc', { value: currentSrc, configurable: true });
  act(() => {
    img().dispatchEvent(new Event('error'));
  });
}

describe('<ResponsiveImage>', () => {
  it('renders a <picture> with the WebP source first and the JPEG <img> last, both with sizes', () => {
    mount(completedView('a', signed('a', FAR_AHEAD)), () => {
      throw new Error('no fetch expected');
    });
    const picture = dom.container.querySelector('picture')!;
    const [source, image] = [...picture.children] as [HTMLSourceElement, HTMLImageElement];
    expect(source.tagName).toBe('SOURCE');
    expect(source.type).toBe('image/webp');
    expect(source.getAttribute('srcset')).toMatch(/300\.jpg.* 300w, .*600\.jpg.* 600w, .*1280\.webp.* 1280w, .*2048\.webp.* 2048w$/);
    expect(source.getAttribute('sizes')).toBe('(max-width: 600px) 100vw, 300px');
    expect(image.tagName).toBe('IMG');
    expect(image.getAttribute('srcset')).toMatch(/1280\.jpg.* 1280w, .*2048\.jpg.* 2048w$/);
    expect(image.getAttribute('srcset')).not.toContain('webp');
    expect(image.getAttribute('sizes')).toBe('(max-width: 600px) 100vw, 300px');
    expect(image.getAttribute('src')).toContain('/300.jpg');
  });

  it('drops the file the browser picked when it fails to load and offers the others', () => {
    const urls = signed('a', FAR_AHEAD);
    mount(completedView('a', urls), () => completedView('a', urls));
    failLoad(urls('600.jpg'));
    expect(dom.container.querySelector('source')!.getAttribute('srcset')).not.toContain('600.jpg');
    expect(img().getAttribute('srcset')).not.toContain('600.jpg');
    expect(img().getAttribute('srcset')).toContain('300.jpg');
  });

  it('shows the placeholder while expired URLs are renewed, then the derivatives at their new URLs', async () => {
    let answer!: (v: ImageView) => void;
    const fresh = completedView('a', signed('a', FAR_AHEAD), { placeholder });
    const { get } = mount(completedView('a', signed('a', LONG_AGO), { placeholder }), () => fresh);
    get.mockImplementationOnce(() => new Promise<ImageView>((r) => (answer = r)));
    failLoad(signed('a', LONG_AGO)('300.jpg'));
    // Every expired candidate is skipped at once: the blur, not a string of failing requests.
    expect(img().getAttribute('src')).toMatch(/^data:image\/png/);
    expect(dom.container.querySelector('source')).toBeNull();
    await until(() => expect(get).toHaveBeenCalledTimes(1));
    await act(async () => answer(fresh));
    await until(() => expect(img().getAttribute('srcset')).toContain(FAR_AHEAD));
    expect(img().getAttribute('src')).toBe(signed('a', FAR_AHEAD)('300.jpg'));
  });

  it('renews at most once a minute, walking down meanwhile, so a broken file cannot loop', async () => {
    const urls = signed('a', FAR_AHEAD);
    const { get } = mount(completedView('a', urls), () => completedView('a', urls));
    failLoad(urls('300.jpg'));
    await until(() => expect(get).toHaveBeenCalledTimes(1));
    failLoad(urls('600.jpg'));
    await act(async () => {});
    expect(get).toHaveBeenCalledTimes(1);
    expect(img().getAttribute('srcset')).not.toMatch(/300\.jpg|600\.jpg/);
  });

  it('fetches the derivative set of a completed image known only from the list, once', async () => {
    const urls = signed('b', FAR_AHEAD);
    const { get } = mount(null, () => completedView('b', urls), {
      image_id: 'b', filename: 'b.jpg', content_type: 'image/jpeg', processing_status: 'completed', placeholder: null,
      created_at: '2026-11-30T12:00:00Z', thumbnail_url: urls('150.jpg'),
    });
    expect(img().getAttribute('src')).toBe(urls('150.jpg'));
    expect(img().getAttribute('srcset')).toBeNull();
    await until(() => expect(img().getAttribute('srcset')).toContain('2048.jpg'));
    expect(get).toHaveBeenCalledTimes(1);
  });
});
