import {
  Alert,
  Button,
  CircularProgress,
  Dialog,
  DialogActions,
  DialogContent,
  DialogTitle,
  Typography,
} from '@mui/material';
import type { Binding } from '@keypin/shared';
import { useId, useState } from 'react';
import { errorMessage } from '../../api/client';
import { useUpdateBindingIp } from '../../api/hooks';
import { Mono } from '../../components/format';
import { useNotify } from '../../components/Notifier';
import { NetworksForm } from './NetworksForm';
import { checkNetworks, type NetworksValue } from './networks';

function initial(b: Binding): NetworksValue {
  return { rule: b.rule_type, entries: b.allowed_ips.length > 0 ? b.allowed_ips.slice() : [''] };
}

/** Edits a binding's rule and networks (`PUT /bindings/ip`). */
export function EditNetworksDialog({
  binding,
  open,
  onClose,
}: {
  binding: Binding;
  open: boolean;
  onClose: () => void;
}) {
  const titleId = useId();
  const [value, setValue] = useState<NetworksValue>(() => initial(binding));
  const update = useUpdateBindingIp();
  const notify = useNotify();
  const check = checkNetworks(value);

  const save = () => {
    if (check.networks === null) return;
    update.mutate(
      { id: binding.id, rule_type: value.rule, allowed_ips: check.networks },
      {
        onSuccess: (b) => {
          notify(
            `Saved: ${b.token_display} now allows ${b.rule_type === 'all' ? 'any IP' : b.allowed_ips.join(', ')}.`,
          );
          onClose();
        },
      },
    );
  };

  return (
    <Dialog
      open={open}
      onClose={update.isPending ? undefined : onClose}
      aria-labelledby={titleId}
      maxWidth="sm"
      fullWidth
      slotProps={{
        transition: {
          onEnter: () => {
            setValue(initial(binding));
            update.reset();
          },
        },
      }}
    >
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          save();
        }}
      >
        <DialogTitle id={titleId}>
          Edit rule and networks of <Mono>{binding.token_display}</Mono>
        </DialogTitle>
        <DialogContent>
          <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
            Every gateway instance enforces the change within a second.
          </Typography>
          <NetworksForm value={value} onChange={setValue} disabled={update.isPending} />
          {update.isError && (
            <Alert severity="error" role="alert" sx={{ mt: 2 }}>
              {errorMessage(update.error)}
            </Alert>
          )}
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={update.isPending}>
            Cancel
          </Button>
          <Button
            type="submit"
            variant="contained"
            disabled={check.networks === null || update.isPending}
            startIcon={update.isPending ? <CircularProgress size={16} color="inherit" /> : undefined}
          >
            Save
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}
