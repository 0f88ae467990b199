import { screen, within } from '@testing-library/react';
import { type Role, ROLES } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { AppRoutes } from './App';
import { SECTIONS, sectionsFor } from './sections';
import { fakeApi, renderInApp } from './test/render';

/** The console's routes with an API that knows the session and nothing else. */
function sut(role: Role, path = '/') {
  const api = fakeApi((req) =>
    req.url.pathname === '/admin/api/me'
      ? { body: { username: 'tester', role } }
      : { status: 404, body: { error: { message: 'Not here.', type: 'keypin_error', code: 'not_found' } } },
  );
  return renderInApp(<AppRoutes />, { fetchFn: api.fetchFn, role, path });
}

function navLinks(): { name: string; href: string | null }[] {
  const nav = screen.getByRole('navigation', { name: 'Main' });
  return within(nav)
    .getAllByRole('link')
    .map((a) => ({ name: a.textContent ?? '', href: a.getAttribute('href') }));
}

describe('sections', () => {
  it('the navigation lists every section in order for admins', () => {
    sut('admin');
    expect(navLinks()).toEqual(SECTIONS.map((s) => ({ name: s.label, href: s.path })));
  });

  it('hides from auditors what is not shown to them', () => {
    sut('auditor');
    expect(navLinks().map((l) => l.name)).toEqual([
      'Dashboard',
      'Bindings',
      'Intercept logs',
      'Alerts',
      'Routes',
      'Settings',
      'Audit trail',
    ]);
  });

  it('every role sees every section but Users', () => {
    for (const role of ROLES) {
      const users = sectionsFor(role).some((s) => s.path === '/users');
      expect(users).toBe(role === 'admin');
    }
    expect(sectionsFor(undefined).map((s) => s.path)).not.toContain('/users');
  });

  it('routes the pages under a section, and a hidden section by its address', async () => {
    const view = sut('admin', '/bindings/7');
    expect(await screen.findByText('Binding 7 does not exist (it may have been unbound).')).toBeTruthy();
    view.unmount();
    sut('auditor', '/users');
    expect(await screen.findByText('Only admins can see and manage user accounts.')).toBeTruthy();
  });

  it('an unknown address is Not found, inside the frame', async () => {
    sut('admin', '/nowhere');
    expect(await screen.findByRole('heading', { name: 'Page not found' })).toBeTruthy();
    expect(screen.getByRole('navigation', { name: 'Main' })).toBeTruthy();
  });
});
