import {
  Alert,
  Box,
  Button,
  Checkbox,
  Chip,
  CircularProgress,
  Divider,
  FormControlLabel,
  Grid,
  MenuItem,
  Paper,
  Stack,
  Switch,
  Table,
  TableBody,
  TableCell,
  TableRow,
  TextField,
  Typography,
} from '@mui/material';
import { ALERT_WEBHOOK_FORMATS, RELAYS, type SettingsResponse, type SettingsUpdate } from '@keypin/shared';
import { type ReactNode, useEffect, useState } from 'react';
import { errorMessage } from '../../api/client';
import { useCanChange } from '../../api/context';
import { useSettings, useUpdateSettings } from '../../api/hooks';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { ErrorAlert } from '../../components/ErrorAlert';
import { LabelWithHelp, RELAY_LABELS } from '../../components/format';
import { useNotify } from '../../components/Notifier';
import { PageHeader } from '../../components/PageHeader';
import { PolicyChoiceForm } from '../../components/policy/PolicyForm';
import type { PolicyChoice } from '../../components/policy/policy-form';
import { PolicySummary } from '../../components/policy/PolicySummary';
import { Loading } from '../../components/TableStates';
import type { NetworkPolicyDraft } from './network-policy-form';
import {
  NETWORK_POLICY_INTRO,
  NETWORK_POLICY_TITLE,
  NetworkPolicyForm,
  NetworkPolicySummary,
} from './NetworkPolicyForm';
import {
  apiSettingsErrors,
  confirmingUnbindAll,
  diffSettings,
  draftOf,
  identityChanges,
  isUnbindRefusal,
  type ScalarSetting,
  unbindRefusalText,
  type SecretDraft,
  type SettingsDraft,
} from './settings-form';
import { ALERT_FORMAT_LABELS, TestAlertPanel } from './TestAlertPanel';

interface FieldInfo {
  label: string;
  help: string;
  choices?: { value: string; label: string }[];
  unit?: string;
}

const FIELDS: Record<ScalarSetting, FieldInfo> = {
  enforce_mode: {
    label: 'Mode',
    help: 'Monitor records intercepts but forwards the request: for rolling KeyPin out without breaking anyone.',
    choices: [
      { value: 'enforce', label: 'Enforce (block)' },
      { value: 'monitor', label: 'Monitor only' },
    ],
  },
  failsafe_mode: {
    label: 'When bindings cannot be read',
    help: 'If the cache, Redis and PostgreSQL all fail: refuse (closed) or forward (open).',
    choices: [
      { value: 'closed', label: 'Closed (refuse, 503)' },
      { value: 'open', label: 'Open (forward)' },
    ],
  },
  relay: {
    label: 'Relay',
    help:
      'What KeyPin stands in front of: it reads every key the way that relay does (which prefixes it strips, ' +
      'what it trims), so the key KeyPin judges is the key the relay accepts.',
    choices: RELAYS.map((r) => ({ value: r, label: RELAY_LABELS[r] })),
  },
  token_normalize: {
    label: 'Key normalisation',
    help:
      'For New API / One API. newapi: "sk-abc-7", "sk-abc" and "abc" are one key (the relay drops "sk-" and ' +
      'the channel suffix). none: when its keys contain dashes ("sk-proj-…").',
    choices: [
      { value: 'newapi', label: 'newapi' },
      { value: 'none', label: 'none' },
    ],
  },
  key_case: {
    label: 'Key case',
    help:
      'Insensitive when the relay’s key store compares keys without case: New API or One API on MySQL ' +
      '(its default collation). Otherwise sensitive.',
    choices: [
      { value: 'sensitive', label: 'Sensitive (AbC and abc differ)' },
      { value: 'insensitive', label: 'Insensitive (AbC is abc)' },
    ],
  },
  auto_ban: {
    label: 'Ban keys automatically on an alert',
    help: 'A key that raises an alert is banned at once.',
  },
  alert_threshold_count: {
    label: 'Alert after',
    help: 'Intercepts of one key within the window.',
    unit: 'intercepts',
  },
  alert_threshold_seconds: { label: 'Alert window', help: '1 s to 30 days.', unit: 'seconds' },
  archive_days: {
    label: 'Archive unused bindings after',
    help: 'The key binds afresh on its next use.',
    unit: 'days',
  },
  bind_ipv4_prefix: {
    label: 'IPv4 first-use prefix',
    help: '32 binds the exact address; 24 its /24.',
    unit: 'bits',
  },
  bind_ipv6_prefix: {
    label: 'IPv6 first-use prefix',
    help: '128 binds the exact address; 64 its /64.',
    unit: 'bits',
  },
  alert_webhook_url: {
    label: 'Alert webhook URL',
    help: 'Alerts are POSTed here, in the format beside it. Empty: no webhook.',
  },
  alert_webhook_format: {
    label: 'Alert format',
    help:
      'Standard: the JSON of the API docs, signed Standard Webhooks style. Or what a Slack, Discord, Feishu, ' +
      'DingTalk or WeCom incoming webhook accepts; Feishu and DingTalk are signed with the secret below.',
    choices: ALERT_WEBHOOK_FORMATS.map((f) => ({ value: f, label: ALERT_FORMAT_LABELS[f] })),
  },
};

