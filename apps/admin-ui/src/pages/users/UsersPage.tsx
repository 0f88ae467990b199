import DeleteOutlineOutlined from '@mui/icons-material/DeleteOutlineOutlined';
import LockResetOutlined from '@mui/icons-material/LockResetOutlined';
import PersonAddOutlined from '@mui/icons-material/PersonAddOutlined';
import {
  Alert,
  Button,
  Chip,
  CircularProgress,
  Dialog,
  DialogActions,
  DialogContent,
  DialogTitle,
  MenuItem,
  Paper,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableContainer,
  TableHead,
  TableRow,
  TextField,
} from '@mui/material';
import { type AdminUser, MIN_PASSWORD_LENGTH, type Role, USERNAME_PATTERN } from '@keypin/shared';
import { useId, useState } from 'react';
import { errorMessage } from '../../api/client';
import { useSession } from '../../api/context';
import { useCreateUser, useDeleteUser, useSetPassword, useUsers } from '../../api/hooks';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { ErrorAlert } from '../../components/ErrorAlert';
import { DateTime } from '../../components/format';
import { useNotify } from '../../components/Notifier';
import { PageHeader } from '../../components/PageHeader';
import { Pager } from '../../components/Pager';
import { RefreshBar, TableStateRow } from '../../components/TableStates';
import { useUrlState } from '../../components/url-state';

export function passwordError(p: string): string | null {
  if (p === '') return null;
  if (p.length < MIN_PASSWORD_LENGTH)
    return `At least ${MIN_PASSWORD_LENGTH} characters (${p.length} so far).`;
  if (p.length > 1024) return 'At most 1024 characters.';
  return null;
}

function usernameError(u: string): string | null {
  if (u === '') return null;
  return USERNAME_PATTERN.test(u) ? null : 'Letters, digits and _ . @ - only, at most 64.';
}

function CreateUserDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const titleId = useId();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('auditor');
  const create = useCreateUser();
  const notify = useNotify();
  const uErr = usernameError(username);
  const pErr = passwordError(password);
  const ready = username !== '' && password !== '' && uErr === null && pErr === null;
  const reset = () => {
    setUsername('');
    setPassword('');
    setRole('auditor');
    create.reset();
  };
  return (
    <Dialog
      open={open}
      onClose={create.isPending ? undefined : onClose}
      aria-labelledby={titleId}
      maxWidth="xs"
      fullWidth
      slotProps={{ transition: { onExited: reset } }}
    >
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (!ready) return;
          create.mutate(
            { username, password, role },
            {
              onSuccess: (u) => {
                notify(`Created ${u.role} "${u.username}".`);
                onClose();
              },
            },
          );
        }}
      >
        <DialogTitle id={titleId}>Add a user</DialogTitle>
        <DialogContent>
          <Stack spacing={2.5} sx={{ pt: 1 }}>
            <TextField
              label="Username"
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              error={uErr !== null}
              helperText={uErr ?? ' '}
              autoComplete="off"
              autoFocus
              required
            />
            <TextField
              label="Password"
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              error={pErr !== null}
              helperText={pErr ?? `At least ${MIN_PASSWORD_LENGTH} characters.`}
              autoComplete="new-password"
              required
            />
            <TextField select label="Role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
              <MenuItem value="admin">Admin: may change everything</MenuItem>
              <MenuItem value="auditor">Auditor: reads everything, changes nothing</MenuItem>
            </TextField>
            {create.isError && (
              <Alert severity="error" role="alert">
                {errorMessage(create.error)}
              </Alert>
            )}
          </Stack>
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={create.isPending}>
            Cancel
          </Button>
          <Button
            type="submit"
            variant="contained"
            disabled={!ready || create.isPending}
            startIcon={create.isPending ? <CircularProgress size={16} color="inherit" /> : undefined}
          >
            Create user
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

