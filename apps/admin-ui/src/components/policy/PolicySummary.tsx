import { Box, Grid, Typography } from '@mui/material';
import { isUnlimited, type KeyPolicy, POLICY_FIELDS } from '@keypin/shared';
import { POLICY_FIELD_INFO, policyValueText } from './policy-form';

/**
 * A policy read, field by field ("Unlimited" for what it leaves open), or a
 * sentence when it limits nothing.
 */
export function PolicySummary({
  policy,
  emptyText,
  testId = 'policy-summary',
}: {
  policy: KeyPolicy | null;
  /** Said when the policy is null or `{}`. */
  emptyText: string;
  testId?: string;
}) {
  if (policy === null || isUnlimited(policy)) {
    return (
      <Typography variant="body2" color="text.secondary" data-testid={testId}>
        {emptyText}
      </Typography>
    );
  }
  const fields = POLICY_FIELDS.filter((f) => f !== 'burst' || policy.rate_per_second !== undefined);
  return (
    <Grid container spacing={2} component="dl" sx={{ m: 0 }} data-testid={testId}>
      {fields.map((f) => {
        const set = f === 'models' ? (policy.models?.length ?? 0) > 0 : policy[f] !== undefined;
        return (
          <Grid key={f} size={{ xs: 12, sm: 6, md: f === 'models' ? 12 : 4 }}>
            <Typography variant="caption" color="text.secondary" component="dt">
              {POLICY_FIELD_INFO[f].label}
            </Typography>
            <Box
              component="dd"
              sx={{ m: 0, mt: 0.25, color: set ? 'text.primary' : 'text.secondary', wordBreak: 'break-word' }}
              data-testid={`${testId}-${f}`}
            >
              <Typography variant="body2">{policyValueText(policy, f)}</Typography>
            </Box>
          </Grid>
        );
      })}
    </Grid>
  );
}
