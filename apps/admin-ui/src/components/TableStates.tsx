import { Box, CircularProgress, LinearProgress, TableCell, TableRow, Typography } from '@mui/material';
import type { ReactNode } from 'react';

/** Loading, empty and refreshing states inside a table body. */
export function TableStateRow({
  colSpan,
  loading,
  empty,
  emptyText,
}: {
  colSpan: number;
  loading: boolean;
  empty: boolean;
  emptyText: ReactNode;
}) {
  if (loading) {
    return (
      <TableRow>
        <TableCell colSpan={colSpan}>
          <Box sx={{ display: 'flex', alignItems: 'center', gap: 2, py: 3, justifyContent: 'center' }}>
            <CircularProgress size={20} />
            <Typography color="text.secondary">Loading…</Typography>
          </Box>
        </TableCell>
      </TableRow>
    );
  }
  if (empty) {
    return (
      <TableRow>
        <TableCell colSpan={colSpan}>
          <Typography color="text.secondary" sx={{ py: 3, textAlign: 'center' }} data-testid="empty-state">
            {emptyText}
          </Typography>
        </TableCell>
      </TableRow>
    );
  }
  return null;
}

/** A thin bar above a table while a new page or filter loads over the old rows. */
export function RefreshBar({ active }: { active: boolean }) {
  return <Box sx={{ height: 4 }}>{active && <LinearProgress aria-label="Refreshing" />}</Box>;
}

/** Centered spinner for a whole section. */
export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <Box sx={{ display: 'flex', alignItems: 'center', gap: 2, py: 6, justifyContent: 'center' }}>
      <CircularProgress size={24} />
      <Typography color="text.secondary">{label}</Typography>
    </Box>
  );
}
