import { ThemeProvider } from '@mui/material/styles';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { theme } from '../../theme/theme';
import { LogFilters, type LogFilterValue, NO_LOG_FILTERS } from './LogFilters';
import { logQuery } from './LogsPage';

function sut(value: LogFilterValue = NO_LOG_FILTERS) {
  const changes: LogFilterValue[] = [];
  const user = userEvent.setup();
  render(
    <ThemeProvider theme={theme}>
      <LogFilters value={value} onChange={(v) => changes.push(v)} debounceMs={30} />
    </ThemeProvider>,
  );
  return { user, changes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('LogFilters', () => {
  it('checks the IP filter as it is typed and never applies an invalid one', async () => {
    const { user, changes } = sut();
    const ip = screen.getByRole('searchbox', { name: 'Attempted IP' });
    await user.type(ip, '010.0.0.1');
    expect(ip.getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByText(/not an IP address or CIDR/)).toBeTruthy();
    await user.type(ip, '{Enter}');
    await sleep(80);
    expect(changes).toHaveLength(0);

    await user.clear(ip);
    await user.type(ip, '127.0.0.0/24');
    expect(ip.getAttribute('aria-invalid')).toBe('false');
    await waitFor(() => expect(changes.at(-1)).toEqual({ ...NO_LOG_FILTERS, ip: '127.0.0.0/24' }));
  });

  it('applies the key search once typing stops', async () => {
    const { user, changes } = sut();
    await user.type(screen.getByRole('searchbox', { name: 'Key' }), 'abc');
    await waitFor(() => expect(changes).toEqual([{ ...NO_LOG_FILTERS, search: 'abc' }]));
  });

  it('reason applies at once', async () => {
    const { user, changes } = sut({ ...NO_LOG_FILTERS, ip: '127.0.0.3' });
    await user.click(screen.getByRole('combobox', { name: 'Reason' }));
    await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: 'Key banned' }));
    expect(changes.at(-1)).toEqual({ ...NO_LOG_FILTERS, ip: '127.0.0.3', reason: 'key_banned' });
  });

  it('offers every reason, the network policy’s too', async () => {
    const { user, changes } = sut();
    await user.click(screen.getByRole('combobox', { name: 'Reason' }));
    const options = within(screen.getByRole('listbox'))
      .getAllByRole('option')
      .map((o) => o.textContent);
    expect(options).toEqual([
      'All',
      'IP not allowed',
      'Key banned',
      'Network not allowed',
      'Network denied',
      'First use not allowed',
    ]);
    await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: 'Network denied' }));
    expect(changes.at(-1)).toEqual({ ...NO_LOG_FILTERS, reason: 'network_denied' });
  });

  it('turns the local time range into ISO instants; "to" covers its whole minute', () => {
    const { changes } = sut();
    fireEvent.change(screen.getByLabelText('From'), { target: { value: '2025-03-01T10:00' } });
    expect(changes.at(-1)!.from).toBe(new Date(2025, 2, 1, 10, 0).toISOString());
    fireEvent.change(screen.getByLabelText('To'), { target: { value: '2025-03-01T10:05' } });
    expect(changes.at(-1)!.to).toBe(new Date(2025, 2, 1, 10, 5, 59, 999).toISOString());
  });

  it('flags a range that ends before it starts', () => {
    sut({ ...NO_LOG_FILTERS, from: '2025-03-02T00:00:00.000Z', to: '2025-03-01T00:00:00.000Z' });
    expect(screen.getByText('Must be after "From".')).toBeTruthy();
  });

  it('shows the binding filter as a chip that can be removed', async () => {
    const { user, changes } = sut({ ...NO_LOG_FILTERS, binding_id: '12' });
    const chip = screen.getByTestId('binding-filter');
    expect(chip.textContent).toContain('Binding #12');
    await user.click(within(chip).getByTestId('CancelIcon'));
    expect(changes.at(-1)).toEqual(NO_LOG_FILTERS);
  });
});

describe('logQuery (the filters sent to /logs and /logs/export)', () => {
  it('leaves empty filters out and turns binding_id into a number', () => {
    expect(logQuery(NO_LOG_FILTERS)).toEqual({});
    expect(
      logQuery({
        search: 'ab',
        ip: '10.0.0.0/8',
        reason: 'ip_not_allowed',
        from: 'F',
        to: 'T',
        binding_id: '3',
      }),
    ).toEqual({
      search: 'ab',
      ip: '10.0.0.0/8',
      reason: 'ip_not_allowed',
      from: 'F',
      to: 'T',
      binding_id: 3,
    });
    expect(logQuery({ ...NO_LOG_FILTERS, binding_id: 'x' })).toEqual({});
  });
});
