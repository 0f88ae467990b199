import { Box, Grid, Link, List, ListItem, ListItemText, Paper, Stack, Typography } from '@mui/material';
import { lazy, type ReactNode, Suspense } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import { useDashboard } from '../../api/hooks';
import { ErrorAlert } from '../../components/ErrorAlert';
import { formatNumber, KeyLink } from '../../components/format';
import { InterceptTable } from '../../components/InterceptTable';
import { PageHeader } from '../../components/PageHeader';
import { Loading } from '../../components/TableStates';
import { IntegrityCard } from './IntegrityCard';
import { RefusalsCard } from './RefusalsCard';

// The chart library is the bulk of the bundle: loaded with the dashboard's chart only.
const WeekChart = lazy(() => import('./WeekChart'));

function Figure({
  label,
  value,
  tone,
  to,
}: {
  label: string;
  value: number;
  tone?: 'error' | 'success';
  to?: string;
}) {
  const body = (
    <>
      <Typography variant="body2" color="text.secondary">
        {label}
      </Typography>
      <Typography
        variant="h4"
        component="p"
        sx={{ fontWeight: 600, mt: 0.5, color: tone ? `${tone}.main` : 'text.primary' }}
      >
        {formatNumber(value)}
      </Typography>
    </>
  );
  return (
    <Grid size={{ xs: 6, sm: 4, md: 2.4 }}>
      <Paper sx={{ p: 2, height: '100%' }} data-testid={`figure-${label}`}>
        {to ? (
          <Link component={RouterLink} to={to} underline="none" color="inherit" sx={{ display: 'block' }}>
            {body}
          </Link>
        ) : (
          body
        )}
      </Paper>
    </Grid>
  );
}

function Section({ title, children, action }: { title: string; children: ReactNode; action?: ReactNode }) {
  return (
    <Paper sx={{ height: '100%', display: 'flex', flexDirection: 'column' }}>
      <Stack
        direction="row"
        sx={{ px: 2, pt: 2, pb: 1, justifyContent: 'space-between', alignItems: 'baseline' }}
      >
        <Typography variant="h2" component="h2">
          {title}
        </Typography>
        {action}
      </Stack>
      <Box sx={{ flexGrow: 1 }}>{children}</Box>
    </Paper>
  );
}

export function DashboardPage() {
  const q = useDashboard();
  const d = q.data;
  return (
    <>
      <PageHeader title="Dashboard" subtitle="Today (UTC) and the last 7 days." />
      <ErrorAlert error={q.error} title="Could not load the dashboard" onRetry={() => void q.refetch()} />
      {q.isLoading && <Loading />}
      {d && (
        <Stack spacing={3}>
          <Grid container spacing={2}>
            <Figure label="Allowed today" value={d.today.allowed} />
            <Figure label="Intercepted today" value={d.today.intercepted} tone="error" to="/logs" />
            <Figure label="First binds today" value={d.today.first_binds} />
            <Figure
              label="Active bindings"
              value={d.bindings.active}
              tone="success"
              to="/bindings?status=active"
            />
            <Figure label="Banned keys" value={d.bindings.banned} to="/bindings?status=banned" />
          </Grid>
          <IntegrityCard />
          <Grid container spacing={2}>
            <Grid size={{ xs: 12, md: 8 }}>
              <Section title="Last 7 days">
                <Suspense fallback={<Loading label="Loading the chart…" />}>
                  <WeekChart d={d} />
                </Suspense>
              </Section>
            </Grid>
            <Grid size={{ xs: 12, md: 4 }}>
              <Section title="Most intercepted keys">
                {d.top_intercepted.length === 0 ? (
                  <Typography color="text.secondary" sx={{ p: 2 }} data-testid="empty-state">
                    No intercepts in the last 7 days.
                  </Typography>
                ) : (
                  <List dense aria-label="Most intercepted keys">
                    {d.top_intercepted.map((t) => (
                      <ListItem
                        key={t.binding_id}
                        secondaryAction={<Typography variant="body2">{formatNumber(t.count)}</Typography>}
                      >
                        <ListItemText
                          primary={<KeyLink bindingId={t.binding_id} token={t.token_display} />}
                        />
                      </ListItem>
                    ))}
                  </List>
                )}
              </Section>
            </Grid>
          </Grid>
          <Section title="Refusals today by code">
            <RefusalsCard refusals={d.refusals} />
          </Section>
          <Section
            title="Recent intercepts"
            action={
              <Link component={RouterLink} to="/logs">
                All intercept logs
              </Link>
            }
          >
            <InterceptTable
              items={d.recent_intercepts}
              loading={false}
              compact
              emptyText="No intercepts yet."
              label="Recent intercepts"
            />
          </Section>
        </Stack>
      )}
    </>
  );
}
