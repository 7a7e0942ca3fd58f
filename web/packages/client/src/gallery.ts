/**
 * A framework-free store of the images a page shows: filled from `list()`, moved on by notices,
 * and changed optimistically by uploads and retries (a change the server refuses is undone).
 */

import { sourcesRenewAt } from './expiry.js';
import type { ImageSources } from './images.js';
import type { ErrorKind, ImageSummary, ImageView, Notice, Status } from './types.js';
import type { UploadProgress } from './upload.js';

/** One image as the page knows it. */
export interface ImageState {
  id: string;
  filename: string | null;
  status: Status;
  thumbnailStatus: Status;
  variantStatus: Status;
  /** The reason of a failure, readable by a person. */
  error: string | null;
  errorKind: ErrorKind | null;
  /** Whether a retry can help (a corrupt file fails the same way again). */
  retryable: boolean;
  attempts: number;
  placeholder: string | null;
  /** What can be shown (URLs arrive with `GET /api/images/{id}`). */
  sources: ImageSources;
  /** Seq of the last notice applied to this image. */
  lastSeq: number;
  /** The row's `updated_at` as last seen. */
  updatedAt: string | null;
  createdAt: string;
  /** The upload, while this page is sending it. */
  upload: UploadProgress | null;
  /** A local change not confirmed by the server yet. */
  pending: 'upload' | 'retry' | null;
}

/** The retry advice of a failure of this kind (as the server's `retryable`). */
export function retryableKind(kind: ErrorKind | null | undefined): boolean {
  return kind !== 'permanent' && kind !== 'rejected';
}

function later(a: string | null, b: string | null): boolean {
  if (!a || !b) return true;
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  return Number.isNaN(ta) || Number.isNaN(tb) || ta >= tb;
}

/**
 * An image the page knows only by its id so far: `pending`, nothing to show, no failure; `fields`
 * replace any of that (an upload's file name and progress, a list item's status).
 */
export function newImage(id: string, createdAt: string, fields: Partial<Omit<ImageState, 'id' | 'createdAt'>> = {}): ImageState {
  return {
    id,
    filename: null,
    status: 'pending',
    thumbnailStatus: 'pending',
    variantStatus: 'pending',
    error: null,
    errorKind: null,
    retryable: true,
    attempts: 0,
    placeholder: null,
    sources: {},
    lastSeq: 0,
    updatedAt: null,
    createdAt,
    upload: null,
    pending: null,
    ...fields,
  };
}

/**
 * The image after `notice`, or the same object when the notice is older than what is known
 * (a lower seq for this image, or a change from before the known `updated_at`).
 */
export function applyNotice(image: ImageState | undefined, notice: Notice): ImageState {
  if (image && (notice.seq <= image.lastSeq || !later(notice.at, image.updatedAt))) return image;
  const s = notice.status;
  const failed = s.processing_status === 'failed';
  const base = image ?? newImage(notice.image_id, notice.at);
  const errorKind = failed ? (notice.error_kind ?? base.errorKind) : null;
  return {
    ...base,
    status: s.processing_status,
    thumbnailStatus: s.thumbnail_status,
    variantStatus: s.variant_status,
    error: failed ? (notice.error ?? s.processing_error ?? 'processing failed') : null,
    errorKind,
    retryable: failed ? (notice.retryable ?? retryableKind(errorKind)) : true,
    attempts: s.processing_attempts,
    placeholder: notice.placeholder ?? base.placeholder,
    lastSeq: notice.seq,
    updatedAt: notice.at,
    pending: null,
    upload: base.upload?.phase === 'stored' ? null : base.upload,
  };
}

/** What a list item offers to show: its derivative maps when the server sends them, else the preview. */
function summarySources(item: ImageSummary): ImageSources {
  return {
    thumbnail_url: item.thumbnail_url,
    placeholder: item.placeholder,
    ...(item.thumbnails ? { thumbnails: item.thumbnails } : {}),
    ...(item.variants ? { variants: item.variants } : {}),
  };
}

/** An image as a list item describes it. */
export function fromSummary(item: ImageSummary): ImageState {
  const done: Status = item.processing_status === 'completed' ? 'completed' : 'pending';
  return newImage(item.image_id, item.created_at, {
    filename: item.filename,
    status: item.processing_status,
    thumbnailStatus: done,
    variantStatus: done,
    placeholder: item.placeholder,
    sources: summarySources(item),
  });
}

/** When the first of these URLs ends; `Infinity` when none says (nothing to renew). */
function sourcesEnd(sources: ImageSources): number {
  return sourcesRenewAt(sources, 1) ?? Number.POSITIVE_INFINITY;
}

