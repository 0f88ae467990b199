import ArrowBackOutlined from '@mui/icons-material/ArrowBackOutlined';
import BlockOutlined from '@mui/icons-material/BlockOutlined';
import EditOutlined from '@mui/icons-material/EditOutlined';
import LinkOffOutlined from '@mui/icons-material/LinkOffOutlined';
import LockOpenOutlined from '@mui/icons-material/LockOpenOutlined';
import { Box, Button, Grid, Link, Paper, Stack, Typography } from '@mui/material';
import type { Binding } from '@keypin/shared';
import { type ReactNode, useState } from 'react';
import { Link as RouterLink, useNavigate, useParams } from 'react-router-dom';
import { ApiError } from '../../api/client';
import { useCanChange } from '../../api/context';
import { useAlerts, useBinding, useBindingAction, useLogs } from '../../api/hooks';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { ErrorAlert } from '../../components/ErrorAlert';
import { DateTime, formatNumber, Mono, NetworkList, RuleChip, StatusChip } from '../../components/format';
import { InterceptTable } from '../../components/InterceptTable';
import { useNotify } from '../../components/Notifier';
import { PageHeader } from '../../components/PageHeader';
import { Loading, RefreshBar } from '../../components/TableStates';
import { AlertTable } from '../alerts/AlertTable';
import { EditNetworksDialog } from './EditNetworksDialog';
import { PolicyCard } from './PolicyCard';

type Pending = 'unbind' | 'ban' | 'unban' | null;

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

function BindingFacts({ b }: { b: Binding }) {
  return (
    <Grid container spacing={2.5}>
      <Field label="Rule">
        <RuleChip rule={b.rule_type} />
      </Field>
      <Field label="Allowed networks">
        <NetworkList networks={b.allowed_ips} max={10} />
      </Field>
      <Field label="Status">
        <StatusChip status={b.status} />
      </Field>
      <Field label="First used">
        <Mono>{b.first_ip ?? '—'}</Mono> · <DateTime value={b.first_used_at} />
      </Field>
      <Field label="Last used">
        <Mono>{b.last_ip ?? '—'}</Mono> · <DateTime value={b.last_used_at} />
      </Field>
      <Field label="Requests / intercepts">
        {formatNumber(b.request_count)} / {formatNumber(b.intercept_count)}
      </Field>
      <Field label="Created">
        <DateTime value={b.created_at} />
      </Field>
      <Field label="Updated">
        <DateTime value={b.updated_at} />
      </Field>
      <Field label="Note">{b.note ? <Typography variant="body2">{b.note}</Typography> : '—'}</Field>
    </Grid>
  );
}

