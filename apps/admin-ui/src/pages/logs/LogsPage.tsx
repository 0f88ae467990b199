import FileDownloadOutlined from '@mui/icons-material/FileDownloadOutlined';
import { Button, CircularProgress, Paper, Typography } from '@mui/material';
import { INTERCEPT_REASONS, type InterceptListQuery } from '@keypin/shared';
import { useState } from 'react';
import { errorMessage } from '../../api/client';
import { useApi } from '../../api/context';
import { useLogs } from '../../api/hooks';
import { formatNumber } from '../../components/format';
import { InterceptTable } from '../../components/InterceptTable';
import { useNotify } from '../../components/Notifier';
import { PageHeader } from '../../components/PageHeader';
import { PagedList } from '../../components/PagedList';
import { changedFilters, useUrlPaging, useUrlState } from '../../components/url-state';
import { saveBlob } from './download';
import { LogFilters, type LogFilterValue } from './LogFilters';

/** The API query of these filters (empty ones left out). */
export function logQuery(f: LogFilterValue): InterceptListQuery {
  const q: InterceptListQuery = {};
  if (f.search) q.search = f.search;
  if (f.ip) q.ip = f.ip;
  if (f.reason) q.reason = f.reason;
  if (f.from) q.from = f.from;
  if (f.to) q.to = f.to;
  if (/^\d{1,15}$/.test(f.binding_id)) q.binding_id = Number(f.binding_id);
  return q;
}

export function LogsPage() {
  const api = useApi();
  const notify = useNotify();
  const url = useUrlState();
  const { query: pageQuery, paging } = useUrlPaging();
  const [exporting, setExporting] = useState(false);

  const reason = url.get('reason');
  const filters: LogFilterValue = {
    search: url.get('search'),
    ip: url.get('ip'),
    reason: (INTERCEPT_REASONS as readonly string[]).includes(reason)
      ? (reason as LogFilterValue['reason'])
      : '',
    from: url.get('from'),
    to: url.get('to'),
    binding_id: url.get('binding_id'),
  };
  const filterQuery = logQuery(filters);
  const list = useLogs({ ...filterQuery, ...pageQuery });
  const filtered = Object.keys(filterQuery).length > 0;

  const exportCsv = async () => {
    setExporting(true);
    try {
      const { blob, fileName } = await api.exportLogs(filterQuery);
      saveBlob(blob, fileName);
      notify(`Downloaded ${fileName}${list.data ? ` (${formatNumber(list.data.total)} intercepts)` : ''}.`);
    } catch (err) {
      notify(`Export failed: ${errorMessage(err)}`, 'error');
    } finally {
      setExporting(false);
    }
  };

  return (
    <>
      <PageHeader
        title="Intercept logs"
        subtitle="Requests with a key refused because of the address they came from, the network policy or a ban, newest first."
        actions={
          <Button
            variant="outlined"
            startIcon={exporting ? <CircularProgress size={16} /> : <FileDownloadOutlined />}
            onClick={() => void exportCsv()}
            disabled={exporting}
          >
            Export CSV
          </Button>
        }
      />
      <Paper sx={{ p: 2, mb: 2 }}>
        <LogFilters
          value={filters}
          onChange={(f) => {
            const changed = changedFilters(filters, f);
            // The same filters again (Enter) ask for fresh rows.
            if (Object.keys(changed).length === 0) void list.refetch();
            else url.set({ ...changed, page: null });
          }}
        />
        {list.data && (
          <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }} data-testid="log-total">
            {formatNumber(list.data.total)} {list.data.total === 1 ? 'intercept matches' : 'intercepts match'}
            {filtered ? ' these filters' : ''}. The export holds exactly these rows.
          </Typography>
        )}
      </Paper>
      <PagedList query={list} errorTitle="Could not load the intercepts" paging={paging}>
        <InterceptTable
          items={list.data?.items ?? []}
          loading={list.isLoading}
          emptyText={filtered ? 'No intercept matches these filters.' : 'No intercepts yet.'}
        />
      </PagedList>
    </>
  );
}
