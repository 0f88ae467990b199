import { Chip, Tooltip } from '@mui/material';
import type { Alert, AlertStatus } from '@keypin/shared';
import { type ChipColor, formatDateTime } from '../../components/format';

/** What each alert status is called in the console (docs/alerts.md). */
export const ALERT_STATUS_LABELS: Record<AlertStatus, string> = {
  open: 'Open',
  allowed: 'Network allowed',
  banned: 'Key banned',
  dismissed: 'Dismissed',
};

const LOOK: Record<AlertStatus, { color: ChipColor; variant: 'outlined' | 'filled' }> = {
  open: { color: 'warning', variant: 'filled' },
  allowed: { color: 'success', variant: 'outlined' },
  banned: { color: 'error', variant: 'outlined' },
  dismissed: { color: 'default', variant: 'outlined' },
};

/** Who closed the alert, how and when; null while it is open. */
export function describeResolution(a: Alert): string | null {
  if (a.status === 'open') return null;
  const who = a.acted_by ?? (a.auto_banned ? 'AUTO_BAN' : 'KeyPin');
  const what =
    a.status === 'allowed'
      ? `${a.allowed_network ?? 'a network'} allowed`
      : a.status === 'banned'
        ? 'key banned'
        : 'dismissed';
  return `${what} by ${who}${a.acted_at ? `, ${formatDateTime(a.acted_at)}` : ''}`;
}

/** An alert's status as a chip; a closed one says who closed it on hover. */
export function AlertStatusChip({ alert: a }: { alert: Alert }) {
  const look = LOOK[a.status] ?? { color: 'default', variant: 'outlined' };
  const chip = (
    <Chip
      size="small"
      label={ALERT_STATUS_LABELS[a.status] ?? a.status}
      color={look.color}
      variant={look.variant}
      data-testid="alert-status"
    />
  );
  const resolution = describeResolution(a);
  return resolution === null ? chip : <Tooltip title={resolution}>{chip}</Tooltip>;
}
