import AddOutlined from '@mui/icons-material/AddOutlined';
import DeleteOutlineOutlined from '@mui/icons-material/DeleteOutlineOutlined';
import {
  Alert,
  Box,
  Button,
  Checkbox,
  Divider,
  FormControlLabel,
  Grid,
  IconButton,
  MenuItem,
  Stack,
  Switch,
  TextField,
  type TextFieldProps,
  Typography,
} from '@mui/material';
import { RELAYS, type Relay, type Route, ROUTE_LIMITS, type RouteInput } from '@keypin/shared';
import { type ReactNode, useId, useState } from 'react';
import { useCreateRoute, useSettings, useUpdateRoute } from '../../api/hooks';
import { FormDialog } from '../../components/FormDialog';
import { LabelWithHelp, RELAY_LABELS } from '../../components/format';
import { useNotify } from '../../components/Notifier';
import { monoFont } from '../../theme/theme';
import {
  apiRouteErrors,
  checkRoute,
  draftOfRoute,
  headerRow,
  type HeaderRow,
  type RouteDraft,
  storedHeaderRows,
  type TokenDraft,
} from './route-form';

/** What a stored, write-only value shows in its empty field. */
export const KEEP_PLACEHOLDER = 'set — leave empty to keep';

const ENV_HELP = (
  <>
    Write <code>{'${env:NAME}'}</code> to use the gateway’s environment variable <code>NAME</code> (for
    example <code>{'Bearer ${env:OPENAI_API_KEY}'}</code>): each instance reads it when it loads the route, so
    the secret itself is never stored. The variable must be set in the gateway’s environment.
  </>
);

const mono = { htmlInput: { style: { fontFamily: monoFont } } };

/** A text field for code-like values (paths, URLs, header names): monospace, no autocompletion or spell check. */
function CodeField(props: TextFieldProps) {
  return <TextField autoComplete="off" spellCheck={false} fullWidth slotProps={mono} {...props} />;
}

function SectionTitle({ id, children }: { id?: string; children: ReactNode }) {
  return (
    <Typography variant="subtitle1" component="h3" id={id} sx={{ fontWeight: 600 }}>
      {children}
    </Typography>
  );
}

