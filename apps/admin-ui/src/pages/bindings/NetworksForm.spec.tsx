import { ThemeProvider } from '@mui/material/styles';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import type { Binding } from '@keypin/shared';
import { useState } from 'react';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp } from '../../test/render';
import { theme } from '../../theme/theme';
import { EditNetworksDialog } from './EditNetworksDialog';
import { NetworksForm } from './NetworksForm';
import { checkNetworks, type NetworksValue } from './networks';

/** The form as a dialog uses it: state outside, the check's verdict shown. */
function Harness({ initial }: { initial: NetworksValue }) {
  const [value, setValue] = useState(initial);
  const check = checkNetworks(value);
  return (
    <ThemeProvider theme={theme}>
      <NetworksForm value={value} onChange={setValue} />
      <output data-testid="networks">
        {check.networks === null ? 'invalid' : JSON.stringify(check.networks)}
      </output>
    </ThemeProvider>
  );
}

const sut = (initial: NetworksValue = { rule: 'single', entries: [''] }) => {
  const user = userEvent.setup();
  render(<Harness initial={initial} />);
  return { user, verdict: () => screen.getByTestId('networks').textContent };
};

const entry = (name: string | RegExp) => screen.getByRole('textbox', { name });

describe('NetworksForm (the IP-rule form)', () => {
  it.each([
    ['10.0.0.1/24', /host bits set/],
    ['010.0.0.1', /not an IP address or CIDR/],
    ['0x7f.0.0.1', /not an IP address or CIDR/],
    ['10.0.0.0/33', /invalid prefix length/],
    ['10.0.0.0/08', /invalid prefix length/],
    ['fe80::1%eth0', /not an IP address or CIDR/],
    ['::ffff:10.0.0.0/104', /IPv4-mapped/],
    [' 1.2.3', /not an IP address or CIDR/],
  ])('complains about %j as it is typed, with the gateway parser’s message', async (text, message) => {
    const { user, verdict } = sut();
    const input = entry('IP address or CIDR');
    await user.type(input, text);
    expect(input.getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByText(message)).toBeTruthy();
    expect(verdict()).toBe('invalid');
  });

  it('accepts a canonical network and says how a bare address is saved', async () => {
    const { user, verdict } = sut();
    const input = entry('IP address or CIDR');
    await user.type(input, '10.0.0.1/24');
    expect(input.getAttribute('aria-invalid')).toBe('true');
    await user.clear(input);
    await user.type(input, '203.0.113.7');
    expect(input.getAttribute('aria-invalid')).toBe('false');
    expect(screen.getByText('Saved as 203.0.113.7/32')).toBeTruthy();
    expect(verdict()).toBe('["203.0.113.7/32"]');
    await user.clear(input);
    await user.type(input, '2001:DB8::/48');
    expect(verdict()).toBe('["2001:db8::/48"]');
  });

  it('asks for an entry while the only one is empty', () => {
    const { verdict } = sut();
    expect(screen.getByTestId('networks-form-error').textContent).toMatch(/Enter the IP address or CIDR/);
    expect(verdict()).toBe('invalid');
  });

  it('several networks: adds and removes entries, each checked on its own', async () => {
    const { user, verdict } = sut({ rule: 'single', entries: ['10.0.0.0/8'] });
    await user.click(screen.getByRole('radio', { name: /Several networks/ }));
    await user.click(screen.getByRole('button', { name: 'Add network' }));
    await user.type(entry('Network 2'), '192.168.1.300');
    expect(entry('Network 2').getAttribute('aria-invalid')).toBe('true');
    expect(entry('Network 1').getAttribute('aria-invalid')).toBe('false');
    expect(verdict()).toBe('invalid');
    await user.clear(entry('Network 2'));
    await user.type(entry('Network 2'), '192.168.1.0/24');
    expect(verdict()).toBe('["10.0.0.0/8","192.168.1.0/24"]');
    await user.click(screen.getByRole('button', { name: 'Remove network 1' }));
    expect(verdict()).toBe('["192.168.1.0/24"]');
  });

  it('an empty extra entry blocks saving until it is filled or removed', async () => {
    const { user, verdict } = sut({ rule: 'multiple', entries: ['10.0.0.0/8'] });
    await user.click(screen.getByRole('button', { name: 'Add network' }));
    expect(verdict()).toBe('invalid');
    expect(screen.getByTestId('networks-form-error').textContent).toMatch(/empty entries/);
    await user.click(screen.getByRole('button', { name: 'Remove network 2' }));
    expect(verdict()).toBe('["10.0.0.0/8"]');
  });

  it('pasting a list into one entry splits it into several (and switches to several networks)', () => {
    const { verdict } = sut();
    fireEvent.paste(entry('IP address or CIDR'), {
      clipboardData: { getData: () => '10.0.0.0/24, 192.168.1.7\n2001:db8::/48' },
    });
    expect(screen.getByRole<HTMLInputElement>('radio', { name: /Several networks/ }).checked).toBe(true);
    expect(screen.getAllByRole('textbox')).toHaveLength(3);
    expect(verdict()).toBe('["10.0.0.0/24","192.168.1.7/32","2001:db8::/48"]');
  });

  it('rule "any IP" takes no networks and warns', async () => {
    const { user, verdict } = sut({ rule: 'single', entries: ['10.0.0.0/8'] });
    await user.click(screen.getByRole('radio', { name: /Any IP/ }));
    expect(screen.queryByRole('textbox')).toBeNull();
    expect(screen.getByText(/accepted from every IP address/)).toBeTruthy();
    expect(verdict()).toBe('[]');
    // Back to single: the entry typed before is still there.
    await user.click(screen.getByRole('radio', { name: /Single network/ }));
    expect(screen.getByRole<HTMLInputElement>('textbox', { name: 'IP address or CIDR' }).value).toBe(
      '10.0.0.0/8',
    );
  });
});

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
  request_count: 3,
  intercept_count: 0,
  note: null,
  created_at: '2025-01-01T00:00:00Z',
  updated_at: '2025-01-01T00:00:00Z',
  policy: null,
  requests_today: 0,
};

