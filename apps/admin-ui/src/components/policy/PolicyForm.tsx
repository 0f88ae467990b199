import {
  Alert,
  FormControl,
  FormControlLabel,
  FormLabel,
  Grid,
  Radio,
  RadioGroup,
  Stack,
  TextField,
  Typography,
} from '@mui/material';
import { type ReactNode, useId } from 'react';
import { LabelWithHelp } from '../format';
import { monoFont } from '../../theme/theme';
import {
  NUMERIC_POLICY_FIELDS,
  POLICY_FIELD_INFO,
  type PolicyChoice,
  type PolicyDraft,
  type PolicyErrors,
  type PolicyField,
  rangeText,
  UNLIMITED_TEXT,
} from './policy-form';

function emptyMeaning(f: PolicyField): string {
  const t = UNLIMITED_TEXT[f];
  return `Empty: ${t.charAt(0).toLowerCase()}${t.slice(1)}.`;
}

/**
 * The fields of a key policy (docs/contract.md 9). Every field may stay
 * empty: unlimited. Each field shows its own complaint (`errors`, from the
 * shared validator as typed or from the API's refusal) under it.
 */
export function PolicyForm({
  value,
  onChange,
  errors,
  disabled = false,
}: {
  value: PolicyDraft;
  onChange: (next: PolicyDraft) => void;
  errors: PolicyErrors;
  disabled?: boolean;
}) {
  const set = (f: PolicyField, text: string) => onChange({ ...value, [f]: text });
  const numeric = (f: (typeof NUMERIC_POLICY_FIELDS)[number]) => {
    const info = POLICY_FIELD_INFO[f];
    const error = errors[f];
    return (
      <Grid key={f} size={{ xs: 12, sm: 6 }}>
        <TextField
          label={info.label}
          name={f}
          value={value[f]}
          onChange={(e) => set(f, e.target.value)}
          error={error !== undefined}
          helperText={error ?? `${info.help} ${emptyMeaning(f)} (${rangeText(f)})`}
          disabled={disabled}
          placeholder={UNLIMITED_TEXT[f]}
          fullWidth
          autoComplete="off"
          slotProps={{
            htmlInput: {
              inputMode: f === 'rate_per_second' ? 'decimal' : 'numeric',
              'aria-invalid': error !== undefined,
            },
            input: info.unit
              ? {
                  endAdornment: (
                    <Typography variant="caption" color="text.secondary" sx={{ whiteSpace: 'nowrap' }}>
                      {info.unit}
                    </Typography>
                  ),
                }
              : undefined,
          }}
        />
      </Grid>
    );
  };
  const modelsError = errors.models;
  return (
    <Grid container spacing={2} data-testid="policy-form">
      {NUMERIC_POLICY_FIELDS.map(numeric)}
      <Grid size={12}>
        <TextField
          label={POLICY_FIELD_INFO.models.label}
          name="models"
          value={value.models}
          onChange={(e) => set('models', e.target.value)}
          error={modelsError !== undefined}
          helperText={modelsError ?? `${POLICY_FIELD_INFO.models.help} ${emptyMeaning('models')}`}
          disabled={disabled}
          placeholder={'gpt-4o-mini\nclaude-3-5-*'}
          multiline
          minRows={3}
          maxRows={10}
          fullWidth
          spellCheck={false}
          slotProps={{
            htmlInput: { style: { fontFamily: monoFont }, 'aria-invalid': modelsError !== undefined },
          }}
        />
      </Grid>
    </Grid>
  );
}

/**
 * A policy or none: "none" sends `null` (a key follows the default policy;
 * in Settings, there is no default), the other choice the form's policy,
 * where leaving every field empty is an explicit "unlimited" (`{}`).
 */
export function PolicyChoiceForm({
  value,
  onChange,
  errors,
  disabled = false,
  legend,
  noneLabel,
  noneHelp,
  noneDetail,
  customLabel,
  customHelp,
  allEmptyNote,
}: {
  value: PolicyChoice;
  onChange: (next: PolicyChoice) => void;
  errors: PolicyErrors;
  disabled?: boolean;
  legend: string;
  noneLabel: string;
  noneHelp: string;
  /** Shown under the choices while "none" is chosen (e.g. what the default policy is). */
  noneDetail?: ReactNode;
  customLabel: string;
  customHelp: string;
  /** Said when every field is empty: what `{}` means here. */
  allEmptyNote: string;
}) {
  const legendId = useId();
  const allEmpty = Object.values(value.fields).every((t) => t.trim() === '');
  return (
    <Stack spacing={2}>
      <FormControl disabled={disabled}>
        <FormLabel id={legendId}>{legend}</FormLabel>
        <RadioGroup
          aria-labelledby={legendId}
          name="policy_choice"
          value={value.custom ? 'custom' : 'none'}
          onChange={(e) => onChange({ ...value, custom: e.target.value === 'custom' })}
        >
          <FormControlLabel
            value="none"
            control={<Radio size="small" />}
            label={<LabelWithHelp label={noneLabel} help={noneHelp} />}
            sx={{ alignItems: 'flex-start', mb: 1, '& .MuiRadio-root': { pt: 0.25 } }}
          />
          <FormControlLabel
            value="custom"
            control={<Radio size="small" />}
            label={<LabelWithHelp label={customLabel} help={customHelp} />}
            sx={{ alignItems: 'flex-start', '& .MuiRadio-root': { pt: 0.25 } }}
          />
        </RadioGroup>
      </FormControl>
      {value.custom ? (
        <>
          <PolicyForm
            value={value.fields}
            onChange={(fields) => onChange({ ...value, fields })}
            errors={errors}
            disabled={disabled}
          />
          {allEmpty && (
            <Alert severity="info" role="note" data-testid="policy-all-empty">
              {allEmptyNote}
            </Alert>
          )}
        </>
      ) : (
        noneDetail
      )}
    </Stack>
  );
}
