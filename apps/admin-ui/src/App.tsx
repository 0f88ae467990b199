import { CssBaseline, GlobalStyles } from '@mui/material';
import { ThemeProvider } from '@mui/material/styles';
import { QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { BrowserRouter, Navigate, Route, Routes, useLocation } from 'react-router-dom';
import { ApiClient, ApiError } from './api/client';
import { ApiProvider, useSession, useSessionStore } from './api/context';
import { SessionStore } from './api/session';
import { LoginPage } from './auth/LoginPage';
import { ErrorBoundary } from './components/ErrorBoundary';
import { Layout } from './components/Layout';
import { NotifierProvider } from './components/Notifier';
import { NotFoundPage } from './pages/NotFoundPage';
import { SECTIONS } from './sections';
import { theme } from './theme/theme';

const globalStyles = (
  <GlobalStyles
    styles={(t) => ({
      '.skip-link': {
        position: 'absolute',
        left: -9999,
        top: 8,
        zIndex: t.zIndex.tooltip + 1,
        padding: '8px 12px',
        background: t.palette.background.paper,
        color: t.palette.text.primary,
        border: `2px solid ${t.palette.primary.main}`,
        borderRadius: 4,
      },
      '.skip-link:focus': { left: 8 },
      ':focus-visible': { outline: `2px solid ${t.palette.primary.main}`, outlineOffset: 2 },
    })}
  />
);

/** Sends a visitor without a session to the login page, remembering where they were going. */
function RequireSession({ children }: { children: React.ReactNode }) {
  const session = useSession();
  const location = useLocation();
  if (!session) {
    return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
  }
  return children;
}

/** The login page is for visitors; a logged-in one goes on to where they were going. */
function LoginRoute() {
  const session = useSession();
  const location = useLocation();
  if (session) {
    const from = (location.state as { from?: string } | null)?.from;
    return <Navigate to={from && from !== '/login' ? from : '/'} replace />;
  }
  return <LoginPage />;
}

/** Re-checks the session's expiry when the tab comes back (timers sleep in background tabs). */
function SessionWatch() {
  const sessions = useSessionStore();
  useEffect(() => {
    const check = () => sessions.check();
    document.addEventListener('visibilitychange', check);
    window.addEventListener('focus', check);
    return () => {
      document.removeEventListener('visibilitychange', check);
      window.removeEventListener('focus', check);
    };
  }, [sessions]);
  return null;
}

function makeQueryClient(): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache(),
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        // A 4xx will answer the same the second time; a network blip may not.
        retry: (count, err) =>
          count < 2 && !(err instanceof ApiError && err.status >= 400 && err.status < 500),
      },
      mutations: { retry: false },
    },
  });
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/login" element={<LoginRoute />} />
      <Route
        element={
          <RequireSession>
            <ErrorBoundary>
              <Layout />
            </ErrorBoundary>
          </RequireSession>
        }
      >
        {SECTIONS.map(({ path, element }) =>
          path === '/' ? (
            <Route key={path} index element={element} />
          ) : (
            <Route key={path} path={path} element={element} />
          ),
        )}
        {SECTIONS.flatMap(({ subpages = [] }) =>
          subpages.map(({ path, element }) => <Route key={path} path={path} element={element} />),
        )}
        <Route path="*" element={<NotFoundPage />} />
      </Route>
    </Routes>
  );
}

/** The console: session, API client, data cache, theme, routes. */
export function App() {
  const [{ sessions, client, queryClient }] = useState(() => {
    const sessions = new SessionStore();
    const queryClient = makeQueryClient();
    const client = new ApiClient({
      getToken: () => sessions.token(),
      onUnauthorized: () => {
        sessions.end('Your session has expired or was ended. Log in again.');
        queryClient.clear();
      },
    });
    return { sessions, client, queryClient };
  });
  // A session that ends by itself (expiry) leaves no data behind either.
  useEffect(
    () =>
      sessions.subscribe(() => {
        if (!sessions.get()) queryClient.clear();
      }),
    [sessions, queryClient],
  );

  return (
    <ThemeProvider theme={theme} defaultMode="system">
      <CssBaseline enableColorScheme />
      {globalStyles}
      <ApiProvider client={client} sessions={sessions}>
        <QueryClientProvider client={queryClient}>
          <NotifierProvider>
            <BrowserRouter basename={import.meta.env.BASE_URL.replace(/\/$/, '')}>
              <SessionWatch />
              <AppRoutes />
            </BrowserRouter>
          </NotifierProvider>
        </QueryClientProvider>
      </ApiProvider>
    </ThemeProvider>
  );
}
