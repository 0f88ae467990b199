import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { type Route, type RouteInput, SETTING_DEFAULTS, type SettingsResponse } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp, type SeenRequest } from '../../test/render';
import { KEEP_PLACEHOLDER } from './RouteDialog';
import { REENTER_VALUE } from './route-form';
import { RoutesPage } from './RoutesPage';

/** These tests fill dialogs with many fields: room for a loaded 2-core machine. */
const TIMEOUT = 20_000;

const SETTINGS: SettingsResponse = { ...SETTING_DEFAULTS, alert_webhook_secret_set: false };

const OPENAI: Route = {
  id: 3,
  prefix: '/openai/',
  upstream: 'https://api.openai.com',
  strip_prefix: true,
  relay: 'openai',
  timeout_seconds: 600,
  upstream_header_names: ['authorization', 'openai-organization'],
  require_header_name: 'x-proxy-token',
  created_at: '2025-01-02T03:04:05.000Z',
  updated_at: '2025-01-02T03:04:05.000Z',
};

function validationFailed(field: string, message: string) {
  return {
    status: 422,
    body: { error: { message, type: 'keypin_error', code: 'validation_failed' }, field },
  };
}

/**
 * The admin API as the routes page meets it: a list, and changes answered
 * with the route as the API shows it (header names, never values), unless
 * `refuse` answers a change first.
 */
function routesApi(
  routes: Route[] = [OPENAI],
  refuse?: (req: SeenRequest) => { status: number; body: unknown } | undefined,
) {
  let current = routes.slice();
  return fakeApi((req) => {
    const path = req.url.pathname;
    if (path === '/admin/api/settings') return { body: SETTINGS };
    if (req.method === 'GET') {
      return { body: { items: current, total: current.length, page: 1, page_size: 20 } };
    }
    const refusal = refuse?.(req);
    if (refusal) return refusal;
    const id = Number(/\/routes\/(\d+)$/.exec(path)?.[1]);
    if (req.method === 'DELETE') {
      const gone = current.find((r) => r.id === id);
      current = current.filter((r) => r.id !== id);
      return { body: gone };
    }
    const { upstream_headers: headers, require_header: token, ...fields } = req.body as RouteInput;
    const base = req.method === 'POST' ? { ...OPENAI, id: 9 } : current.find((r) => r.id === id)!;
    const fresh = req.method === 'POST';
    const next: Route = {
      ...base,
      ...fields,
      relay: fields.relay === undefined ? base.relay : fields.relay,
      timeout_seconds: fields.timeout_seconds === undefined ? base.timeout_seconds : fields.timeout_seconds,
      upstream_header_names: headers
        ? Object.keys(headers).map((n) => n.toLowerCase())
        : fresh
          ? []
          : base.upstream_header_names,
      require_header_name:
        token !== undefined ? (token?.name.toLowerCase() ?? null) : fresh ? null : base.require_header_name,
    };
    current = req.method === 'POST' ? [...current, next] : current.map((r) => (r.id === id ? next : r));
    return { status: req.method === 'POST' ? 201 : 200, body: next };
  });
}

const changes = (seen: SeenRequest[]) =>
  seen
    .filter((r) => r.method !== 'GET')
    .map((r) => ({ method: r.method, path: r.url.pathname, body: r.body }));

/** Sets a text field's value at once (typing "${" would be a key descriptor to user-event). */
function fill(field: HTMLElement, value: string) {
  fireEvent.change(field, { target: { value } });
}

function helperOf(field: HTMLElement): string {
  const id = field.getAttribute('aria-describedby');
  return (id && document.getElementById(id)?.textContent) || '';
}

async function openEdit(user: ReturnType<typeof userEvent.setup>, prefix = '/openai/') {
  await user.click(await screen.findByRole('button', { name: `Edit ${prefix}` }));
  return screen.findByRole('dialog', { name: `Edit the route ${prefix}` });
}

