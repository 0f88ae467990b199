import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { SETTING_DEFAULTS, type SettingsResponse } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp, type SeenRequest } from '../../test/render';
import { SettingsPage } from './SettingsPage';

const SETTINGS: SettingsResponse = { ...SETTING_DEFAULTS, alert_webhook_secret_set: false };

/** The settings API: a change is stored and answered, unless `refuse` answers it first. */
function settingsApi(
  start: SettingsResponse = SETTINGS,
  refuse?: (body: Record<string, unknown>) => { status: number; body: unknown } | undefined,
) {
  let current = { ...start };
  return fakeApi((req: SeenRequest) => {
    if (req.method === 'GET') return { body: current };
    const body = req.body as Record<string, unknown>;
    const refusal = refuse?.(body);
    if (refusal) return refusal;
    current = { ...current, ...body };
    return { body: current };
  });
}

const puts = (seen: SeenRequest[]) => seen.filter((r) => r.method === 'PUT').map((r) => r.body);

const section = () => screen.getByRole('region', { name: 'Network policy' });

function list(name: 'Allowed networks' | 'Denied networks' | 'First use only from') {
  return within(section()).getByRole('textbox', { name });
}

function helperOf(field: HTMLElement): string {
  const id = field.getAttribute('aria-describedby');
  return (id && document.getElementById(id)?.textContent) || '';
}

describe('SettingsPage: the network policy', () => {
  it('explains each list and checks its entries as they are typed', async () => {
    const api = settingsApi();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await screen.findByRole('region', { name: 'Network policy' });
    expect(helperOf(list('Allowed networks'))).toMatch(
      /only requests from inside these networks.*network_not_allowed/,
    );
    expect(helperOf(list('Denied networks'))).toMatch(/always refused with 403 network_denied/);
    expect(helperOf(list('First use only from'))).toMatch(
      /binds on its first use only from inside.*first_use_not_allowed/,
    );

    const deny = list('Denied networks');
    fireEvent.change(deny, { target: { value: '198.51.100.0/24\n10.0.0.1/24' } });
    expect(deny.getAttribute('aria-invalid')).toBe('true');
    expect(helperOf(deny)).toBe('"10.0.0.1/24" has host bits set; write the network address.');
    expect(screen.getByRole<HTMLButtonElement>('button', { name: 'Save settings' }).disabled).toBe(true);
    expect(screen.getByText('Fix the highlighted fields to save.')).toBeTruthy();

    fireEvent.change(deny, { target: { value: '198.51.100.0/24\n10.0.0.0/24' } });
    expect(deny.getAttribute('aria-invalid')).toBe('false');
    expect(screen.getByText('1 unsaved change.')).toBeTruthy();
  });

  it('saves the whole policy, as the canonical forms, when one list changes', async () => {
    const api = settingsApi({
      ...SETTINGS,
      networks: { allow: [], deny: ['192.0.2.0/24'], first_use_from: [] },
    });
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await screen.findByRole('region', { name: 'Network policy' });
    expect((list('Denied networks') as HTMLTextAreaElement).value).toBe('192.0.2.0/24');

    const allow = list('Allowed networks');
    fireEvent.change(allow, { target: { value: '10.0.0.0/8, 203.0.113.7\n10.0.0.0/8\n' } });
    expect(helperOf(allow)).toMatch(/Saved as 10\.0\.0\.0\/8, 203\.0\.113\.7\/32\.$/);
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    expect(await screen.findByText('Settings saved (1 change).')).toBeTruthy();
    expect(puts(api.seen)).toEqual([
      { networks: { allow: ['10.0.0.0/8', '203.0.113.7/32'], deny: ['192.0.2.0/24'], first_use_from: [] } },
    ]);
    // The form now holds what the server holds.
    await waitFor(() =>
      expect((list('Allowed networks') as HTMLTextAreaElement).value).toBe('10.0.0.0/8\n203.0.113.7/32'),
    );
    expect(screen.getByText('No unsaved changes.')).toBeTruthy();
  });

  it('shows the API’s 422 under the list it names, not under the form', async () => {
    const message = 'Invalid networks.first_use_from[0]: is not allowed by this gateway';
    const api = settingsApi(SETTINGS, (body) =>
      'networks' in body
        ? {
            status: 422,
            body: {
              error: { message, type: 'keypin_error', code: 'validation_failed' },
              field: 'networks.first_use_from[0]',
            },
          }
        : undefined,
    );
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await screen.findByRole('region', { name: 'Network policy' });
    const first = list('First use only from');
    fireEvent.change(first, { target: { value: '::/0' } });
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    await waitFor(() => expect(first.getAttribute('aria-invalid')).toBe('true'));
    expect(helperOf(first)).toBe(message);
    expect(screen.queryByRole('alert')).toBeNull();
    expect(screen.getByRole<HTMLButtonElement>('button', { name: 'Save settings' }).disabled).toBe(true);
    // Edited, the complaint goes.
    fireEvent.change(first, { target: { value: '10.0.0.0/8' } });
    expect(first.getAttribute('aria-invalid')).toBe('false');
  });

  it('an auditor reads the three lists, with nothing to edit', async () => {
    const api = settingsApi({
      ...SETTINGS,
      networks: { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: [], first_use_from: ['10.1.0.0/16'] },
    });
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn, role: 'auditor' });
    const region = await screen.findByRole('region', { name: 'Network policy' });
    expect(within(region).getByTestId('setting-networks-allow').textContent).toBe('10.0.0.0/82001:db8::/32');
    expect(within(region).getByTestId('setting-networks-deny').textContent).toBe('None');
    expect(within(region).getByTestId('setting-networks-first_use_from').textContent).toBe('10.1.0.0/16');
    expect(within(region).getByText(/always refused with 403 network_denied/)).toBeTruthy();
    expect(within(region).queryByRole('textbox')).toBeNull();
    expect(screen.queryByRole('button', { name: 'Save settings' })).toBeNull();
  });
});
