import { Box, TableCell, TableRow, Tooltip, Typography } from '@mui/material';
import { useAlerts } from '../../api/hooks';
import type { Column } from '../../components/DataTable';
import { DateTime, DeliveryChip, KeyLink, NetworkList } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { PagedTable } from '../../components/PagedList';
import { useUrlPaging } from '../../components/url-state';

function duration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

const COLUMNS: Column[] = [
  { label: 'Raised' },
  { label: 'Key' },
  { label: 'Intercepts', align: 'right' },
  { label: 'Attempted from' },
  { label: 'Allowed' },
  { label: 'Delivery' },
  { label: 'Last attempt' },
];

export function AlertsPage() {
  const { query, paging } = useUrlPaging();
  const list = useAlerts(query);
  return (
    <>
      <PageHeader
        title="Alerts"
        subtitle="Raised when one key collects too many intercepts in a window, and sent to the webhook."
      />
      <PagedTable
        query={list}
        errorTitle="Could not load the alerts"
        paging={paging}
        label="Alerts"
        columns={COLUMNS}
        emptyText="No alerts yet."
        renderRow={(a) => (
          <TableRow key={a.id} hover data-testid="alert-row">
            <TableCell>
              <DateTime value={a.occurred_at} />
            </TableCell>
            <TableCell>
              <KeyLink bindingId={a.binding_id} token={a.token_display} />
              {a.auto_banned && (
                <Typography variant="caption" color="error" component="div">
                  auto-banned
                </Typography>
              )}
            </TableCell>
            <TableCell align="right">
              <Tooltip title={`From ${a.first_at} to ${a.last_at}`}>
                <span>
                  {a.count} in {duration(a.window_seconds)}
                </span>
              </Tooltip>
            </TableCell>
            <TableCell>
              <NetworkList networks={a.attempt_ips} max={2} empty="—" />
            </TableCell>
            <TableCell>
              <NetworkList networks={a.allowed_ips} max={2} />
            </TableCell>
            <TableCell>
              <DeliveryChip status={a.delivery_status} />
              <Box sx={{ mt: 0.5, fontSize: 12, color: 'text.secondary', whiteSpace: 'nowrap' }}>
                {a.attempts} {a.attempts === 1 ? 'attempt' : 'attempts'}
              </Box>
            </TableCell>
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
          </TableRow>
        )}
      />
    </>
  );
}