describe('RoutesPage: the list', () => {
  it('shows each route with its header names, never a value', async () => {
    renderInApp(<RoutesPage />, { fetchFn: routesApi().fetchFn });
    const row = await screen.findByTestId('route-row');
    const cells = within(row)
      .getAllByRole('cell')
      .map((c) => c.textContent);
    expect(cells.slice(0, 7)).toEqual([
      '/openai/',
      'https://api.openai.com',
      'Yes',
      'OpenAI-compatible',
      '600 s',
      'authorizationopenai-organization',
      'x-proxy-token',
    ]);
    expect(screen.getByRole('button', { name: 'Add route' })).toBeTruthy();
  });

  it('an auditor sees the routes and no control that changes them', async () => {
    renderInApp(<RoutesPage />, { fetchFn: routesApi().fetchFn, role: 'auditor' });
    const row = await screen.findByTestId('route-row');
    expect(within(row).getByTestId('route-header-names').textContent).toBe(
      'authorizationopenai-organization',
    );
    // Only the pager's buttons.
    const buttons = screen.queryAllByRole('button').map((b) => b.getAttribute('aria-label') ?? b.textContent);
    expect(buttons.filter((b) => !/^Go to (first|previous|next|last) page$/.test(b ?? ''))).toEqual([]);
    expect(screen.queryByRole('columnheader', { name: 'Actions' })).toBeNull();
  });

  it('says what happens without routes', async () => {
    renderInApp(<RoutesPage />, { fetchFn: routesApi([]).fetchFn });
    expect((await screen.findByTestId('empty-state')).textContent).toMatch(/default downstream/);
  });

  it('deletes a route only after confirmation', async () => {
    const api = routesApi();
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    await user.click(await screen.findByRole('button', { name: 'Delete /openai/' }));
    const dialog = await screen.findByRole('dialog', { name: 'Delete the route /openai/?' });
    expect(changes(api.seen)).toEqual([]);
    await user.click(within(dialog).getByRole('button', { name: 'Delete' }));
    expect(await screen.findByText('Deleted the route /openai/.')).toBeTruthy();
    expect(changes(api.seen)).toEqual([{ method: 'DELETE', path: '/admin/api/routes/3', body: undefined }]);
    await waitFor(() => expect(screen.queryByTestId('route-row')).toBeNull());
  });
});

