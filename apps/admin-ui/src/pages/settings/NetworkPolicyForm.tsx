import { Grid, Table, TableBody, TableCell, TableRow, TextField, Typography } from '@mui/material';
import { MAX_POLICY_NETWORKS, type NetworkPolicy, NETWORK_POLICY_FIELDS } from '@keypin/shared';
import { NetworkList } from '../../components/format';
import { monoFont } from '../../theme/theme';
import {
  checkNetworkPolicy,
  NETWORK_LIST_INFO,
  type NetworkPolicyDraft,
  type NetworkPolicyErrors,
} from './network-policy-form';

export const NETWORK_POLICY_TITLE = 'Network policy';
export const NETWORK_POLICY_INTRO =
  'Checked on every proxied request, before the key’s own binding. One IP address or CIDR per line ' +
  '(an address alone is its /32 or /128; a CIDR is written with its network address: 10.0.0.0/24, ' +
  'not 10.0.0.1/24). A refused request that carries a key is recorded as an intercept.';

/**
 * The three lists of the network policy, one entry per line, each checked as
 * it is typed with the shared `validateCidrList`. `errors` adds complaints
 * from elsewhere (the API's 422) under their list.
 */
export function NetworkPolicyForm({
  value,
  onChange,
  errors = {},
  disabled = false,
}: {
  value: NetworkPolicyDraft;
  onChange: (next: NetworkPolicyDraft) => void;
  errors?: NetworkPolicyErrors;
  disabled?: boolean;
}) {
  const check = checkNetworkPolicy(value);
  return (
    <Grid container spacing={2.5}>
      {NETWORK_POLICY_FIELDS.map((f) => {
        const info = NETWORK_LIST_INFO[f];
        const error = errors[f] ?? check.errors[f];
        const hint = check.hints[f];
        return (
          <Grid key={f} size={{ xs: 12, md: 4 }}>
            <TextField
              label={info.label}
              name={`networks.${f}`}
              value={value[f]}
              onChange={(e) => onChange({ ...value, [f]: e.target.value })}
              error={error !== undefined}
              helperText={error ?? (hint ? `${info.help} ${hint}.` : `${info.help} ${info.empty}.`)}
              placeholder="One IP or CIDR per line, e.g. 10.0.0.0/8"
              disabled={disabled}
              multiline
              minRows={3}
              maxRows={12}
              fullWidth
              autoComplete="off"
              spellCheck={false}
              slotProps={{
                htmlInput: {
                  style: { fontFamily: monoFont },
                  'aria-invalid': error !== undefined,
                  'data-testid': `networks-${f}`,
                },
                inputLabel: { shrink: true },
              }}
            />
          </Grid>
        );
      })}
    </Grid>
  );
}

/** The network policy as an auditor reads it: each list with what it does. */
export function NetworkPolicySummary({ policy }: { policy: NetworkPolicy }) {
  return (
    <Table size="small" aria-label={NETWORK_POLICY_TITLE}>
      <TableBody>
        {NETWORK_POLICY_FIELDS.map((f) => {
          const info = NETWORK_LIST_INFO[f];
          return (
            <TableRow key={f}>
              <TableCell component="th" scope="row" sx={{ width: '35%', verticalAlign: 'top' }}>
                {info.label}
                <Typography variant="caption" color="text.secondary" component="div">
                  {info.help}
                </Typography>
              </TableCell>
              <TableCell data-testid={`setting-networks-${f}`}>
                <NetworkList
                  networks={policy[f]}
                  max={MAX_POLICY_NETWORKS}
                  empty={info.empty.replace(/^Empty: /, '').replace(/^./, (c) => c.toUpperCase())}
                />
              </TableCell>
            </TableRow>
          );
        })}
      </TableBody>
    </Table>
  );
}
