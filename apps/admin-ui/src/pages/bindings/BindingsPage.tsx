import AddLinkOutlined from '@mui/icons-material/AddLinkOutlined';
import {
  Button,
  Link,
  Paper,
  Table,
  TableBody,
  TableCell,
  TableContainer,
  TableHead,
  TableRow,
} from '@mui/material';
import { BINDING_STATUSES, type BindingListQuery, RULE_TYPES } from '@keypin/shared';
import { useState } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import { useCanChange } from '../../api/context';
import { useBindings } from '../../api/hooks';
import { ErrorAlert } from '../../components/ErrorAlert';
import { DateTime, formatNumber, Mono, NetworkList, RuleChip, StatusChip } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { Pager } from '../../components/Pager';
import { RefreshBar, TableStateRow } from '../../components/TableStates';
import { useUrlState } from '../../components/url-state';
import { BindingFilters, type BindingFilterValue } from './BindingFilters';
import { PrebindDialog } from './PrebindDialog';

function pick<T extends string>(v: string, allowed: readonly T[]): T | '' {
  return (allowed as readonly string[]).includes(v) ? (v as T) : '';
}

export function BindingsPage() {
  const canChange = useCanChange();
  const url = useUrlState();
  const [prebind, setPrebind] = useState(false);

  const filters: BindingFilterValue = {
    search: url.get('search'),
    status: pick(url.get('status'), BINDING_STATUSES),
    rule_type: pick(url.get('rule_type'), RULE_TYPES),
  };
  const page = url.getInt('page', 1);
  const pageSize = url.getInt('page_size', 20);
  const query: BindingListQuery = {
    ...(filters.search && { search: filters.search }),
    ...(filters.status && { status: filters.status }),
    ...(filters.rule_type && { rule_type: filters.rule_type }),
    page,
    page_size: pageSize,
  };
  const list = useBindings(query);
  const rows = list.data?.items ?? [];
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
            // The same search again (Enter) asks for fresh rows.
            if (JSON.stringify(f) === JSON.stringify(filters)) void list.refetch();
            else url.set({ ...f, page: null });
          }}
        />
      </Paper>
      <ErrorAlert
        error={list.error}
        title="Could not load the bindings"
        onRetry={() => void list.refetch()}
      />
      <Paper>
        <RefreshBar active={list.isFetching && !list.isLoading} />
        <TableContainer>
          <Table size="small" aria-label="Bindings">
            <TableHead>
              <TableRow>
                <TableCell>Key</TableCell>
                <TableCell>Status</TableCell>
                <TableCell>Rule</TableCell>
                <TableCell>Networks</TableCell>
                <TableCell>Last IP</TableCell>
                <TableCell>Last used</TableCell>
                <TableCell align="right">Requests</TableCell>
                <TableCell align="right">Intercepts</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              <TableStateRow
                colSpan={8}
                loading={list.isLoading}
                empty={!list.isLoading && !list.isError && rows.length === 0}
                emptyText={
                  filtered
                    ? 'No binding matches these filters.'
                    : 'No bindings yet: keys appear here on their first use.'
                }
              />
              {rows.map((b) => (
                <TableRow key={b.id} hover data-testid="binding-row">
                  <TableCell>
                    <Link component={RouterLink} to={`/bindings/${b.id}`} underline="hover">
                      <Mono>{b.token_display}</Mono>
                    </Link>
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
                  <TableCell align="right">{formatNumber(b.request_count)}</TableCell>
                  <TableCell align="right">{formatNumber(b.intercept_count)}</TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </TableContainer>
        <Pager total={list.data?.total ?? 0} page={page} pageSize={pageSize} onChange={url.setPaging} />
      </Paper>
      {canChange && <PrebindDialog open={prebind} onClose={() => setPrebind(false)} />}
    </>
  );
}
