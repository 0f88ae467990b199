import { Typography } from '@mui/material';
import type { Binding } from '@keypin/shared';
import { useState } from 'react';
import { useUpdateBindingIp } from '../../api/hooks';
import { FormDialog } from '../../components/FormDialog';
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
    <FormDialog
      open={open}
      onClose={onClose}
      onEnter={() => {
        setValue(initial(binding));
        update.reset();
      }}
      maxWidth="sm"
      title={
        <>
          Edit rule and networks of <Mono>{binding.token_display}</Mono>
        </>
      }
      labelRoom={false}
      error={update.error}
      submitLabel="Save"
      canSubmit={check.networks !== null}
      pending={update.isPending}
      onSubmit={save}
    >
      <Typography variant="body2" color="text.secondary">
        Every gateway instance enforces the change within a second.
      </Typography>
      <NetworksForm value={value} onChange={setValue} disabled={update.isPending} />
    </FormDialog>
  );
}
