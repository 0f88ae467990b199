import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import {
  type Binding,
  type BindingUsage,
  type KeyPolicy,
  type Page,
  SETTING_DEFAULTS,
  type SettingsResponse,
} from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp, type SeenRequest } from '../../test/render';
import { BindingDetailPage } from './BindingDetailPage';
import { BindingsPage, dailyQuota } from './BindingsPage';

/** These tests type into many fields: room for a loaded 2-core machine. */
const TYPING_TIMEOUT = 20_000;

const binding: Binding = {
  id: 7,
  token_display: 'abcd…wxyz',
  rule_type: 'single',
  allowed_ips: ['127.0.0.2/32'],
  status: 'active',
  first_ip: '127.0.0.2',
  first_used_at: '2025-01-01T00:00:00Z',
  last_ip: '127.0.0.2',
  last_used_at: '2025-01-01T00:00:00Z',
  request_count: 30,
  intercept_count: 0,
  note: null,
  created_at: '2025-01-01T00:00:00Z',
  updated_at: '2025-01-01T00:00:00Z',
  policy: null,
  requests_today: 5,
};

const DEFAULT_POLICY: KeyPolicy = { requests_per_day: 50, max_tokens: 2048 };

const validation = (message: string, field: string) => ({
  status: 422,
  body: { error: { message, type: 'keypin_error', code: 'validation_failed' }, field },
});

/**
 * The admin API as the binding page meets it: the binding, its usage
 * (computed from its policy and the default, as the gateway does), its
 * intercepts, the settings, and `PUT /bindings/policy`.
 */
function bindingApi(
  opts: {
    own?: KeyPolicy | null;
    defaultPolicy?: KeyPolicy | null;
    refuse?: (req: SeenRequest) => { status: number; body: unknown } | null;
  } = {},
) {
  let current: Binding = { ...binding, policy: opts.own ?? null };
  const defaultPolicy = opts.defaultPolicy === undefined ? DEFAULT_POLICY : opts.defaultPolicy;
  const api = fakeApi((req) => {
    const path = req.url.pathname;
    if (req.method === 'PUT' && path === '/admin/api/bindings/policy') {
      const refusal = opts.refuse?.(req);
      if (refusal) return refusal;
      current = { ...current, policy: (req.body as { policy: KeyPolicy | null }).policy };
      return { body: current };
    }
    if (path === '/admin/api/bindings/7') return { body: current };
    if (path === '/admin/api/bindings/7/usage') {
      const effective = current.policy ?? defaultPolicy;
      const usage: BindingUsage = {
        today: 5,
        month: 40,
        limit_day: effective?.requests_per_day ?? null,
        limit_month: effective?.requests_per_month ?? null,
        effective_policy: effective,
        policy_source: current.policy !== null ? 'binding' : effective !== null ? 'default' : 'none',
      };
      return { body: usage };
    }
    if (path === '/admin/api/logs') return { body: { items: [], total: 0, page: 1, page_size: 10 } };
    if (path === '/admin/api/settings') {
      const s: SettingsResponse = {
        ...SETTING_DEFAULTS,
        default_policy: defaultPolicy,
        alert_webhook_secret_set: false,
      };
      return { body: s };
    }
    return {
      status: 404,
      body: { error: { message: 'Not found.', type: 'keypin_error', code: 'not_found' } },
    };
  });
  return api;
}

const puts = (seen: SeenRequest[]) => seen.filter((r) => r.method === 'PUT').map((r) => r.body);
const usageCalls = (seen: SeenRequest[]) =>
  seen.filter((r) => r.url.pathname === '/admin/api/bindings/7/usage').length;

function openPage(api: ReturnType<typeof bindingApi>, role: 'admin' | 'auditor' = 'admin') {
  renderInApp(<BindingDetailPage />, {
    fetchFn: api.fetchFn,
    path: '/bindings/7',
    route: '/bindings/:id',
    role,
  });
}

