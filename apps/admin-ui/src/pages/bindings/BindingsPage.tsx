import AddLinkOutlined from '@mui/icons-material/AddLinkOutlined';
import { Button, Paper, TableCell, TableRow } from '@mui/material';
import {
  type Binding,
  BINDING_STATUSES,
  type BindingListQuery,
  type KeyPolicy,
  RULE_TYPES,
} from '@keypin/shared';
import { useState } from 'react';
import { useCanChange } from '../../api/context';
import { useBindings, useSettings } from '../../api/hooks';
import type { Column } from '../../components/DataTable';
import {
  DateTime,
  formatNumber,
  KeyLink,
  Mono,
  NetworkList,
  RuleChip,
  StatusChip,
} from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { QuotaCell } from '../../components/policy/QuotaBar';
import { PagedTable } from '../../components/PagedList';
import { changedFilters, useUrlPaging, useUrlState } from '../../components/url-state';
import { BindingFilters, type BindingFilterValue } from './BindingFilters';
import { PrebindDialog } from './PrebindDialog';

function pick<T extends string>(v: string, allowed: readonly T[]): T | '' {
  return (allowed as readonly string[]).includes(v) ? (v as T) : '';
}

const COLUMNS: Column[] = [
  { label: 'Key' },
  { label: 'Status' },
  { label: 'Rule' },
  { label: 'Networks' },
  { label: 'Last IP' },
  { label: 'Last used' },
  { label: 'Today', align: 'right' },
  { label: 'Requests', align: 'right' },
  { label: 'Intercepts', align: 'right' },
];

/**
 * A key's daily quota: its own policy's, else the default policy's (null
 * while the settings are unknown: then only the count is shown). `{}` as
 * its own policy is "unlimited", whatever the default says.
 */
export function dailyQuota(b: Binding, defaultPolicy: KeyPolicy | null | undefined): number | null {
  const effective = b.policy ?? defaultPolicy ?? null;
  return effective?.requests_per_day ?? null;
}

export function BindingsPage() {
  const canChange = useCanChange();
  const url = useUrlState();
  const { query: pageQuery, paging } = useUrlPaging();
  const [prebind, setPrebind] = useState(false);

  const filters: BindingFilterValue = {
    search: url.get('search'),
    status: pick(url.get('status'), BINDING_STATUSES),
    rule_type: pick(url.get('rule_type'), RULE_TYPES),
  };
  const query: BindingListQuery = {
    ...(filters.search && { search: filters.search }),
    ...(filters.status && { status: filters.status }),
    ...(filters.rule_type && { rule_type: filters.rule_type }),
    ...pageQuery,
  };
  const list = useBindings(query);
  // For the daily quota of keys that follow the default policy (admins and auditors may read settings).
  const settings = useSettings();
  const defaultPolicy = settings.data?.default_policy;
  const filtered = filters.search !== '' || filters.status !== '' || filters.rule_type !== '';

  return (
    <>
      <PageHeader
        title="Bindings"
        subtitle="Every key is pinned to the network it was first used from."
        actions={
          canChange && (
            <Button variant="contained" startIcon={<AddLinkOutlined />} onClick={() => setPrebind(true)}>
              Pre-bind a key
            </Button>
          )
        }
      />
      <Paper sx={{ p: 2, mb: 2 }}>
        <BindingFilters
          value={filters}
          onChange={(f) => {
            const changed = changedFilters(filters, f);
            // The same search again (Enter) asks for fresh rows.
            if (Object.keys(changed).length === 0) void list.refetch();
            else url.set({ ...changed, page: null });
          }}
        />
      </Paper>
      <PagedTable
        query={list}
        errorTitle="Could not load the bindings"
        paging={paging}
        label="Bindings"
        columns={COLUMNS}
        emptyText={
          filtered
            ? 'No binding matches these filters.'
            : 'No bindings yet: keys appear here on their first use.'
        }
        renderRow={(b) => (
          <TableRow key={b.id} hover data-testid="binding-row">
            <TableCell>
              <KeyLink bindingId={b.id} token={b.token_display} />
            </TableCell>
            <TableCell>
              <StatusChip status={b.status} />
            </TableCell>
            <TableCell>
              <RuleChip rule={b.rule_type} />
            </TableCell>
            <TableCell>
              <NetworkList networks={b.allowed_ips} max={2} />
            </TableCell>
            <TableCell>
              <Mono>{b.last_ip ?? '—'}</Mono>
            </TableCell>
            <TableCell>
              <DateTime value={b.last_used_at} />
            </TableCell>
            <TableCell align="right" data-testid="binding-today">
              <QuotaCell
                used={b.requests_today}
                limit={dailyQuota(b, defaultPolicy)}
                label={`Daily quota used by ${b.token_display}`}
              />
            </TableCell>
            <TableCell align="right">{formatNumber(b.request_count)}</TableCell>
            <TableCell align="right">{formatNumber(b.intercept_count)}</TableCell>
          </TableRow>
        )}
      />
      {canChange && <PrebindDialog open={prebind} onClose={() => setPrebind(false)} />}
    </>
  );
}
