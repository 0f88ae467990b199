import ClearOutlined from '@mui/icons-material/ClearOutlined';
import SearchOutlined from '@mui/icons-material/SearchOutlined';
import { Button, InputAdornment, MenuItem, Stack, TextField } from '@mui/material';
import { BINDING_STATUSES, type BindingStatus, parseCidr, RULE_TYPES, type RuleType } from '@keypin/shared';
import { useEffect, useState } from 'react';
import { RULE_LABELS, STATUS_LABELS } from '../../components/format';
import { useDebouncedEffect } from '../../components/useDebounced';

export interface BindingFilterValue {
  search: string;
  status: '' | BindingStatus;
  rule_type: '' | RuleType;
}

export const NO_BINDING_FILTERS: BindingFilterValue = { search: '', status: '', rule_type: '' };

/** What a search text will match, said under the box. */
export function describeSearch(text: string): string {
  const s = text.trim();
  if (s === '') return 'A masked key (abcd…wxyz), an IP or CIDR, or a full key';
  if (parseCidr(s).ok) return 'Bindings whose networks, first or last IP match this address';
  if (s.includes('…') || s.includes('...')) return 'Masked keys containing this text';
  if (s.length >= 12)
    return 'A full key is hashed on the server and matched exactly; masked keys containing the text match too';
  return 'Masked keys containing this text';
}

/**
 * Search, status and rule filters of the bindings table. The search box
 * applies as you stop typing (or on Enter); the selects at once.
 */
export function BindingFilters({
  value,
  onChange,
  debounceMs = 350,
}: {
  value: BindingFilterValue;
  onChange: (next: BindingFilterValue) => void;
  debounceMs?: number;
}) {
  const [text, setText] = useState(value.search);
  // The address (back button, "clear") can change the search from outside.
  useEffect(() => setText(value.search), [value.search]);
  useDebouncedEffect(text, debounceMs, (t) => {
    if (t.trim() !== value.search) onChange({ ...value, search: t.trim() });
  });
  const active = value.search !== '' || value.status !== '' || value.rule_type !== '' || text !== '';

  return (
    <Stack direction="row" spacing={1.5} useFlexGap sx={{ flexWrap: 'wrap', alignItems: 'flex-start' }}>
      <TextField
        label="Search"
        type="search"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter') onChange({ ...value, search: text.trim() });
        }}
        helperText={describeSearch(text)}
        autoComplete="off"
        spellCheck={false}
        sx={{ flex: '1 1 320px', maxWidth: 560 }}
        slotProps={{
          input: {
            startAdornment: (
              <InputAdornment position="start">
                <SearchOutlined fontSize="small" />
              </InputAdornment>
            ),
          },
          htmlInput: { 'aria-label': 'Search bindings by masked key, IP or full key' },
        }}
      />
      <TextField
        select
        label="Status"
        value={value.status}
        onChange={(e) => onChange({ ...value, status: e.target.value as BindingFilterValue['status'] })}
        sx={{ width: 150 }}
      >
        <MenuItem value="">All</MenuItem>
        {BINDING_STATUSES.map((s) => (
          <MenuItem key={s} value={s}>
            {STATUS_LABELS[s]}
          </MenuItem>
        ))}
      </TextField>
      <TextField
        select
        label="Rule"
        value={value.rule_type}
        onChange={(e) => onChange({ ...value, rule_type: e.target.value as BindingFilterValue['rule_type'] })}
        sx={{ width: 190 }}
      >
        <MenuItem value="">All</MenuItem>
        {RULE_TYPES.map((r) => (
          <MenuItem key={r} value={r}>
            {RULE_LABELS[r]}
          </MenuItem>
        ))}
      </TextField>
      {active && (
        <Button
          startIcon={<ClearOutlined />}
          onClick={() => {
            setText('');
            onChange(NO_BINDING_FILTERS);
          }}
          sx={{ mt: 0.5 }}
        >
          Clear filters
        </Button>
      )}
    </Stack>
  );
}
