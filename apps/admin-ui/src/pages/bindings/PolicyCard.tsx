import TuneOutlined from '@mui/icons-material/TuneOutlined';
import { Button, Chip, Grid, Link, Paper, Stack, Typography } from '@mui/material';
import { type Binding, type BindingUsage, isUnlimited } from '@keypin/shared';
import { useState } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import { useCanChange } from '../../api/context';
import { useBindingUsage } from '../../api/hooks';
import { ErrorAlert } from '../../components/ErrorAlert';
import { type ChipColor } from '../../components/format';
import { PolicySummary } from '../../components/policy/PolicySummary';
import { QuotaBar } from '../../components/policy/QuotaBar';
import { Loading } from '../../components/TableStates';
import { EditPolicyDialog } from './EditPolicyDialog';

const SOURCE: Record<BindingUsage['policy_source'], { label: string; color: ChipColor }> = {
  binding: { label: 'Own policy', color: 'primary' },
  default: { label: 'Default policy', color: 'default' },
  none: { label: 'No policy', color: 'default' },
};

/** Where the effective policy comes from, in a sentence. */
function sourceText(u: BindingUsage): string {
  if (u.policy_source === 'binding') {
    return isUnlimited(u.effective_policy)
      ? 'This key has its own policy, which limits nothing: it is unlimited, whatever the default policy says.'
      : 'This key has its own policy; the default policy does not apply to it.';
  }
  if (u.policy_source === 'default') {
    return isUnlimited(u.effective_policy)
      ? 'This key follows the default policy from Settings, which limits nothing.'
      : 'This key follows the default policy from Settings.';
  }
  return 'This key has no policy of its own and there is no default policy: it is unlimited.';
}

/**
 * A binding's policy: the one that applies and where it comes from, the
 * key's use of its quotas, and (admins) the editor.
 */
export function PolicyCard({ binding }: { binding: Binding }) {
  const canChange = useCanChange();
  const usage = useBindingUsage(binding.id);
  const [editing, setEditing] = useState(false);
  const u = usage.data;
  return (
    <Paper
      sx={{ p: 3, mb: 3 }}
      component="section"
      aria-labelledby="policy-card-title"
      data-testid="policy-card"
    >
      <Stack
        direction="row"
        sx={{ mb: 2, alignItems: 'center', justifyContent: 'space-between', gap: 1, flexWrap: 'wrap' }}
      >
        <Stack direction="row" spacing={1.5} sx={{ alignItems: 'center' }}>
          <Typography variant="h2" component="h2" id="policy-card-title">
            Policy
          </Typography>
          {u && (
            <Chip
              size="small"
              variant="outlined"
              data-testid="policy-source"
              label={SOURCE[u.policy_source].label}
              color={SOURCE[u.policy_source].color}
            />
          )}
        </Stack>
        {canChange && (
          <Button variant="outlined" startIcon={<TuneOutlined />} onClick={() => setEditing(true)}>
            Edit policy
          </Button>
        )}
      </Stack>
      <ErrorAlert
        error={usage.error}
        title="Could not load the key’s policy and usage"
        onRetry={() => void usage.refetch()}
      />
      {usage.isLoading && <Loading label="Loading the policy…" />}
      {u && (
        <Grid container spacing={3}>
          <Grid size={{ xs: 12, md: 8 }}>
            <Typography variant="body2" sx={{ mb: 2 }} data-testid="policy-source-text">
              {sourceText(u)}
              {u.policy_source !== 'binding' && (
                <>
                  {' '}
                  <Link component={RouterLink} to="/settings">
                    Default policy in Settings
                  </Link>
                </>
              )}
            </Typography>
            <PolicySummary
              policy={u.effective_policy}
              emptyText="Unlimited: no rate, quota, concurrency, model or token limit."
            />
          </Grid>
          <Grid size={{ xs: 12, md: 4 }}>
            <Stack spacing={2} data-testid="quota-use">
              <QuotaBar
                label="Today (UTC)"
                used={u.today}
                limit={u.limit_day}
                noQuotaText="No daily quota"
                unitText="requests today"
                testId="quota-day"
              />
              <QuotaBar
                label="This month (UTC)"
                used={u.month}
                limit={u.limit_month}
                noQuotaText="No monthly quota"
                unitText="requests this month"
                testId="quota-month"
              />
            </Stack>
          </Grid>
        </Grid>
      )}
      {canChange && <EditPolicyDialog binding={binding} open={editing} onClose={() => setEditing(false)} />}
    </Paper>
  );
}
