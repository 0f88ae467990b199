import CheckCircleIcon from '@mui/icons-material/CheckCircle';
import ErrorIcon from '@mui/icons-material/Error';
import { Box, Button, CircularProgress, Paper, Stack, Typography } from '@mui/material';
import type { ChainState, IntegrityReport } from '@keypin/shared';
import { useIntegrity } from '../../api/hooks';
import { ErrorAlert } from '../../components/ErrorAlert';
import { DateTime, formatNumber, Mono } from '../../components/format';

const CHAINS = [
  { key: 'intercepts', label: 'Intercept log' },
  { key: 'audit', label: 'Audit trail' },
] as const;

function isReport(v: unknown): v is IntegrityReport {
  const r = v as Partial<IntegrityReport> | null;
  return typeof r?.intercepts?.ok === 'boolean' && typeof r.audit?.ok === 'boolean';
}

/** The first and last 8 hex digits of a hash (the whole one in the tooltip). */
const shortHash = (h: string) => `${h.slice(0, 8)}…${h.slice(-8)}`;

/** `1 record`, `1,234 records`. */
const records = (n: number) => `${formatNumber(n)} ${n === 1 ? 'record' : 'records'}`;

function ChainLine({ label, state }: { label: string; state: ChainState }) {
  const from =
    state.checkpoint_seq === null ? '' : ` after checkpoint #${formatNumber(state.checkpoint_seq)}`;
  const empty = state.ok && state.head_seq === 0;
  let detail: string;
  if (empty) detail = 'No records yet';
  else if (state.ok)
    detail = `${records(state.checked)} verified${from}; head #${formatNumber(state.head_seq)} `;
  else
    detail =
      `${records(state.checked)} verified${from} before record #${formatNumber(state.first_bad_seq)}, ` +
      `which was changed, removed or inserted; head #${formatNumber(state.head_seq)} `;
  return (
    <Stack
      direction="row"
      spacing={1.5}
      sx={{ alignItems: 'flex-start', py: 1 }}
      data-testid={`chain-${label}`}
      data-ok={state.ok}
    >
      {state.ok ? <CheckCircleIcon color="success" aria-hidden /> : <ErrorIcon color="error" aria-hidden />}
      <Box sx={{ minWidth: 0 }}>
        <Typography sx={{ fontWeight: 600 }} color={state.ok ? 'success.main' : 'error.main'}>
          {label}: {state.ok ? 'intact' : `broken at record #${formatNumber(state.first_bad_seq)}`}
        </Typography>
        <Typography variant="body2" color="text.secondary">
          {detail}
          {state.head_seq > 0 && <Mono title={state.head_hash}>{shortHash(state.head_hash)}</Mono>}
          {state.unsealed > 0 && ` · ${formatNumber(state.unsealed)} waiting to be sealed`}
        </Typography>
      </Box>
    </Stack>
  );
}

/**
 * The hash chains of the intercept log and the audit trail
 * (docs/integrity.md): green when both verify, else the first bad record.
 */
export function IntegrityCard() {
  const q = useIntegrity();
  const report = isReport(q.data) ? q.data : null;
  const ok = report !== null && report.intercepts.ok && report.audit.ok;
  return (
    <Paper
      sx={{
        p: 2,
        borderLeft: 4,
        borderColor: report === null ? 'divider' : ok ? 'success.main' : 'error.main',
      }}
      data-testid="integrity-card"
      data-state={report === null ? 'unknown' : ok ? 'ok' : 'broken'}
      aria-busy={q.isFetching}
    >
      <Stack direction="row" sx={{ justifyContent: 'space-between', alignItems: 'baseline' }}>
        <Typography variant="h2" component="h2">
          Record integrity
        </Typography>
        <Button size="small" onClick={() => void q.refetch()} disabled={q.isFetching}>
          {q.isFetching ? 'Verifying…' : 'Verify now'}
        </Button>
      </Stack>
      <ErrorAlert error={q.error} title="Could not verify the hash chains" />
      {q.isLoading && (
        <Stack direction="row" spacing={1} sx={{ alignItems: 'center', py: 1 }}>
          <CircularProgress size={18} />
          <Typography color="text.secondary">Verifying the hash chains…</Typography>
        </Stack>
      )}
      {report && (
        <>
          {CHAINS.map((c) => (
            <ChainLine key={c.key} label={c.label} state={report[c.key]} />
          ))}
          <Typography variant="caption" color="text.secondary">
            Verified <DateTime value={report.checked_at} />. Note the head hashes now and then outside KeyPin:
            a later verification must find the same hash at the same record.
          </Typography>
        </>
      )}
    </Paper>
  );
}
