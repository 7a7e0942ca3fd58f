/**
 * The operators' view of `GET /api/admin/processing-queue`: status counts, queue and DLQ depths,
 * breakers with a reset, recent failures, "Retry all failed", processed/failed per minute;
 * refreshed every 10 s. Anyone but an admin sees a refusal and no data.
 */

import { useCallback, useEffect, useRef, useState } from 'react';
import { SafelightError, type ProcessingQueue, type Status } from '@safelight/client';
import { useSafelightClient } from './context.js';

export interface ProcessingQueueDashboardProps {
  /** Auto-refresh period in ms (default 10 000; 0 turns it off). */
  refreshMs?: number;
  /** Called after an action with a sentence for a toast. */
  onMessage?: (message: string, tone: 'info' | 'error') => void;
}

const STATUSES: Status[] = ['pending', 'processing', 'completed', 'failed'];

function ago(secs: number): string {
  if (secs < 60) return `${Math.round(secs)} s`;
  if (secs < 3600) return `${Math.round(secs / 60)} min`;
  return `${(secs / 3600).toFixed(1)} h`;
}

/** Processed and failed per minute as side-by-side bars (inline SVG, no chart library). */
function ThroughputChart({ points }: { points: ProcessingQueue['throughput'] }) {
  if (points.length === 0) return <p className="sl-muted">No processing in the last hour.</p>;
  const max = Math.max(1, ...points.map((p) => Math.max(p.processed, p.failed)));
  const w = 12;
  const h = 80;
  const totalProcessed = points.reduce((a, p) => a + p.processed, 0);
  const totalFailed = points.reduce((a, p) => a + p.failed, 0);
  return (
    <figure className="sl-chart">
      <svg
        viewBox={`0 0 ${points.length * w} ${h}`}
        width="100%"
        height={h}
        preserveAspectRatio="none"
        role="img"
        aria-label={`Processed and failed per minute over ${points.length} minutes: ${totalProcessed} processed, ${totalFailed} failed`}
      >
        {points.map((p, i) => {
          const ph = (p.processed / max) * (h - 2);
          const fh = (p.failed / max) * (h - 2);
          return (
            <g key={p.minute}>
              <title>{`${p.minute}: ${p.processed} processed, ${p.failed} failed`}</title>
              <rect className="sl-chart__ok" x={i * w + 1} y={h - ph} width={w / 2 - 1} height={ph} />
              <rect className="sl-chart__failed" x={i * w + w / 2} y={h - fh} width={w / 2 - 1} height={fh} />
            </g>
          );
        })}
      </svg>
      <figcaption>
        <span className="sl-legend sl-legend--ok">processed</span> <span className="sl-legend sl-legend--failed">failed</span> per minute,
        last {points.length} minutes (oldest left): {totalProcessed} processed, {totalFailed} failed
      </figcaption>
    </figure>
  );
}

