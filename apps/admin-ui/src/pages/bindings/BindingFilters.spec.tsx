import { ThemeProvider } from '@mui/material/styles';
import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { type Binding, type Page, SETTING_DEFAULTS, type SettingsResponse } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp, type SeenRequest } from '../../test/render';
import { theme } from '../../theme/theme';
import { BindingFilters, type BindingFilterValue, NO_BINDING_FILTERS } from './BindingFilters';
import { BindingsPage } from './BindingsPage';

function sut(value: BindingFilterValue = NO_BINDING_FILTERS) {
  const changes: BindingFilterValue[] = [];
  const user = userEvent.setup();
  const view = render(
    <ThemeProvider theme={theme}>
      <BindingFilters value={value} onChange={(v) => changes.push(v)} debounceMs={30} />
    </ThemeProvider>,
  );
  return { user, changes, view };
}

describe('BindingFilters', () => {
  it('applies the search once typing stops, trimmed', async () => {
    const { user, changes } = sut();
    await user.type(screen.getByRole('searchbox', { name: /Search bindings/ }), '  127.0.0.2 ');
    await waitFor(() => expect(changes).toHaveLength(1));
    expect(changes[0]).toEqual({ search: '127.0.0.2', status: '', rule_type: '' });
  });

  it('Enter applies the search at once', async () => {
    const { user, changes } = sut();
    await user.type(screen.getByRole('searchbox', { name: /Search bindings/ }), 'abcd{Enter}');
    expect(changes[0]).toEqual({ search: 'abcd', status: '', rule_type: '' });
  });

  it.each([
    ['10.0.0.0/24', /networks, first or last IP/],
    ['sk-live-0123456789abcdef', /full key is hashed on the server/],
    ['abcd…wxyz', /Masked keys containing/],
  ])('says what %j will match', async (text, hint) => {
    const { user } = sut();
    await user.type(screen.getByRole('searchbox', { name: /Search bindings/ }), text);
    expect(screen.getByText(hint)).toBeTruthy();
  });

  it('status and rule selects apply at once and keep the other filters', async () => {
    const { user, changes } = sut({ search: 'abcd', status: '', rule_type: '' });
    await user.click(screen.getByRole('combobox', { name: 'Status' }));
    await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: 'Banned' }));
    expect(changes.at(-1)).toEqual({ search: 'abcd', status: 'banned', rule_type: '' });
    await user.click(screen.getByRole('combobox', { name: 'Rule' }));
    await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: 'Several networks' }));
    expect(changes.at(-1)).toEqual({ search: 'abcd', status: '', rule_type: 'multiple' });
  });

  it('"Clear filters" shows only when something is filtered, and clears everything', async () => {
    const { user, changes, view } = sut();
    expect(screen.queryByRole('button', { name: 'Clear filters' })).toBeNull();
    view.rerender(
      <ThemeProvider theme={theme}>
        <BindingFilters
          value={{ search: 'x', status: 'active', rule_type: 'all' }}
          onChange={(v) => changes.push(v)}
          debounceMs={30}
        />
      </ThemeProvider>,
    );
    await user.click(screen.getByRole('button', { name: 'Clear filters' }));
    expect(changes.at(-1)).toEqual(NO_BINDING_FILTERS);
    expect(screen.getByRole<HTMLInputElement>('searchbox', { name: /Search bindings/ }).value).toBe('');
  });
});

const row: Binding = {
  id: 1,
  token_display: 'abc…123',
  rule_type: 'single',
  allowed_ips: ['127.0.0.2/32'],
  status: 'active',
  first_ip: '127.0.0.2',
  first_used_at: '2025-01-01T00:00:00Z',
  last_ip: '127.0.0.2',
  last_used_at: '2025-01-01T00:00:00Z',
  request_count: 1,
  intercept_count: 0,
  note: null,
  created_at: '2025-01-01T00:00:00Z',
  updated_at: '2025-01-01T00:00:00Z',
  policy: null,
  requests_today: 0,
};

const SETTINGS: SettingsResponse = { ...SETTING_DEFAULTS, alert_webhook_secret_set: false };

/** The page also reads the settings (for the default policy's daily quota): answered apart. */
const withSettings =
  (answer: (req: SeenRequest) => { status?: number; body: unknown }) => (req: SeenRequest) =>
    req.url.pathname === '/admin/api/settings' ? { body: SETTINGS } : answer(req);

const listCalls = (seen: SeenRequest[]) => seen.filter((r) => r.url.pathname === '/admin/api/bindings');

describe('BindingsPage filters → GET /bindings', () => {
  it('sends the filters from the address, and a filter change goes back to page 1', async () => {
    const api = fakeApi(
      withSettings((req) => {
        const page = Number(req.url.searchParams.get('page') ?? 1);
        const body: Page<Binding> = { items: [row], total: 45, page, page_size: 20 };
        return { body };
      }),
    );
    const user = userEvent.setup();
    renderInApp(<BindingsPage />, { fetchFn: api.fetchFn, path: '/bindings?status=active&page=2' });
    await screen.findByText('abc…123');
    expect(Object.fromEntries(listCalls(api.seen)[0]!.url.searchParams)).toEqual({
      status: 'active',
      page: '2',
      page_size: '20',
    });

    await user.type(
      screen.getByRole('searchbox', { name: /Search bindings/ }),
      'sk-full-key-0123456789{Enter}',
    );
    await waitFor(() =>
      expect(Object.fromEntries(listCalls(api.seen).at(-1)!.url.searchParams)).toEqual({
        search: 'sk-full-key-0123456789',
        status: 'active',
        page: '1',
        page_size: '20',
      }),
    );
    expect(screen.getByTestId('location').textContent).toBe(
      '/bindings?status=active&search=sk-full-key-0123456789',
    );

    await user.click(screen.getByRole('button', { name: 'Go to next page' }));
    await waitFor(() => expect(listCalls(api.seen).at(-1)!.url.searchParams.get('page')).toBe('2'));
  });

  it('shows the API’s error message when the list fails, and an empty state when nothing matches', async () => {
    let fail = true;
    const api = fakeApi(
      withSettings(() =>
        fail
          ? {
              status: 422,
              body: {
                error: {
                  message: 'search: must be at most 4096 characters',
                  type: 'keypin_error',
                  code: 'validation_failed',
                },
              },
            }
          : { body: { items: [], total: 0, page: 1, page_size: 20 } },
      ),
    );
    const user = userEvent.setup();
    renderInApp(<BindingsPage />, { fetchFn: api.fetchFn, path: '/bindings?search=x' });
    expect((await screen.findByRole('alert')).textContent).toMatch(/must be at most 4096 characters/);
    fail = false;
    await user.click(screen.getByRole('button', { name: 'Retry' }));
    expect((await screen.findByTestId('empty-state')).textContent).toMatch(/No binding matches/);
  });

  it('an auditor gets no pre-bind button', async () => {
    const api = fakeApi(withSettings(() => ({ body: { items: [row], total: 1, page: 1, page_size: 20 } })));
    renderInApp(<BindingsPage />, { fetchFn: api.fetchFn, role: 'auditor' });
    await screen.findByText('abc…123');
    expect(screen.queryByRole('button', { name: /Pre-bind/ })).toBeNull();
  });
});
