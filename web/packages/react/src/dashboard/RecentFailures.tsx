/** The last failures across all owners, newest first as the API lists them. */

import type { ProcessingQueue } from '@safelight/client';
import { DataTable } from './DataTable.js';

export function RecentFailures({ failures }: { failures: ProcessingQueue['recent_failures'] }) {
  if (failures.length === 0) return <p className="sl-muted">None.</p>;
  return (
    <DataTable columns={['When', 'Image', 'Owner', 'Stage', 'Reason']} testId="recent-failures">
      {failures.map((f) => (
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
    </DataTable>
  );
}
