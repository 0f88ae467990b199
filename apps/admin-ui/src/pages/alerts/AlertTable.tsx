import { Box, Link, TableCell, TableRow, Tooltip, Typography } from '@mui/material';
import type { Alert } from '@keypin/shared';
import { Link as RouterLink } from 'react-router-dom';
import { useCanChange } from '../../api/context';
import { DataTable, type Column } from '../../components/DataTable';
import { DateTime, DeliveryChip, formatDateTime, KeyLink, NetworkList } from '../../components/format';
import { AlertActions } from './AlertActions';
import { AlertStatusChip } from './AlertStatusChip';

/** `300` → "5 min". */
export function duration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** Which columns a table of alerts shows: the Alerts page all, a binding's page fewer. */
export interface AlertTableView {
  /** The key column (off on a binding's page: it is that key). */
  showKey: boolean;
  /** Allowed networks, webhook delivery and its last attempt. */
  showDelivery: boolean;
}

export function alertColumns(view: AlertTableView, canChange: boolean): Column[] {
  return [
    { label: 'Raised' },
    { label: 'Key', hidden: !view.showKey },
    { label: 'Intercepts', align: 'right' },
    { label: 'Attempted from' },
    { label: 'Allowed', hidden: !view.showDelivery },
    { label: 'Status' },
    { label: 'Delivery', hidden: !view.showDelivery },
    { label: 'Last attempt', hidden: !view.showDelivery },
    { label: 'Actions', hidden: !canChange },
  ];
}

/** One alert as a table row (`data-testid="alert-row"`), its actions in the row for an admin. */
export function AlertRow({
  alert: a,
  view,
  highlighted = false,
}: {
  alert: Alert;
  view: AlertTableView;
  highlighted?: boolean;
}) {
  const canChange = useCanChange();
  return (
    <TableRow
      hover
      selected={highlighted}
      data-testid="alert-row"
      data-alert-id={a.id}
      data-status={a.status}
    >
      <TableCell>
        <Link
          component={RouterLink}
          to={`/alerts/${a.id}`}
          underline="hover"
          aria-label={`Alert of ${formatDateTime(a.occurred_at)}`}
        >
          <DateTime value={a.occurred_at} />
        </Link>
      </TableCell>
      {view.showKey && (
        <TableCell>
          <KeyLink bindingId={a.binding_id} token={a.token_display} />
          {a.auto_banned && (
            <Typography variant="caption" color="error" component="div">
              auto-banned
            </Typography>
          )}
        </TableCell>
      )}
      <TableCell align="right">
        <Tooltip title={`From ${a.first_at} to ${a.last_at}`}>
          <span>
            {a.count} in {duration(a.window_seconds)}
          </span>
        </Tooltip>
      </TableCell>
      <TableCell>
        <Tooltip title={`Attempted IPs: ${a.attempt_ips.join(', ') || 'none'}`}>
          <Box>
            <NetworkList networks={a.attempt_networks} max={2} empty="—" />
          </Box>
        </Tooltip>
      </TableCell>
      {view.showDelivery && (
        <TableCell>
          <NetworkList networks={a.allowed_ips} max={2} />
        </TableCell>
      )}
      <TableCell>
        <AlertStatusChip alert={a} />
      </TableCell>
      {view.showDelivery && (
        <TableCell>
          <DeliveryChip status={a.delivery_status} />
          <Box sx={{ mt: 0.5, fontSize: 12, color: 'text.secondary', whiteSpace: 'nowrap' }}>
            {a.attempts} {a.attempts === 1 ? 'attempt' : 'attempts'}
          </Box>
        </TableCell>
      )}
      {view.showDelivery && (
        <TableCell sx={{ maxWidth: 260, minWidth: 160 }}>
          <DateTime value={a.last_attempt_at} />
          {a.last_error && (
            <Tooltip title={a.last_error}>
              <Typography
                variant="body2"
                color="error"
                sx={{
                  display: '-webkit-box',
                  WebkitLineClamp: 2,
                  WebkitBoxOrient: 'vertical',
                  overflow: 'hidden',
                }}
              >
                {a.last_error}
              </Typography>
            </Tooltip>
          )}
        </TableCell>
      )}
      {canChange && (
        <TableCell sx={{ minWidth: 200 }}>
          <AlertActions alert={a} maxNetworks={2} />
        </TableCell>
      )}
    </TableRow>
  );
}

/** A table of alerts (no paging: the page around it pages). */
export function AlertTable({
  items,
  loading,
  view,
  label,
  emptyText,
  failed,
}: {
  items: Alert[];
  loading: boolean;
  view: AlertTableView;
  label: string;
  emptyText: string;
  failed?: boolean;
}) {
  const canChange = useCanChange();
  return (
    <DataTable
      label={label}
      columns={alertColumns(view, canChange)}
      rows={items}
      loading={loading}
      failed={failed}
      emptyText={emptyText}
      renderRow={(a) => <AlertRow key={a.id} alert={a} view={view} />}
    />
  );
}