const GROUPS: { title: string; keys: ScalarSetting[] }[] = [
  { title: 'Enforcement', keys: ['enforce_mode', 'failsafe_mode'] },
  { title: 'Key identity', keys: ['relay', 'token_normalize', 'key_case'] },
  { title: 'Binding', keys: ['bind_ipv4_prefix', 'bind_ipv6_prefix', 'archive_days'] },
  {
    title: 'Alerts',
    keys: [
      'alert_threshold_count',
      'alert_threshold_seconds',
      'auto_ban',
      'alert_webhook_url',
      'alert_webhook_format',
    ],
  },
];

function shown(k: ScalarSetting, v: string | number | boolean | null): ReactNode {
  if (typeof v === 'boolean') return v ? 'Yes' : 'No';
  if (v === null || v === '') return '—';
  const info = FIELDS[k];
  const choice = info.choices?.find((c) => c.value === v);
  if (choice) return choice.label;
  return `${String(v)}${info.unit ? ` ${info.unit}` : ''}`;
}

const DEFAULT_POLICY_TITLE = 'Default key policy';
const DEFAULT_POLICY_INTRO =
  'Limits for every key that has no policy of its own: rate, daily and monthly quotas, concurrency, ' +
  'models and max tokens. A key’s own policy (on its page) replaces it.';
const NO_DEFAULT_TEXT = 'No default policy: keys without their own policy are unlimited.';

/** What an auditor sees: every value, nothing to change. */
function ReadOnlySettings({ s }: { s: SettingsResponse }) {
  return (
    <Stack spacing={3}>
      <Paper>
        <Table size="small" aria-label="Settings">
          <TableBody>
            {GROUPS.flatMap((g) => g.keys).map((k) => (
              <TableRow key={k}>
                <TableCell component="th" scope="row" sx={{ width: '35%' }}>
                  {FIELDS[k].label}
                </TableCell>
                <TableCell data-testid={`setting-${k}`}>{shown(k, s[k])}</TableCell>
              </TableRow>
            ))}
            <TableRow>
              <TableCell component="th" scope="row">
                Webhook signing secret
              </TableCell>
              <TableCell>{s.alert_webhook_secret_set ? 'Set (never shown)' : 'Not set'}</TableCell>
            </TableRow>
          </TableBody>
        </Table>
      </Paper>
      <SettingsSection id="default-policy" title={DEFAULT_POLICY_TITLE} intro={DEFAULT_POLICY_INTRO}>
        <PolicySummary
          policy={s.default_policy}
          emptyText={s.default_policy === null ? NO_DEFAULT_TEXT : 'A default policy that limits nothing.'}
          testId="setting-default_policy"
        />
      </SettingsSection>
      <SettingsSection id="network-policy" title={NETWORK_POLICY_TITLE} intro={NETWORK_POLICY_INTRO}>
        <NetworkPolicySummary policy={s.networks} />
      </SettingsSection>
    </Stack>
  );
}

