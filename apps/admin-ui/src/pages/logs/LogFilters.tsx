import ClearOutlined from '@mui/icons-material/ClearOutlined';
import { Button, Chip, MenuItem, Stack, TextField } from '@mui/material';
import { cidrErrorMessage, type InterceptReason, INTERCEPT_REASONS, parseCidr } from '@keypin/shared';
import { useEffect, useState } from 'react';
import { REASON_LABELS } from '../../components/format';
import { useDebouncedEffect } from '../../components/useDebounced';

/** The filters of `GET /logs` and its export, as the address holds them (times in ISO-8601). */
export interface LogFilterValue {
  search: string;
  ip: string;
  reason: '' | InterceptReason;
  from: string;
  to: string;
  binding_id: string;
}

export const NO_LOG_FILTERS: LogFilterValue = {
  search: '',
  ip: '',
  reason: '',
  from: '',
  to: '',
  binding_id: '',
};

const pad = (n: number) => String(n).padStart(2, '0');

/** ISO instant → the value of a `datetime-local` input, in the viewer's zone. */
export function isoToLocalInput(iso: string): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * A `datetime-local` value (viewer's zone, to the minute) → ISO instant, or ''
 * when empty/invalid. `endOfMinute` makes "to 10:05" include 10:05:59.999.
 */
export function localInputToIso(v: string, endOfMinute = false): string {
  if (!v) return '';
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return '';
  if (endOfMinute && d.getSeconds() === 0 && d.getMilliseconds() === 0) d.setSeconds(59, 999);
  return d.toISOString();
}

/** The IP filter's complaint, or null when it is empty or a valid address/CIDR. */
export function ipFilterError(text: string): string | null {
  const s = text.trim();
  if (s === '') return null;
  const r = parseCidr(s);
  return r.ok ? null : cidrErrorMessage(s, r.error);
}

/**
 * Filters of the intercept log: masked key, attempted IP (address or CIDR,
 * checked as typed with the gateway's parser), reason and time range. Text
 * boxes apply when typing stops; an invalid IP is never sent.
 */
export function LogFilters({
  value,
  onChange,
  debounceMs = 350,
}: {
  value: LogFilterValue;
  onChange: (next: LogFilterValue) => void;
  debounceMs?: number;
}) {
  const [search, setSearch] = useState(value.search);
  const [ip, setIp] = useState(value.ip);
  useEffect(() => setSearch(value.search), [value.search]);
  useEffect(() => setIp(value.ip), [value.ip]);
  const ipError = ipFilterError(ip);

  useDebouncedEffect(search, debounceMs, (s) => {
    if (s.trim() !== value.search) onChange({ ...value, search: s.trim() });
  });
  useDebouncedEffect(ip, debounceMs, (s) => {
    if (ipFilterError(s) === null && s.trim() !== value.ip) onChange({ ...value, ip: s.trim() });
  });

  const rangeError = value.from && value.to && value.from > value.to ? 'Must be after "From".' : null;
  const active = Object.values(value).some((v) => v !== '') || search !== '' || ip !== '';

  return (
    <Stack direction="row" spacing={1.5} useFlexGap sx={{ flexWrap: 'wrap', alignItems: 'flex-start' }}>
      {value.binding_id && (
        <Chip
          label={`Binding #${value.binding_id}`}
          onDelete={() => onChange({ ...value, binding_id: '' })}
          sx={{ mt: 0.5 }}
          data-testid="binding-filter"
        />
      )}
      <TextField
        label="Key"
        type="search"
        value={search}
        onChange={(e) => setSearch(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter') onChange({ ...value, search: search.trim() });
        }}
        helperText="Part of the masked key"
        autoComplete="off"
        spellCheck={false}
        sx={{ width: 160 }}
      />
      <TextField
        label="Attempted IP"
        type="search"
        value={ip}
        onChange={(e) => setIp(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && ipFilterError(ip) === null) onChange({ ...value, ip: ip.trim() });
        }}
        error={ipError !== null}
        helperText={ipError ?? 'An address or a CIDR'}
        autoComplete="off"
        spellCheck={false}
        sx={{ width: 190 }}
        slotProps={{ htmlInput: { 'aria-invalid': ipError !== null } }}
      />
      <TextField
        select
        label="Reason"
        value={value.reason}
        onChange={(e) => onChange({ ...value, reason: e.target.value as LogFilterValue['reason'] })}
        sx={{ minWidth: 150 }}
        helperText=" "
      >
        <MenuItem value="">All</MenuItem>
        {INTERCEPT_REASONS.map((r) => (
          <MenuItem key={r} value={r}>
            {REASON_LABELS[r]}
          </MenuItem>
        ))}
      </TextField>
      <TextField
        label="From"
        type="datetime-local"
        value={isoToLocalInput(value.from)}
        onChange={(e) => onChange({ ...value, from: localInputToIso(e.target.value) })}
        helperText="Your local time"
        sx={{ width: 200 }}
        slotProps={{ inputLabel: { shrink: true } }}
      />
      <TextField
        label="To"
        type="datetime-local"
        value={isoToLocalInput(value.to)}
        onChange={(e) => onChange({ ...value, to: localInputToIso(e.target.value, true) })}
        error={rangeError !== null}
        helperText={rangeError ?? 'Your local time'}
        sx={{ width: 200 }}
        slotProps={{ inputLabel: { shrink: true } }}
      />
      {active && (
        <Button
          startIcon={<ClearOutlined />}
          onClick={() => {
            setSearch('');
            setIp('');
            onChange(NO_LOG_FILTERS);
          }}
          sx={{ mt: 0.5 }}
        >
          Clear filters
        </Button>
      )}
    </Stack>
  );
}
