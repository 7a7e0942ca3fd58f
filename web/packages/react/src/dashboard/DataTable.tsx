/** A table with a header row of column titles; the rows are the caller's. */

import type { ReactNode } from 'react';

/** A column title; `{hidden}` is read by screen readers only (an action column). */
export type Column = string | { hidden: string };

export function DataTable({ columns, testId, children }: { columns: Column[]; testId?: string; children: ReactNode }) {
  return (
    <table className="sl-table" data-testid={testId}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={typeof c === 'string' ? c : c.hidden} scope="col">
              {typeof c === 'string' ? c : <span className="sl-visually-hidden">{c.hidden}</span>}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}
