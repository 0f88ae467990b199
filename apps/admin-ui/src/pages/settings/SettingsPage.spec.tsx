import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { SETTING_DEFAULTS, type SettingsResponse } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp, type SeenRequest } from '../../test/render';
import { SettingsPage } from './SettingsPage';

/** These tests type into many fields: room for a loaded 2-core machine. */
const TYPING_TIMEOUT = 20_000;

const SETTINGS: SettingsResponse = { ...SETTING_DEFAULTS, alert_webhook_secret_set: false };

const REFUSAL =
  'Changing relay changes how every key is identified: all 12 existing bindings would stop matching, ' +
  'and each key would bind afresh on its next use, to the network it comes from.';
const ADVICE = ' Send "confirm_unbind_all": true with the change to go ahead.';

/**
 * The admin API as the settings page meets it: an identity change without
 * `confirm_unbind_all` is refused with 409 while keys are bound.
 */
function settingsApi() {
  let current = { ...SETTINGS };
  return fakeApi((req: SeenRequest) => {
    if (req.method === 'GET') return { body: current };
    const { confirm_unbind_all: confirm, ...patch } = req.body as Record<string, unknown>;
    const rekeys = ['relay', 'token_normalize', 'key_case'].some((k) => k in patch);
    if (rekeys && confirm !== true) {
      return {
        status: 409,
        body: { error: { message: REFUSAL + ADVICE, type: 'keypin_error', code: 'would_unbind_all' } },
      };
    }
    current = { ...current, ...patch };
    return { body: current };
  });
}

async function chooseRelay(user: ReturnType<typeof userEvent.setup>, label: string) {
  await user.click(await screen.findByRole('combobox', { name: 'Relay' }));
  await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: label }));
}

const puts = (seen: SeenRequest[]) => seen.filter((r) => r.method === 'PUT').map((r) => r.body);

describe('SettingsPage: identity settings and the unbind-all confirmation', () => {
  it('shows relay and key case with what they mean', async () => {
    const api = settingsApi();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    expect((await screen.findByRole('combobox', { name: 'Relay' })).textContent).toBe('New API / One API');
    expect(screen.getByRole('combobox', { name: 'Key case' }).textContent).toMatch(/Sensitive/);
    expect(screen.getByText(/New API or One API on MySQL/)).toBeTruthy();
    const user = userEvent.setup();
    await user.click(screen.getByRole('combobox', { name: 'Relay' }));
    const options = within(screen.getByRole('listbox'))
      .getAllByRole('option')
      .map((o) => o.textContent);
    expect(options).toEqual([
      'New API / One API',
      'LiteLLM proxy',
      'Plain OpenAI-compatible upstream (key as sent)',
    ]);
  });

  it('asks before an identity change the API refused; cancel sends nothing more, confirm re-sends with confirm_unbind_all', async () => {
    const api = settingsApi();
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await chooseRelay(user, 'LiteLLM proxy');
    expect(screen.getByTestId('identity-note').textContent).toMatch(/You will be asked to confirm/);
    await user.click(screen.getByRole('button', { name: 'Save settings' }));

    let dialog = await screen.findByRole('dialog', { name: 'Unbind every key?' });
    // The API's own words, less its advice to the API user (the button is that).
    expect(within(dialog).getByTestId('unbind-message').textContent).toBe(REFUSAL);
    expect(dialog.textContent).toMatch(/Every key will bind afresh on its next use/);
    // The refusal is the dialog's business, not an error under the form.
    expect(screen.queryByRole('alert')).toBeNull();
    expect(puts(api.seen)).toEqual([{ relay: 'litellm' }]);

    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(puts(api.seen)).toHaveLength(1);
    // Still an unsaved change: saving again asks again.
    expect(screen.getByText('1 unsaved change.')).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    dialog = await screen.findByRole('dialog', { name: 'Unbind every key?' });

    await user.click(within(dialog).getByRole('button', { name: 'Change it and unbind all keys' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(puts(api.seen)).toEqual([
      { relay: 'litellm' },
      { relay: 'litellm' },
      { relay: 'litellm', confirm_unbind_all: true },
    ]);
    expect(await screen.findByText('Settings saved (1 change).')).toBeTruthy();
    expect(screen.getByRole('combobox', { name: 'Relay' }).textContent).toBe('LiteLLM proxy');
    expect(screen.getByText('No unsaved changes.')).toBeTruthy();
  });

  it('saves other settings without asking', async () => {
    const api = settingsApi();
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await user.click(await screen.findByRole('combobox', { name: 'Mode' }));
    await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: 'Monitor only' }));
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    expect(await screen.findByText('Settings saved (1 change).')).toBeTruthy();
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(puts(api.seen)).toEqual([{ enforce_mode: 'monitor' }]);
  });

  it('shows any other refusal under the form', async () => {
    const api = fakeApi((req) =>
      req.method === 'GET'
        ? { body: SETTINGS }
        : {
            status: 422,
            body: {
              error: { message: 'Invalid relay: nope', type: 'keypin_error', code: 'validation_failed' },
            },
          },
    );
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await chooseRelay(user, 'LiteLLM proxy');
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    expect((await screen.findByRole('alert')).textContent).toBe('Invalid relay: nope');
    expect(screen.queryByRole('dialog')).toBeNull();
  });
});

