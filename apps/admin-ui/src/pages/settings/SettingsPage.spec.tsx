import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { SETTING_DEFAULTS, type SettingsResponse } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp, type SeenRequest } from '../../test/render';
import { SettingsPage } from './SettingsPage';

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
