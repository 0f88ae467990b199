import { Alert, Box, Button, CircularProgress, Stack, Typography } from '@mui/material';
import type { AlertWebhookFormat, TestAlertResult } from '@keypin/shared';
import { errorMessage } from '../../api/client';
import { useTestAlert } from '../../api/hooks';

/** How the console names each alert format (docs/alert-formats.md). */
export const ALERT_FORMAT_LABELS: Record<AlertWebhookFormat, string> = {
  standard: 'Standard (JSON, Standard Webhooks)',
  slack: 'Slack',
  discord: 'Discord',
  feishu: 'Feishu / Lark',
  dingtalk: 'DingTalk',
  wecom: 'WeCom (WeChat Work)',
};

function outcome(r: TestAlertResult): string {
  const answered = r.status === null ? 'No answer' : `HTTP ${r.status}`;
  if (r.delivered) return `Delivered: the receiver answered ${answered} in ${r.duration_ms} ms.`;
  const retry = r.would_retry ? ' A real alert would be tried again.' : ' A real alert would not be retried.';
  return `Not delivered (${answered}): ${r.error ?? 'unknown error'}.${retry}`;
}

/**
 * "Send a test alert": one sample alert through the saved webhook URL and
 * format (`POST /settings/test-alert`), and the receiver's answer. Unsaved
 * changes to the URL or the format would not be what is tested: the button
 * waits until they are saved.
 */
export function TestAlertPanel({ urlSaved, unsaved }: { urlSaved: boolean; unsaved: boolean }) {
  const test = useTestAlert();
  const r = test.data;
  const hint = !urlSaved
    ? 'Save a webhook URL first.'
    : unsaved
      ? 'Save your changes first: the test uses the saved webhook URL, format and secret.'
      : 'Sends one sample alert (marked as a test) to the saved webhook URL in the saved format, once, and shows what the receiver answered.';
  return (
    <Box sx={{ mt: 2 }} data-testid="test-alert">
      <Stack direction="row" spacing={1.5} sx={{ alignItems: 'center' }}>
        <Button
          variant="outlined"
          sx={{ flexShrink: 0, whiteSpace: 'nowrap' }}
          onClick={() => test.mutate()}
          disabled={!urlSaved || unsaved || test.isPending}
          startIcon={test.isPending ? <CircularProgress size={16} color="inherit" /> : undefined}
        >
          Send a test alert
        </Button>
        <Typography variant="body2" color="text.secondary">
          {hint}
        </Typography>
      </Stack>
      {test.isError && (
        <Alert severity="error" role="alert" sx={{ mt: 2 }} data-testid="test-alert-error">
          {errorMessage(test.error)}
        </Alert>
      )}
      {r && !test.isPending && (
        <Alert
          severity={r.delivered ? 'success' : 'warning'}
          role="status"
          sx={{ mt: 2, '& .MuiAlert-message': { minWidth: 0, flex: 1 } }}
          data-testid="test-alert-result"
        >
          <Typography variant="body2" data-testid="test-alert-outcome">
            {ALERT_FORMAT_LABELS[r.format]}: {outcome(r)}
          </Typography>
          <Typography variant="caption" component="div" sx={{ mt: 1 }}>
            The receiver’s answer{r.body_truncated ? ' (cut short)' : ''}:
          </Typography>
          <Box
            component="pre"
            data-testid="test-alert-answer"
            sx={{
              m: 0,
              mt: 0.5,
              p: 1,
              maxHeight: 200,
              overflow: 'auto',
              whiteSpace: 'pre-wrap',
              wordBreak: 'break-all',
              fontSize: 12,
              bgcolor: 'action.hover',
              borderRadius: 1,
            }}
          >
            {r.body === '' ? '(empty)' : r.body}
          </Box>
        </Alert>
      )}
    </Box>
  );
}