async function openEditor(user: ReturnType<typeof userEvent.setup>) {
  await user.click(await screen.findByRole('button', { name: 'Edit policy' }));
  return screen.findByRole('dialog', { name: /Policy of/ });
}

describe('binding page: the Policy card', { timeout: TYPING_TIMEOUT }, () => {
  it('shows the default policy that applies, where it comes from, and the quota use as bars', async () => {
    openPage(bindingApi());
    const card = await screen.findByTestId('policy-card');
    expect((await within(card).findByTestId('policy-source')).textContent).toBe('Default policy');
    expect(within(card).getByTestId('policy-source-text').textContent).toMatch(
      /follows the default policy from Settings/,
    );
    expect(within(card).getByTestId('policy-summary-requests_per_day').textContent).toBe('50');
    expect(within(card).getByTestId('policy-summary-max_tokens').textContent).toBe(
      `${(2048).toLocaleString()} tokens`,
    );
    expect(within(card).getByTestId('policy-summary-rate_per_second').textContent).toBe('No rate limit');
    expect(within(card).getByTestId('quota-day-text').textContent).toBe('5 of 50 (10%)');
    expect(within(card).getByRole('progressbar', { name: 'Today (UTC)' }).getAttribute('aria-valuenow')).toBe(
      '10',
    );
    expect(within(card).getByTestId('quota-month-text').textContent).toBe(
      'No monthly quota · 40 requests this month',
    );
  });

  it('with no policy anywhere: unlimited, no bars, the counts', async () => {
    openPage(bindingApi({ defaultPolicy: null }));
    const card = await screen.findByTestId('policy-card');
    expect((await within(card).findByTestId('policy-source')).textContent).toBe('No policy');
    expect(within(card).getByTestId('policy-summary').textContent).toMatch(/^Unlimited/);
    expect(within(card).getByTestId('quota-day-text').textContent).toBe('No daily quota · 5 requests today');
    expect(within(card).queryByRole('progressbar')).toBeNull();
  });

  it('an auditor sees the policy and the bars, and no edit control', async () => {
    openPage(bindingApi({ own: { requests_per_day: 20 } }), 'auditor');
    const card = await screen.findByTestId('policy-card');
    expect((await within(card).findByTestId('policy-source')).textContent).toBe('Own policy');
    expect(within(card).getByTestId('quota-day-text').textContent).toBe('5 of 20 (25%)');
    expect(within(card).getByRole('progressbar', { name: 'Today (UTC)' })).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Edit policy' })).toBeNull();
    expect(within(card).queryAllByRole('button')).toEqual([]);
  });
});

