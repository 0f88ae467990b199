import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter, useLocation } from 'react-router-dom';
import { describe, expect, it } from 'vitest';
import { changedFilters, useUrlState } from './url-state';

function Harness() {
  const url = useUrlState();
  const l = useLocation();
  return (
    <>
      <button
        onClick={() => {
          // Two changes before the router has rendered the first.
          url.set({ ip: '10.0.0.1', page: null });
          url.set({ search: 'abcd', page: null });
        }}
      >
        both
      </button>
      <button onClick={() => url.set({ ip: '' })}>clear ip</button>
      <output data-testid="location">{l.search}</output>
    </>
  );
}

describe('useUrlState().set', () => {
  it('builds on a change the router has not rendered yet, instead of undoing it', async () => {
    const user = userEvent.setup();
    render(
      <MemoryRouter initialEntries={['/logs?reason=key_banned&page=3']}>
        <Harness />
      </MemoryRouter>,
    );
    await user.click(screen.getByRole('button', { name: 'both' }));
    expect(screen.getByTestId('location').textContent).toBe('?reason=key_banned&ip=10.0.0.1&search=abcd');
    await user.click(screen.getByRole('button', { name: 'clear ip' }));
    expect(screen.getByTestId('location').textContent).toBe('?reason=key_banned&search=abcd');
  });
});

describe('changedFilters', () => {
  it('is only the filters that differ, cleared ones included', () => {
    const current = { search: 'a', ip: '10.0.0.1', reason: '' };
    expect(changedFilters(current, { ...current, search: 'b' })).toEqual({ search: 'b' });
    expect(changedFilters(current, { ...current, ip: '' })).toEqual({ ip: '' });
    expect(changedFilters(current, { ...current })).toEqual({});
  });
});
