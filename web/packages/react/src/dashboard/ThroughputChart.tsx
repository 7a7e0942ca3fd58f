/** Processed and failed per minute as side-by-side bars (inline SVG, no chart library). */

import type { ProcessingQueue } from '@safelight/client';

export function ThroughputChart({ points }: { points: ProcessingQueue['throughput'] }) {
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
