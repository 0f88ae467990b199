import { ThemeProvider } from '@mui/material/styles';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { render, type RenderResult } from '@testing-library/react';
import type { Role } from '@keypin/shared';
import type { ReactElement } from 'react';
import { MemoryRouter, Route, Routes, useLocation } from 'react-router-dom';
import { ApiClient } from '../api/client';
import { ApiProvider } from '../api/context';
import { SessionStore } from '../api/session';
import { NotifierProvider } from '../components/Notifier';
import { theme } from '../theme/theme';

export interface SeenRequest {
  method: string;
  url: URL;
  body: unknown;
}

/** A stand-in for the admin API: records each request, answers with `answer`. */
export function fakeApi(answer: (req: SeenRequest) => { status?: number; body: unknown }) {
  const seen: SeenRequest[] = [];
  const fetchFn: typeof fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString(), 'http://console.test');
    const raw = init?.body;
    const req: SeenRequest = {
      method: init?.method ?? 'GET',
      url,
      body: typeof raw === 'string' ? (JSON.parse(raw) as unknown) : undefined,
    };
    seen.push(req);
    const a = answer(req);
    return Promise.resolve(
      new Response(JSON.stringify(a.body), {
        status: a.status ?? 200,
        headers: { 'content-type': 'application/json' },
      }),
    );
  };
  return { seen, fetchFn };
}

/** Shows the router's current address so tests can read it. */
function Where() {
  const l = useLocation();
  return <output data-testid="location">{l.pathname + l.search}</output>;
}

/** Renders `ui` inside the console's providers, logged in as `role`. */
export function renderInApp(
  ui: ReactElement,
  opts: { fetchFn?: typeof fetch; role?: Role; path?: string; route?: string } = {},
): RenderResult & { sessions: SessionStore } {
  const sessions = new SessionStore(null);
  sessions.start({
    token: 't',
    username: 'tester',
    role: opts.role ?? 'admin',
    expiresAt: Date.now() + 3600_000,
  });
  const client = new ApiClient({
    getToken: () => sessions.token(),
    fetch: opts.fetchFn ?? (() => Promise.reject(new Error('no API in this test'))),
  });
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  const result = render(
    <ThemeProvider theme={theme}>
      <ApiProvider client={client} sessions={sessions}>
        <QueryClientProvider client={qc}>
          <NotifierProvider>
            <MemoryRouter initialEntries={[opts.path ?? '/']}>
              <Routes>
                <Route path={opts.route ?? '*'} element={ui} />
              </Routes>
              <Where />
            </MemoryRouter>
          </NotifierProvider>
        </QueryClientProvider>
      </ApiProvider>
    </ThemeProvider>,
  );
  return { ...result, sessions };
}
