import ArrowBackOutlined from '@mui/icons-material/ArrowBackOutlined';
import { Box, Button, Grid, Link, Paper, Stack, Typography } from '@mui/material';
import type { Alert } from '@keypin/shared';
import type { ReactNode } from 'react';
import { Link as RouterLink, useParams } from 'react-router-dom';
import { ApiError } from '../../api/client';
import { useCanChange } from '../../api/context';
import { useAlert } from '../../api/hooks';
import { ErrorAlert } from '../../components/ErrorAlert';
import { DateTime, DeliveryChip, KeyLink, Mono, NetworkList } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { Loading } from '../../components/TableStates';
import { AlertActions } from './AlertActions';
import { AlertStatusChip, describeResolution } from './AlertStatusChip';
import { duration } from './AlertTable';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Grid size={{ xs: 12, sm: 6, md: 4 }}>
      <Typography variant="caption" color="text.secondary" component="div">
        {label}
      </Typography>
      <Box sx={{ mt: 0.25 }}>{children}</Box>
    </Grid>
  );
}

function AlertFacts({ a }: { a: Alert }) {
  return (
    <Grid container spacing={2.5}>
      <Field label="Key">
        <KeyLink bindingId={a.binding_id} token={a.token_display} />
        {a.auto_banned && (
          <Typography variant="caption" color="error" component="div">
            auto-banned
          </Typography>
        )}
      </Field>
      <Field label="Status">
        <AlertStatusChip alert={a} />
        {describeResolution(a) && (
          <Typography variant="body2" color="text.secondary" sx={{ mt: 0.5 }} data-testid="alert-resolution">
            {describeResolution(a)}
          </Typography>
        )}
      </Field>
      <Field label="Refused requests">
        {a.count} in {duration(a.window_seconds)}
      </Field>
      <Field label="Networks the attempts came from">
        <NetworkList networks={a.attempt_networks} max={20} empty="—" />
      </Field>
      <Field label="Attempted IPs">
        <NetworkList networks={a.attempt_ips} max={20} empty="—" />
      </Field>
      <Field label="Allowed networks when raised">
        <NetworkList networks={a.allowed_ips} max={10} />
      </Field>
      <Field label="First and last attempt">
        <DateTime value={a.first_at} /> – <DateTime value={a.last_at} />
      </Field>
      <Field label="Raised">
        <DateTime value={a.occurred_at} />
      </Field>
      <Field label="Webhook">
        <DeliveryChip status={a.delivery_status} />{' '}
        <Typography variant="caption" color="text.secondary">
          {a.attempts} {a.attempts === 1 ? 'attempt' : 'attempts'}
          {a.last_error ? ` · ${a.last_error}` : ''}
        </Typography>
      </Field>
    </Grid>
  );
}

/**
 * One alert (`/alerts/:id`, the webhook's `console_url`): what happened,
 * what was done about it, and for an admin the actions while it is open.
 */
export function AlertDetailPage() {
  const { id: rawId = '' } = useParams();
  const id = UUID.test(rawId) ? rawId.toLowerCase() : '';
  const canChange = useCanChange();
  const alert = useAlert(id);

  const back = (
    <Button component={RouterLink} to="/alerts" startIcon={<ArrowBackOutlined />} sx={{ mb: 1 }}>
      All alerts
    </Button>
  );

  if (id === '') {
    return (
      <>
        {back}
        <ErrorAlert error={new Error(`"${rawId}" is not an alert id.`)} />
      </>
    );
  }
  if (alert.isLoading) {
    return (
      <>
        {back}
        <Loading />
      </>
    );
  }
  if (alert.isError || !alert.data) {
    const gone = alert.error instanceof ApiError && alert.error.status === 404;
    return (
      <>
        {back}
        <ErrorAlert
          error={gone ? new Error(`There is no alert ${id}.`) : alert.error}
          title={gone ? undefined : 'Could not load the alert'}
          onRetry={gone ? undefined : () => void alert.refetch()}
        />
      </>
    );
  }
  const a = alert.data;

  return (
    <>
      {back}
      <PageHeader
        title={
          <>
            Alert for <Mono>{a.token_display}</Mono>
          </>
        }
        subtitle={a.id}
      />
      <Paper sx={{ p: 3, mb: 3 }} data-testid="alert-detail" data-status={a.status}>
        <AlertFacts a={a} />
      </Paper>
      {canChange && a.status === 'open' && (
        <Paper sx={{ p: 3, mb: 3 }}>
          <Typography variant="h2" component="h2" sx={{ mb: 1.5 }}>
            Act on this alert
          </Typography>
          <AlertActions alert={a} />
        </Paper>
      )}
      <Stack direction="row" spacing={2}>
        <Link component={RouterLink} to={`/bindings/${a.binding_id}`}>
          The key’s binding
        </Link>
        <Link component={RouterLink} to={`/logs?binding_id=${a.binding_id}`}>
          Intercepts of this key
        </Link>
        <Link component={RouterLink} to={`/alerts?binding_id=${a.binding_id}`}>
          Alerts of this key
        </Link>
      </Stack>
    </>
  );
}
