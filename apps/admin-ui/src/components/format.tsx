import { Box, Chip, Link, Stack, Tooltip, Typography } from '@mui/material';
import type {
  AlertDeliveryStatus,
  BindingStatus,
  InterceptReason,
  Relay,
  Role,
  RuleType,
} from '@keypin/shared';
import { Link as RouterLink } from 'react-router-dom';
import { monoFont } from '../theme/theme';

const pad = (n: number) => String(n).padStart(2, '0');

/** `2025-01-31 14:05:09` in the viewer's zone: compact, sortable, unambiguous. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** A time in the viewer's zone, with the exact UTC instant on hover. */
export function DateTime({ value }: { value: string | null | undefined }) {
  if (!value) return <>—</>;
  return (
    <Tooltip title={`${value} (UTC)`}>
      <Box component="time" dateTime={value} sx={{ whiteSpace: 'nowrap' }}>
        {formatDateTime(value)}
      </Box>
    </Tooltip>
  );
}

export function formatNumber(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : n.toLocaleString();
}

/** Keys and addresses: monospaced, never wrapped mid-token. */
export function Mono({ children, title }: { children: React.ReactNode; title?: string }) {
  return (
    <Box
      component="span"
      title={title}
      sx={{ fontFamily: monoFont, fontSize: '0.9em', whiteSpace: 'nowrap' }}
    >
      {children}
    </Box>
  );
}

/** A control's label with a line of help under it (radio buttons, switches). */
export function LabelWithHelp({ label, help }: { label: string; help: string }) {
  return (
    <Box>
      <Typography variant="body2">{label}</Typography>
      <Typography variant="caption" color="text.secondary">
        {help}
      </Typography>
    </Box>
  );
}

/** What a key without a binding (refused by the network policy before it had one) says on hover. */
export const UNBOUND_KEY_TEXT = 'Not bound: refused by the network policy before this key had a binding';

/**
 * A masked key, linking to its binding's page; a key without a binding
 * (`bindingId` null) is plain text, and "—" when there is no key either.
 */
export function KeyLink({ bindingId, token }: { bindingId: number | null; token: string }) {
  if (bindingId === null) {
    if (!token) return <>—</>;
    return (
      <Tooltip title={UNBOUND_KEY_TEXT}>
        <Box component="span" data-testid="unbound-key">
          <Mono>{token}</Mono>
        </Box>
      </Tooltip>
    );
  }
  return (
    <Link component={RouterLink} to={`/bindings/${bindingId}`} underline="hover">
      <Mono>{token}</Mono>
    </Link>
  );
}

export type ChipColor = 'default' | 'primary' | 'success' | 'warning' | 'error';

/**
 * How each role is described (keyed by the shared `Role`, so a new role
 * fails to compile until it has words): the badge beside the user name, its
 * tooltip, and the choice when adding a user.
 */
export const ROLE_LABELS: Record<Role, { badge: string; summary: string; choice: string }> = {
  admin: {
    badge: 'Admin',
    summary: 'Administrators may change everything',
    choice: 'Admin: may change everything',
  },
  auditor: {
    badge: 'Auditor · read-only',
    summary: 'Auditors look at everything and change nothing',
    choice: 'Auditor: reads everything, changes nothing',
  },
};

export const STATUS_LABELS: Record<BindingStatus, string> = {
  active: 'Active',
  banned: 'Banned',
};

const STATUS_LOOK: Record<BindingStatus, { color: ChipColor; variant: 'outlined' | 'filled' }> = {
  active: { color: 'success', variant: 'outlined' },
  banned: { color: 'error', variant: 'filled' },
};

export function StatusChip({ status }: { status: BindingStatus }) {
  const look = STATUS_LOOK[status] ?? { color: 'default', variant: 'outlined' };
  return (
    <Chip size="small" label={STATUS_LABELS[status] ?? status} color={look.color} variant={look.variant} />
  );
}

export const RULE_LABELS: Record<RuleType, string> = {
  single: 'Single network',
  multiple: 'Several networks',
  all: 'Any IP',
};

export function RuleChip({ rule }: { rule: RuleType }) {
  return <Chip size="small" variant="outlined" label={RULE_LABELS[rule]} />;
}

/** Each relay (docs/contract.md 2.1) as the settings and the routes name it. */
export const RELAY_LABELS: Record<Relay, string> = {
  newapi: 'New API / One API',
  litellm: 'LiteLLM proxy',
  openai: 'Plain OpenAI-compatible upstream (key as sent)',
};

export const REASON_LABELS: Record<InterceptReason, string> = {
  ip_not_allowed: 'IP not allowed',
  key_banned: 'Key banned',
  network_not_allowed: 'Network not allowed',
  network_denied: 'Network denied',
  first_use_not_allowed: 'First use not allowed',
};

/** What each reason means, in one sentence (the chip's tooltip). */
export const REASON_HELP: Record<InterceptReason, string> = {
  ip_not_allowed: 'The address is outside the networks the key is bound to.',
  key_banned: 'The key is banned.',
  network_not_allowed: 'The address is outside every network of the allow list (Settings, network policy).',
  network_denied: 'The address is inside a network of the deny list (Settings, network policy).',
  first_use_not_allowed:
    'A first use from outside the networks keys may bind from (Settings, network policy): nothing was bound.',
};

const REASON_COLORS: Record<InterceptReason, ChipColor> = {
  ip_not_allowed: 'warning',
  key_banned: 'error',
  network_not_allowed: 'warning',
  network_denied: 'error',
  first_use_not_allowed: 'warning',
};

export function ReasonChip({ reason }: { reason: InterceptReason }) {
  const chip = (
    <Chip
      size="small"
      label={REASON_LABELS[reason] ?? reason}
      color={REASON_COLORS[reason] ?? 'warning'}
      variant="outlined"
    />
  );
  const help = REASON_HELP[reason];
  return help ? (
    <Tooltip title={help} describeChild>
      <span>{chip}</span>
    </Tooltip>
  ) : (
    chip
  );
}

const DELIVERY: Record<AlertDeliveryStatus, { label: string; color: 'success' | 'warning' | 'error' }> = {
  delivered: { label: 'Delivered', color: 'success' },
  pending: { label: 'Pending', color: 'warning' },
  failed: { label: 'Failed', color: 'error' },
};

export function DeliveryChip({ status }: { status: AlertDeliveryStatus }) {
  const d = DELIVERY[status] ?? { label: status, color: 'warning' as const };
  return <Chip size="small" label={d.label} color={d.color} variant="outlined" />;
}

/** A binding's networks, at most `max` shown with a "+N" for the rest. */
export function NetworkList({
  networks,
  max = 3,
  empty = 'Any IP',
}: {
  networks: string[];
  max?: number;
  empty?: string;
}) {
  if (networks.length === 0) {
    return (
      <Typography variant="body2" color="text.secondary" component="span">
        {empty}
      </Typography>
    );
  }
  const shown = networks.slice(0, max);
  const rest = networks.length - shown.length;
  return (
    <Stack direction="row" spacing={0.5} useFlexGap sx={{ flexWrap: 'wrap' }}>
      {shown.map((n) => (
        <Chip key={n} size="small" label={<Mono>{n}</Mono>} />
      ))}
      {rest > 0 && (
        <Tooltip title={networks.slice(max).join(', ')}>
          <Chip size="small" variant="outlined" label={`+${rest}`} />
        </Tooltip>
      )}
    </Stack>
  );
}
