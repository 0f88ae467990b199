import AddOutlined from '@mui/icons-material/AddOutlined';
import DeleteOutlineOutlined from '@mui/icons-material/DeleteOutlineOutlined';
import EditOutlined from '@mui/icons-material/EditOutlined';
import { Button, Chip, Stack, TableCell, TableRow, Tooltip, Typography } from '@mui/material';
import type { Relay, Route } from '@keypin/shared';
import { useState } from 'react';
import { useCanChange } from '../../api/context';
import { useDeleteRoute, useRoutes } from '../../api/hooks';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import type { Column } from '../../components/DataTable';
import { Mono, RELAY_LABELS } from '../../components/format';
import { useNotify } from '../../components/Notifier';
import { PageHeader } from '../../components/PageHeader';
import { PagedTable } from '../../components/PagedList';
import { useUrlPaging } from '../../components/url-state';
import { RouteDialog } from './RouteDialog';

/** A relay in a table cell: short. */
const RELAY_SHORT: Record<Relay, string> = {
  newapi: 'New API',
  litellm: 'LiteLLM',
  openai: 'OpenAI-compatible',
};

function None({ children }: { children: string }) {
  return (
    <Typography variant="body2" color="text.secondary" component="span">
      {children}
    </Typography>
  );
}

/** The names of the headers a route sets upstream (their values are never shown). */
function HeaderNames({ names }: { names: string[] }) {
  if (names.length === 0) return <None>None</None>;
  return (
    <Stack direction="row" spacing={0.5} useFlexGap sx={{ flexWrap: 'wrap' }}>
      {names.map((n) => (
        <Tooltip key={n} title="Value set (write-only, never shown)" describeChild>
          <Chip size="small" label={<Mono>{n}</Mono>} />
        </Tooltip>
      ))}
    </Stack>
  );
}

/** The routes (docs/contract.md 10): which upstream each path prefix goes to. */
export function RoutesPage() {
  const canChange = useCanChange();
  const { query, paging } = useUrlPaging();
  const list = useRoutes(query);
  const remove = useDeleteRoute();
  const notify = useNotify();
  // The route in the dialog stays while the dialog fades out.
  const [dialog, setDialog] = useState<{ open: boolean; route: Route | null }>({ open: false, route: null });
  const [deleting, setDeleting] = useState<{ open: boolean; route: Route | null }>({
    open: false,
    route: null,
  });
  const doomed = deleting.route;

  const columns: Column[] = [
    { label: 'Prefix' },
    { label: 'Upstream' },
    { label: 'Strip prefix' },
    { label: 'Relay' },
    { label: 'Timeout', align: 'right' },
    { label: 'Upstream headers' },
    { label: 'Proxy token' },
    { label: 'Actions', align: 'right', hidden: !canChange },
  ];

  return (
    <>
      <PageHeader
        title="Routes"
        subtitle={
          'Path prefixes sent to different upstreams; the longest matching prefix wins. A path no route ' +
          'matches goes to the default downstream (DOWNSTREAM_URL), or gets 404 no_route.'
        }
        actions={
          canChange ? (
            <Button
              variant="contained"
              startIcon={<AddOutlined />}
              onClick={() => setDialog({ open: true, route: null })}
            >
              Add route
            </Button>
          ) : undefined
        }
      />
      <PagedTable
        query={list}
        errorTitle="Could not load the routes"
        paging={paging}
        label="Routes"
        columns={columns}
        emptyText="No routes: every request goes to the default downstream."
        renderRow={(r) => (
          <TableRow key={r.id} hover data-testid="route-row">
            <TableCell>
              <Mono>{r.prefix}</Mono>
            </TableCell>
            <TableCell
              sx={{ maxWidth: 280, overflow: 'hidden', textOverflow: 'ellipsis' }}
              title={r.upstream}
            >
              <Mono>{r.upstream}</Mono>
            </TableCell>
            <TableCell>{r.strip_prefix ? 'Yes' : 'No'}</TableCell>
            <TableCell sx={{ whiteSpace: 'nowrap' }}>
              {r.relay === null ? (
                <None>Default (setting)</None>
              ) : (
                <Tooltip title={RELAY_LABELS[r.relay] ?? r.relay}>
                  <span>{RELAY_SHORT[r.relay] ?? r.relay}</span>
                </Tooltip>
              )}
            </TableCell>
            <TableCell align="right" sx={{ whiteSpace: 'nowrap' }}>
              {r.timeout_seconds === null ? <None>Default</None> : `${r.timeout_seconds} s`}
            </TableCell>
            <TableCell data-testid="route-header-names">
              <HeaderNames names={r.upstream_header_names} />
            </TableCell>
            <TableCell data-testid="route-token">
              {r.require_header_name === null ? (
                <None>None</None>
              ) : (
                <Tooltip title="Value set (write-only, never shown)" describeChild>
                  <span>
                    <Mono>{r.require_header_name}</Mono>
                  </span>
                </Tooltip>
              )}
            </TableCell>
            {canChange && (
              <TableCell align="right" sx={{ whiteSpace: 'nowrap' }}>
                <Button
                  size="small"
                  startIcon={<EditOutlined />}
                  onClick={() => setDialog({ open: true, route: r })}
                  aria-label={`Edit ${r.prefix}`}
                >
                  Edit
                </Button>
                <Button
                  size="small"
                  color="error"
                  startIcon={<DeleteOutlineOutlined />}
                  onClick={() => setDeleting({ open: true, route: r })}
                  aria-label={`Delete ${r.prefix}`}
                >
                  Delete
                </Button>
              </TableCell>
            )}
          </TableRow>
        )}
      />
      {canChange && (
        <>
          <RouteDialog
            open={dialog.open}
            route={dialog.route}
            onClose={() => setDialog((d) => ({ ...d, open: false }))}
          />
          <ConfirmDialog
            open={deleting.open}
            title={`Delete the route ${doomed?.prefix ?? ''}?`}
            confirmLabel="Delete"
            danger
            onConfirm={async () => {
              if (!doomed) return;
              await remove.mutateAsync(doomed.id);
              notify(`Deleted the route ${doomed.prefix}.`);
            }}
            onClose={() => setDeleting((d) => ({ ...d, open: false }))}
          >
            Within a second, requests under <Mono>{doomed?.prefix ?? ''}</Mono> go to the default downstream
            (or get 404 no_route). Its header values are deleted with it.
          </ConfirmDialog>
        </>
      )}
    </>
  );
}
