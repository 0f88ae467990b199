import KeyboardArrowDownOutlined from '@mui/icons-material/KeyboardArrowDownOutlined';
import KeyboardArrowRightOutlined from '@mui/icons-material/KeyboardArrowRightOutlined';
import { Box, Collapse, Grid, IconButton, TableCell, TableRow, Typography } from '@mui/material';
import type { AuditEntry } from '@keypin/shared';
import { Fragment, useState } from 'react';
import { useAudit } from '../../api/hooks';
import type { Column } from '../../components/DataTable';
import { DateTime, Mono } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { PagedTable } from '../../components/PagedList';
import { useUrlPaging } from '../../components/url-state';
import { monoFont } from '../../theme/theme';

function json(v: unknown): string {
  if (v === null || v === undefined) return '—';
  return JSON.stringify(v, null, 2);
}

/** The fields that differ between before and after, for the summary line. */
export function changedFields(before: unknown, after: unknown): string[] {
  const isObject = (v: unknown) => typeof v === 'object' && v !== null;
  if (!isObject(before) && isObject(after)) return ['created'];
  if (isObject(before) && !isObject(after)) return ['removed'];
  if (!isObject(before) || !isObject(after)) return [];
  const b = before as Record<string, unknown>;
  const a = after as Record<string, unknown>;
  const names = new Set([...Object.keys(b), ...Object.keys(a)]);
  return [...names].filter((k) => JSON.stringify(b[k]) !== JSON.stringify(a[k]));
}

function Snapshot({ label, value }: { label: string; value: unknown }) {
  return (
    <Grid size={{ xs: 12, md: 6 }}>
      <Typography variant="caption" color="text.secondary">
        {label}
      </Typography>
      <Box
        component="pre"
        sx={{
          m: 0,
          mt: 0.5,
          p: 1.5,
          bgcolor: 'action.hover',
          borderRadius: 1,
          fontFamily: monoFont,
          fontSize: 12,
          overflow: 'auto',
          maxHeight: 320,
        }}
      >
        {json(value)}
      </Box>
    </Grid>
  );
}

function AuditRow({ e }: { e: AuditEntry }) {
  const [open, setOpen] = useState(false);
  const changed = changedFields(e.before, e.after);
  return (
    <Fragment>
      <TableRow hover data-testid="audit-row" sx={{ '& > td': { borderBottom: open ? 'unset' : undefined } }}>
        <TableCell padding="checkbox">
          <IconButton
            size="small"
            aria-label={open ? 'Hide the change' : 'Show the change'}
            aria-expanded={open}
            onClick={() => setOpen((o) => !o)}
          >
            {open ? <KeyboardArrowDownOutlined /> : <KeyboardArrowRightOutlined />}
          </IconButton>
        </TableCell>
        <TableCell>
          <DateTime value={e.at} />
        </TableCell>
        <TableCell>{e.actor}</TableCell>
        <TableCell>
          <Mono>{e.action}</Mono>
        </TableCell>
        <TableCell>
          <Mono>{e.target ?? '—'}</Mono>
        </TableCell>
        <TableCell sx={{ maxWidth: 280 }}>
          <Typography variant="body2" noWrap title={changed.join(', ')}>
            {changed.length > 0 ? changed.join(', ') : '—'}
          </Typography>
        </TableCell>
        <TableCell>
          <Mono>{e.ip ?? '—'}</Mono>
        </TableCell>
      </TableRow>
      <TableRow>
        <TableCell colSpan={7} sx={{ py: 0, ...(open ? {} : { borderBottom: 'none' }) }}>
          <Collapse in={open} unmountOnExit>
            <Grid container spacing={2} sx={{ py: 2 }}>
              <Snapshot label="Before" value={e.before} />
              <Snapshot label="After" value={e.after} />
            </Grid>
          </Collapse>
        </TableCell>
      </TableRow>
    </Fragment>
  );
}

const COLUMNS: Column[] = [
  { padding: 'checkbox' },
  { label: 'When' },
  { label: 'Who' },
  { label: 'Action' },
  { label: 'Target' },
  { label: 'Changed' },
  { label: 'From IP' },
];

export function AuditPage() {
  const { query, paging } = useUrlPaging();
  const list = useAudit(query);
  return (
    <>
      <PageHeader
        title="Audit trail"
        subtitle="Every change made through the admin API: who, what, when, from where."
      />
      <PagedTable
        query={list}
        errorTitle="Could not load the audit trail"
        paging={paging}
        label="Audit trail"
        columns={COLUMNS}
        emptyText="No changes recorded yet."
        renderRow={(e) => <AuditRow key={e.id} e={e} />}
      />
    </>
  );
}
