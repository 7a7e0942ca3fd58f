/** The images per status, and how long the oldest pending one has waited. */

import type { ProcessingQueue, Status } from '@safelight/client';
import { ago } from './format.js';

const STATUSES: Status[] = ['pending', 'processing', 'completed', 'failed'];

export function StatusCounts({ counts, oldestPending }: { counts: ProcessingQueue['counts']; oldestPending: ProcessingQueue['oldest_pending'] }) {
  return (
    <>
      <dl className="sl-counts" data-testid="status-counts">
        {STATUSES.map((s) => (
          <div key={s} className={`sl-count sl-count--${s}`}>
            <dt>{s[0]!.toUpperCase() + s.slice(1)}</dt>
            <dd data-testid={`count-${s}`}>{counts[s] ?? 0}</dd>
          </div>
        ))}
      </dl>
      {oldestPending ? (
        <p className="sl-muted">
          Oldest pending: <code>{oldestPending.image_id}</code>, waiting {ago(oldestPending.age_secs)}
        </p>
      ) : null}
    </>
  );
}