function SettingsForm({ s }: { s: SettingsResponse }) {
  const [draft, setDraft] = useState<SettingsDraft>(() => draftOf(s));
  const [secret, setSecret] = useState<SecretDraft>({ value: '', clear: false });
  const update = useUpdateSettings();
  const notify = useNotify();
  // Saved or changed elsewhere: start again from what the server holds.
  useEffect(() => setDraft(draftOf(s)), [s]);
  const own = diffSettings(s, draft, secret);
  const { patch, changed } = own;
  // A refusal naming a field (a setting, or a field of the default policy) shows under it.
  const refused = apiSettingsErrors(update.error);
  const fieldRefusal =
    Object.keys(refused.errors).length +
      Object.keys(refused.policyErrors).length +
      Object.keys(refused.networkErrors).length >
    0;
  const errors = { ...own.errors, ...refused.errors };
  const policyErrors = { ...own.policyErrors, ...refused.policyErrors };
  const networkErrors = { ...own.networkErrors, ...refused.networkErrors };
  const hasErrors =
    Object.keys(errors).length + Object.keys(policyErrors).length + Object.keys(networkErrors).length > 0;

  // An identity change the API refused because bindings exist: asked about
  // in a dialog. Kept after closing so the dialog's text stays while it fades.
  const [unbind, setUnbind] = useState<{ open: boolean; patch: SettingsUpdate; message: string }>({
    open: false,
    patch: {},
    message: '',
  });
  const rekeys = identityChanges(patch);

  const edited = () => {
    // The refusal was about what is being edited: it goes once the field changes.
    if (fieldRefusal) update.reset();
  };
  const set = (k: ScalarSetting, v: string | boolean) => {
    setDraft((d) => ({ ...d, [k]: v }));
    edited();
  };
  const setPolicy = (v: PolicyChoice) => {
    setDraft((d) => ({ ...d, default_policy: v }));
    edited();
  };
  const setNetworks = (v: NetworkPolicyDraft) => {
    setDraft((d) => ({ ...d, networks: v }));
    edited();
  };

  const saved = (count: number) => {
    setSecret({ value: '', clear: false });
    notify(`Settings saved (${count} ${count === 1 ? 'change' : 'changes'}).`);
  };

  const save = () => {
    if (hasErrors || changed === 0) return;
    update.mutate(patch, {
      onSuccess: () => saved(changed),
      onError: (err) => {
        if (isUnbindRefusal(err)) setUnbind({ open: true, patch, message: err.message });
      },
    });
  };

  const confirmUnbind = async () => {
    await update.mutateAsync(confirmingUnbindAll(unbind.patch));
    saved(Object.keys(unbind.patch).length);
  };

  const field = (k: ScalarSetting) => {
    const info = FIELDS[k];
    const v = draft[k];
    if (typeof v === 'boolean') {
      return (
        <FormControlLabel
          control={<Switch checked={v} onChange={(e) => set(k, e.target.checked)} name={k} />}
          label={<LabelWithHelp label={info.label} help={info.help} />}
        />
      );
    }
    return (
      <TextField
        label={info.label}
        name={k}
        value={v}
        onChange={(e) => set(k, e.target.value)}
        select={info.choices !== undefined}
        error={errors[k] !== undefined}
        helperText={errors[k] ?? info.help}
        fullWidth
        slotProps={{
          htmlInput: info.unit ? { inputMode: 'numeric' } : undefined,
          input: info.unit
            ? {
                endAdornment: (
                  <Typography variant="caption" color="text.secondary">
                    {info.unit}
                  </Typography>
                ),
              }
            : undefined,
        }}
      >
        {info.choices?.map((c) => (
          <MenuItem key={c.value} value={c.value}>
            {c.label}
          </MenuItem>
        ))}
      </TextField>
    );
  };

  return (
    <Paper
      component="form"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
      sx={{ p: 3 }}
    >
      <Stack spacing={3} divider={<Divider flexItem />}>
        {GROUPS.map((g) => (
          <Box key={g.title}>
            <Typography variant="h2" component="h2" sx={{ mb: 2 }}>
              {g.title}
            </Typography>
            <Grid container spacing={2.5}>
              {g.keys.map((k) => (
                <Grid
                  key={k}
                  size={{
                    xs: 12,
                    md: k === 'alert_webhook_url' ? 12 : 6,
                    lg: k === 'alert_webhook_url' ? 8 : 4,
                  }}
                >
                  {field(k)}
                </Grid>
              ))}
            </Grid>
            {g.title === 'Alerts' && (
              <TestAlertPanel
                urlSaved={s.alert_webhook_url !== null}
                unsaved={
                  'alert_webhook_url' in patch ||
                  'alert_webhook_format' in patch ||
                  'alert_webhook_secret' in patch
                }
              />
            )}
            {g.title === 'Key identity' && (
              <Alert
                severity={rekeys.length > 0 ? 'warning' : 'info'}
                role="note"
                sx={{ mt: 2 }}
                data-testid="identity-note"
              >
                {rekeys.length > 0
                  ? 'Saving this changes how every key is identified: existing bindings stop matching and ' +
                    'each key binds afresh on its next use. You will be asked to confirm.'
                  : 'These three decide which key a request carries. Changing one while keys are bound ' +
                    'makes every key bind afresh on its next use.'}
              </Alert>
            )}
          </Box>
        ))}
        <Box>
          <Typography variant="h2" component="h2" sx={{ mb: 1 }}>
            Webhook signing secret
          </Typography>
          <Stack direction="row" spacing={1} sx={{ alignItems: 'center', mb: 2 }}>
            <Typography variant="body2" color="text.secondary">
              Current:
            </Typography>
            <Chip
              size="small"
              data-testid="secret-state"
              label={s.alert_webhook_secret_set ? 'Set' : 'Not set'}
              color={s.alert_webhook_secret_set ? 'success' : 'default'}
            />
            <Typography variant="body2" color="text.secondary">
              It can be replaced or removed, never read back.
            </Typography>
          </Stack>
          <Grid container spacing={2.5} sx={{ alignItems: 'center' }}>
            <Grid size={{ xs: 12, md: 6, lg: 4 }}>
              <TextField
                label={s.alert_webhook_secret_set ? 'New secret' : 'Secret'}
                name="alert_webhook_secret"
                type="password"
                autoComplete="new-password"
                value={secret.value}
                disabled={secret.clear}
                onChange={(e) => setSecret({ value: e.target.value, clear: false })}
                error={errors['alert_webhook_secret'] !== undefined}
                helperText={errors['alert_webhook_secret'] ?? 'Leave empty to keep the current one.'}
                fullWidth
              />
            </Grid>
            {s.alert_webhook_secret_set && (
              <Grid size={{ xs: 12, md: 6, lg: 4 }}>
                <FormControlLabel
                  control={
                    <Checkbox
                      checked={secret.clear}
                      onChange={(e) => setSecret({ value: '', clear: e.target.checked })}
                    />
                  }
                  label="Remove the secret (webhooks go unsigned)"
                />
              </Grid>
            )}
          </Grid>
        </Box>
        <SettingsSection id="default-policy" title={DEFAULT_POLICY_TITLE} intro={DEFAULT_POLICY_INTRO} plain>
          <Box sx={{ maxWidth: 900 }}>
            <PolicyChoiceForm
              value={draft.default_policy}
              onChange={setPolicy}
              errors={policyErrors}
              disabled={update.isPending}
              legend="Default policy"
              noneLabel="No default policy"
              noneHelp="Keys without their own policy are unlimited."
              customLabel="Set a default policy"
              customHelp="Applies to every key without a policy of its own. An empty field is unlimited."
              allEmptyNote="Every field is empty: a default policy that limits nothing (the same as none)."
            />
          </Box>
        </SettingsSection>
        <SettingsSection id="network-policy" title={NETWORK_POLICY_TITLE} intro={NETWORK_POLICY_INTRO} plain>
          <NetworkPolicyForm
            value={draft.networks}
            onChange={setNetworks}
            errors={networkErrors}
            disabled={update.isPending}
          />
        </SettingsSection>
      </Stack>
      {update.isError && !isUnbindRefusal(update.error) && !fieldRefusal && (
        <Alert severity="error" role="alert" sx={{ mt: 3 }}>
          {errorMessage(update.error)}
        </Alert>
      )}
      <ConfirmDialog
        open={unbind.open}
        title="Unbind every key?"
        confirmLabel="Change it and unbind all keys"
        danger
        onConfirm={confirmUnbind}
        onClose={() => {
          setUnbind((u) => ({ ...u, open: false }));
          if (isUnbindRefusal(update.error)) update.reset();
        }}
      >
        <Typography variant="body2" sx={{ mb: 1.5 }} data-testid="unbind-message">
          {unbindRefusalText(unbind.message)}
        </Typography>
        <Typography variant="body2" sx={{ mb: 1.5 }}>
          Every key will bind afresh on its next use, to the network that use comes from: the IP rules set for
          keys so far and their bans stop applying, and whoever uses a key first after the change holds it.
          The old bindings stay listed (they match again if the setting is switched back) until they are
          archived or unbound.
        </Typography>
        <Typography variant="body2">
          Do this only when the relay or its key handling has really changed, ideally while no one is using
          the keys.
        </Typography>
      </ConfirmDialog>
      <Stack direction="row" spacing={1.5} sx={{ mt: 3, alignItems: 'center' }}>
        <Button
          type="submit"
          variant="contained"
          disabled={hasErrors || changed === 0 || update.isPending}
          startIcon={update.isPending ? <CircularProgress size={16} color="inherit" /> : undefined}
        >
          Save settings
        </Button>
        <Button
          onClick={() => {
            setDraft(draftOf(s));
            setSecret({ value: '', clear: false });
            update.reset();
          }}
          disabled={changed === 0 && !hasErrors}
        >
          Discard changes
        </Button>
        <Typography variant="body2" color="text.secondary" aria-live="polite">
          {hasErrors
            ? 'Fix the highlighted fields to save.'
            : changed === 0
              ? 'No unsaved changes.'
              : `${changed} unsaved ${changed === 1 ? 'change' : 'changes'}.`}
        </Typography>
      </Stack>
    </Paper>
  );
}

