import { Chip, TableCell, TableRow, Tooltip } from '@mui/material';
import type { Intercept } from '@keypin/shared';
import type { ReactNode } from 'react';
import { type Column, DataTable } from './DataTable';
import { DateTime, formatNumber, KeyLink, Mono, NetworkList, ReasonChip, UNBOUND_KEY_TEXT } from './format';

/**
 * How many refused requests a record stands for: a plain 1, or a "×N" chip
 * when the gateway merged a key's requests from one address within one second.
 */
function RequestCount({ count }: { count: number }) {
  if (count > 1) {
    return (
      <Tooltip
        title={`${formatNumber(count)} refused requests of this key from this address within one second`}
      >
        <Chip size="small" color="error" variant="outlined" label={`×${formatNumber(count)}`} />
      </Tooltip>
    );
  }
  return <>1</>;
}

/**
 * Intercepted requests, one row a record (it may stand for several requests:
 * the Count column); the key links to its binding, unless the network policy
 * refused it before it had one (`binding_id` null: plain text, and "—" for
 * the networks allowed then).
 */
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
  const columns: Column[] = [
    { label: 'Time' },
    { label: 'Key', hidden: !showKey },
    { label: 'Attempted IP' },
    { label: 'Reason' },
    { label: 'Count', align: 'right' },
    { label: 'Allowed then', hidden: compact },
    { label: 'Request' },
    { label: 'User agent', hidden: compact },
    { label: 'Alerted', hidden: compact },
  ];
  return (
    <DataTable
      label={label}
      columns={columns}
      rows={items}
      loading={loading}
      emptyText={emptyText}
      renderRow={(i) => (
        <TableRow key={i.id} hover data-testid="intercept-row">
          <TableCell>
            <DateTime value={i.intercepted_at} />
          </TableCell>
          {showKey && (
            <TableCell>
              <KeyLink bindingId={i.binding_id} token={i.token_display} />
            </TableCell>
          )}
          <TableCell>
            <Mono>{i.attempt_ip}</Mono>
          </TableCell>
          <TableCell>
            <ReasonChip reason={i.reason} />
          </TableCell>
          <TableCell align="right" data-testid="intercept-count">
            <RequestCount count={i.count} />
          </TableCell>
          {!compact && (
            <TableCell>
              {i.binding_id === null ? (
                // No binding yet: nothing was allowed (not "any IP").
                <Tooltip title={UNBOUND_KEY_TEXT}>
                  <span data-testid="allowed-unbound">—</span>
                </Tooltip>
              ) : (
                <NetworkList networks={i.allowed_ips} max={2} />
              )}
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
      )}
    />
  );
}
