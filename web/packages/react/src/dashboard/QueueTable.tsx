/** Each stage's queue depths and dead letters. */

import type { ProcessingQueue } from '@safelight/client';
import { DataTable } from './DataTable.js';

export function QueueTable({ queues }: { queues: ProcessingQueue['queues'] }) {
  return (
    <DataTable columns={['Stage', 'Waiting', 'In flight', 'Delayed', 'Dead letters']}>
      {queues.map((q) => {
        const dead = q.dlq.visible + q.dlq.in_flight + q.dlq.delayed;
        return (
          <tr key={q.stage} data-testid={`queue-${q.stage}`}>
            <th scope="row">{q.stage}</th>
            <td>{q.visible}</td>
            <td>{q.in_flight}</td>
            <td>{q.delayed}</td>
            <td className={dead > 0 ? 'sl-warn' : undefined}>{dead}</td>
          </tr>
        );
      })}
    </DataTable>
  );
}
