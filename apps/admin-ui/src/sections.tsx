import AltRouteOutlined from '@mui/icons-material/AltRouteOutlined';
import DashboardOutlined from '@mui/icons-material/DashboardOutlined';
import GavelOutlined from '@mui/icons-material/GavelOutlined';
import HistoryOutlined from '@mui/icons-material/HistoryOutlined';
import LinkOutlined from '@mui/icons-material/LinkOutlined';
import NotificationsActiveOutlined from '@mui/icons-material/NotificationsActiveOutlined';
import PeopleOutlined from '@mui/icons-material/PeopleOutlined';
import SettingsOutlined from '@mui/icons-material/SettingsOutlined';
import { type Role, ROLES } from '@keypin/shared';
import type { ReactNode } from 'react';
import { AlertDetailPage } from './pages/alerts/AlertDetailPage';
import { AlertsPage } from './pages/alerts/AlertsPage';
import { AuditPage } from './pages/audit/AuditPage';
import { BindingDetailPage } from './pages/bindings/BindingDetailPage';
import { BindingsPage } from './pages/bindings/BindingsPage';
import { DashboardPage } from './pages/dashboard/DashboardPage';
import { LogsPage } from './pages/logs/LogsPage';
import { RoutesPage } from './pages/routes/RoutesPage';
import { SettingsPage } from './pages/settings/SettingsPage';
import { UsersPage } from './pages/users/UsersPage';

/** One screen of the console: its address, its entry in the navigation, its page. */
export interface Section {
  /** The address under the console's base (`/` for the dashboard); the navigation links here. */
  path: `/${string}`;
  /** The text of its navigation link (the page's heading says the same). */
  label: string;
  icon: ReactNode;
  element: ReactNode;
  /** Pages under this one (`/bindings/:id`): routed, not in the navigation. */
  subpages?: { path: `${string}/${string}`; element: ReactNode }[];
  /**
   * The roles whose navigation shows the section. Its address answers every
   * role all the same; the page itself tells an auditor what they may not see.
   */
  shownTo: readonly Role[];
}

/** The console's sections in navigation order: the routes (App.tsx) and the menu (Layout.tsx) both come from here. */
export const SECTIONS: readonly Section[] = [
  { path: '/', label: 'Dashboard', icon: <DashboardOutlined />, element: <DashboardPage />, shownTo: ROLES },
  {
    path: '/bindings',
    label: 'Bindings',
    icon: <LinkOutlined />,
    element: <BindingsPage />,
    subpages: [{ path: '/bindings/:id', element: <BindingDetailPage /> }],
    shownTo: ROLES,
  },
  { path: '/logs', label: 'Intercept logs', icon: <GavelOutlined />, element: <LogsPage />, shownTo: ROLES },
  {
    path: '/alerts',
    label: 'Alerts',
    icon: <NotificationsActiveOutlined />,
    element: <AlertsPage />,
    // The webhook's console_url (docs/alerts.md) opens an alert here.
    subpages: [{ path: '/alerts/:id', element: <AlertDetailPage /> }],
    shownTo: ROLES,
  },
  { path: '/routes', label: 'Routes', icon: <AltRouteOutlined />, element: <RoutesPage />, shownTo: ROLES },
  {
    path: '/settings',
    label: 'Settings',
    icon: <SettingsOutlined />,
    element: <SettingsPage />,
    shownTo: ROLES,
  },
  { path: '/users', label: 'Users', icon: <PeopleOutlined />, element: <UsersPage />, shownTo: ['admin'] },
  { path: '/audit', label: 'Audit trail', icon: <HistoryOutlined />, element: <AuditPage />, shownTo: ROLES },
];

/** The sections a role's navigation lists; without a role, those every role sees. */
export function sectionsFor(role: Role | undefined): Section[] {
  return SECTIONS.filter((s) =>
    role === undefined ? ROLES.every((r) => s.shownTo.includes(r)) : s.shownTo.includes(role),
  );
}
