/** The demo gallery: drop many files, watch each one upload and process live. */

import { useCallback, useEffect, useRef, useState, type DragEvent } from 'react';
import type { ImageState, Notice } from '@safelight/client';
import {
  ImageProcessingStatus,
  Picture,
  useGalleryStore,
  useImagePicture,
  useImages,
  useProcessingUpdates,
  useRetryProcessing,
  useUpload,
  type UploadEntry,
} from '@safelight/react';
import { useToast } from './Toasts';
import type { Session } from './session';

const CONNECTION_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  open: 'Live',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected',
} as const;

/**
 * The card's slot width at each viewport (styles.css: main at most 1100 px less 2 x 20 px padding;
 * columns of at least 200 px, 16 px apart), for the browser's choice in `srcset`.
 */
const CARD_SIZES =
  '(max-width: 455px) calc(100vw - 40px), (max-width: 671px) calc(50vw - 28px), (max-width: 887px) calc(33.3vw - 24px), (max-width: 1103px) calc(25vw - 22px), 253px';

function Preview({ image }: { image: ImageState }) {
  const fallback = useImagePicture(image, 300, CARD_SIZES);
  if (!fallback.src) {
    return (
      <div className="card__preview card__preview--empty" data-preview="none">
        <span>{image.status === 'failed' ? 'No preview' : 'Preview soon'}</span>
      </div>
    );
  }
  return (
    <div className={`card__preview card__preview--${fallback.kind}`} data-preview={fallback.kind}>
      <Picture fallback={fallback} alt={image.filename ? `Preview of ${image.filename}` : 'Image preview'} decoding="async" loading="lazy" />
    </div>
  );
}

function Card({ image, onRetry, retrying }: { image: ImageState; onRetry: (id: string) => void; retrying: boolean }) {
  return (
    <li className="card" data-testid="image-card" data-image-id={image.id} data-status={image.status} data-filename={image.filename ?? ''}>
      <Preview image={image} />
      <div className="card__body">
        <p className="card__name" title={image.filename ?? image.id}>
          {image.filename ?? image.id.slice(0, 8)}
        </p>
        {image.upload && image.upload.phase !== 'stored' ? (
          <progress className="card__progress" max={1} value={image.upload.fraction} aria-label={`Upload of ${image.filename ?? 'image'}`} />
        ) : null}
        <ImageProcessingStatus image={image} onRetry={onRetry} retrying={retrying} />
      </div>
    </li>
  );
}

/**
 * The end of the loaded images: the next page is fetched when it comes within a screen of the
 * viewport (or on the button, for keyboards and when observers are missing).
 */
function More({ onMore, busy }: { onMore: () => void; busy: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && onMore(), { rootMargin: '100% 0px' });
    observer.observe(el);
    return () => observer.disconnect();
  }, [onMore]);
  return (
    <div ref={ref} className="gallery__more" data-testid="more">
      <button type="button" className="sl-button" onClick={onMore} disabled={busy}>
        {busy ? 'Loading…' : 'Show more'}
      </button>
    </div>
  );
}