describe('EditNetworksDialog', () => {
  it('sends the canonical networks to PUT /bindings/ip and shows the API’s error when refused', async () => {
    let refuse = true;
    const api = fakeApi((req) =>
      refuse
        ? {
            status: 422,
            body: {
              error: { message: 'allowed_ips: too many', type: 'keypin_error', code: 'validation_failed' },
            },
          }
        : { body: { ...binding, rule_type: 'multiple', allowed_ips: (req.body as Binding).allowed_ips } },
    );
    const user = userEvent.setup();
    let closed = 0;
    renderInApp(<EditNetworksDialog binding={binding} open onClose={() => closed++} />, {
      fetchFn: api.fetchFn,
    });
    const dialog = await screen.findByRole('dialog');
    const save = within(dialog).getByRole('button', { name: 'Save' });

    await user.click(within(dialog).getByRole('radio', { name: /Several networks/ }));
    await user.click(within(dialog).getByRole('button', { name: 'Add network' }));
    await user.type(within(dialog).getByRole('textbox', { name: 'Network 2' }), '10.1.0.1/16');
    expect(save.hasAttribute('disabled')).toBe(true);
    await user.clear(within(dialog).getByRole('textbox', { name: 'Network 2' }));
    await user.type(within(dialog).getByRole('textbox', { name: 'Network 2' }), '10.1.0.0/16');
    expect(save.hasAttribute('disabled')).toBe(false);

    await user.click(save);
    await within(dialog).findByText('allowed_ips: too many');
    expect(closed).toBe(0);

    refuse = false;
    await user.click(save);
    await waitFor(() => expect(closed).toBe(1));
    const put = api.seen.filter((r) => r.method === 'PUT');
    expect(put).toHaveLength(2);
    expect(put[1]!.url.pathname).toBe('/admin/api/bindings/ip');
    expect(put[1]!.body).toEqual({
      id: 7,
      rule_type: 'multiple',
      allowed_ips: ['127.0.0.2/32', '10.1.0.0/16'],
    });
  });
});
