/** Each stage's breaker, with a Reset button for one that is not closed. */

import type { ProcessingQueue } from '@safelight/client';
import { DataTable } from './DataTable.js';
import { ago } from './format.js';

export interface CircuitTableProps {
  circuits: ProcessingQueue['circuits'];
  onReset: (stage: string) => void;
  /** Any action in flight disables the buttons; the one resetting names its stage. */
  busy: string | null;
}

export function CircuitTable({ circuits, onReset, busy }: CircuitTableProps) {
  return (
    <DataTable columns={['Stage', 'State', 'Failures (window)', { hidden: 'Action' }]}>
      {circuits.map((c) => (
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
              onClick={() => onReset(c.stage)}
            >
              {busy === `reset-${c.stage}` ? 'Resetting…' : 'Reset'}
            </button>
          </td>
        </tr>
      ))}
    </DataTable>
  );
}
