import KeyOutlined from '@mui/icons-material/KeyOutlined';
import LogoutOutlined from '@mui/icons-material/LogoutOutlined';
import PersonOutlined from '@mui/icons-material/PersonOutlined';
import {
  AppBar,
  Box,
  Button,
  Chip,
  Drawer,
  List,
  ListItemButton,
  ListItemIcon,
  ListItemText,
  Stack,
  Toolbar,
  Tooltip,
  Typography,
} from '@mui/material';
import type { Role } from '@keypin/shared';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Link as RouterLink, Outlet, useLocation } from 'react-router-dom';
import { useSession, useSessionStore } from '../api/context';
import { ApiError } from '../api/client';
import { useMe } from '../api/hooks';
import { sectionsFor } from '../sections';
import { ErrorAlert } from './ErrorAlert';
import { ROLE_LABELS } from './format';
import { ColorModeToggle } from '../theme/ColorModeToggle';

const DRAWER_WIDTH = 208;

/** The whoami badge's colour per role (its words are in ROLE_LABELS). */
const ROLE_BADGE_COLORS: Record<Role, 'primary' | 'warning'> = { admin: 'primary', auditor: 'warning' };

function isCurrent(pathname: string, to: string): boolean {
  return to === '/' ? pathname === '/' : pathname === to || pathname.startsWith(`${to}/`);
}

/** The frame around every page: top bar, navigation, content. */
export function Layout() {
  const session = useSession();
  const sessions = useSessionStore();
  const qc = useQueryClient();
  const { pathname } = useLocation();
  const items = sectionsFor(session?.role);
  // The server's word on who this token is: checked on every load (a token
  // from before a restart or a password change answers 401 and ends the session).
  const me = useMe();
  useEffect(() => {
    if (session && me.data && (me.data.role !== session.role || me.data.username !== session.username)) {
      sessions.start({ ...session, role: me.data.role, username: me.data.username });
    }
  }, [me.data, session, sessions]);

  const logout = () => {
    sessions.end('You have logged out.');
    qc.clear();
  };

  return (
    <Box sx={{ display: 'flex', minHeight: '100vh' }}>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <AppBar
        position="fixed"
        color="default"
        sx={{
          zIndex: (t) => t.zIndex.drawer + 1,
          borderBottom: 1,
          borderColor: 'divider',
          bgcolor: 'background.paper',
        }}
      >
        <Toolbar sx={{ gap: 1 }}>
          <KeyOutlined color="primary" />
          <Typography variant="h6" component="div" sx={{ fontWeight: 700, flexGrow: 1 }}>
            KeyPin
          </Typography>
          {session && (
            <Stack direction="row" spacing={1} sx={{ alignItems: 'center', mr: 1 }} data-testid="whoami">
              <PersonOutlined fontSize="small" color="action" />
              <Typography variant="body2">{session.username}</Typography>
              <Tooltip title={ROLE_LABELS[session.role].summary}>
                <Chip
                  size="small"
                  label={ROLE_LABELS[session.role].badge}
                  color={ROLE_BADGE_COLORS[session.role]}
                  variant="outlined"
                />
              </Tooltip>
            </Stack>
          )}
          <ColorModeToggle />
          <Button color="inherit" startIcon={<LogoutOutlined />} onClick={logout}>
            Log out
          </Button>
        </Toolbar>
      </AppBar>
      <Drawer
        variant="permanent"
        sx={{
          width: DRAWER_WIDTH,
          flexShrink: 0,
          '& .MuiDrawer-paper': { width: DRAWER_WIDTH, boxSizing: 'border-box' },
        }}
      >
        <Toolbar />
        <Box component="nav" aria-label="Main">
          <List>
            {items.map((n) => {
              const current = isCurrent(pathname, n.path);
              return (
                <ListItemButton
                  key={n.path}
                  component={RouterLink}
                  to={n.path}
                  selected={current}
                  aria-current={current ? 'page' : undefined}
                >
                  <ListItemIcon sx={{ minWidth: 36 }}>{n.icon}</ListItemIcon>
                  <ListItemText primary={n.label} />
                </ListItemButton>
              );
            })}
          </List>
        </Box>
      </Drawer>
      <Box
        component="main"
        id="main"
        tabIndex={-1}
        sx={{ flexGrow: 1, minWidth: 0, p: 3, bgcolor: 'background.default', outline: 'none' }}
      >
        <Toolbar />
        {me.isError && !(me.error instanceof ApiError && me.error.status === 401) && (
          <ErrorAlert
            error={me.error}
            title="Could not confirm your session"
            onRetry={() => void me.refetch()}
          />
        )}
        <Outlet />
      </Box>
    </Box>
  );
}
