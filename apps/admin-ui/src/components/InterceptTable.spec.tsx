import { ThemeProvider } from '@mui/material/styles';
import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import type { Intercept } from '@keypin/shared';
import { MemoryRouter } from 'react-router-dom';
import { describe, expect, it } from 'vitest';
import { theme } from '../theme/theme';
import { InterceptTable } from './InterceptTable';

const intercept = (change: Partial<Intercept>): Intercept => ({
  id: '0195f000-0000-7000-8000-000000000001',
  binding_id: 7,
  token_display: 'abcd\u2026wxyz',
  attempt_ip: '198.51.100.9',
  allowed_ips: ['203.0.113.7/32'],
  reason: 'ip_not_allowed',
  method: 'POST',
  path: '/v1/chat/completions',
  user_agent: 'curl/8.5.0',
  alerted: false,
  intercepted_at: '2025-01-02T03:04:05.678Z',
  count: 1,
  ...change,
});

function sut(items: Intercept[], compact = false) {
  render(
    <ThemeProvider theme={theme}>
      <MemoryRouter>
        <InterceptTable items={items} loading={false} emptyText="None" compact={compact} />
      </MemoryRouter>
    </ThemeProvider>,
  );
  return screen.getAllByTestId('intercept-count').map((cell) => cell.textContent);
}

describe('InterceptTable', () => {
  it('shows how many requests each record stands for', () => {
    const counts = sut([
      intercept({ id: 'a', count: 1 }),
      intercept({ id: 'b', count: 2 }),
      intercept({ id: 'c', count: 12_345 }),
    ]);
    expect(counts).toEqual(['1', '×2', `×${(12_345).toLocaleString()}`]);
    expect(screen.getByRole('columnheader', { name: 'Count' })).toBeTruthy();
  });

  it('explains a merged record on hover', async () => {
    sut([intercept({ count: 40 })]);
    await userEvent.setup().hover(screen.getByText('×40'));
    expect((await screen.findByRole('tooltip')).textContent).toBe(
      '40 refused requests of this key from this address within one second',
    );
  });

  it('shows a key the network policy refused before it had a binding without a link, and "—" as allowed', () => {
    sut([
      intercept({ id: 'a', binding_id: 7 }),
      intercept({ id: 'b', binding_id: null, reason: 'first_use_not_allowed', allowed_ips: [] }),
    ]);
    const [bound, unbound] = screen.getAllByTestId('intercept-row');
    expect(within(bound!).getByRole('link', { name: 'abcd\u2026wxyz' }).getAttribute('href')).toBe(
      '/bindings/7',
    );
    expect(within(unbound!).queryByRole('link')).toBeNull();
    expect(within(unbound!).getByTestId('unbound-key').textContent).toBe('abcd\u2026wxyz');
    expect(within(unbound!).getByTestId('allowed-unbound').textContent).toBe('—');
    expect(within(unbound!).queryByText('Any IP')).toBeNull();
    expect(within(unbound!).getByText('First use not allowed')).toBeTruthy();
  });

  it('names every reason, the network policy’s too', () => {
    sut([
      intercept({ id: 'a', reason: 'network_not_allowed' }),
      intercept({ id: 'b', reason: 'network_denied', binding_id: null }),
      intercept({ id: 'c', reason: 'key_banned' }),
    ]);
    expect(screen.getByText('Network not allowed')).toBeTruthy();
    expect(screen.getByText('Network denied')).toBeTruthy();
    expect(screen.getByText('Key banned')).toBeTruthy();
  });

  it('keeps the count in the compact table (dashboard, binding page)', () => {
    expect(sut([intercept({ count: 3 })], true)).toEqual(['×3']);
    const row = screen.getByTestId('intercept-row');
    expect(within(row).queryByText('curl/8.5.0')).toBeNull();
  });
});
