import { describe, expect, it } from 'vitest';
import { GalleryStore, applyNotice, type ImageView } from '@safelight/client';
import { notice } from './fakes';

describe('GalleryStore', () => {
  it('moves an image through its notices and shows a failure with its reason', () => {
    const store = new GalleryStore();
    store.applyNotice(notice(1, 'a', 'image:processing:thumbnail_complete'));
    expect(store.get('a')?.status).toBe('processing');
    store.applyNotice(notice(2, 'a', 'image:processing:failed'));
    expect(store.get('a')).toMatchObject({ status: 'failed', error: 'not a decodable jpeg', errorKind: 'permanent', retryable: false });
  });

  it('ignores a notice older than what it already applied to that image', () => {
    const store = new GalleryStore();
    store.applyNotice(notice(5, 'a', 'image:processing:complete'));
    const before = store.images;
    store.applyNotice(notice(4, 'a', 'image:processing:failed'));
    expect(store.get('a')?.status).toBe('completed');
    expect(store.images).toBe(before);
  });

  it('puts new images first and keeps a list load from overwriting fresher state', () => {
    const store = new GalleryStore();
    store.applyNotice(notice(1, 'new', 'image:processing:complete'));
    store.load([
      { image_id: 'new', filename: 'n.jpg', content_type: 'image/jpeg', processing_status: 'pending', placeholder: null, created_at: '2026-11-30T12:00:00Z', thumbnail_url: null },
      { image_id: 'old', filename: 'o.jpg', content_type: 'image/jpeg', processing_status: 'completed', placeholder: null, created_at: '2026-11-29T12:00:00Z', thumbnail_url: 'u' },
    ]);
    expect(store.images.map((i) => [i.id, i.status])).toEqual([
      ['new', 'completed'],
      ['old', 'completed'],
    ]);
  });

  it('takes URLs from a full view without going back in time', () => {
    const store = new GalleryStore();
    store.applyNotice(notice(9, 'a', 'image:processing:complete'));
    const stale: ImageView = {
      image_id: 'a', filename: 'a.jpg', content_type: 'image/jpeg', byte_size: 5, width: 10, height: 10, upload_state: 'stored',
      processing_status: 'processing', thumbnail_status: 'completed', variant_status: 'processing', processing_error: null,
      processing_attempts: 1, processing_started_at: null, processing_completed_at: null, error_kind: null, placeholder: 'ph',
      created_at: '2026-11-30T11:00:00Z', updated_at: '2026-11-30T11:00:00Z', original_url: 'orig',
      thumbnails: { '150': { url: 't', width: 150, height: 150, bytes: 1, format: 'jpeg' } }, variants: {},
    };
    store.applyView(stale);
    expect(store.get('a')).toMatchObject({ status: 'completed', filename: 'a.jpg', sources: { original_url: 'orig' } });
  });

  it('applies a retried image completing after its failure', () => {
    const failed = applyNotice(undefined, notice(3, 'a', 'image:processing:failed', { error_kind: 'transient', retryable: true }));
    expect(failed.retryable).toBe(true);
    const done = applyNotice({ ...failed, status: 'pending', pending: 'retry' }, notice(6, 'a', 'image:processing:complete'));
    expect(done).toMatchObject({ status: 'completed', error: null, pending: null });
  });
});
