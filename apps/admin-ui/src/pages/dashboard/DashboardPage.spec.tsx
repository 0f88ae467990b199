import { screen, within } from '@testing-library/react';
import type { Dashboard } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp } from '../../test/render';
import { DashboardPage } from './DashboardPage';

const dashboard = (refusals: Dashboard['refusals']): Dashboard => ({
  today: { allowed: 10, intercepted: 2, first_binds: 1 },
  bindings: { active: 3, banned: 0 },
  series: [],
  top_intercepted: [],
  recent_intercepts: [],
  refusals,
});

describe('DashboardPage: refusals today by code', () => {
  it('lists each code, most first, with its meaning, count and a bar against the largest', async () => {
    const api = fakeApi(() => ({
      body: dashboard([
        { code: 'ip_not_allowed', count: 10 },
        { code: 'quota_exceeded', count: 40 },
        { code: 'some_new_code', count: 2 },
      ]),
    }));
    renderInApp(<DashboardPage />, { fetchFn: api.fetchFn });
    const table = await screen.findByRole('table', { name: 'Refusals today by code' });
    const rows = within(table).getAllByTestId('refusal-row');
    expect(rows.map((r) => Array.from(r.querySelectorAll('td')).map((c) => c.textContent))).toEqual([
      ['Daily or monthly quota used up', '429 quota_exceeded', '40', ''],
      ['IP not allowed', '403 ip_not_allowed', '10', ''],
      ['some_new_code', 'some_new_code', '2', ''],
    ]);
    const bars = within(table).getAllByRole('progressbar');
    expect(bars.map((b) => b.getAttribute('aria-valuenow'))).toEqual(['100', '25', '5']);
    expect(bars[0]!.getAttribute('aria-label')).toBe('quota_exceeded: 40 refused');
    expect(screen.queryByTestId('refusals-empty')).toBeNull();
  });

  it('says so when nothing was refused today', async () => {
    const api = fakeApi(() => ({ body: dashboard([]) }));
    renderInApp(<DashboardPage />, { fetchFn: api.fetchFn });
    expect((await screen.findByTestId('refusals-empty')).textContent).toBe('No requests refused today.');
    expect(screen.queryByRole('table', { name: 'Refusals today by code' })).toBeNull();
  });
});
