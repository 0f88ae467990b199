import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import type { Alert, AlertActionResult, Page } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp, type SeenRequest } from '../../test/render';
import { AlertDetailPage } from './AlertDetailPage';
import { AlertsPage } from './AlertsPage';

const ID = '01900000-0000-7000-8000-0000000000aa';

const openAlert: Alert = {
  id: ID,
  binding_id: 7,
  token_display: 'abcd…wxyz',
  allowed_ips: ['10.0.0.0/24'],
  attempt_ips: ['192.0.2.9', '198.51.100.1', '198.51.100.2', '203.0.113.5'],
  attempt_networks: ['192.0.2.9/32', '198.51.100.1/32', '198.51.100.2/32', '203.0.113.5/32'],
  status: 'open',
  acted_by: null,
  acted_at: null,
  allowed_network: null,
  count: 5,
  window_seconds: 300,
  first_at: '2026-01-02T00:00:00.000Z',
  last_at: '2026-01-02T00:00:10.000Z',
  occurred_at: '2026-01-02T00:00:10.000Z',
  auto_banned: false,
  delivery_status: 'delivered',
  attempts: 1,
  last_error: null,
  last_attempt_at: '2026-01-02T00:00:11.000Z',
  delivered_at: '2026-01-02T00:00:11.000Z',
};

const closedAlert: Alert = {
  ...openAlert,
  id: '01900000-0000-7000-8000-0000000000bb',
  status: 'allowed',
  acted_by: 'alice',
  acted_at: '2026-01-02T01:00:00.000Z',
  allowed_network: '192.0.2.9/32',
};

/** The alerts API: the list, one alert, and the actions (an answer from `refuse` first, when given). */
function alertsApi(refuse?: (req: SeenRequest) => { status: number; body: unknown } | null) {
  let current = openAlert;
  return fakeApi((req) => {
    const path = req.url.pathname;
    if (req.method === 'POST') {
      const refusal = refuse?.(req);
      if (refusal) return refusal;
      const action = path.split('/').pop();
      const network = (req.body as { network?: string }).network ?? null;
      current = {
        ...current,
        status: action === 'allow-network' ? 'allowed' : action === 'ban' ? 'banned' : 'dismissed',
        acted_by: 'tester',
        acted_at: '2026-01-03T00:00:00.000Z',
        allowed_network: action === 'allow-network' ? network : null,
      };
      const result: AlertActionResult = { alert: current, binding: null };
      return { body: result };
    }
    if (path === `/admin/api/alerts/${ID}`) return { body: current };
    if (path === `/admin/api/alerts/${closedAlert.id}`) return { body: closedAlert };
    if (path === '/admin/api/alerts') {
      const page: Page<Alert> = { items: [current, closedAlert], total: 2, page: 1, page_size: 20 };
      return { body: page };
    }
    return {
      status: 404,
      body: { error: { message: 'Not found.', type: 'keypin_error', code: 'not_found' } },
    };
  });
}

const posts = (seen: SeenRequest[]) =>
  seen.filter((r) => r.method === 'POST').map((r) => ({ path: r.url.pathname, body: r.body }));
const listCalls = (seen: SeenRequest[]) => seen.filter((r) => r.url.pathname === '/admin/api/alerts').length;

async function rowOf(id: string): Promise<HTMLElement> {
  await screen.findAllByTestId('alert-row');
  return screen.getAllByTestId('alert-row').find((r) => r.getAttribute('data-alert-id') === id)!;
}

