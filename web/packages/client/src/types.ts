/**
 * The wire contracts of Safelight's HTTP API and WebSocket notices, as the Rust side serialises
 * them (`shared/src/domain/notice.rs`, `functions/images`, `functions/upload`, README "API").
 */

/** A stage's or the whole image's processing state. */
export type Status = 'pending' | 'processing' | 'completed' | 'failed';

/** The machine class of a failure: `transient` may pass on retry; the others fail the same way. */
export type ErrorKind = 'transient' | 'permanent' | 'rejected';

/** Whether the original has reached storage. */
export type UploadState = 'awaiting_upload' | 'stored' | 'rejected';

/** The seven status fields every notice and status answer carries. */
export interface StatusSnapshot {
  processing_status: Status;
  thumbnail_status: Status;
  variant_status: Status;
  processing_error: string | null;
  processing_attempts: number;
  processing_started_at: string | null;
  processing_completed_at: string | null;
}

/** A stored derivative as notices describe it (object key, no URL). */
export interface Derivative {
  key: string;
  width: number;
  height: number;
  bytes: number;
  format: string;
}

/** A derivative with its download URL (`GET /api/images/{id}`, list items): the same URL for a
 * whole link window, so the browser's cache serves a file it has seen. */
export interface DerivativeView {
  url: string;
  width: number;
  height: number;
  bytes: number;
  format: string;
}

/** `GET /api/images/{id}`: the row and download URLs. */
export interface ImageView extends StatusSnapshot {
  image_id: string;
  filename: string | null;
  content_type: string;
  byte_size: number;
  width: number | null;
  height: number | null;
  upload_state: UploadState;
  error_kind: ErrorKind | null;
  placeholder: string | null;
  created_at: string;
  updated_at: string;
  original_url: string | null;
  thumbnails: Record<string, DerivativeView>;
  variants: Record<string, DerivativeView>;
}

/** `GET /api/images/{id}/processing-status`. */
export interface ProcessingStatus extends StatusSnapshot {
  image_id: string;
  upload_state: UploadState;
  error_kind: ErrorKind | null;
  thumbnails: Record<string, Derivative>;
  variants: Record<string, Derivative>;
  placeholder: string | null;
  updated_at: string;
}

/** One item of `GET /api/images`. */
export interface ImageSummary {
  image_id: string;
  filename: string | null;
  content_type: string;
  processing_status: Status;
  placeholder: string | null;
  created_at: string;
  /** The smallest thumbnail's URL (the preview of servers that send no derivative maps). */
  thumbnail_url: string | null;
  /** Every derivative with its URL, as `GET /api/images/{id}` has them (absent from older servers). */
  thumbnails?: Record<string, DerivativeView>;
  variants?: Record<string, DerivativeView>;
}

/** `GET /api/images`: newest first; `next_cursor` continues. */
export interface ImageList {
  items: ImageSummary[];
  next_cursor: string | null;
}

/** The presigned PUT of a 201 upload answer. */
export interface PresignedPut {
  method: string;
  url: string;
  headers: Record<string, string>;
  expires_at: string;
}

/** The presigned POST form of a 201 upload answer (fields first, the file last). */
export interface PresignedPost {
  method: 'POST';
  url: string;
  fields: Record<string, string>;
  expires_at: string;
}

/** `POST /api/images/upload` with JSON -> 201. */
export interface UploadTicket {
  image_id: string;
  upload: PresignedPut;
  upload_post: PresignedPost;
  status_url: string;
}

/**
 * `POST /api/images/upload` with JSON -> 200 (not 201) when the caller already has an image of
 * exactly these bytes (the request's `sha256`): nothing is created and nothing is to be sent.
 */
export interface DuplicateUpload {
  /** The existing image (the same as `duplicate_of`). */
  image_id: string;
  duplicate_of: string;
  /** The existing image's processing status (`completed` once processed). */
  status: Status;
  status_url?: string;
}

/** `POST /api/images/{id}/retry-processing` -> 202. */
export interface RetryAccepted {
  image_id: string;
  processing_status: Status;
  requeued: Array<'thumbnail' | 'variant'>;
}

/** The four notice types. */
export type NoticeType =
  | 'image:processing:thumbnail_complete'
  | 'image:processing:variant_complete'
  | 'image:processing:complete'
  | 'image:processing:failed';

/** A notice as the WebSocket delivers it (live or replayed). */
export interface Notice {
  type: NoticeType;
  image_id: string;
  /** Per-owner sequence number: increasing, possibly with gaps. */
  seq: number;
  /** The row's `updated_at` after the change. */
  at: string;
  status: StatusSnapshot;
  thumbnails: Record<string, Derivative>;
  variants: Record<string, Derivative>;
  placeholder: string | null;
  /** `failed` only. */
  error?: string;
  error_kind?: ErrorKind;
  retryable?: boolean;
}

/** The other frames the server sends. */
export type ServerFrame =
  | Notice
  | { type: 'pong' }
  | { type: 'resumed'; since: number; replayed: number; last_seq: number }
  /** A page of a replay ended and more may follow: send `resume` from `after` for the next. */
  | { type: 'resume:more'; since: number; replayed: number; after: number }
  | { type: 'error'; code: string; message?: string };

/** `GET /api/admin/processing-queue` (admin only). */
export interface ProcessingQueue {
  generated_at: string;
  counts: Record<Status, number>;
  queues: Array<{
    stage: string;
    visible: number;
    in_flight: number;
    delayed: number;
    dlq: { visible: number; in_flight: number; delayed: number };
  }>;
  circuits: Array<{
    stage: string;
    state: 'closed' | 'open' | 'half_open' | string;
    opened_at: string | null;
    failures_in_window: number;
    /** Transient failures in the window that open it. */
    threshold?: number;
    next_probe_in_secs: number | null;
    times_opened?: number;
    reset_at: string | null;
    reset_by: string | null;
  }>;
  oldest_pending: { image_id: string; age_secs: number } | null;
  recent_failures: Array<{
    image_id: string;
    owner_id: string;
    stage: string;
    error: string;
    error_kind: ErrorKind | string;
    at: string;
  }>;
  throughput: Array<{ minute: string; processed: number; failed: number }>;
}

/** `POST /api/admin/retry-all-failed`. */
export interface RetryAllFailed {
  dry_run: boolean;
  images_requeued: number;
  messages_redriven: number;
  duplicates_removed?: number;
  skipped?: number;
  next_cursor: string | null;
  done: boolean;
}

/** `POST /api/admin/circuits/{stage}/reset`. */
export interface CircuitReset {
  stage: string;
  state: string;
  previous_state?: string;
  reset_at: string;
  reset_by: string;
}
