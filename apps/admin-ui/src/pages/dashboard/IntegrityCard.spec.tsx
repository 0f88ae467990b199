import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import type { ChainState, IntegrityReport } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp } from '../../test/render';
import { IntegrityCard } from './IntegrityCard';

const chain = (change: Partial<ChainState> = {}): ChainState => ({
  ok: true,
  checked: 1234,
  head_seq: 1234,
  head_hash: 'ab12cd34' + '0'.repeat(48) + 'ef56ab78',
  first_bad_seq: null,
  checkpoint_seq: null,
  unsealed: 0,
  ...change,
});

const report = (
  intercepts: ChainState,
  audit: ChainState = chain({ checked: 7, head_seq: 7 }),
): IntegrityReport => ({
  intercepts,
  audit,
  checked_at: '2026-12-03T10:00:00.000Z',
});

describe('IntegrityCard', () => {
  it('is green when both chains verify, with what was checked and the head', async () => {
    const api = fakeApi(() => ({ body: report(chain()) }));
    renderInApp(<IntegrityCard />, { fetchFn: api.fetchFn });
    const line = await screen.findByTestId('chain-Intercept log');
    expect(screen.getByTestId('integrity-card').getAttribute('data-state')).toBe('ok');
    expect(line.textContent).toContain('Intercept log: intact');
    expect(line.textContent).toContain(
      `${(1234).toLocaleString()} records verified; head #${(1234).toLocaleString()}`,
    );
    expect(line.textContent).toContain('ab12cd34…ef56ab78');
    expect(screen.getByTestId('chain-Audit trail').textContent).toContain('Audit trail: intact');
    expect(screen.getByTestId('chain-Audit trail').textContent).toContain('7 records verified; head #7');
    expect(api.seen.map((r) => r.url.pathname)).toEqual(['/admin/api/integrity']);
  });

  it('names the first bad record when a chain is broken', async () => {
    const api = fakeApi(() => ({
      body: report(chain({ ok: false, checked: 16, first_bad_seq: 17, checkpoint_seq: 3, unsealed: 2 })),
    }));
    renderInApp(<IntegrityCard />, { fetchFn: api.fetchFn });
    const line = await screen.findByTestId('chain-Intercept log');
    expect(screen.getByTestId('integrity-card').getAttribute('data-state')).toBe('broken');
    expect(line.getAttribute('data-ok')).toBe('false');
    expect(line.textContent).toContain('Intercept log: broken at record #17');
    expect(line.textContent).toContain('16 records verified after checkpoint #3 before record #17');
    expect(line.textContent).toContain('2 waiting to be sealed');
  });

  it('says so for an empty chain, and counts one record as one', async () => {
    const empty = chain({ checked: 0, head_seq: 0, head_hash: '0'.repeat(64) });
    const api = fakeApi(() => ({ body: report(chain({ checked: 1, head_seq: 1 }), empty) }));
    renderInApp(<IntegrityCard />, { fetchFn: api.fetchFn });
    expect((await screen.findByTestId('chain-Intercept log')).textContent).toContain(
      '1 record verified; head #1',
    );
    expect(screen.getByTestId('chain-Audit trail').textContent).toBe('Audit trail: intactNo records yet');
  });

  it('verifies again on demand', async () => {
    let calls = 0;
    const api = fakeApi(() => {
      calls++;
      return { body: report(chain(calls > 1 ? { ok: false, first_bad_seq: 5, checked: 4 } : {})) };
    });
    renderInApp(<IntegrityCard />, { fetchFn: api.fetchFn });
    await screen.findByText('Intercept log: intact');
    await userEvent.click(screen.getByRole('button', { name: 'Verify now' }));
    await screen.findByText('Intercept log: broken at record #5');
    expect(calls).toBe(2);
  });

  it('shows the error when the verification fails', async () => {
    const api = fakeApi(() => ({
      status: 500,
      body: { error: { message: 'Something went wrong.', type: 'keypin_error', code: 'internal_error' } },
    }));
    renderInApp(<IntegrityCard />, { fetchFn: api.fetchFn });
    const alert = await screen.findByRole('alert');
    expect(within(alert).getByText('Could not verify the hash chains')).toBeTruthy();
    await waitFor(() =>
      expect(screen.getByTestId('integrity-card').getAttribute('data-state')).toBe('unknown'),
    );
  });
});