describe('SettingsPage: the default key policy', { timeout: TYPING_TIMEOUT }, () => {
  const policySection = () => screen.getByRole('region', { name: 'Default key policy' });

  it('sets a default policy, then removes it (null)', async () => {
    const api = settingsApi();
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await screen.findByRole('combobox', { name: 'Relay' });
    const section = policySection();
    expect(within(section).getByRole<HTMLInputElement>('radio', { name: /No default policy/ }).checked).toBe(
      true,
    );
    expect(within(section).queryByRole('textbox')).toBeNull();
    expect(screen.getByText('No unsaved changes.')).toBeTruthy();

    await user.click(within(section).getByRole('radio', { name: /Set a default policy/ }));
    // {} differs from null: an explicit (empty) default policy is a change.
    expect(screen.getByText('1 unsaved change.')).toBeTruthy();
    await user.type(within(section).getByRole('textbox', { name: 'Rate per second' }), '2');
    await user.type(within(section).getByRole('textbox', { name: 'Requests per day' }), '1000');
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    expect(await screen.findByText('Settings saved (1 change).')).toBeTruthy();
    expect(screen.getByText('No unsaved changes.')).toBeTruthy();
    expect(
      within(policySection()).getByRole<HTMLInputElement>('textbox', { name: 'Requests per day' }).value,
    ).toBe('1000');

    await user.click(within(policySection()).getByRole('radio', { name: /No default policy/ }));
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    await waitFor(() => expect(puts(api.seen)).toHaveLength(2));
    expect(puts(api.seen)).toEqual([
      { default_policy: { rate_per_second: 2, requests_per_day: 1000 } },
      { default_policy: null },
    ]);
  });

  it('blocks saving while a policy field is invalid, with the complaint under it', async () => {
    const api = settingsApi();
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await screen.findByRole('combobox', { name: 'Relay' });
    await user.click(within(policySection()).getByRole('radio', { name: /Set a default policy/ }));
    const concurrent = within(policySection()).getByRole('textbox', { name: 'Max concurrent requests' });
    await user.type(concurrent, '0');
    expect(concurrent.getAttribute('aria-invalid')).toBe('true');
    expect(
      within(policySection()).getByText('Max concurrent requests must be an integer from 1 to 100000.'),
    ).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Save settings' }).hasAttribute('disabled')).toBe(true);
    expect(screen.getByText('Fix the highlighted fields to save.')).toBeTruthy();
    expect(puts(api.seen)).toEqual([]);
  });

  it('a 422 naming default_policy.<field> shows the API’s message under that field', async () => {
    const message = "Invalid default_policy.models[0]: may hold '*' only as its last character (a prefix)";
    const api = fakeApi((req) =>
      req.method === 'GET'
        ? { body: SETTINGS }
        : {
            status: 422,
            body: {
              error: { message, type: 'keypin_error', code: 'validation_failed' },
              field: 'default_policy.models[0]',
            },
          },
    );
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await screen.findByRole('combobox', { name: 'Relay' });
    await user.click(within(policySection()).getByRole('radio', { name: /Set a default policy/ }));
    const models = within(policySection()).getByRole('textbox', { name: 'Allowed models' });
    await user.type(models, 'gpt-4o');
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    await waitFor(() => expect(models.getAttribute('aria-invalid')).toBe('true'));
    expect(document.getElementById(models.getAttribute('aria-describedby')!)!.textContent).toBe(message);
    expect(screen.queryByRole('alert')).toBeNull();
    expect(screen.getByText('Fix the highlighted fields to save.')).toBeTruthy();
    // Editing the field clears the refusal.
    await user.type(models, '-mini');
    expect(models.getAttribute('aria-invalid')).toBe('false');
    expect(screen.getByRole('button', { name: 'Save settings' }).hasAttribute('disabled')).toBe(false);
  });

  it('a 422 naming a plain setting shows under that setting too', async () => {
    const message = 'Invalid alert_threshold_count: must be an integer from 1 to 1000000';
    const api = fakeApi((req) =>
      req.method === 'GET'
        ? { body: SETTINGS }
        : {
            status: 422,
            body: {
              error: { message, type: 'keypin_error', code: 'validation_failed' },
              field: 'alert_threshold_count',
            },
          },
    );
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    const count = await screen.findByRole('textbox', { name: 'Alert after' });
    await user.clear(count);
    await user.type(count, '9');
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    await waitFor(() => expect(count.getAttribute('aria-invalid')).toBe('true'));
    expect(document.getElementById(count.getAttribute('aria-describedby')!)!.textContent).toBe(message);
    expect(screen.queryByRole('alert')).toBeNull();
    await user.type(count, '0');
    expect(count.getAttribute('aria-invalid')).toBe('false');
  });

  it('an unchanged explicit {} default is no change', async () => {
    const api = fakeApi(() => ({ body: { ...SETTINGS, default_policy: {} } }));
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn });
    await screen.findByRole('combobox', { name: 'Relay' });
    expect(
      within(policySection()).getByRole<HTMLInputElement>('radio', { name: /Set a default policy/ }).checked,
    ).toBe(true);
    expect(within(policySection()).getByTestId('policy-all-empty').textContent).toMatch(/limits nothing/);
    expect(screen.getByText('No unsaved changes.')).toBeTruthy();
  });

  it('an auditor reads the default policy, with nothing to edit', async () => {
    const api = fakeApi(() => ({
      body: { ...SETTINGS, default_policy: { requests_per_month: 30000, models: ['gpt-4o', 'claude-*'] } },
    }));
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn, role: 'auditor' });
    const summary = await screen.findByTestId('setting-default_policy');
    expect(within(summary).getByTestId('setting-default_policy-requests_per_month').textContent).toBe(
      (30000).toLocaleString(),
    );
    expect(within(summary).getByTestId('setting-default_policy-models').textContent).toBe('gpt-4o, claude-*');
    expect(within(summary).getByTestId('setting-default_policy-requests_per_day').textContent).toBe(
      'No daily quota',
    );
    expect(screen.queryByRole('textbox')).toBeNull();
    expect(screen.queryByRole('radio')).toBeNull();
    expect(screen.queryByRole('button', { name: 'Save settings' })).toBeNull();
  });

  it('an auditor is told when there is no default policy', async () => {
    const api = fakeApi(() => ({ body: SETTINGS }));
    renderInApp(<SettingsPage />, { fetchFn: api.fetchFn, role: 'auditor' });
    expect((await screen.findByTestId('setting-default_policy')).textContent).toBe(
      'No default policy: keys without their own policy are unlimited.',
    );
  });
});