export function BindingDetailPage() {
  const { id: rawId } = useParams();
  const id = /^\d{1,15}$/.test(rawId ?? '') ? Number(rawId) : 0;
  const canChange = useCanChange();
  const binding = useBinding(id);
  const recent = useLogs({ binding_id: id, page_size: 10 }, { enabled: id > 0 });
  const alerts = useAlerts({ binding_id: id, page_size: 10 }, { enabled: id > 0 });
  const action = useBindingAction();
  const notify = useNotify();
  const navigate = useNavigate();
  const [pending, setPending] = useState<Pending>(null);
  const [editing, setEditing] = useState(false);

  const back = (
    <Button component={RouterLink} to="/bindings" startIcon={<ArrowBackOutlined />} sx={{ mb: 1 }}>
      All bindings
    </Button>
  );

  if (id === 0) {
    return (
      <>
        {back}
        <ErrorAlert error={new Error(`"${rawId}" is not a binding id.`)} />
      </>
    );
  }
  if (binding.isLoading)
    return (
      <>
        {back}
        <Loading />
      </>
    );
  if (binding.isError || !binding.data) {
    const gone = binding.error instanceof ApiError && binding.error.status === 404;
    return (
      <>
        {back}
        <ErrorAlert
          error={gone ? new Error(`Binding ${id} does not exist (it may have been unbound).`) : binding.error}
          title={gone ? undefined : 'Could not load the binding'}
          onRetry={gone ? undefined : () => void binding.refetch()}
        />
      </>
    );
  }
  const b = binding.data;

  const run = async (what: Exclude<Pending, null>) => {
    const r = await action.mutateAsync({ action: what, id: b.id });
    if (what === 'unbind') {
      notify(`Unbound ${r.token_display}. The key binds afresh on its next use.`);
      void navigate('/bindings');
    } else if (what === 'ban') {
      notify(`Banned ${r.token_display}: every request with it is now refused.`);
    } else {
      notify(`Lifted the ban on ${r.token_display}.`);
    }
  };

  return (
    <>
      {back}
      <PageHeader
        title={
          <>
            Binding <Mono>{b.token_display}</Mono>
          </>
        }
        subtitle={`#${b.id}`}
        actions={
          canChange && (
            <>
              <Button variant="outlined" startIcon={<EditOutlined />} onClick={() => setEditing(true)}>
                Edit rule and networks
              </Button>
              {b.status === 'active' ? (
                <Button
                  variant="outlined"
                  color="error"
                  startIcon={<BlockOutlined />}
                  onClick={() => setPending('ban')}
                >
                  Ban
                </Button>
              ) : (
                <Button
                  variant="outlined"
                  startIcon={<LockOpenOutlined />}
                  onClick={() => setPending('unban')}
                >
                  Unban
                </Button>
              )}
              <Button
                variant="contained"
                color="error"
                startIcon={<LinkOffOutlined />}
                onClick={() => setPending('unbind')}
              >
                Unbind
              </Button>
            </>
          )
        }
      />
      <Paper sx={{ p: 3, mb: 3 }}>
        <BindingFacts b={b} />
      </Paper>

      <PolicyCard binding={b} />

      <Paper sx={{ mb: 3 }} data-testid="binding-alerts">
        <Stack
          direction="row"
          sx={{ px: 2, pt: 2, pb: 1, alignItems: 'baseline', justifyContent: 'space-between' }}
        >
          <Typography variant="h2" component="h2">
            Alerts
          </Typography>
          <Link component={RouterLink} to={`/alerts?binding_id=${b.id}`}>
            All alerts of this key{alerts.data ? ` (${formatNumber(alerts.data.total)})` : ''}
          </Link>
        </Stack>
        <RefreshBar active={alerts.isFetching && !alerts.isLoading} />
        <ErrorAlert
          error={alerts.error}
          title="Could not load the alerts"
          onRetry={() => void alerts.refetch()}
        />
        <AlertTable
          items={alerts.data?.items ?? []}
          loading={alerts.isLoading}
          failed={alerts.isError}
          view={{ showKey: false, showDelivery: false }}
          label="Alerts of this key"
          emptyText="No alerts for this key."
        />
      </Paper>

      <Paper>
        <Stack
          direction="row"
          sx={{ px: 2, pt: 2, pb: 1, alignItems: 'baseline', justifyContent: 'space-between' }}
        >
          <Typography variant="h2" component="h2">
            Recent intercepts
          </Typography>
          <Link component={RouterLink} to={`/logs?binding_id=${b.id}`}>
            All intercepts of this key{recent.data ? ` (${formatNumber(recent.data.total)})` : ''}
          </Link>
        </Stack>
        <RefreshBar active={recent.isFetching && !recent.isLoading} />
        <ErrorAlert
          error={recent.error}
          title="Could not load the intercepts"
          onRetry={() => void recent.refetch()}
        />
        <InterceptTable
          items={recent.data?.items ?? []}
          loading={recent.isLoading}
          showKey={false}
          emptyText="No intercepts for this key."
          label="Recent intercepts of this key"
        />
      </Paper>

      {canChange && (
        <>
          <EditNetworksDialog binding={b} open={editing} onClose={() => setEditing(false)} />
          <ConfirmDialog
            open={pending === 'unbind'}
            title="Unbind this key?"
            confirmLabel="Unbind"
            danger
            onConfirm={() => run('unbind')}
            onClose={() => setPending(null)}
          >
            <Mono>{b.token_display}</Mono> loses its binding. Its next request, from wherever it comes, binds
            it afresh. The old binding is kept in the archive.
          </ConfirmDialog>
          <ConfirmDialog
            open={pending === 'ban'}
            title="Ban this key?"
            confirmLabel="Ban"
            danger
            onConfirm={() => run('ban')}
            onClose={() => setPending(null)}
          >
            Every request with <Mono>{b.token_display}</Mono> will be refused with 403 <code>key_banned</code>
            , from any address, until the ban is lifted.
          </ConfirmDialog>
          <ConfirmDialog
            open={pending === 'unban'}
            title="Lift the ban?"
            confirmLabel="Unban"
            onConfirm={() => run('unban')}
            onClose={() => setPending(null)}
          >
            <Mono>{b.token_display}</Mono> will be accepted again from its allowed networks.
          </ConfirmDialog>
        </>
      )}
    </>
  );
}
