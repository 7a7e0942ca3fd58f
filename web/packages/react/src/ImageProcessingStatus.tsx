/** The status badge: text first (colour only repeats it), with the reason and Retry on failure. */

import type { ImageState, Status } from '@safelight/client';

const LABELS: Record<Status, string> = {
  pending: 'Pending',
  processing: 'Processing',
  completed: 'Completed',
  failed: 'Failed',
};

const ICONS: Record<Status, string> = {
  pending: '○',
  processing: '◐',
  completed: '✓',
  failed: '✕',
};

export interface ImageProcessingStatusProps {
  image: Pick<ImageState, 'id' | 'status' | 'error' | 'retryable' | 'upload' | 'pending' | 'filename'>;
  /** Shows a Retry button on a failed image. */
  onRetry?: (imageId: string) => void;
  /** Disables Retry while a retry is being sent. */
  retrying?: boolean;
}

/** `pending` / `processing` / `completed` / `failed` as an accessible badge. */
export function ImageProcessingStatus({ image, onRetry, retrying = false }: ImageProcessingStatusProps) {
  const uploading = image.upload && image.upload.phase !== 'stored';
  const label = uploading ? `Uploading ${Math.round(image.upload!.fraction * 100)}%` : LABELS[image.status];
  const name = image.filename ?? 'image';
  return (
    <div className={`sl-status sl-status--${uploading ? 'uploading' : image.status}`} data-status={image.status}>
      <span className="sl-badge" role="status" aria-live="polite" aria-label={`${name}: ${label}`}>
        <span aria-hidden="true" className="sl-badge__icon">
          {uploading ? '↑' : ICONS[image.status]}
        </span>{' '}
        <span className="sl-badge__text">{label}</span>
      </span>
      {image.status === 'failed' && image.error ? (
        <p className="sl-status__reason" data-testid="failure-reason">
          {image.error}
        </p>
      ) : null}
      {image.status === 'failed' && onRetry ? (
        <button
          type="button"
          className="sl-button sl-status__retry"
          disabled={retrying}
          aria-label={`Retry processing ${name}`}
          title={image.retryable ? 'Process this image again' : 'This file failed for a reason a retry is unlikely to fix'}
          onClick={() => onRetry(image.id)}
        >
          {retrying ? 'Retrying…' : 'Retry'}
        </button>
      ) : null}
    </div>
  );
}