function Uploads({ entries, onClear }: { entries: UploadEntry[]; onClear: () => void }) {
  if (entries.length === 0) return null;
  const active = entries.filter((e) => e.progress.phase !== 'stored' && !e.error).length;
  return (
    <section className="uploads" aria-labelledby="uploads-title">
      <div className="uploads__head">
        <h2 id="uploads-title">Uploads {active ? `(${active} in progress)` : ''}</h2>
        <button type="button" className="sl-button" onClick={onClear} disabled={active === entries.length}>
          Clear finished
        </button>
      </div>
      <ul className="uploads__list">
        {entries.map((e) => (
          <li key={e.key} className="upload" data-testid="upload-row" data-phase={e.error ? 'error' : e.progress.phase} data-duplicate-of={e.duplicateOf ?? undefined}>
            <span className="upload__name">{e.file.name}</span>
            <progress max={1} value={e.error ? 0 : e.progress.fraction} aria-label={`Upload of ${e.file.name}`} />
            <span className="upload__state">
              {e.error
                ? `Failed: ${e.error.message}`
                : e.progress.phase === 'requesting'
                  ? 'Waiting…'
                  : e.progress.phase === 'waiting'
                    ? `Server busy for your account: trying again in ${e.progress.retryInSecs ?? 1} s`
                    : e.progress.phase === 'uploading'
                    ? `${Math.round(e.progress.fraction * 100)}%`
                    : e.duplicateOf
                      ? 'Already in your gallery'
                      : 'Uploaded'}
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function Gallery({ session }: { session: Session }) {
  const toast = useToast();
  const store = useGalleryStore();
  const { images, loading, error, hasMore, loadMore, loadingMore } = useImages();
  const showMore = useCallback(() => void loadMore(), [loadMore]);
  const nameOf = useCallback((id: string) => store.get(id)?.filename ?? null, [store]);

  const onNotice = useCallback(
    (n: Notice) => {
      const name = nameOf(n.image_id) ?? 'An image';
      if (n.type === 'image:processing:complete') toast(`${name} is ready`, 'success');
      if (n.type === 'image:processing:failed') toast(`${name} failed: ${n.error ?? 'processing failed'}`, 'error');
    },
    [toast, nameOf],
  );
  const { connection } = useProcessingUpdates(onNotice);
  const { upload, uploads, clearFinished } = useUpload({
    onError: (file, e) => toast(`${file.name} was not uploaded: ${e.message}`, 'error'),
  });
  const { retry, isRetrying } = useRetryProcessing({
    onError: (id, e) => toast(`Retry of ${nameOf(id) ?? 'the image'} refused: ${e.message}`, 'error'),
  });

  const [dragging, setDragging] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const onDrop = (ev: DragEvent) => {
    ev.preventDefault();
    setDragging(false);
    const files = [...ev.dataTransfer.files];
    if (files.length) void upload(files);
  };

  const counts = images.reduce<Record<string, number>>((acc, i) => ((acc[i.status] = (acc[i.status] ?? 0) + 1), acc), {});

  return (
    <>
      <header className="top">
        <h1>Safelight gallery</h1>
        <p className="top__who">
          Signed in as <strong>{session.name}</strong> <span className="sl-muted">(dev token)</span>
        </p>
        <p className={`conn conn--${connection}`} data-testid="connection" data-state={connection}>
          <span aria-hidden="true">●</span> {CONNECTION_TEXT[connection]}
        </p>
        <nav>
          <a href="/admin/processing/">Processing queue (admin)</a>
        </nav>
      </header>

      <main>
        <div
          className={`dropzone${dragging ? ' dropzone--over' : ''}`}
          data-testid="dropzone"
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={onDrop}
        >
          <p>
            <strong>Drop photos here</strong> or{' '}
            <button type="button" className="sl-button sl-button--primary" onClick={() => input.current?.click()}>
              choose files
            </button>
          </p>
          <p className="sl-muted">
            JPEG, PNG, WebP, GIF or AVIF, up to 25 MiB each; three upload at a time. HEIC photos are converted to JPEG where this browser can read
            them.
          </p>
          <input
            ref={input}
            type="file"
            multiple
            accept="image/jpeg,image/png,image/webp,image/gif,image/avif,image/heic,image/heif,.heic,.heif"
            className="sl-visually-hidden"
            data-testid="file-input"
            aria-label="Choose photos to upload"
            onChange={(e) => {
              const files = [...(e.currentTarget.files ?? [])];
              e.currentTarget.value = '';
              if (files.length) void upload(files);
            }}
          />
        </div>

        <Uploads entries={uploads} onClear={clearFinished} />

        <section aria-labelledby="gallery-title">
          <div className="gallery__head">
            <h2 id="gallery-title">Your images</h2>
            <p className="sl-muted" data-testid="summary">
              {images.length} image{images.length === 1 ? '' : 's'}
              {(['completed', 'processing', 'pending', 'failed'] as const)
                .filter((s) => counts[s])
                .map((s) => ` · ${counts[s]} ${s}`)
                .join('')}
            </p>
          </div>
          {error ? (
            <p role="alert" className="sl-alert">
              Could not load your images: {error.message}
            </p>
          ) : null}
          {!loading && images.length === 0 && !error ? <p className="sl-muted">No images yet: drop some above.</p> : null}
          <ul className="gallery" aria-label="Images">
            {images.map((img) => (
              <Card key={img.id} image={img} onRetry={(id) => void retry(id)} retrying={isRetrying(img.id)} />
            ))}
          </ul>
          {hasMore ? <More onMore={showMore} busy={loadingMore} /> : null}
        </section>
      </main>
    </>
  );
}