/**
 * A known image with a list item's URLs when they are worth taking: the image has no derivative
 * URLs yet, or the item's outlive the ones it has (a list fetched in a later link window renews
 * them). Its status stays: what the page knows is at least as fresh as the list.
 */
export function withSummaryUrls(image: ImageState, item: ImageSummary): ImageState {
  if (!item.thumbnails && !item.variants) return image;
  const next = summarySources(item);
  const has = [image.sources.thumbnails, image.sources.variants].some((g) => Object.values(g ?? {}).some((d) => d.url));
  if (has && sourcesEnd(next) <= sourcesEnd(image.sources)) return image;
  return { ...image, sources: { ...image.sources, ...next, placeholder: image.sources.placeholder ?? next.placeholder } };
}

/** Merges a full view (`GET /api/images/{id}`) into what is known, unless it is older. */
export function mergeView(image: ImageState | undefined, view: ImageView): ImageState {
  const fresh = !image || later(view.updated_at, image.updatedAt);
  const sources: ImageSources = {
    thumbnails: view.thumbnails,
    variants: view.variants,
    original_url: view.original_url,
    placeholder: view.placeholder,
  };
  if (image && !fresh) return { ...image, sources: { ...image.sources, ...sources }, filename: image.filename ?? view.filename };
  const failed = view.processing_status === 'failed';
  return {
    id: view.image_id,
    filename: view.filename ?? image?.filename ?? null,
    status: view.processing_status,
    thumbnailStatus: view.thumbnail_status,
    variantStatus: view.variant_status,
    error: failed ? (view.processing_error ?? 'processing failed') : null,
    errorKind: failed ? view.error_kind : null,
    retryable: failed ? retryableKind(view.error_kind) : true,
    attempts: view.processing_attempts,
    placeholder: view.placeholder,
    sources,
    lastSeq: image?.lastSeq ?? 0,
    updatedAt: view.updated_at,
    createdAt: view.created_at,
    upload: image?.upload ?? null,
    pending: image?.pending === 'upload' ? null : (image?.pending ?? null),
  };
}

type Listener = () => void;

/** The page's images, newest first, with change notification (for `useSyncExternalStore`). */
export class GalleryStore {
  private byId = new Map<string, ImageState>();
  private order: string[] = [];
  private snapshot: ImageState[] = [];
  private readonly listeners = new Set<Listener>();

  /** Newest first; the same array until something changes. */
  get images(): ImageState[] {
    return this.snapshot;
  }

  get(id: string): ImageState | undefined {
    return this.byId.get(id);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Adds list items the page does not know yet; known ones keep their fresher state and take the
   * item's URLs when those outlive theirs ([withSummaryUrls]).
   */
  load(items: ImageSummary[]): void {
    let added = false;
    let changed = false;
    for (const item of items) {
      const known = this.byId.get(item.image_id);
      if (!known) {
        this.byId.set(item.image_id, fromSummary(item));
        this.order.push(item.image_id);
        added = true;
      } else {
        const renewed = withSummaryUrls(known, item);
        if (renewed !== known) {
          this.byId.set(item.image_id, renewed);
          changed = true;
        }
      }
    }
    if (added) this.order.sort((a, b) => Date.parse(this.byId.get(b)!.createdAt) - Date.parse(this.byId.get(a)!.createdAt));
    if (added || changed) this.emit();
  }

  /** Puts `image` in place (new images go first). */
  put(image: ImageState): void {
    if (!this.byId.has(image.id)) this.order.unshift(image.id);
    this.byId.set(image.id, image);
    this.emit();
  }

  /** Changes one image when known; `fn` returning the same object changes nothing. */
  update(id: string, fn: (image: ImageState) => ImageState): void {
    const before = this.byId.get(id);
    if (!before) return;
    const after = fn(before);
    if (after !== before) this.put(after);
  }

  /** Applies a notice (an image the page did not know appears). */
  applyNotice(notice: Notice): ImageState {
    const before = this.byId.get(notice.image_id);
    const after = applyNotice(before, notice);
    if (after !== before) this.put(after);
    return after;
  }

  /** Merges a full view. */
  applyView(view: ImageView): void {
    this.put(mergeView(this.byId.get(view.image_id), view));
  }

  /** Removes an image (an upload refused before its row existed). */
  remove(id: string): void {
    if (!this.byId.delete(id)) return;
    this.order = this.order.filter((x) => x !== id);
    this.emit();
  }

  private emit(): void {
    this.snapshot = this.order.map((id) => this.byId.get(id)!).filter(Boolean);
    for (const l of this.listeners) l();
  }
}