/** The dashboard. */
export function ProcessingQueueDashboard({ refreshMs = 10_000, onMessage }: ProcessingQueueDashboardProps) {
  const client = useSafelightClient();
  const [data, setData] = useState<ProcessingQueue | null>(null);
  const [error, setError] = useState<SafelightError | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const msg = useRef(onMessage);
  msg.current = onMessage;

  const refresh = useCallback(async () => {
    try {
      const next = await client.admin.processingQueue();
      setData(next);
      setError(null);
    } catch (e) {
      const err = e instanceof SafelightError ? e : new SafelightError('unknown', String(e));
      setError(err);
      // Someone who is not an admin keeps nothing on screen.
      if (err.status === 401 || err.status === 403) setData(null);
    }
  }, [client]);

  useEffect(() => {
    void refresh();
    if (!refreshMs) return;
    const t = setInterval(() => void refresh(), refreshMs);
    return () => clearInterval(t);
  }, [refresh, refreshMs]);

  const retryAll = async () => {
    setBusy('retry-all');
    try {
      let cursor: string | null = null;
      let images = 0;
      let messages = 0;
      for (let page = 0; page < 50; page++) {
        const r = await client.admin.retryAllFailed({ cursor });
        images += r.images_requeued;
        messages += r.messages_redriven;
        if (r.done || !r.next_cursor) break;
        cursor = r.next_cursor;
      }
      msg.current?.(`Re-queued ${images} failed image${images === 1 ? '' : 's'}, redrove ${messages} message${messages === 1 ? '' : 's'}`, 'info');
    } catch (e) {
      msg.current?.(`Retry all failed: ${(e as Error).message}`, 'error');
    } finally {
      setBusy(null);
      void refresh();
    }
  };

  const reset = async (stage: string) => {
    setBusy(`reset-${stage}`);
    try {
      const r = await client.admin.resetCircuit(stage);
      msg.current?.(`The ${r.stage} breaker is ${r.state}`, 'info');
    } catch (e) {
      msg.current?.(`Reset ${stage}: ${(e as Error).message}`, 'error');
    } finally {
      setBusy(null);
      void refresh();
    }
  };

  if (error && !data) {
    const denied = error.status === 401 || error.status === 403;
    return (
      <section className="sl-dashboard" aria-labelledby="sl-dash-title">
        <h2 id="sl-dash-title">Processing queue</h2>
        <p role="alert" className="sl-alert" data-testid="dashboard-error">
          {denied ? 'This page is for administrators. Your account has no access to processing data.' : `Could not load the processing queue: ${error.message}`}
        </p>
      </section>
    );
  }
  if (!data) {
    return (
      <section className="sl-dashboard" aria-busy="true">
        <h2>Processing queue</h2>
        <p className="sl-muted">Loading…</p>
      </section>
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
          <button type="button" className="sl-button sl-button--primary" disabled={busy !== null || data.counts.failed === 0} onClick={() => void retryAll()}>
            {busy === 'retry-all' ? 'Retrying…' : 'Retry all failed'}
          </button>
        </div>
      </header>

      <dl className="sl-counts" data-testid="status-counts">
        {STATUSES.map((s) => (
          <div key={s} className={`sl-count sl-count--${s}`}>
            <dt>{s[0]!.toUpperCase() + s.slice(1)}</dt>
            <dd data-testid={`count-${s}`}>{data.counts[s] ?? 0}</dd>
          </div>
        ))}
      </dl>
      {data.oldest_pending ? (
        <p className="sl-muted">
          Oldest pending: <code>{data.oldest_pending.image_id}</code>, waiting {ago(data.oldest_pending.age_secs)}
        </p>
      ) : null}

      <div className="sl-grid2">
        <section aria-labelledby="sl-queues">
          <h3 id="sl-queues">Queues</h3>
          <table className="sl-table">
            <thead>
              <tr>
                <th scope="col">Stage</th>
                <th scope="col">Waiting</th>
                <th scope="col">In flight</th>
                <th scope="col">Delayed</th>
                <th scope="col">Dead letters</th>
              </tr>
            </thead>
            <tbody>
              {data.queues.map((q) => (
                <tr key={q.stage} data-testid={`queue-${q.stage}`}>
                  <th scope="row">{q.stage}</th>
                  <td>{q.visible}</td>
                  <td>{q.in_flight}</td>
                  <td>{q.delayed}</td>
                  <td className={q.dlq.visible + q.dlq.in_flight + q.dlq.delayed > 0 ? 'sl-warn' : undefined}>
                    {q.dlq.visible + q.dlq.in_flight + q.dlq.delayed}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>

        <section aria-labelledby="sl-circuits">
          <h3 id="sl-circuits">Circuit breakers</h3>
          <table className="sl-table">
            <thead>
              <tr>
                <th scope="col">Stage</th>
                <th scope="col">State</th>
                <th scope="col">Failures (window)</th>
                <th scope="col">
                  <span className="sl-visually-hidden">Action</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {data.circuits.map((c) => (
                <tr key={c.stage} data-testid={`circuit-${c.stage}`}>
                  <th scope="row">{c.stage}</th>
                  <td>
                    <span className={`sl-pill sl-pill--${c.state}`}>{c.state.replace('_', '-')}</span>
                    {c.state !== 'closed' && c.next_probe_in_secs != null ? <span className="sl-muted"> · probe in {ago(c.next_probe_in_secs)}</span> : null}
                  </td>
                  <td>
                    {c.failures_in_window}
                    {c.threshold ? <span className="sl-muted"> / {c.threshold}</span> : null}
                  </td>
                  <td>
                    <button
                      type="button"
                      className="sl-button"
                      disabled={busy !== null || c.state === 'closed'}
                      aria-label={`Reset the ${c.stage} breaker`}
                      onClick={() => void reset(c.stage)}
                    >
                      {busy === `reset-${c.stage}` ? 'Resetting…' : 'Reset'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>

      <section aria-labelledby="sl-throughput">
        <h3 id="sl-throughput">Throughput</h3>
        <ThroughputChart points={data.throughput} />
      </section>

      <section aria-labelledby="sl-failures">
        <h3 id="sl-failures">Recent failures</h3>
        {data.recent_failures.length === 0 ? (
          <p className="sl-muted">None.</p>
        ) : (
          <table className="sl-table" data-testid="recent-failures">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Image</th>
                <th scope="col">Owner</th>
                <th scope="col">Stage</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {data.recent_failures.map((f) => (
                <tr key={`${f.image_id}-${f.stage}-${f.at}`}>
                  <td>
                    <time dateTime={f.at}>{new Date(f.at).toLocaleTimeString()}</time>
                  </td>
                  <td>
                    <code>{f.image_id.slice(0, 8)}</code>
                  </td>
                  <td>{f.owner_id}</td>
                  <td>{f.stage}</td>
                  <td>
                    {f.error} <span className="sl-muted">({f.error_kind})</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </section>
  );
}
