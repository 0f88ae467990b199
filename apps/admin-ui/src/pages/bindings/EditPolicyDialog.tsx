import { Box, Typography } from '@mui/material';
import { type Binding, isUnlimited } from '@keypin/shared';
import { useState } from 'react';
import { useSetBindingPolicy, useSettings } from '../../api/hooks';
import { FormDialog } from '../../components/FormDialog';
import { Mono } from '../../components/format';
import { useNotify } from '../../components/Notifier';
import { PolicyChoiceForm } from '../../components/policy/PolicyForm';
import {
  apiPolicyErrors,
  checkPolicy,
  choiceOf,
  type PolicyChoice,
} from '../../components/policy/policy-form';
import { PolicySummary } from '../../components/policy/PolicySummary';

/** What the default policy is, under the "use the default" choice. */
function DefaultPolicyNote() {
  const settings = useSettings();
  if (!settings.data) return null;
  return (
    <Box sx={{ pl: 4 }} data-testid="default-policy-note">
      <Typography variant="body2" sx={{ mb: 1 }}>
        The default policy (Settings) is now:
      </Typography>
      <PolicySummary
        policy={settings.data.default_policy}
        emptyText="None: keys without their own policy are unlimited."
        testId="default-policy"
      />
    </Box>
  );
}

/** Gives a key its own policy or returns it to the default (`PUT /bindings/policy`). */
export function EditPolicyDialog({
  binding,
  open,
  onClose,
}: {
  binding: Binding;
  open: boolean;
  onClose: () => void;
}) {
  const [value, setValue] = useState<PolicyChoice>(() => choiceOf(binding.policy));
  const update = useSetBindingPolicy();
  const notify = useNotify();
  const check = checkPolicy(value);
  // The API's refusal naming a field goes under that field; any other under the form.
  const apiErrors = apiPolicyErrors(update.error);
  const fieldRefusal = Object.keys(apiErrors).length > 0;
  const errors = { ...check.errors, ...apiErrors };

  const change = (next: PolicyChoice) => {
    setValue(next);
    if (update.isError) update.reset();
  };

  const save = () => {
    if (check.policy === undefined) return;
    update.mutate(
      { id: binding.id, policy: check.policy },
      {
        onSuccess: (b) => {
          notify(
            b.policy === null
              ? `Saved: ${b.token_display} now follows the default policy.`
              : isUnlimited(b.policy)
                ? `Saved: ${b.token_display} is now unlimited, whatever the default policy says.`
                : `Saved: ${b.token_display} now has its own policy.`,
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
        setValue(choiceOf(binding.policy));
        update.reset();
      }}
      maxWidth="sm"
      title={
        <>
          Policy of <Mono>{binding.token_display}</Mono>
        </>
      }
      error={fieldRefusal ? null : update.error}
      submitLabel="Save policy"
      canSubmit={check.policy !== undefined && !fieldRefusal}
      pending={update.isPending}
      onSubmit={save}
    >
      <Typography variant="body2" color="text.secondary">
        Limits on how this key may be used once its network is allowed. Every gateway instance enforces the
        change within a second.
      </Typography>
      <PolicyChoiceForm
        value={value}
        onChange={change}
        errors={errors}
        disabled={update.isPending}
        legend="Which policy applies"
        noneLabel="Use the default policy"
        noneHelp="The key follows the default policy set in Settings, and any later change to it."
        noneDetail={<DefaultPolicyNote />}
        customLabel="Give this key its own policy"
        customHelp="These limits replace the default policy for this key. An empty field is unlimited."
        allEmptyNote="Every field is empty: this key will be unlimited, whatever the default policy says."
      />
    </FormDialog>
  );
}