/** Adds or edits a route (`POST /routes`, `PUT /routes/:id`); `route` null is a new one. */
export function RouteDialog({
  open,
  route,
  onClose,
}: {
  open: boolean;
  route: Route | null;
  onClose: () => void;
}) {
  const [draft, setDraft] = useState<RouteDraft>(() => draftOfRoute(route));
  const create = useCreateRoute();
  const update = useUpdateRoute();
  const saving = route === null ? create : update;
  const settings = useSettings();
  const notify = useNotify();
  const headersTitle = useId();
  const tokenTitle = useId();

  const check = checkRoute(draft, route);
  // The API's refusal naming an input goes under it; any other under the form.
  const apiErrors = apiRouteErrors(saving.error, draft);
  const fieldRefusal = Object.keys(apiErrors).length > 0;
  const errors = { ...check.errors, ...apiErrors };
  const pending = saving.isPending;

  const change = (patch: Partial<RouteDraft>) => {
    setDraft((d) => ({ ...d, ...patch }));
    if (saving.isError) saving.reset();
  };
  const setRow = (i: number, patch: Partial<HeaderRow>) =>
    change({ headers: draft.headers.map((r, j) => (j === i ? { ...r, ...patch } : r)) });
  const setToken = (patch: Partial<TokenDraft>) => change({ token: { ...draft.token, ...patch } });

  const save = () => {
    if (check.body === null) return;
    if (route === null) {
      // A new route's body holds every required field (checkRoute gives none while one is missing).
      create.mutate(check.body as RouteInput, {
        onSuccess: (r) => {
          notify(`Created the route ${r.prefix} → ${r.upstream}.`);
          onClose();
        },
      });
    } else {
      update.mutate(
        { id: route.id, body: check.body },
        {
          onSuccess: (r) => {
            notify(`Saved the route ${r.prefix}.`);
            onClose();
          },
        },
      );
    }
  };

  const settingRelay = settings.data?.relay;
  const storedHeaders = route?.upstream_header_names.length ?? 0;
  const storedToken = route?.require_header_name ?? null;
  const keepsHeaders = route !== null && !check.replacingHeaders;

  return (
    <FormDialog
      open={open}
      onClose={onClose}
      onEnter={() => {
        setDraft(draftOfRoute(route));
        create.reset();
        update.reset();
      }}
      maxWidth="md"
      title={route === null ? 'Add a route' : `Edit the route ${route.prefix}`}
      error={fieldRefusal ? null : (errors['form'] ?? saving.error)}
      submitLabel={route === null ? 'Create route' : 'Save route'}
      canSubmit={check.body !== null && (route === null || check.changed > 0) && !fieldRefusal}
      pending={pending}
      onSubmit={save}
    >
      <Typography variant="body2" color="text.secondary">
        Requests whose path starts with the prefix go to the upstream; the longest matching prefix wins. Every
        gateway instance applies the change within a second.
      </Typography>
      <Grid container spacing={2}>
        <Grid size={{ xs: 12, sm: 5 }}>
          <CodeField
            label="Prefix"
            name="prefix"
            value={draft.prefix}
            onChange={(e) => change({ prefix: e.target.value })}
            error={errors['prefix'] !== undefined}
            helperText={errors['prefix'] ?? 'Starts and ends with "/", like /openai/.'}
            placeholder="/openai/"
            disabled={pending}
            required
          />
        </Grid>
        <Grid size={{ xs: 12, sm: 7 }}>
          <CodeField
            label="Upstream"
            name="upstream"
            value={draft.upstream}
            onChange={(e) => change({ upstream: e.target.value })}
            error={errors['upstream'] !== undefined}
            helperText={errors['upstream'] ?? 'An http or https URL; https certificates are verified.'}
            placeholder="https://api.openai.com"
            disabled={pending}
            required
          />
        </Grid>
        <Grid size={{ xs: 12, sm: 5 }}>
          <TextField
            select
            label="Relay"
            name="relay"
            value={draft.relay}
            onChange={(e) => change({ relay: e.target.value as Relay | '' })}
            error={errors['relay'] !== undefined}
            helperText={errors['relay'] ?? 'How keys are read on this route.'}
            disabled={pending}
            fullWidth
            slotProps={{ select: { displayEmpty: true }, inputLabel: { shrink: true } }}
          >
            <MenuItem value="">
              Default (setting{settingRelay ? `: ${RELAY_LABELS[settingRelay]}` : ''})
            </MenuItem>
            {RELAYS.map((r) => (
              <MenuItem key={r} value={r}>
                {RELAY_LABELS[r]}
              </MenuItem>
            ))}
          </TextField>
        </Grid>
        <Grid size={{ xs: 12, sm: 7 }}>
          <TextField
            label="Timeout"
            name="timeout_seconds"
            value={draft.timeout}
            onChange={(e) => change({ timeout: e.target.value })}
            error={errors['timeout_seconds'] !== undefined}
            helperText={
              errors['timeout_seconds'] ??
              `${ROUTE_LIMITS.timeoutSeconds.min} to ${ROUTE_LIMITS.timeoutSeconds.max} seconds for the ` +
                'upstream’s answer and between body chunks. Empty: the global timeouts.'
            }
            disabled={pending}
            fullWidth
            autoComplete="off"
            slotProps={{
              htmlInput: { inputMode: 'numeric' },
              input: {
                endAdornment: (
                  <Typography variant="caption" color="text.secondary">
                    seconds
                  </Typography>
                ),
              },
            }}
          />
        </Grid>
      </Grid>
      <FormControlLabel
        control={
          <Switch
            checked={draft.strip_prefix}
            onChange={(e) => change({ strip_prefix: e.target.checked })}
            name="strip_prefix"
            disabled={pending}
          />
        }
        label={
          <LabelWithHelp
            label="Strip the prefix"
            help={
              draft.prefix.trim().length > 1 && errors['prefix'] === undefined
                ? `${draft.prefix.trim()}v1/models is forwarded as /v1/models.`
                : 'The prefix is removed (keeping its leading "/") before forwarding.'
            }
          />
        }
      />

      <Divider />
      <Box component="section" aria-labelledby={headersTitle}>
        <SectionTitle id={headersTitle}>Upstream headers</SectionTitle>
        <Typography variant="body2" color="text.secondary" sx={{ mb: 1.5 }}>
          Set on every request on its way upstream, replacing the client’s header of that name (a route that
          sets <code>authorization</code> holds the provider key: the client’s key is still judged, then
          replaced). Values are write-only: they can be replaced, never read back. {ENV_HELP}
        </Typography>
        {route !== null && storedHeaders > 0 && (
          <Alert
            severity={keepsHeaders ? 'info' : 'warning'}
            role="note"
            sx={{ mb: 1.5 }}
            data-testid="headers-note"
            action={
              keepsHeaders ? undefined : (
                <Button
                  color="inherit"
                  size="small"
                  disabled={pending}
                  onClick={() => change({ headers: storedHeaderRows(route) })}
                >
                  Keep the current headers
                </Button>
              )
            }
          >
            {keepsHeaders
              ? 'Leave the values empty to keep these headers as they are. Adding, removing or renaming a ' +
                'header, or typing a value, replaces the whole set: then every value must be entered again.'
              : 'Saving replaces all the upstream headers: enter every value, the ones you keep too.'}
          </Alert>
        )}
        <Stack spacing={1} data-testid="header-rows">
          {draft.headers.map((row, i) => {
            const nameError = errors[`headers.${i}.name`];
            const valueError = errors[`headers.${i}.value`];
            const kept = row.original !== null && keepsHeaders;
            return (
              <Stack
                key={row.id}
                direction="row"
                spacing={1}
                sx={{ alignItems: 'flex-start' }}
                data-testid="header-row"
              >
                <CodeField
                  label={`Header ${i + 1} name`}
                  value={row.name}
                  onChange={(e) => setRow(i, { name: e.target.value })}
                  error={nameError !== undefined}
                  helperText={nameError ?? ' '}
                  placeholder="authorization"
                  disabled={pending}
                  sx={{ flex: '0 0 36%' }}
                />
                <TextField
                  label={`Header ${i + 1} value`}
                  value={row.value}
                  onChange={(e) => setRow(i, { value: e.target.value })}
                  error={valueError !== undefined}
                  helperText={valueError ?? ' '}
                  placeholder={
                    kept
                      ? KEEP_PLACEHOLDER
                      : row.original !== null
                        ? 'enter the value again'
                        : 'Bearer ${env:OPENAI_API_KEY}'
                  }
                  disabled={pending}
                  required={!kept}
                  autoComplete="off"
                  spellCheck={false}
                  fullWidth
                  slotProps={{
                    ...mono,
                    inputLabel: row.original !== null ? { shrink: true } : undefined,
                  }}
                />
                <IconButton
                  aria-label={`Remove header ${row.name.trim() || i + 1}`}
                  onClick={() => change({ headers: draft.headers.filter((_r, j) => j !== i) })}
                  disabled={pending}
                  sx={{ mt: 1 }}
                >
                  <DeleteOutlineOutlined />
                </IconButton>
              </Stack>
            );
          })}
        </Stack>
        {errors['headers'] && (
          <Alert severity="error" sx={{ mb: 1 }}>
            {errors['headers']}
          </Alert>
        )}
        <Box>
          <Button
            startIcon={<AddOutlined />}
            onClick={() => change({ headers: [...draft.headers, headerRow()] })}
            disabled={pending || draft.headers.length >= ROUTE_LIMITS.headers}
          >
            Add header
          </Button>
          <Typography variant="caption" color="text.secondary" sx={{ ml: 1 }}>
            {draft.headers.length === 0
              ? 'None: requests go upstream with the client’s headers.'
              : `${draft.headers.length} of ${ROUTE_LIMITS.headers}.`}
          </Typography>
        </Box>
      </Box>

      <Divider />
      <Box component="section" aria-labelledby={tokenTitle}>
        <SectionTitle id={tokenTitle}>Proxy token</SectionTitle>
        <Typography variant="body2" color="text.secondary" sx={{ mb: 1.5 }}>
          A shared token every request on this route must carry in this header, or it is refused with 401{' '}
          <code>proxy_token_required</code>; the header is removed before forwarding. The value is write-only;{' '}
          <code>{'${env:NAME}'}</code> works here too. Leave both empty for no token.
        </Typography>
        {storedToken !== null && (
          <FormControlLabel
            control={
              <Checkbox
                checked={draft.token.remove}
                onChange={(e) => setToken({ remove: e.target.checked, name: storedToken, value: '' })}
                disabled={pending}
              />
            }
            label="Remove the proxy token (requests on this route need none)"
          />
        )}
        <Stack direction="row" spacing={1} sx={{ alignItems: 'flex-start', mt: 1 }}>
          <CodeField
            label="Token header"
            name="require_header_name"
            value={draft.token.name}
            onChange={(e) => setToken({ name: e.target.value })}
            error={errors['require_header.name'] !== undefined}
            helperText={errors['require_header.name'] ?? ' '}
            placeholder="x-proxy-token"
            disabled={pending || draft.token.remove}
            required={storedToken !== null || draft.token.value !== ''}
            sx={{ flex: '0 0 36%' }}
          />
          <TextField
            label="Token value"
            name="require_header_value"
            value={draft.token.value}
            onChange={(e) => setToken({ value: e.target.value })}
            error={errors['require_header.value'] !== undefined}
            helperText={errors['require_header.value'] ?? ' '}
            placeholder={check.keepingToken ? KEEP_PLACEHOLDER : '${env:PROXY_TOKEN}'}
            disabled={pending || draft.token.remove}
            required={draft.token.name.trim() !== '' && !check.keepingToken && !draft.token.remove}
            autoComplete="off"
            spellCheck={false}
            fullWidth
            slotProps={{ ...mono, inputLabel: storedToken !== null ? { shrink: true } : undefined }}
          />
        </Stack>
      </Box>
    </FormDialog>
  );
}
