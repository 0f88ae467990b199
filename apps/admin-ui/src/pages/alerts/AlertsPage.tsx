import {
  Box,
  Link,
  Paper,
  Table,
  TableBody,
  TableCell,
  TableContainer,
  TableHead,
  TableRow,
  Tooltip,
  Typography,
} from '@mui/material';
import { Link as RouterLink } from 'react-router-dom';
import { useAlerts } from '../../api/hooks';
import { ErrorAlert } from '../../components/ErrorAlert';
import { DateTime, DeliveryChip, Mono, NetworkList } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { Pager } from '../../components/Pager';
import { RefreshBar, TableStateRow } from '../../components/TableStates';
import { useUrlState } from '../../components/url-state';

function duration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

export function AlertsPage() {
  const url = useUrlState();
  const page = url.getInt('page', 1);
  const pageSize = url.getInt('page_size', 20);
  const list = useAlerts({ page, page_size: pageSize });
  const rows = list.data?.items ?? [];
  return (
    <>
      <PageHeader
        title="Alerts"
        subtitle="Raised when one key collects too many intercepts in a window, and sent to the webhook."
      />
      <ErrorAlert error={list.error} title="Could not load the alerts" onRetry={() => void list.refetch()} />
      <Paper>
        <RefreshBar active={list.isFetching && !list.isLoading} />
        <TableContainer>
          <Table size="small" aria-label="Alerts">
            <TableHead>
              <TableRow>
                <TableCell>Raised</TableCell>
                <TableCell>Key</TableCell>
                <TableCell align="right">Intercepts</TableCell>
                <TableCell>Attempted from</TableCell>
                <TableCell>Allowed</TableCell>
                <TableCell>Delivery</TableCell>
                <TableCell>Last attempt</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              <TableStateRow
                colSpan={7}
                loading={list.isLoading}
                empty={!list.isLoading && !list.isError && rows.length === 0}
                emptyText="No alerts yet."
              />
              {rows.map((a) => (
                <TableRow key={a.id} hover data-testid="alert-row">
                  <TableCell>
                    <DateTime value={a.occurred_at} />
                  </TableCell>
                  <TableCell>
                    <Link component={RouterLink} to={`/bindings/${a.binding_id}`} underline="hover">
                      <Mono>{a.token_display}</Mono>
                    </Link>
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
              ))}
            </TableBody>
          </Table>
        </TableContainer>
        <Pager total={list.data?.total ?? 0} page={page} pageSize={pageSize} onChange={url.setPaging} />
      </Paper>
    </>
  );
}
