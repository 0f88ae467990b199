import { ThemeProvider } from '@mui/material/styles';
import { render, screen } from '@testing-library/react';
import type { ReactElement } from 'react';
import { describe, expect, it } from 'vitest';
import { theme } from '../../theme/theme';
import { QuotaBar, QuotaCell, quotaFill } from './QuotaBar';

const show = (ui: ReactElement) => render(<ThemeProvider theme={theme}>{ui}</ThemeProvider>);

describe('quotaFill', () => {
  it.each([
    [0, 100, 0, 'primary'],
    [30, 100, 30, 'primary'],
    [79, 100, 79, 'primary'],
    [80, 100, 80, 'warning'],
    [999, 1000, 99, 'warning'],
    [1000, 1000, 100, 'error'],
    [1500, 1000, 100, 'error'],
    [1, 3, 33, 'primary'],
  ] as const)('%d of %d → %d%% (%s)', (used, limit, percent, color) => {
    expect(quotaFill(used, limit)).toEqual({ percent, color });
  });
});

describe('QuotaBar', () => {
  it('with a quota: the numbers and a bar at the share used', () => {
    show(
      <QuotaBar
        label="Today (UTC)"
        used={1234}
        limit={5000}
        noQuotaText="No daily quota"
        unitText="requests today"
        testId="quota-day"
      />,
    );
    expect(screen.getByTestId('quota-day-text').textContent).toBe(
      `${(1234).toLocaleString()} of ${(5000).toLocaleString()} (24%)`,
    );
    const bar = screen.getByRole('progressbar', { name: 'Today (UTC)' });
    expect(bar.getAttribute('aria-valuenow')).toBe('24');
    expect(bar.getAttribute('aria-valuetext')).toBe(
      `${(1234).toLocaleString()} of ${(5000).toLocaleString()} requests`,
    );
  });

  it('a used-up quota says so and fills the bar, never past it', () => {
    show(
      <QuotaBar
        label="This month (UTC)"
        used={12}
        limit={10}
        noQuotaText="No monthly quota"
        unitText="requests this month"
        testId="quota-month"
      />,
    );
    expect(screen.getByTestId('quota-month-text').textContent).toBe('12 of 10 (100%) · used up');
    expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('100');
  });

  it('without a quota: says there is none, shows the count, draws no bar', () => {
    show(
      <QuotaBar
        label="Today (UTC)"
        used={42}
        limit={null}
        noQuotaText="No daily quota"
        unitText="requests today"
        testId="quota-day"
      />,
    );
    expect(screen.getByTestId('quota-day-text').textContent).toBe('No daily quota · 42 requests today');
    expect(screen.queryByRole('progressbar')).toBeNull();
  });
});

describe('QuotaCell (the bindings list)', () => {
  it('the count over its quota with a thin bar, or only the count', () => {
    const { unmount } = show(<QuotaCell used={3} limit={4} label="Daily quota used by k" />);
    expect(screen.getByText('3').textContent).toBe('3 / 4');
    expect(
      screen.getByRole('progressbar', { name: 'Daily quota used by k' }).getAttribute('aria-valuenow'),
    ).toBe('75');
    unmount();
    show(<QuotaCell used={7} limit={null} label="Daily quota used by k" />);
    expect(screen.getByText('7')).toBeTruthy();
    expect(screen.queryByRole('progressbar')).toBeNull();
  });
});
