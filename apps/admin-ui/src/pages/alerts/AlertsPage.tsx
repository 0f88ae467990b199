import { Link, MenuItem, Stack, TextField } from '@mui/material';
import { ALERT_STATUSES, type AlertListQuery, type AlertStatus } from '@keypin/shared';
import { Link as RouterLink } from 'react-router-dom';
import { useCanChange } from '../../api/context';
import { useAlerts } from '../../api/hooks';
import { PageHeader } from '../../components/PageHeader';
import { PagedTable } from '../../components/PagedList';
import { useUrlPaging, useUrlState } from '../../components/url-state';
import { alertColumns, AlertRow, type AlertTableView } from './AlertTable';
import { ALERT_STATUS_LABELS } from './AlertStatusChip';

const VIEW: AlertTableView = { showKey: true, showDelivery: true };

export function AlertsPage() {
  const { query, paging } = useUrlPaging();
  const { get, set } = useUrlState();
  const canChange = useCanChange();
  const rawStatus = get('status');
  const status = (ALERT_STATUSES as readonly string[]).includes(rawStatus) ? (rawStatus as AlertStatus) : '';
  const rawBinding = get('binding_id');
  const bindingId = /^[1-9]\d{0,14}$/.test(rawBinding) ? Number(rawBinding) : null;
  const q: AlertListQuery = {
    ...query,
    ...(status ? { status } : {}),
    ...(bindingId !== null ? { binding_id: bindingId } : {}),
  };
  const list = useAlerts(q);
  return (
    <>
      <PageHeader
        title="Alerts"
        subtitle={
          canChange
            ? 'Raised when one key collects too many intercepts in a window, and sent to the webhook. ' +
              'Allow one of the networks the attempts came from, ban the key, or dismiss the alert.'
            : 'Raised when one key collects too many intercepts in a window, and sent to the webhook.'
        }
      />
      <Stack direction="row" spacing={1.5} useFlexGap sx={{ mb: 2, flexWrap: 'wrap', alignItems: 'center' }}>
        <TextField
          select
          label="Status"
          value={status}
          onChange={(e) => set({ status: e.target.value, page: null })}
          sx={{ width: 200 }}
        >
          <MenuItem value="">All</MenuItem>
          {ALERT_STATUSES.map((s) => (
            <MenuItem key={s} value={s}>
              {ALERT_STATUS_LABELS[s]}
            </MenuItem>
          ))}
        </TextField>
        {bindingId !== null && (
          <Link component={RouterLink} to="/alerts" data-testid="alerts-of-binding">
            Only binding #{bindingId}: show every key
          </Link>
        )}
      </Stack>
      <PagedTable
        query={list}
        errorTitle="Could not load the alerts"
        paging={paging}
        label="Alerts"
        columns={alertColumns(VIEW, canChange)}
        emptyText={status || bindingId !== null ? 'No alerts match.' : 'No alerts yet.'}
        renderRow={(a) => <AlertRow key={a.id} alert={a} view={VIEW} />}
      />
    </>
  );
}
