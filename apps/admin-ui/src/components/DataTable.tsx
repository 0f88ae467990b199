import { Table, TableBody, TableCell, TableContainer, TableHead, TableRow } from '@mui/material';
import type { ReactNode } from 'react';
import { TableStateRow } from './TableStates';

/** A column heading; `hidden` leaves the column out (its cells are left out by the row). */
export interface Column {
  label?: string;
  align?: 'right';
  padding?: 'checkbox';
  hidden?: boolean;
}

export interface DataTableProps<T> {
  label: string;
  columns: Column[];
  rows: T[];
  renderRow: (row: T) => ReactNode;
  loading: boolean;
  /** The rows failed to load: the error says so, not an empty state. */
  failed?: boolean;
  emptyText: ReactNode;
}

/**
 * A small table with its headings, a loading or empty row in place of the
 * rows, and one row a record (`renderRow` returns a keyed row).
 */
export function DataTable<T>({
  label,
  columns,
  rows,
  renderRow,
  loading,
  failed = false,
  emptyText,
}: DataTableProps<T>) {
  const shown = columns.filter((c) => !c.hidden);
  return (
    <TableContainer>
      <Table size="small" aria-label={label}>
        <TableHead>
          <TableRow>
            {shown.map((c, i) => (
              <TableCell key={i} align={c.align} padding={c.padding}>
                {c.label}
              </TableCell>
            ))}
          </TableRow>
        </TableHead>
        <TableBody>
          <TableStateRow
            colSpan={shown.length}
            loading={loading}
            empty={!loading && !failed && rows.length === 0}
            emptyText={emptyText}
          />
          {rows.map((row) => renderRow(row))}
        </TableBody>
      </Table>
    </TableContainer>
  );
}
