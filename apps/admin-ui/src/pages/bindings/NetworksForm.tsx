import AddOutlined from '@mui/icons-material/AddOutlined';
import DeleteOutlineOutlined from '@mui/icons-material/DeleteOutlineOutlined';
import {
  Alert,
  Box,
  Button,
  FormControl,
  FormControlLabel,
  FormLabel,
  IconButton,
  Radio,
  RadioGroup,
  Stack,
  TextField,
  Typography,
} from '@mui/material';
import { MAX_NETWORKS, RULE_TYPES, type RuleType } from '@keypin/shared';
import { type ClipboardEvent, useId } from 'react';
import { LabelWithHelp, RULE_LABELS } from '../../components/format';
import { monoFont } from '../../theme/theme';
import { changeRule, checkNetworks, type NetworksValue, splitEntries } from './networks';

const RULE_HELP: Record<RuleType, string> = {
  single: 'One IP address or CIDR',
  multiple: `1 to ${MAX_NETWORKS} IPs or CIDRs`,
  all: 'No address restriction',
};

/**
 * The rule and its networks. Each entry is checked with the gateway's parser
 * as it is typed; pasting a list into one entry splits it into several.
 */
export function NetworksForm({
  value,
  onChange,
  disabled = false,
}: {
  value: NetworksValue;
  onChange: (next: NetworksValue) => void;
  disabled?: boolean;
}) {
  const ruleLabelId = useId();
  const check = checkNetworks(value);

  const setEntry = (i: number, text: string) => {
    const entries = value.entries.slice();
    entries[i] = text;
    onChange({ ...value, entries });
  };
  const removeEntry = (i: number) => {
    const entries = value.entries.filter((_e, j) => j !== i);
    onChange({ ...value, entries: entries.length > 0 ? entries : [''] });
  };
  const addEntry = () => onChange({ ...value, entries: [...value.entries, ''] });

  const onPaste = (i: number, e: ClipboardEvent<HTMLElement>) => {
    const parts = splitEntries(e.clipboardData.getData('text'));
    if (parts.length < 2) return;
    e.preventDefault();
    const entries = value.entries.slice();
    const current = entries[i]?.trim() ?? '';
    entries.splice(i, 1, ...(current === '' ? parts : [current, ...parts]));
    onChange({ rule: value.rule === 'single' ? 'multiple' : value.rule, entries });
  };

  return (
    <Stack spacing={2}>
      <FormControl disabled={disabled}>
        <FormLabel id={ruleLabelId}>Rule</FormLabel>
        <RadioGroup
          row
          aria-labelledby={ruleLabelId}
          name="rule_type"
          value={value.rule}
          onChange={(e) => onChange(changeRule(value, e.target.value as RuleType))}
        >
          {RULE_TYPES.map((r) => (
            <FormControlLabel
              key={r}
              value={r}
              control={<Radio size="small" />}
              label={<LabelWithHelp label={RULE_LABELS[r]} help={RULE_HELP[r]} />}
              sx={{ mr: 3, alignItems: 'flex-start', '& .MuiRadio-root': { pt: 0.25 } }}
            />
          ))}
        </RadioGroup>
      </FormControl>

      {value.rule === 'all' ? (
        <Alert severity="warning">The key will be accepted from every IP address.</Alert>
      ) : (
        <Stack spacing={1.5} data-testid="network-entries">
          {value.entries.map((entry, i) => {
            const error = check.entryErrors[i] ?? null;
            const hint = check.entryHints[i] ?? null;
            const label = value.rule === 'single' ? 'IP address or CIDR' : `Network ${i + 1}`;
            return (
              <Stack key={i} direction="row" spacing={1} sx={{ alignItems: 'flex-start' }}>
                <TextField
                  label={label}
                  value={entry}
                  onChange={(e) => setEntry(i, e.target.value)}
                  onPaste={(e) => onPaste(i, e)}
                  error={error !== null}
                  helperText={error ?? hint ?? ' '}
                  placeholder="203.0.113.7 or 10.0.0.0/24 or 2001:db8::/48"
                  disabled={disabled}
                  fullWidth
                  autoComplete="off"
                  spellCheck={false}
                  slotProps={{
                    htmlInput: { style: { fontFamily: monoFont }, 'aria-invalid': error !== null },
                  }}
                />
                {value.rule === 'multiple' && value.entries.length > 1 && (
                  <IconButton
                    aria-label={`Remove network ${i + 1}`}
                    onClick={() => removeEntry(i)}
                    disabled={disabled}
                    sx={{ mt: 0.5 }}
                  >
                    <DeleteOutlineOutlined />
                  </IconButton>
                )}
              </Stack>
            );
          })}
          {value.rule === 'multiple' && (
            <Box>
              <Button
                startIcon={<AddOutlined />}
                onClick={addEntry}
                disabled={disabled || value.entries.length >= MAX_NETWORKS}
              >
                Add network
              </Button>
              <Typography variant="caption" color="text.secondary" sx={{ ml: 1 }}>
                {value.entries.length} of {MAX_NETWORKS}. Tip: paste a list to add several at once.
              </Typography>
            </Box>
          )}
        </Stack>
      )}
      {check.formError && (
        <Alert severity="info" data-testid="networks-form-error">
          {check.formError}
        </Alert>
      )}
    </Stack>
  );
}