describe('RouteDialog: a new route', { timeout: TIMEOUT }, () => {
  it('checks every field as it is typed with the shared rules, then creates the route', async () => {
    const api = routesApi([]);
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    await user.click(await screen.findByRole('button', { name: 'Add route' }));
    const dialog = await screen.findByRole('dialog', { name: 'Add a route' });
    const d = within(dialog);
    const create = d.getByRole<HTMLButtonElement>('button', { name: 'Create route' });
    expect(create.disabled).toBe(true);
    // ${env:NAME} is explained.
    expect(dialog.textContent).toMatch(/\$\{env:NAME\}/);

    const prefix = d.getByRole('textbox', { name: 'Prefix' });
    fill(prefix, 'openai');
    expect(prefix.getAttribute('aria-invalid')).toBe('true');
    expect(helperOf(prefix)).toBe('The prefix must start and end with "/" (like "/openai/").');
    fill(prefix, '/admin/x/');
    expect(helperOf(prefix)).toBe("The prefix is under KeyPin's reserved path /admin.");
    fill(prefix, '/openai/');
    expect(prefix.getAttribute('aria-invalid')).toBe('false');

    const upstream = d.getByRole('textbox', { name: 'Upstream' });
    fill(upstream, 'https://user:pw@api.openai.com');
    expect(helperOf(upstream)).toBe('The upstream may not hold credentials (set a header instead).');
    fill(upstream, 'https://api.openai.com/');

    const timeout = d.getByRole('textbox', { name: 'Timeout' });
    fill(timeout, '0');
    expect(helperOf(timeout)).toBe('The timeout must be an integer from 1 to 3600.');
    fill(timeout, '600');
    expect(timeout.getAttribute('aria-invalid')).toBe('false');

    await user.click(d.getByRole('button', { name: 'Add header' }));
    const name = d.getByRole('textbox', { name: 'Header 1 name' });
    const value = d.getByRole('textbox', { name: /^Header 1 value/ });
    fill(name, 'Host');
    expect(helperOf(name)).toBe('Header "Host" is set by KeyPin itself and cannot be configured.');
    fill(name, 'Authorization');
    fill(value, 'Bearer ${OPENAI_API_KEY}');
    expect(helperOf(value)).toBe('The value holds a "${" that is not a reference like ${env:NAME}.');
    fill(value, 'Bearer ${env:OPENAI_API_KEY}');
    expect(value.getAttribute('aria-invalid')).toBe('false');

    const tokenName = d.getByRole('textbox', { name: 'Token header' });
    fill(tokenName, 'authorization');
    expect(helperOf(tokenName)).toBe('Header "authorization" is also set upstream: choose another name.');
    fill(tokenName, 'X-Proxy-Token');
    // A token header needs its value.
    expect(create.disabled).toBe(true);
    fill(d.getByRole('textbox', { name: 'Token value' }), '${env:PROXY_TOKEN}');

    await user.click(d.getByRole('combobox', { name: 'Relay' }));
    const options = within(screen.getByRole('listbox'))
      .getAllByRole('option')
      .map((o) => o.textContent);
    expect(options[0]).toBe('Default (setting: New API / One API)');
    await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: 'LiteLLM proxy' }));
    await user.click(d.getByRole('switch', { name: /Strip the prefix/ }));

    await user.click(create);
    expect(await screen.findByText('Created the route /openai/ → https://api.openai.com/.')).toBeTruthy();
    expect(changes(api.seen)).toEqual([
      {
        method: 'POST',
        path: '/admin/api/routes',
        body: {
          prefix: '/openai/',
          upstream: 'https://api.openai.com/',
          strip_prefix: true,
          relay: 'litellm',
          timeout_seconds: 600,
          upstream_headers: { Authorization: 'Bearer ${env:OPENAI_API_KEY}' },
          require_header: { name: 'X-Proxy-Token', value: '${env:PROXY_TOKEN}' },
        },
      },
    ]);
  });

  it('shows the API’s 422 under the field it names, and only there', async () => {
    const api = routesApi([], (req) =>
      req.method === 'POST'
        ? validationFailed(
            'upstream_headers.x-key',
            'Invalid upstream_headers.x-key: names a missing variable',
          )
        : undefined,
    );
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    await user.click(await screen.findByRole('button', { name: 'Add route' }));
    const d = within(await screen.findByRole('dialog', { name: 'Add a route' }));
    fill(d.getByRole('textbox', { name: 'Prefix' }), '/x/');
    fill(d.getByRole('textbox', { name: 'Upstream' }), 'http://127.0.0.1:9000');
    await user.click(d.getByRole('button', { name: 'Add header' }));
    fill(d.getByRole('textbox', { name: 'Header 1 name' }), 'X-Key');
    const value = d.getByRole('textbox', { name: /^Header 1 value/ });
    fill(value, '${env:NOPE}');
    await user.click(d.getByRole('button', { name: 'Create route' }));

    await waitFor(() => expect(value.getAttribute('aria-invalid')).toBe('true'));
    expect(helperOf(value)).toBe('Invalid upstream_headers.x-key: names a missing variable');
    expect(d.queryByRole('alert')).toBeNull();
    expect(d.getByRole<HTMLButtonElement>('button', { name: 'Create route' }).disabled).toBe(true);
    // Edited, the field is clean again.
    fill(value, '${env:KEY}');
    expect(value.getAttribute('aria-invalid')).toBe('false');
    expect(d.getByRole<HTMLButtonElement>('button', { name: 'Create route' }).disabled).toBe(false);
  });

  it('shows a refusal that names no field under the form', async () => {
    const api = routesApi([], () => ({
      status: 409,
      body: { error: { message: 'At most 100 routes.', type: 'keypin_error', code: 'conflict' } },
    }));
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    await user.click(await screen.findByRole('button', { name: 'Add route' }));
    const d = within(await screen.findByRole('dialog', { name: 'Add a route' }));
    fill(d.getByRole('textbox', { name: 'Prefix' }), '/x/');
    fill(d.getByRole('textbox', { name: 'Upstream' }), 'http://127.0.0.1:9000');
    await user.click(d.getByRole('button', { name: 'Create route' }));
    expect((await d.findByRole('alert')).textContent).toBe('At most 100 routes.');
  });
});

