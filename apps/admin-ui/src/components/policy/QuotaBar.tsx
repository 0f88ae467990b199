import { Box, LinearProgress, Stack, Tooltip, Typography } from '@mui/material';
import { formatNumber } from '../format';

/** How full a quota is, in percent (0 to 100, whole), and the bar's colour. */
export function quotaFill(
  used: number,
  limit: number,
): { percent: number; color: 'primary' | 'warning' | 'error' } {
  const ratio = limit > 0 ? used / limit : 1;
  const percent = Math.min(100, Math.max(0, Math.floor(ratio * 100)));
  return { percent, color: ratio >= 1 ? 'error' : ratio >= 0.8 ? 'warning' : 'primary' };
}

/**
 * A key's use of one quota: "30 of 100" over a bar, or, without a quota,
 * the count and that there is none.
 */
export function QuotaBar({
  label,
  used,
  limit,
  noQuotaText,
  unitText,
  testId,
}: {
  /** "Today (UTC)". */
  label: string;
  used: number;
  /** The quota, or null when there is none. */
  limit: number | null;
  /** "No daily quota". */
  noQuotaText: string;
  /** "requests today". */
  unitText: string;
  testId?: string;
}) {
  if (limit === null) {
    return (
      <Box data-testid={testId}>
        <Typography variant="caption" color="text.secondary" component="div">
          {label}
        </Typography>
        <Typography variant="body2" data-testid={testId && `${testId}-text`}>
          {noQuotaText} · {formatNumber(used)} {unitText}
        </Typography>
      </Box>
    );
  }
  const { percent, color } = quotaFill(used, limit);
  const text = `${formatNumber(used)} of ${formatNumber(limit)}`;
  return (
    <Box data-testid={testId}>
      <Stack direction="row" sx={{ justifyContent: 'space-between', alignItems: 'baseline', gap: 1 }}>
        <Typography variant="caption" color="text.secondary">
          {label}
        </Typography>
        <Typography variant="body2" data-testid={testId && `${testId}-text`}>
          {text} ({percent}%){used >= limit ? ' · used up' : ''}
        </Typography>
      </Stack>
      <LinearProgress
        variant="determinate"
        value={percent}
        color={color}
        aria-label={label}
        aria-valuetext={`${text} requests`}
        sx={{ height: 8, borderRadius: 4, mt: 0.5 }}
      />
    </Box>
  );
}

/** The same in a table cell: the count, and a thin bar when there is a quota. */
export function QuotaCell({ used, limit, label }: { used: number; limit: number | null; label: string }) {
  if (limit === null) return <>{formatNumber(used)}</>;
  const { percent, color } = quotaFill(used, limit);
  const text = `${formatNumber(used)} of ${formatNumber(limit)}`;
  return (
    <Tooltip title={`${text} requests of the daily quota (${percent}%)`}>
      <Box sx={{ display: 'inline-block', minWidth: 56, textAlign: 'right' }}>
        <Typography variant="body2" component="div" sx={{ whiteSpace: 'nowrap' }}>
          {formatNumber(used)}
          <Typography component="span" variant="caption" color="text.secondary">
            {' '}
            / {formatNumber(limit)}
          </Typography>
        </Typography>
        <LinearProgress
          variant="determinate"
          value={percent}
          color={color}
          aria-label={label}
          aria-valuetext={`${text} requests`}
          sx={{ height: 4, borderRadius: 2, mt: 0.25 }}
        />
      </Box>
    </Tooltip>
  );
}
