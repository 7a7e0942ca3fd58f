/**
 * The operators' view of `GET /api/admin/processing-queue`: status counts, queue and DLQ depths,
 * breakers with a reset, recent failures, "Retry all failed", processed/failed per minute;
 * refreshed every 10 s. Anyone but an admin sees a refusal and no data. The data and actions come
 * from [useProcessingQueue]; the parts in `dashboard/` only draw.
 */

import type { ReactNode } from 'react';
import { CircuitTable } from './dashboard/CircuitTable.js';
import { QueueTable } from './dashboard/QueueTable.js';
import { RecentFailures } from './dashboard/RecentFailures.js';
import { StatusCounts } from './dashboard/StatusCounts.js';
import { ThroughputChart } from './dashboard/ThroughputChart.js';
import { useProcessingQueue } from './dashboard/use-processing-queue.js';

export interface ProcessingQueueDashboardProps {
  /** Auto-refresh period in ms (default 10 000; 0 turns it off). */
  refreshMs?: number;
  /** Called after an action with a sentence for a toast. */
  onMessage?: (message: string, tone: 'info' | 'error') => void;
}

/** The dashboard's title and one line, before there is data to show. */
function Frame({ loading = false, children }: { loading?: boolean; children: ReactNode }) {
  return (
    <section className="sl-dashboard" aria-labelledby="sl-dash-title" aria-busy={loading || undefined}>
      <h2 id="sl-dash-title">Processing queue</h2>
      {children}
    </section>
  );
}

/** One titled part of the dashboard. */
function Part({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  return (
    <section aria-labelledby={id}>
      <h3 id={id}>{title}</h3>
      {children}
    </section>
  );
}

/** The dashboard. */
export function ProcessingQueueDashboard({ refreshMs = 10_000, onMessage }: ProcessingQueueDashboardProps) {
  const { data, error, denied, refresh, retryAllFailed, resetCircuit, busy } = useProcessingQueue({ refreshMs, onMessage });

  if (error && !data) {
    return (
      <Frame>
        <p role="alert" className="sl-alert" data-testid="dashboard-error">
          {denied ? 'This page is for administrators. Your account has no access to processing data.' : `Could not load the processing queue: ${error.message}`}
        </p>
      </Frame>
    );
  }
  if (!data) {
    return (
      <Frame loading>
        <p className="sl-muted">Loading…</p>
      </Frame>
    );
  }

  return (
    <section className="sl-dashboard" aria-labelledby="sl-dash-title">
      <header className="sl-dashboard__head">
        <h2 id="sl-dash-title">Processing queue</h2>
        <p className="sl-muted">
          Updated <time dateTime={data.generated_at}>{new Date(data.generated_at).toLocaleTimeString()}</time>
          {refreshMs ? ` · refreshes every ${Math.round(refreshMs / 1000)} s` : ''}
          {error ? ` · last refresh failed: ${error.message}` : ''}
        </p>
        <div className="sl-actions">
          <button type="button" className="sl-button" onClick={() => void refresh()}>
            Refresh
          </button>
          <button type="button" className="sl-button sl-button--primary" disabled={busy !== null || data.counts.failed === 0} onClick={retryAllFailed}>
            {busy === 'retry-all' ? 'Retrying…' : 'Retry all failed'}
          </button>
        </div>
      </header>

      <StatusCounts counts={data.counts} oldestPending={data.oldest_pending} />

      <div className="sl-grid2">
        <Part id="sl-queues" title="Queues">
          <QueueTable queues={data.queues} />
        </Part>
        <Part id="sl-circuits" title="Circuit breakers">
          <CircuitTable circuits={data.circuits} onReset={resetCircuit} busy={busy} />
        </Part>
      </div>

      <Part id="sl-throughput" title="Throughput">
        <ThroughputChart points={data.throughput} />
      </Part>

      <Part id="sl-failures" title="Recent failures">
        <RecentFailures failures={data.recent_failures} />
      </Part>
    </section>
  );
}
