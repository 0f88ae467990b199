import DeleteOutlineOutlined from '@mui/icons-material/DeleteOutlineOutlined';
import LockResetOutlined from '@mui/icons-material/LockResetOutlined';
import PersonAddOutlined from '@mui/icons-material/PersonAddOutlined';
import { Alert, Button, Chip, MenuItem, TableCell, TableRow, TextField } from '@mui/material';
import { type AdminUser, MIN_PASSWORD_LENGTH, type Role, ROLES, USERNAME_PATTERN } from '@keypin/shared';
import { useState } from 'react';
import { useSession } from '../../api/context';
import { useCreateUser, useDeleteUser, useSetPassword, useUsers } from '../../api/hooks';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import type { Column } from '../../components/DataTable';
import { FormDialog } from '../../components/FormDialog';
import { type ChipColor, DateTime, ROLE_LABELS } from '../../components/format';
import { useNotify } from '../../components/Notifier';
import { PageHeader } from '../../components/PageHeader';
import { PagedTable } from '../../components/PagedList';
import { useUrlPaging } from '../../components/url-state';

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

/** The role a new user gets unless the admin picks another: the one that changes nothing. */
const DEFAULT_ROLE: Role = 'auditor';

const ROLE_CHIP_COLORS: Record<Role, ChipColor> = { admin: 'primary', auditor: 'default' };

function CreateUserDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>(DEFAULT_ROLE);
  const create = useCreateUser();
  const notify = useNotify();
  const uErr = usernameError(username);
  const pErr = passwordError(password);
  const ready = username !== '' && password !== '' && uErr === null && pErr === null;
  const reset = () => {
    setUsername('');
    setPassword('');
    setRole(DEFAULT_ROLE);
    create.reset();
  };
  return (
    <FormDialog
      open={open}
      onClose={onClose}
      onExited={reset}
      title="Add a user"
      spacing={2.5}
      error={create.error}
      submitLabel="Create user"
      canSubmit={ready}
      pending={create.isPending}
      onSubmit={() =>
        create.mutate(
          { username, password, role },
          {
            onSuccess: (u) => {
              notify(`Created ${u.role} "${u.username}".`);
              onClose();
            },
          },
        )
      }
    >
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
        {ROLES.map((r) => (
          <MenuItem key={r} value={r}>
            {ROLE_LABELS[r].choice}
          </MenuItem>
        ))}
      </TextField>
    </FormDialog>
  );
}

function PasswordDialog({ user, onClose }: { user: AdminUser | null; onClose: () => void }) {
  const [password, setPassword] = useState('');
  const change = useSetPassword();
  const notify = useNotify();
  const pErr = passwordError(password);
  return (
    <FormDialog
      open={user !== null}
      onClose={onClose}
      onExited={() => {
        setPassword('');
        change.reset();
      }}
      title={`Set the password of “${user?.username ?? ''}”`}
      error={change.error}
      submitLabel="Set password"
      canSubmit={password !== '' && pErr === null}
      pending={change.isPending}
      spinner={false}
      onSubmit={() => {
        if (!user) return;
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
    </FormDialog>
  );
}

const COLUMNS: Column[] = [
  { label: 'Username' },
  { label: 'Role' },
  { label: 'Created' },
  { label: 'Updated' },
  { label: 'Actions', align: 'right' },
];

export function UsersPage() {
  const session = useSession();
  const { query, paging } = useUrlPaging();
  const isAdmin = session?.role === 'admin';
  const list = useUsers(query, isAdmin);
  const remove = useDeleteUser();
  const notify = useNotify();
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<AdminUser | null>(null);
  const [resetting, setResetting] = useState<AdminUser | null>(null);

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
      <PagedTable
        query={list}
        errorTitle="Could not load the users"
        paging={paging}
        label="Users"
        columns={COLUMNS}
        emptyText="No users."
        renderRow={(u) => {
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
                  color={ROLE_CHIP_COLORS[u.role] ?? 'default'}
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
        }}
      />
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