describe('Alerts page', () => {
  it('shows each alert’s status; an open one has allow (two networks here, the rest on its page), ban and dismiss', async () => {
    renderInApp(<AlertsPage />, { fetchFn: alertsApi().fetchFn, path: '/alerts' });
    const open = await rowOf(ID);
    expect(within(open).getByTestId('alert-status').textContent).toBe('Open');
    const names = within(open)
      .getAllByRole('button')
      .map((b) => b.textContent);
    expect(names).toEqual(['Allow 192.0.2.9/32', 'Allow 198.51.100.1/32', 'Ban key', 'Dismiss']);
    expect(within(open).getByRole('link', { name: '2 more networks…' }).getAttribute('href')).toBe(
      `/alerts/${ID}`,
    );
    const closed = await rowOf(closedAlert.id);
    expect(within(closed).getByTestId('alert-status').textContent).toBe('Network allowed');
    expect(within(closed).queryAllByRole('button')).toEqual([]);
  });

  it('allows a network after a confirmation, then the list refreshes and says so', async () => {
    const api = alertsApi();
    const user = userEvent.setup();
    renderInApp(<AlertsPage />, { fetchFn: api.fetchFn, path: '/alerts' });
    const row = await rowOf(ID);
    await user.click(within(row).getByRole('button', { name: 'Allow 198.51.100.1/32' }));
    const dialog = await screen.findByRole('dialog', { name: 'Allow 198.51.100.1/32 for this key?' });
    expect(posts(api.seen)).toEqual([]);
    const before = listCalls(api.seen);
    await user.click(within(dialog).getByRole('button', { name: 'Allow network' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(posts(api.seen)).toEqual([
      { path: `/admin/api/alerts/${ID}/allow-network`, body: { network: '198.51.100.1/32' } },
    ]);
    expect(await screen.findByText('198.51.100.1/32 is allowed for abcd…wxyz from now on.')).toBeTruthy();
    await waitFor(() => expect(listCalls(api.seen)).toBeGreaterThan(before));
    await waitFor(async () =>
      expect(within(await rowOf(ID)).getByTestId('alert-status').textContent).toBe('Network allowed'),
    );
    expect(within(await rowOf(ID)).queryAllByRole('button')).toEqual([]);
  });

  it('bans and dismisses with an empty body; a refusal stays in the dialog', async () => {
    const api = alertsApi((req) =>
      req.url.pathname.endsWith('/ban')
        ? {
            status: 409,
            body: {
              error: {
                message: `Alert ${ID} was dismissed already by bob.`,
                type: 'keypin_error',
                code: 'alert_not_open',
              },
            },
          }
        : null,
    );
    const user = userEvent.setup();
    renderInApp(<AlertsPage />, { fetchFn: api.fetchFn, path: '/alerts' });
    await user.click(within(await rowOf(ID)).getByRole('button', { name: 'Ban key' }));
    let dialog = await screen.findByRole('dialog', { name: 'Ban this key?' });
    await user.click(within(dialog).getByRole('button', { name: 'Ban key' }));
    expect((await within(dialog).findByRole('alert')).textContent).toMatch(/dismissed already by bob/);
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());

    await user.click(within(await rowOf(ID)).getByRole('button', { name: 'Dismiss' }));
    dialog = await screen.findByRole('dialog', { name: 'Dismiss this alert?' });
    await user.click(within(dialog).getByRole('button', { name: 'Dismiss' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(posts(api.seen)).toEqual([
      { path: `/admin/api/alerts/${ID}/ban`, body: {} },
      { path: `/admin/api/alerts/${ID}/dismiss`, body: {} },
    ]);
  });

  it('shows an auditor the statuses and no action', async () => {
    renderInApp(<AlertsPage />, { fetchFn: alertsApi().fetchFn, path: '/alerts', role: 'auditor' });
    const row = await rowOf(ID);
    expect(within(row).getByTestId('alert-status').textContent).toBe('Open');
    expect(within(row).queryAllByRole('button')).toEqual([]);
    expect(screen.queryByRole('columnheader', { name: 'Actions' })).toBeNull();
  });
});

describe('Alert page (/alerts/:id, the webhook’s console_url)', () => {
  it('shows the alert with an allow action for every one of its networks', async () => {
    renderInApp(<AlertDetailPage />, {
      fetchFn: alertsApi().fetchFn,
      path: `/alerts/${ID}`,
      route: '/alerts/:id',
    });
    await screen.findByTestId('alert-detail');
    const allow = screen.getAllByRole('button', { name: /^Allow / }).map((b) => b.textContent);
    expect(allow).toEqual(openAlert.attempt_networks.map((n) => `Allow ${n}`));
    expect(screen.getByRole('link', { name: 'The key’s binding' }).getAttribute('href')).toBe('/bindings/7');
  });

  it('shows an auditor no action', async () => {
    renderInApp(<AlertDetailPage />, {
      fetchFn: alertsApi().fetchFn,
      path: `/alerts/${ID}`,
      route: '/alerts/:id',
      role: 'auditor',
    });
    await screen.findByTestId('alert-detail');
    expect(screen.queryAllByRole('button')).toEqual([]);
    expect(screen.getByRole('link', { name: 'All alerts' })).toBeTruthy();
  });

  it('shows a closed alert without actions, saying who closed it and how', async () => {
    renderInApp(<AlertDetailPage />, {
      fetchFn: alertsApi().fetchFn,
      path: `/alerts/${closedAlert.id}`,
      route: '/alerts/:id',
    });
    await screen.findByTestId('alert-detail');
    expect(screen.getByTestId('alert-status').textContent).toBe('Network allowed');
    expect(screen.getByTestId('alert-resolution').textContent).toMatch(
      /^192\.0\.2\.9\/32 allowed by alice, /,
    );
    expect(screen.queryAllByRole('button')).toEqual([]);
  });

  it('says so for an id that is not an alert id', async () => {
    renderInApp(<AlertDetailPage />, { path: '/alerts/nope', route: '/alerts/:id' });
    expect((await screen.findByRole('alert')).textContent).toMatch(/"nope" is not an alert id/);
  });
});