describe('binding page: Edit policy', { timeout: TYPING_TIMEOUT }, () => {
  it('gives the key its own policy, then the card shows it (binding and usage refetched)', async () => {
    const api = bindingApi();
    const user = userEvent.setup();
    openPage(api);
    const dialog = await openEditor(user);
    // It follows the default now: the dialog says what that is.
    expect(
      within(dialog).getByRole<HTMLInputElement>('radio', { name: /Use the default policy/ }).checked,
    ).toBe(true);
    expect((await within(dialog).findByTestId('default-policy-requests_per_day')).textContent).toBe('50');
    const before = usageCalls(api.seen);

    await user.click(within(dialog).getByRole('radio', { name: /Give this key its own policy/ }));
    await user.type(within(dialog).getByRole('textbox', { name: 'Requests per day' }), '8');
    await user.type(within(dialog).getByRole('textbox', { name: 'Allowed models' }), 'gpt-4o*');
    await user.click(within(dialog).getByRole('button', { name: 'Save policy' }));

    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(puts(api.seen)).toEqual([{ id: 7, policy: { requests_per_day: 8, models: ['gpt-4o*'] } }]);
    expect(api.seen.find((r) => r.method === 'PUT')!.url.pathname).toBe('/admin/api/bindings/policy');
    expect(await screen.findByText('Saved: abcd…wxyz now has its own policy.')).toBeTruthy();
    const card = screen.getByTestId('policy-card');
    await waitFor(() => expect(within(card).getByTestId('policy-source').textContent).toBe('Own policy'));
    expect(usageCalls(api.seen)).toBeGreaterThan(before);
    expect(within(card).getByTestId('quota-day-text').textContent).toBe('5 of 8 (62%)');
    expect(within(card).getByTestId('policy-summary-models').textContent).toBe('gpt-4o*');
  });

  it('all fields empty sends {} (unlimited, overriding the default); "use the default" sends null', async () => {
    const api = bindingApi({ own: { requests_per_day: 20 } });
    const user = userEvent.setup();
    openPage(api);
    let dialog = await openEditor(user);
    const day = within(dialog).getByRole<HTMLInputElement>('textbox', { name: 'Requests per day' });
    expect(day.value).toBe('20');
    await user.clear(day);
    expect(within(dialog).getByTestId('policy-all-empty').textContent).toMatch(
      /unlimited, whatever the default policy says/,
    );
    await user.click(within(dialog).getByRole('button', { name: 'Save policy' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(
      await screen.findByText(/abcd…wxyz is now unlimited, whatever the default policy says/),
    ).toBeTruthy();
    await waitFor(() =>
      expect(screen.getByTestId('policy-source-text').textContent).toMatch(
        /own policy, which limits nothing/,
      ),
    );
    expect(screen.getByTestId('quota-day-text').textContent).toBe('No daily quota · 5 requests today');

    dialog = await openEditor(user);
    await user.click(within(dialog).getByRole('radio', { name: /Use the default policy/ }));
    await user.click(within(dialog).getByRole('button', { name: 'Save policy' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(puts(api.seen)).toEqual([
      { id: 7, policy: {} },
      { id: 7, policy: null },
    ]);
    await waitFor(() => expect(screen.getByTestId('policy-source').textContent).toBe('Default policy'));
    expect(screen.getByTestId('quota-day-text').textContent).toBe('5 of 50 (10%)');
  });

  it('blocks an invalid policy before sending it, with the complaint under the field', async () => {
    const api = bindingApi();
    const user = userEvent.setup();
    openPage(api);
    const dialog = await openEditor(user);
    await user.click(within(dialog).getByRole('radio', { name: /Give this key its own policy/ }));
    const burst = within(dialog).getByRole('textbox', { name: 'Burst' });
    await user.type(burst, '10');
    expect(burst.getAttribute('aria-invalid')).toBe('true');
    expect(
      within(dialog).getByText('Burst needs a rate per second: set one, or leave burst empty.'),
    ).toBeTruthy();
    const save = within(dialog).getByRole('button', { name: 'Save policy' });
    expect(save.hasAttribute('disabled')).toBe(true);
    await user.type(within(dialog).getByRole('textbox', { name: 'Rate per second' }), '2.5');
    expect(burst.getAttribute('aria-invalid')).toBe('false');
    expect(save.hasAttribute('disabled')).toBe(false);
    expect(puts(api.seen)).toEqual([]);
  });

  it('a 422 naming a field shows the API’s message under that field, until it is edited', async () => {
    const message = 'Invalid policy.max_tokens: must be at most the relay’s context of 128000';
    const api = bindingApi({
      refuse: (req) =>
        (req.body as { policy: KeyPolicy }).policy.max_tokens === 200000
          ? validation(message, 'policy.max_tokens')
          : null,
    });
    const user = userEvent.setup();
    openPage(api);
    const dialog = await openEditor(user);
    await user.click(within(dialog).getByRole('radio', { name: /Give this key its own policy/ }));
    const tokens = within(dialog).getByRole('textbox', { name: 'Max tokens per request' });
    await user.type(tokens, '200000');
    await user.click(within(dialog).getByRole('button', { name: 'Save policy' }));

    await waitFor(() => expect(tokens.getAttribute('aria-invalid')).toBe('true'));
    expect(document.getElementById(tokens.getAttribute('aria-describedby')!)!.textContent).toBe(message);
    // Under the field, not (again) under the form.
    expect(within(dialog).queryByRole('alert')).toBeNull();
    expect(within(dialog).getByRole('button', { name: 'Save policy' }).hasAttribute('disabled')).toBe(true);

    await user.clear(tokens);
    await user.type(tokens, '100000');
    expect(tokens.getAttribute('aria-invalid')).toBe('false');
    await user.click(within(dialog).getByRole('button', { name: 'Save policy' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(puts(api.seen)).toEqual([
      { id: 7, policy: { max_tokens: 200000 } },
      { id: 7, policy: { max_tokens: 100000 } },
    ]);
  });

  it('a refusal naming no field of the form shows under the form', async () => {
    const api = bindingApi({
      refuse: () => ({
        status: 403,
        body: { error: { message: 'Your role may not do this.', type: 'keypin_error', code: 'forbidden' } },
      }),
    });
    const user = userEvent.setup();
    openPage(api);
    const dialog = await openEditor(user);
    await user.click(within(dialog).getByRole('radio', { name: /Give this key its own policy/ }));
    await user.click(within(dialog).getByRole('button', { name: 'Save policy' }));
    expect((await within(dialog).findByRole('alert')).textContent).toBe('Your role may not do this.');
    expect(screen.getByRole('dialog')).toBeTruthy();
  });
});

describe('bindings list: the Today column', { timeout: TYPING_TIMEOUT }, () => {
  const rows: Binding[] = [
    { ...binding, id: 1, token_display: 'own…0001', policy: { requests_per_day: 10 }, requests_today: 4 },
    { ...binding, id: 2, token_display: 'dflt…0002', policy: null, requests_today: 5 },
    { ...binding, id: 3, token_display: 'free…0003', policy: {}, requests_today: 9 },
    { ...binding, id: 4, token_display: 'rate…0004', policy: { rate_per_second: 1 }, requests_today: 2 },
  ];

  it('dailyQuota: own policy first ({} included), else the default', () => {
    expect(dailyQuota(rows[0]!, DEFAULT_POLICY)).toBe(10);
    expect(dailyQuota(rows[1]!, DEFAULT_POLICY)).toBe(50);
    expect(dailyQuota(rows[1]!, null)).toBeNull();
    expect(dailyQuota(rows[1]!, undefined)).toBeNull();
    expect(dailyQuota(rows[2]!, DEFAULT_POLICY)).toBeNull();
    expect(dailyQuota(rows[3]!, DEFAULT_POLICY)).toBeNull();
  });

  it.each(['admin', 'auditor'] as const)(
    'shows today’s count, with a bar where there is a daily quota (%s)',
    async (role) => {
      const api = fakeApi((req) => {
        if (req.url.pathname === '/admin/api/settings') {
          return {
            body: { ...SETTING_DEFAULTS, default_policy: DEFAULT_POLICY, alert_webhook_secret_set: false },
          };
        }
        const page: Page<Binding> = { items: rows, total: rows.length, page: 1, page_size: 20 };
        return { body: page };
      });
      renderInApp(<BindingsPage />, { fetchFn: api.fetchFn, path: '/bindings', role });
      expect(screen.getByRole('columnheader', { name: 'Today' })).toBeTruthy();
      await screen.findByText('own…0001');
      const today = () => screen.getAllByTestId('binding-today');
      await waitFor(() => expect(today()[1]!.textContent).toBe('5 / 50'));
      expect(today().map((c) => c.textContent)).toEqual(['4 / 10', '5 / 50', '9', '2']);
      expect(
        within(today()[0]!)
          .getByRole('progressbar', { name: 'Daily quota used by own…0001' })
          .getAttribute('aria-valuenow'),
      ).toBe('40');
      expect(within(today()[1]!).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('10');
      expect(within(today()[2]!).queryByRole('progressbar')).toBeNull();
      expect(within(today()[3]!).queryByRole('progressbar')).toBeNull();
    },
  );
});
