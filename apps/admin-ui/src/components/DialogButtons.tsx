import { Button, CircularProgress, DialogActions } from '@mui/material';

/**
 * Cancel and a dialog's action. While the action runs (`pending`) both wait
 * and the action shows a spinner (unless `spinner` is false).
 */
export function DialogButtons({
  label,
  pending,
  onCancel,
  spinner = true,
  type,
  color,
  disabled = false,
  onClick,
}: {
  label: string;
  pending: boolean;
  onCancel: () => void;
  spinner?: boolean;
  type?: 'submit';
  color?: 'primary' | 'error';
  disabled?: boolean;
  onClick?: () => void;
}) {
  return (
    <DialogActions>
      <Button onClick={onCancel} disabled={pending}>
        Cancel
      </Button>
      <Button
        type={type}
        variant="contained"
        color={color}
        onClick={onClick}
        disabled={disabled || pending}
        startIcon={pending && spinner ? <CircularProgress size={16} color="inherit" /> : undefined}
      >
        {label}
      </Button>
    </DialogActions>
  );
}
