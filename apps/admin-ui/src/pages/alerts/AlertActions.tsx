import BlockOutlined from '@mui/icons-material/BlockOutlined';
import CheckCircleOutlineOutlined from '@mui/icons-material/CheckCircleOutlineOutlined';
import NotificationsOffOutlined from '@mui/icons-material/NotificationsOffOutlined';
import { Button, Link, Stack } from '@mui/material';
import type { Alert, AlertAction } from '@keypin/shared';
import { useState } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import { useCanChange } from '../../api/context';
import { useAlertAction } from '../../api/hooks';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { Mono } from '../../components/format';
import { useNotify } from '../../components/Notifier';

/**
 * The actions on an open alert (docs/alerts.md): "Allow <network>" for each
 * network its attempts came from, "Ban key" and "Dismiss", each confirmed
 * in a dialog. Nothing for an alert that is no longer open, nor for an
 * auditor. `maxNetworks` caps the allow buttons (a table row); the rest are
 * on the alert's own page.
 */
export function AlertActions({ alert: a, maxNetworks }: { alert: Alert; maxNetworks?: number }) {
  const canChange = useCanChange();
  const act = useAlertAction();
  const notify = useNotify();
  const [pending, setPending] = useState<AlertAction | null>(null);
  // Kept after the dialog closes, so its title does not change while it fades out.
  const [network, setNetwork] = useState('');
  if (!canChange || a.status !== 'open') return null;

  const networks = maxNetworks === undefined ? a.attempt_networks : a.attempt_networks.slice(0, maxNetworks);
  const hidden = a.attempt_networks.length - networks.length;
  const key = <Mono>{a.token_display}</Mono>;

  const run = async (action: AlertAction) => {
    const r = await act.mutateAsync({
      id: a.id,
      action,
      network: action === 'allow-network' ? network : undefined,
    });
    if (action === 'allow-network') {
      notify(`${network} is allowed for ${r.alert.token_display} from now on.`);
    } else if (action === 'ban') {
      notify(`Banned ${r.alert.token_display}: every request with it is now refused.`);
    } else {
      notify('Alert dismissed; the binding is unchanged.');
    }
  };

  return (
    <>
      <Stack
        direction="row"
        spacing={0.75}
        useFlexGap
        sx={{ flexWrap: 'wrap', alignItems: 'center' }}
        data-testid="alert-actions"
      >
        {networks.map((n) => (
          <Button
            key={n}
            size="small"
            variant="outlined"
            startIcon={<CheckCircleOutlineOutlined />}
            onClick={() => {
              setNetwork(n);
              setPending('allow-network');
            }}
            sx={{ whiteSpace: 'nowrap' }}
          >
            Allow {n}
          </Button>
        ))}
        {hidden > 0 && (
          <Link component={RouterLink} to={`/alerts/${a.id}`} variant="body2">
            {hidden} more {hidden === 1 ? 'network' : 'networks'}…
          </Link>
        )}
        <Button
          size="small"
          variant="outlined"
          color="error"
          startIcon={<BlockOutlined />}
          onClick={() => setPending('ban')}
          sx={{ whiteSpace: 'nowrap' }}
        >
          Ban key
        </Button>
        <Button
          size="small"
          color="inherit"
          startIcon={<NotificationsOffOutlined />}
          onClick={() => setPending('dismiss')}
        >
          Dismiss
        </Button>
      </Stack>

      <ConfirmDialog
        open={pending === 'allow-network'}
        title={`Allow ${network} for this key?`}
        confirmLabel="Allow network"
        onConfirm={() => run('allow-network')}
        onClose={() => setPending(null)}
      >
        {key} will be accepted from <Mono>{network}</Mono> as well as from the networks it is allowed from
        now; its rule becomes "Several networks". Every gateway applies it within a second. The alert is
        closed as allowed.
      </ConfirmDialog>
      <ConfirmDialog
        open={pending === 'ban'}
        title="Ban this key?"
        confirmLabel="Ban key"
        danger
        onConfirm={() => run('ban')}
        onClose={() => setPending(null)}
      >
        Every request with {key} will be refused with 403 <code>key_banned</code>, from any address, until the
        ban is lifted on the binding's page. The alert is closed as banned.
      </ConfirmDialog>
      <ConfirmDialog
        open={pending === 'dismiss'}
        title="Dismiss this alert?"
        confirmLabel="Dismiss"
        onConfirm={() => run('dismiss')}
        onClose={() => setPending(null)}
      >
        The alert is closed and the binding of {key} stays as it is: requests from the alert's networks are
        still refused.
      </ConfirmDialog>
    </>
  );
}
