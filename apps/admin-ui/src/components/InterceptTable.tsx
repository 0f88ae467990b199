import {
  Link,
  Table,
  TableBody,
  TableCell,
  TableContainer,
  TableHead,
  TableRow,
  Tooltip,
} from '@mui/material';
import type { Intercept } from '@keypin/shared';
import type { ReactNode } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import { DateTime, Mono, NetworkList, ReasonChip } from './format';
import { TableStateRow } from './TableStates';

/** Intercepted requests; the key links to its binding. */
export function InterceptTable({
  items,
  loading,
  emptyText,
  showKey = true,
  compact = false,
  label = 'Intercepts',
}: {
  items: Intercept[];
  loading: boolean;
  emptyText: ReactNode;
  showKey?: boolean;
  compact?: boolean;
  label?: string;
}) {
  const cols = (showKey ? 1 : 0) + (compact ? 4 : 7);
  return (
    <TableContainer>
      <Table size="small" aria-label={label}>
        <TableHead>
          <TableRow>
            <TableCell>Time</TableCell>
            {showKey && <TableCell>Key</TableCell>}
            <TableCell>Attempted IP</TableCell>
            <TableCell>Reason</TableCell>
            {!compact && <TableCell>Allowed then</TableCell>}
            <TableCell>Request</TableCell>
            {!compact && <TableCell>User agent</TableCell>}
            {!compact && <TableCell>Alerted</TableCell>}
          </TableRow>
        </TableHead>
        <TableBody>
          <TableStateRow
            colSpan={cols}
            loading={loading}
            empty={!loading && items.length === 0}
            emptyText={emptyText}
          />
          {items.map((i) => (
            <TableRow key={i.id} hover data-testid="intercept-row">
              <TableCell>
                <DateTime value={i.intercepted_at} />
              </TableCell>
              {showKey && (
                <TableCell>
                  <Link component={RouterLink} to={`/bindings/${i.binding_id}`} underline="hover">
                    <Mono>{i.token_display}</Mono>
                  </Link>
                </TableCell>
              )}
              <TableCell>
                <Mono>{i.attempt_ip}</Mono>
              </TableCell>
              <TableCell>
                <ReasonChip reason={i.reason} />
              </TableCell>
              {!compact && (
                <TableCell>
                  <NetworkList networks={i.allowed_ips} max={2} />
                </TableCell>
              )}
              <TableCell sx={{ maxWidth: 260 }}>
                <Tooltip title={`${i.method} ${i.path}`}>
                  <Mono>
                    {i.method} {i.path.length > 40 ? `${i.path.slice(0, 39)}…` : i.path}
                  </Mono>
                </Tooltip>
              </TableCell>
              {!compact && (
                <TableCell
                  sx={{ maxWidth: 200, overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap' }}
                  title={i.user_agent ?? undefined}
                >
                  {i.user_agent ?? '—'}
                </TableCell>
              )}
              {!compact && <TableCell>{i.alerted ? 'Yes' : 'No'}</TableCell>}
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </TableContainer>
  );
}
