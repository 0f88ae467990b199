import { Alert, Dialog, DialogContent, DialogTitle, Stack } from '@mui/material';
import { type ReactNode, useId } from 'react';
import { errorMessage } from '../api/client';
import { DialogButtons } from './DialogButtons';

/**
 * A dialog around a form: the title, the fields (`children`, stacked), the
 * failed call's message, then Cancel and the submit button. While the call
 * runs (`pending`) the dialog stays open and both buttons wait; Enter or the
 * button calls `onSubmit` only when `canSubmit`.
 */
export function FormDialog({
  open,
  onClose,
  title,
  maxWidth = 'xs',
  onEnter,
  onExited,
  spacing = 2,
  labelRoom = true,
  children,
  error,
  submitLabel,
  canSubmit,
  pending,
  spinner = true,
  onSubmit,
}: {
  open: boolean;
  onClose: () => void;
  title: ReactNode;
  maxWidth?: 'xs' | 'sm' | 'md';
  /** Runs as the dialog starts to open. */
  onEnter?: () => void;
  /** Runs once the dialog has closed: the place to reset the form. */
  onExited?: () => void;
  /** Space between the fields, in theme units. */
  spacing?: number;
  /** Room above the first field for an outlined field's floating label. */
  labelRoom?: boolean;
  children: ReactNode;
  /** The failed call (a mutation's `error`), or null. */
  error: unknown;
  submitLabel: string;
  canSubmit: boolean;
  pending: boolean;
  /** A spinner in the submit button while pending. */
  spinner?: boolean;
  onSubmit: () => void;
}) {
  const titleId = useId();
  return (
    <Dialog
      open={open}
      onClose={pending ? undefined : onClose}
      aria-labelledby={titleId}
      maxWidth={maxWidth}
      fullWidth
      slotProps={{ transition: { onEnter, onExited } }}
    >
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (canSubmit) onSubmit();
        }}
      >
        <DialogTitle id={titleId}>{title}</DialogTitle>
        <DialogContent>
          <Stack spacing={spacing} sx={labelRoom ? { pt: 1 } : undefined}>
            {children}
            {error !== null && error !== undefined && (
              <Alert severity="error" role="alert">
                {errorMessage(error)}
              </Alert>
            )}
          </Stack>
        </DialogContent>
        <DialogButtons
          label={submitLabel}
          pending={pending}
          onCancel={onClose}
          spinner={spinner}
          type="submit"
          disabled={!canSubmit}
        />
      </form>
    </Dialog>
  );
}
