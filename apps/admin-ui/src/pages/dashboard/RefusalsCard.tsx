import {
  Box,
  LinearProgress,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  Typography,
} from '@mui/material';
import { type Dashboard, ERROR_CODES } from '@keypin/shared';
import { formatNumber, Mono } from '../../components/format';

/** What each refusal code means, in a few words (codes the console does not know are shown as they are). */
export const REFUSAL_LABELS: Partial<Record<string, string>> = {
  ip_not_allowed: 'IP not allowed',
  key_banned: 'Key banned',
  network_not_allowed: 'Network not allowed (outside the allow list)',
  network_denied: 'Network denied (inside the deny list)',
  first_use_not_allowed: 'First use not allowed from this network',
  proxy_token_required: 'Proxy token missing or wrong',
  no_route: 'No route for the path',
  rate_limited: 'Over the rate or concurrency limit',
  quota_exceeded: 'Daily or monthly quota used up',
  model_not_allowed: 'Model not allowed',
  max_tokens_too_large: 'Asked for too many tokens',
  body_too_large: 'Body too large for the policy check',
  too_many_new_keys: 'Too many new keys',
  too_many_concurrent_requests: 'Too many concurrent requests',
  invalid_key: 'Invalid key',
  ambiguous_key: 'Ambiguous key',
  binding_store_unavailable: 'Bindings unavailable (fail-closed)',
};

/** Refusals for who or where (the binding, a ban, the network policy): shown in the error colour. */
const ADDRESS_OR_BAN = new Set([
  'ip_not_allowed',
  'key_banned',
  'network_not_allowed',
  'network_denied',
  'first_use_not_allowed',
]);

const visuallyHidden = {
  border: 0,
  clip: 'rect(0 0 0 0)',
  height: '1px',
  margin: '-1px',
  overflow: 'hidden',
  padding: 0,
  position: 'absolute',
  whiteSpace: 'nowrap',
  width: '1px',
} as const;

function statusOf(code: string): string {
  return Object.hasOwn(ERROR_CODES, code) ? String(ERROR_CODES[code as keyof typeof ERROR_CODES]) : '';
}

/** Today's (UTC) refused requests by error code, most first, each with a bar against the largest. */
export function RefusalsCard({ refusals }: { refusals: Dashboard['refusals'] }) {
  if (refusals.length === 0) {
    return (
      <Typography color="text.secondary" sx={{ p: 2 }} data-testid="refusals-empty">
        No requests refused today.
      </Typography>
    );
  }
  // The API sends them most first; kept so whatever the order.
  const sorted = [...refusals].sort((a, b) => b.count - a.count);
  const most = Math.max(sorted[0]?.count ?? 1, 1);
  return (
    <Box sx={{ overflowX: 'auto' }}>
      <Table size="small" aria-label="Refusals today by code">
        <TableHead>
          <TableRow>
            <TableCell>Reason</TableCell>
            <TableCell>Code</TableCell>
            <TableCell align="right">Requests</TableCell>
            <TableCell sx={{ width: '35%' }}>
              <Box component="span" sx={visuallyHidden}>
                Share
              </Box>
            </TableCell>
          </TableRow>
        </TableHead>
        <TableBody>
          {sorted.map((r) => (
            <TableRow key={r.code} data-testid="refusal-row">
              <TableCell>{REFUSAL_LABELS[r.code] ?? r.code}</TableCell>
              <TableCell>
                <Mono>
                  {statusOf(r.code) && `${statusOf(r.code)} `}
                  {r.code}
                </Mono>
              </TableCell>
              <TableCell align="right">{formatNumber(r.count)}</TableCell>
              <TableCell>
                <LinearProgress
                  variant="determinate"
                  value={Math.round((r.count / most) * 100)}
                  color={ADDRESS_OR_BAN.has(r.code) ? 'error' : 'warning'}
                  aria-label={`${r.code}: ${r.count} refused`}
                  sx={{ height: 6, borderRadius: 3 }}
                />
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </Box>
  );
}