export function SettingsPage() {
  const canChange = useCanChange();
  const q = useSettings();
  return (
    <>
      <PageHeader
        title="Settings"
        subtitle="Applied by every gateway instance within a second. The environment gives the initial values."
      />
      <ErrorAlert error={q.error} title="Could not load the settings" onRetry={() => void q.refetch()} />
      {q.isLoading && <Loading />}
      {q.data && (canChange ? <SettingsForm s={q.data} /> : <ReadOnlySettings s={q.data} />)}
    </>
  );
}

/** One titled section of the Settings page: on its own paper, or `plain` inside the form's. */
function SettingsSection({
  id,
  title,
  intro,
  plain = false,
  children,
}: {
  id: string;
  title: ReactNode;
  intro: ReactNode;
  plain?: boolean;
  children: ReactNode;
}) {
  const heading = (
    <>
      <Typography variant="h2" component="h2" id={`${id}-title`} sx={{ mb: 1 }}>
        {title}
      </Typography>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        {intro}
      </Typography>
    </>
  );
  return plain ? (
    <Box component="section" aria-labelledby={`${id}-title`}>
      {heading}
      {children}
    </Box>
  ) : (
    <Paper sx={{ p: 3 }} component="section" aria-labelledby={`${id}-title`}>
      {heading}
      {children}
    </Paper>
  );
}
