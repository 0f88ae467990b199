import VisibilityOffOutlined from '@mui/icons-material/VisibilityOffOutlined';
import VisibilityOutlined from '@mui/icons-material/VisibilityOutlined';
import { IconButton, InputAdornment, TextField, Typography } from '@mui/material';
import { useState } from 'react';
import { useNavigate } from 'react-router-dom';
import { useCreateBinding } from '../../api/hooks';
import { FormDialog } from '../../components/FormDialog';
import { useNotify } from '../../components/Notifier';
import { monoFont } from '../../theme/theme';
import { NetworksForm } from './NetworksForm';
import { checkNetworks, type NetworksValue } from './networks';

// The gateway's limit (bindings dto MAX_NOTE_LENGTH).
const MAX_NOTE = 1000;

/** Binds a key before its first use (`POST /bindings`). */
export function PrebindDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [key, setKey] = useState('');
  const [showKey, setShowKey] = useState(false);
  const [note, setNote] = useState('');
  const [value, setValue] = useState<NetworksValue>({ rule: 'single', entries: [''] });
  const create = useCreateBinding();
  const notify = useNotify();
  const navigate = useNavigate();
  const check = checkNetworks(value);
  const keyError = key !== '' && key.trim() === '' ? 'The key is empty.' : null;
  const noteError = note.length > MAX_NOTE ? `At most ${MAX_NOTE} characters.` : null;
  const ready = key.trim() !== '' && check.networks !== null && noteError === null;

  const reset = () => {
    setKey('');
    setNote('');
    setShowKey(false);
    setValue({ rule: 'single', entries: [''] });
    create.reset();
  };

  const save = () => {
    if (!ready || check.networks === null) return;
    create.mutate(
      {
        key: key.trim(),
        rule_type: value.rule,
        allowed_ips: check.networks,
        note: note.trim() === '' ? null : note.trim(),
      },
      {
        onSuccess: (b) => {
          notify(`Pre-bound ${b.token_display}.`);
          onClose();
          void navigate(`/bindings/${b.id}`);
        },
      },
    );
  };

  return (
    <FormDialog
      open={open}
      onClose={onClose}
      onExited={reset}
      maxWidth="sm"
      title="Pre-bind a key"
      spacing={2.5}
      error={create.error}
      submitLabel="Pre-bind"
      canSubmit={ready}
      pending={create.isPending}
      onSubmit={save}
    >
      <Typography variant="body2" color="text.secondary">
        Pin a key to its networks before anyone uses it. The key itself is hashed on the server and never
        stored.
      </Typography>
      <TextField
        label="API key"
        value={key}
        onChange={(e) => setKey(e.target.value)}
        required
        autoFocus
        autoComplete="off"
        spellCheck={false}
        type={showKey ? 'text' : 'password'}
        error={keyError !== null}
        helperText={keyError ?? 'The full key, e.g. sk-…'}
        disabled={create.isPending}
        slotProps={{
          htmlInput: { style: { fontFamily: monoFont } },
          input: {
            endAdornment: (
              <InputAdornment position="end">
                <IconButton
                  aria-label={showKey ? 'Hide key' : 'Show key'}
                  onClick={() => setShowKey((s) => !s)}
                  edge="end"
                >
                  {showKey ? <VisibilityOffOutlined /> : <VisibilityOutlined />}
                </IconButton>
              </InputAdornment>
            ),
          },
        }}
      />
      <NetworksForm value={value} onChange={setValue} disabled={create.isPending} />
      <TextField
        label="Note (optional)"
        value={note}
        onChange={(e) => setNote(e.target.value)}
        error={noteError !== null}
        helperText={noteError ?? 'Who the key belongs to, a ticket number…'}
        disabled={create.isPending}
      />
    </FormDialog>
  );
}