function PasswordDialog({ user, onClose }: { user: AdminUser | null; onClose: () => void }) {
  const titleId = useId();
  const [password, setPassword] = useState('');
  const change = useSetPassword();
  const notify = useNotify();
  const pErr = passwordError(password);
  return (
    <Dialog
      open={user !== null}
      onClose={change.isPending ? undefined : onClose}
      aria-labelledby={titleId}
      maxWidth="xs"
      fullWidth
      slotProps={{
        transition: {
          onExited: () => {
            setPassword('');
            change.reset();
          },
        },
      }}
    >
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (!user || password === '' || pErr !== null) return;
          change.mutate(
            { id: user.id, body: { password } },
            {
              onSuccess: (u) => {
                notify(`Password of "${u.username}" changed; their sessions have ended.`);
                onClose();
              },
            },
          );
        }}
      >
        <DialogTitle id={titleId}>Set the password of “{user?.username}”</DialogTitle>
        <DialogContent>
          <Stack spacing={2} sx={{ pt: 1 }}>
            <TextField
              label="New password"
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              error={pErr !== null}
              helperText={pErr ?? `At least ${MIN_PASSWORD_LENGTH} characters. Ends the user's sessions.`}
              autoComplete="new-password"
              autoFocus
            />
            {change.isError && (
              <Alert severity="error" role="alert">
                {errorMessage(change.error)}
              </Alert>
            )}
          </Stack>
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={change.isPending}>
            Cancel
          </Button>
          <Button
            type="submit"
            variant="contained"
            disabled={password === '' || pErr !== null || change.isPending}
          >
            Set password
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

export function UsersPage() {
  const session = useSession();
  const url = useUrlState();
  const page = url.getInt('page', 1);
  const pageSize = url.getInt('page_size', 20);
  const isAdmin = session?.role === 'admin';
  const list = useUsers({ page, page_size: pageSize }, isAdmin);
  const remove = useDeleteUser();
  const notify = useNotify();
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<AdminUser | null>(null);
  const [resetting, setResetting] = useState<AdminUser | null>(null);
  const rows = list.data?.items ?? [];

  if (!isAdmin) {
    return (
      <>
        <PageHeader title="Users" />
        <Alert severity="info">Only admins can see and manage user accounts.</Alert>
      </>
    );
  }

  return (
    <>
      <PageHeader
        title="Users"
        subtitle="Admins change everything; auditors read everything and change nothing."
        actions={
          <Button variant="contained" startIcon={<PersonAddOutlined />} onClick={() => setCreating(true)}>
            Add user
          </Button>
        }
      />
      <ErrorAlert error={list.error} title="Could not load the users" onRetry={() => void list.refetch()} />
      <Paper>
        <RefreshBar active={list.isFetching && !list.isLoading} />
        <TableContainer>
          <Table size="small" aria-label="Users">
            <TableHead>
              <TableRow>
                <TableCell>Username</TableCell>
                <TableCell>Role</TableCell>
                <TableCell>Created</TableCell>
                <TableCell>Updated</TableCell>
                <TableCell align="right">Actions</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              <TableStateRow
                colSpan={5}
                loading={list.isLoading}
                empty={!list.isLoading && !list.isError && rows.length === 0}
                emptyText="No users."
              />
              {rows.map((u) => {
                const self = u.username === session?.username;
                return (
                  <TableRow key={u.id} hover data-testid="user-row">
                    <TableCell>
                      {u.username}
                      {self && <Chip size="small" label="you" sx={{ ml: 1 }} />}
                    </TableCell>
                    <TableCell>
                      <Chip
                        size="small"
                        variant="outlined"
                        label={u.role}
                        color={u.role === 'admin' ? 'primary' : 'default'}
                      />
                    </TableCell>
                    <TableCell>
                      <DateTime value={u.created_at} />
                    </TableCell>
                    <TableCell>
                      <DateTime value={u.updated_at} />
                    </TableCell>
                    <TableCell align="right" sx={{ whiteSpace: 'nowrap' }}>
                      <Button size="small" startIcon={<LockResetOutlined />} onClick={() => setResetting(u)}>
                        Set password
                      </Button>
                      {!self && (
                        <Button
                          size="small"
                          color="error"
                          startIcon={<DeleteOutlineOutlined />}
                          onClick={() => setDeleting(u)}
                          aria-label={`Delete ${u.username}`}
                        >
                          Delete
                        </Button>
                      )}
                    </TableCell>
                  </TableRow>
                );
              })}
            </TableBody>
          </Table>
        </TableContainer>
        <Pager total={list.data?.total ?? 0} page={page} pageSize={pageSize} onChange={url.setPaging} />
      </Paper>
      <CreateUserDialog open={creating} onClose={() => setCreating(false)} />
      <PasswordDialog user={resetting} onClose={() => setResetting(null)} />
      <ConfirmDialog
        open={deleting !== null}
        title={`Delete “${deleting?.username ?? ''}”?`}
        confirmLabel="Delete"
        danger
        onConfirm={async () => {
          if (!deleting) return;
          const u = await remove.mutateAsync(deleting.id);
          notify(`Deleted "${u.username}".`);
        }}
        onClose={() => setDeleting(null)}
      >
        The account is removed and its sessions stop working.
      </ConfirmDialog>
    </>
  );
}