describe('RouteDialog: editing keeps write-only values unless replaced', { timeout: TIMEOUT }, () => {
  it('shows stored values as set, and sends only the fields that changed', async () => {
    const api = routesApi();
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    const dialog = await openEdit(user);
    const d = within(dialog);
    expect(d.getByTestId('headers-note').textContent).toMatch(/Leave the values empty to keep/);
    for (const i of [1, 2]) {
      const v = d.getByRole<HTMLInputElement>('textbox', { name: `Header ${i} value` });
      expect(v.value).toBe('');
      expect(v.placeholder).toBe(KEEP_PLACEHOLDER);
    }
    expect(d.getByRole<HTMLInputElement>('textbox', { name: 'Header 1 name' }).value).toBe('authorization');
    expect(d.getByRole<HTMLInputElement>('textbox', { name: 'Token header' }).value).toBe('x-proxy-token');
    expect(d.getByRole<HTMLInputElement>('textbox', { name: 'Token value' }).placeholder).toBe(
      KEEP_PLACEHOLDER,
    );
    // Nothing changed: nothing to save.
    expect(d.getByRole<HTMLButtonElement>('button', { name: 'Save route' }).disabled).toBe(true);

    fill(d.getByRole('textbox', { name: 'Upstream' }), 'https://eu.api.openai.com');
    await user.click(d.getByRole('button', { name: 'Save route' }));
    expect(await screen.findByText('Saved the route /openai/.')).toBeTruthy();
    expect(changes(api.seen)).toEqual([
      { method: 'PUT', path: '/admin/api/routes/3', body: { upstream: 'https://eu.api.openai.com' } },
    ]);
  });

  it('once the header set changes, every value must be entered again, and the whole set is sent', async () => {
    const api = routesApi();
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    const d = within(await openEdit(user));
    const save = d.getByRole<HTMLButtonElement>('button', { name: 'Save route' });

    // A new value for one header replaces the set: the other must be re-entered.
    fill(d.getByRole('textbox', { name: /^Header 1 value/ }), 'Bearer ${env:NEW_KEY}');
    const second = d.getByRole('textbox', { name: /^Header 2 value/ });
    expect(helperOf(second)).toBe(REENTER_VALUE);
    expect(d.getByTestId('headers-note').textContent).toMatch(/Saving replaces all the upstream headers/);
    expect(save.disabled).toBe(true);

    // Changed its mind: back to the stored set, nothing to re-enter.
    await user.click(d.getByRole('button', { name: 'Keep the current headers' }));
    expect(d.getByRole<HTMLInputElement>('textbox', { name: /^Header 1 value/ }).value).toBe('');
    expect(d.getByTestId('headers-note').textContent).toMatch(/Leave the values empty to keep/);

    // Removing one is a change of the set too.
    await user.click(d.getByRole('button', { name: 'Remove header openai-organization' }));
    const first = d.getByRole('textbox', { name: /^Header 1 value/ });
    expect(helperOf(first)).toBe(REENTER_VALUE);
    fill(first, 'Bearer ${env:OPENAI_API_KEY}');
    expect(save.disabled).toBe(false);
    await user.click(save);
    expect(await screen.findByText('Saved the route /openai/.')).toBeTruthy();
    expect(changes(api.seen)).toEqual([
      {
        method: 'PUT',
        path: '/admin/api/routes/3',
        body: { upstream_headers: { authorization: 'Bearer ${env:OPENAI_API_KEY}' } },
      },
    ]);
  });

  it('removes every header with an empty set', async () => {
    const api = routesApi();
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    const d = within(await openEdit(user));
    await user.click(d.getByRole('button', { name: 'Remove header authorization' }));
    await user.click(d.getByRole('button', { name: 'Remove header openai-organization' }));
    await user.click(d.getByRole('button', { name: 'Save route' }));
    await screen.findByText('Saved the route /openai/.');
    expect(changes(api.seen).map((c) => c.body)).toEqual([{ upstream_headers: {} }]);
  });

  it('replaces the proxy token (a new header name needs its value) or removes it', async () => {
    const api = routesApi();
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    let d = within(await openEdit(user));
    fill(d.getByRole('textbox', { name: 'Token header' }), 'x-gateway-token');
    const value = d.getByRole('textbox', { name: 'Token value' });
    expect(helperOf(value)).toBe('Enter the token again: a new header name needs it.');
    fill(value, '${env:GATEWAY_TOKEN}');
    await user.click(d.getByRole('button', { name: 'Save route' }));
    await screen.findByText('Saved the route /openai/.');

    d = within(await openEdit(user));
    await user.click(d.getByRole('checkbox', { name: /Remove the proxy token/ }));
    expect(d.getByRole<HTMLInputElement>('textbox', { name: 'Token value' }).disabled).toBe(true);
    await user.click(d.getByRole('button', { name: 'Save route' }));
    await waitFor(() => expect(changes(api.seen)).toHaveLength(2));
    expect(changes(api.seen).map((c) => c.body)).toEqual([
      { require_header: { name: 'x-gateway-token', value: '${env:GATEWAY_TOKEN}' } },
      { require_header: null },
    ]);
    await waitFor(() => expect(screen.getByTestId('route-token').textContent).toBe('None'));
  });

  it('shows the API’s 422 about a field under it', async () => {
    const api = routesApi([OPENAI], (req) =>
      req.method === 'PUT'
        ? validationFailed('prefix', 'Invalid prefix: is already used by route 4')
        : undefined,
    );
    const user = userEvent.setup();
    renderInApp(<RoutesPage />, { fetchFn: api.fetchFn });
    const d = within(await openEdit(user));
    const prefix = d.getByRole('textbox', { name: 'Prefix' });
    fill(prefix, '/anthropic/');
    await user.click(d.getByRole('button', { name: 'Save route' }));
    await waitFor(() => expect(helperOf(prefix)).toBe('Invalid prefix: is already used by route 4'));
    expect(prefix.getAttribute('aria-invalid')).toBe('true');
    expect(d.queryByRole('alert')).toBeNull();
  });
});
