import type { Download, Locator, Page } from 'playwright-core';

/** Page objects of the console: what a person sees and does, in their words. */

export class LoginPage {
  constructor(readonly page: Page) {}

  async open(): Promise<this> {
    await this.page.goto('login');
    await this.username.waitFor();
    return this;
  }
  get username(): Locator {
    return this.page.getByLabel('Username');
  }
  get password(): Locator {
    return this.page.getByLabel('Password');
  }
  get submit(): Locator {
    return this.page.getByRole('button', { name: 'Log in' });
  }
  get error(): Locator {
    return this.page.getByTestId('login-error');
  }
  get locked(): Locator {
    return this.page.getByTestId('login-locked');
  }
  get notice(): Locator {
    return this.page.getByTestId('login-notice');
  }

  get form(): Locator {
    return this.page.getByRole('form', { name: 'Log in' });
  }

  /** One login attempt, waiting for its answer. */
  async attempt(username: string, password: string): Promise<void> {
    await this.username.fill(username);
    await this.password.fill(password);
    await this.submit.click();
    // Answered: the form is idle again, or the console replaced it.
    await this.page.locator('form[aria-busy=false], nav[aria-label=Main]').first().waitFor();
  }

  /** Logs in and waits for the console to show its navigation. */
  async logIn(username: string, password: string): Promise<Shell> {
    await this.attempt(username, password);
    const shell = new Shell(this.page);
    await shell.nav.waitFor();
    return shell;
  }
}

/** The frame around every page: navigation, who is logged in, theme, log out. */
export class Shell {
  constructor(readonly page: Page) {}

  get nav(): Locator {
    return this.page.getByRole('navigation', { name: 'Main' });
  }
  get whoami(): Locator {
    return this.page.getByTestId('whoami');
  }
  get heading(): Locator {
    return this.page.getByRole('heading', { level: 1 });
  }
  get notice(): Locator {
    return this.page.getByTestId('notice');
  }
  navLink(name: string): Locator {
    return this.nav.getByRole('link', { name });
  }

  async go(name: string): Promise<void> {
    await this.navLink(name).click();
    await this.page.getByRole('heading', { level: 1, name }).waitFor();
  }

  async toggleTheme(): Promise<void> {
    await this.page.getByRole('button', { name: /Switch to (dark|light) theme/ }).click();
  }

  async logOut(): Promise<void> {
    await this.page.getByRole('button', { name: 'Log out' }).click();
  }

  /** Accessible names of every button on the page right now. */
  async buttonNames(): Promise<string[]> {
    const names: string[] = [];
    for (const b of await this.page.getByRole('button').all()) {
      if (!(await b.isVisible())) continue;
      const label = (await b.getAttribute('aria-label')) ?? (await b.innerText());
      names.push(label.trim());
    }
    return names;
  }

  /** Every visible form control in the page's content that is neither disabled nor read-only, by its label. */
  async editableInputs(): Promise<{ name: string; type: string }[]> {
    return this.page
      .locator(
        'main input, main textarea, main [role=combobox], main [role=switch], main [contenteditable=true]',
      )
      .evaluateAll((els) => {
        const text = (id: string) => document.getElementById(id)?.textContent?.trim() ?? '';
        const nameOf = (e: Element): string => {
          const label = e.getAttribute('aria-label');
          if (label) return label;
          const by = e.getAttribute('aria-labelledby');
          if (by) return text(by.split(/\s+/)[0]!);
          if (e.id) {
            const l = document.querySelector(`label[for="${CSS.escape(e.id)}"]`);
            if (l?.textContent) return l.textContent.trim();
          }
          return e.closest('label')?.textContent?.trim() ?? '';
        };
        return els
          .filter((e) => {
            const h = e as HTMLInputElement;
            const r = h.getBoundingClientRect();
            return (
              r.width > 0 &&
              r.height > 0 &&
              h.type !== 'hidden' &&
              !h.disabled &&
              !h.readOnly &&
              h.getAttribute('aria-disabled') !== 'true' &&
              !h.closest('[aria-hidden=true]') &&
              h.getAttribute('aria-hidden') !== 'true'
            );
          })
          .map((e) => ({
            name: nameOf(e),
            type: e.getAttribute('type') ?? e.getAttribute('role') ?? e.tagName.toLowerCase(),
          }));
      });
  }
}

export class DashboardPage extends Shell {
  async open(): Promise<this> {
    await this.page.goto('./');
    await this.page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
    return this;
  }
  figure(label: string): Locator {
    return this.page.getByTestId(`figure-${label}`);
  }
  get recentIntercepts(): Locator {
    return this.page.getByRole('table', { name: 'Recent intercepts' });
  }
  get chart(): Locator {
    return this.page.getByRole('img', { name: /Allowed and intercepted requests per day/ });
  }
  get refusals(): Locator {
    return this.page.getByRole('table', { name: 'Refusals today by code' });
  }
  refusal(code: string): Locator {
    return this.refusals.getByTestId('refusal-row').filter({ hasText: code });
  }
  /** The hash chains' card: `data-state` is ok, broken or unknown. */
  get integrity(): Locator {
    return this.page.getByTestId('integrity-card');
  }
  /** One chain's line on it: 'Intercept log' or 'Audit trail'. */
  chain(label: string): Locator {
    return this.integrity.getByTestId(`chain-${label}`);
  }
  async verifyNow(): Promise<void> {
    await this.integrity.getByRole('button', { name: 'Verify now' }).click();
  }
}

export class BindingsPage extends Shell {
  async open(query = ''): Promise<this> {
    await this.page.goto(`bindings${query}`);
    await this.page.getByRole('heading', { level: 1, name: 'Bindings' }).waitFor();
    return this;
  }
  get searchBox(): Locator {
    return this.page.getByRole('searchbox', { name: /Search bindings/ });
  }
  get rows(): Locator {
    return this.page.getByTestId('binding-row');
  }
  get empty(): Locator {
    return this.page.getByTestId('empty-state');
  }
  row(maskedKey: string): Locator {
    return this.rows.filter({ hasText: maskedKey });
  }
  /** The "Today" cell of a key's row: the count, with a bar when the key has a daily quota. */
  today(maskedKey: string): Locator {
    return this.row(maskedKey).getByTestId('binding-today');
  }

  /** Types a search and waits for the table to answer it (the address holds the search). */
  async search(text: string): Promise<void> {
    await this.searchBox.fill(text);
    await this.searchBox.press('Enter');
    await this.page.waitForURL((u) => u.searchParams.get('search') === text.trim());
    await this.page.waitForLoadState('networkidle');
  }

  async filter(label: 'Status' | 'Rule', option: string): Promise<void> {
    await this.page.getByRole('combobox', { name: label }).click();
    await this.page.getByRole('option', { name: option }).click();
  }

  async openBinding(maskedKey: string): Promise<BindingDetailPage> {
    await this.row(maskedKey).getByRole('link', { name: maskedKey }).click();
    const detail = new BindingDetailPage(this.page);
    await detail.heading.filter({ hasText: maskedKey }).waitFor();
    return detail;
  }

  async prebind(key: string, networks: string[], note = ''): Promise<BindingDetailPage> {
    await this.page.getByRole('button', { name: 'Pre-bind a key' }).click();
    const dialog = this.page.getByRole('dialog', { name: 'Pre-bind a key' });
    await dialog.getByLabel('API key').fill(key);
    const form = new NetworksFormObject(dialog);
    await form.set(networks.length > 1 ? 'Several networks' : 'Single network', networks);
    if (note) await dialog.getByLabel('Note (optional)').fill(note);
    await dialog.getByRole('button', { name: 'Pre-bind' }).click();
    await dialog.waitFor({ state: 'detached' });
    return new BindingDetailPage(this.page);
  }
}

/** The rule-and-networks form, inside whichever dialog holds it. */
export class NetworksFormObject {
  constructor(readonly root: Locator) {}

  async rule(label: 'Single network' | 'Several networks' | 'Any IP'): Promise<void> {
    await this.root.getByRole('radio', { name: new RegExp(label) }).check();
  }
  entry(i: number): Locator {
    return this.root.getByTestId('network-entries').getByRole('textbox').nth(i);
  }
  entries(): Locator {
    return this.root.getByTestId('network-entries').getByRole('textbox');
  }
  async set(label: 'Single network' | 'Several networks', networks: string[]): Promise<void> {
    await this.rule(label);
    for (let i = 0; i < networks.length; i++) {
      if ((await this.entries().count()) <= i)
        await this.root.getByRole('button', { name: 'Add network' }).click();
      await this.entry(i).fill(networks[i]!);
    }
  }
}

/** The text an input's helper line shows (its hint, or the complaint about it). */
export function helperTextOf(input: Locator): Promise<string> {
  return input.evaluate((e) => {
    const id = e.getAttribute('aria-describedby');
    return (id && document.getElementById(id)?.textContent) || '';
  });
}

/** The policy form (docs/contract.md 9), in the binding's dialog or in Settings. */
export class PolicyFormObject {
  constructor(readonly root: Locator) {}

  /** "Use the default policy", "Give this key its own policy", "No default policy", "Set a default policy". */
  async choose(label: string): Promise<void> {
    await this.root.getByRole('radio', { name: new RegExp(label) }).check();
  }
  field(
    label:
      | 'Rate per second'
      | 'Burst'
      | 'Requests per day'
      | 'Requests per month'
      | 'Max concurrent requests'
      | 'Allowed models'
      | 'Max tokens per request',
  ): Locator {
    return this.root.getByRole('textbox', { name: label, exact: true });
  }
}

export class BindingDetailPage extends Shell {
  async open(id: number): Promise<this> {
    await this.page.goto(`bindings/${id}`);
    await this.heading.filter({ hasText: 'Binding' }).waitFor();
    return this;
  }
  get status(): Locator {
    return this.page
      .locator('main')
      .getByText(/^(Active|Banned)$/)
      .first();
  }
  get recentIntercepts(): Locator {
    return this.page.getByRole('table', { name: 'Recent intercepts of this key' });
  }
  /** The key's alerts, each row with its status and (for an admin, while open) its actions. */
  get alerts(): Locator {
    return this.page.getByRole('table', { name: 'Alerts of this key' });
  }
  get editDialog(): Locator {
    return this.page.getByRole('dialog', { name: /Edit rule and networks/ });
  }
  get policyCard(): Locator {
    return this.page.getByTestId('policy-card');
  }
  /** "Own policy", "Default policy" or "No policy". */
  get policySource(): Locator {
    return this.policyCard.getByTestId('policy-source');
  }
  /** One field of the effective policy as the card shows it. */
  policyValue(field: string): Locator {
    return this.policyCard.getByTestId(`policy-summary-${field}`);
  }
  /** "3 of 10 (30%)", or "No daily quota · 3 requests today". */
  get quotaToday(): Locator {
    return this.policyCard.getByTestId('quota-day-text');
  }
  get quotaTodayBar(): Locator {
    return this.policyCard.getByRole('progressbar', { name: 'Today (UTC)' });
  }
  get quotaMonth(): Locator {
    return this.policyCard.getByTestId('quota-month-text');
  }
  get policyDialog(): Locator {
    return this.page.getByRole('dialog', { name: /Policy of/ });
  }

  async openPolicyEditor(): Promise<PolicyFormObject> {
    await this.page.getByRole('button', { name: 'Edit policy' }).click();
    await this.policyDialog.waitFor();
    return new PolicyFormObject(this.policyDialog);
  }
  async savePolicy(): Promise<void> {
    await this.policyDialog.getByRole('button', { name: 'Save policy' }).click();
    await this.policyDialog.waitFor({ state: 'detached' });
  }

  async openEdit(): Promise<NetworksFormObject> {
    await this.page.getByRole('button', { name: 'Edit rule and networks' }).click();
    await this.editDialog.waitFor();
    return new NetworksFormObject(this.editDialog);
  }
  async saveEdit(): Promise<void> {
    await this.editDialog.getByRole('button', { name: 'Save' }).click();
    await this.editDialog.waitFor({ state: 'detached' });
  }

  /** Clicks an action, then confirms it in its dialog. */
  async confirm(action: 'Ban' | 'Unban' | 'Unbind'): Promise<void> {
    await this.page.getByRole('button', { name: action, exact: true }).click();
    const dialog = this.page.getByRole('dialog');
    await dialog.getByRole('button', { name: action, exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
  }
}

export class LogsPage extends Shell {
  async open(query = ''): Promise<this> {
    await this.page.goto(`logs${query}`);
    await this.page.getByRole('heading', { level: 1, name: 'Intercept logs' }).waitFor();
    return this;
  }
  get rows(): Locator {
    return this.page.getByTestId('intercept-row');
  }
  get total(): Locator {
    return this.page.getByTestId('log-total');
  }
  get ipBox(): Locator {
    return this.page.getByRole('searchbox', { name: 'Attempted IP' });
  }
  get keyBox(): Locator {
    return this.page.getByRole('searchbox', { name: 'Key' });
  }

  async filterIp(ip: string): Promise<void> {
    await this.ipBox.fill(ip);
    await this.ipBox.press('Enter');
    await this.page.waitForURL((u) => u.searchParams.get('ip') === ip);
    await this.page.waitForLoadState('networkidle');
  }
  async filterKey(text: string): Promise<void> {
    await this.keyBox.fill(text);
    await this.keyBox.press('Enter');
    await this.page.waitForURL((u) => u.searchParams.get('search') === text);
    await this.page.waitForLoadState('networkidle');
  }
  async filterReason(option: string): Promise<void> {
    await this.page.getByRole('combobox', { name: 'Reason' }).click();
    await this.page.getByRole('option', { name: option }).click();
    await this.page.waitForLoadState('networkidle');
  }

  async exportCsv(): Promise<Download> {
    const [download] = await Promise.all([
      this.page.waitForEvent('download'),
      this.page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    return download;
  }
}

export class SettingsPage extends Shell {
  async open(): Promise<this> {
    await this.page.goto('settings');
    await this.page.getByRole('heading', { level: 1, name: 'Settings' }).waitFor();
    await this.page
      .locator('main')
      .getByText(/Enforcement|Mode/)
      .first()
      .waitFor();
    return this;
  }
  field(label: string): Locator {
    return this.page.getByLabel(label, { exact: true });
  }
  get save(): Locator {
    return this.page.getByRole('button', { name: 'Save settings' });
  }
  get secretState(): Locator {
    return this.page.getByTestId('secret-state');
  }
  get defaultPolicySection(): Locator {
    return this.page.getByRole('region', { name: 'Default key policy' });
  }
  get defaultPolicy(): PolicyFormObject {
    return new PolicyFormObject(this.defaultPolicySection);
  }
  /** The default policy as an auditor reads it. */
  defaultPolicyValue(field: string): Locator {
    return this.page.getByTestId(`setting-default_policy-${field}`);
  }
  get networkPolicySection(): Locator {
    return this.page.getByRole('region', { name: 'Network policy' });
  }
  /** One list of the network policy as an admin edits it (one entry per line). */
  networkList(label: 'Allowed networks' | 'Denied networks' | 'First use only from'): Locator {
    return this.networkPolicySection.getByRole('textbox', { name: label });
  }
  /** One list of the network policy as an auditor reads it. */
  networkListValue(list: 'allow' | 'deny' | 'first_use_from'): Locator {
    return this.page.getByTestId(`setting-networks-${list}`);
  }
}

/** The route dialog (add or edit), as a person fills it. */
export class RouteDialogObject {
  constructor(readonly root: Locator) {}

  field(label: 'Prefix' | 'Upstream' | 'Timeout' | 'Token header' | 'Token value'): Locator {
    return this.root.getByRole('textbox', { name: label });
  }
  headerName(i: number): Locator {
    return this.root.getByRole('textbox', { name: `Header ${i + 1} name` });
  }
  headerValue(i: number): Locator {
    return this.root.getByRole('textbox', { name: new RegExp(`^Header ${i + 1} value`) });
  }
  get headerRows(): Locator {
    return this.root.getByTestId('header-row');
  }
  get headersNote(): Locator {
    return this.root.getByTestId('headers-note');
  }
  async addHeader(name: string, value: string): Promise<void> {
    const i = await this.headerRows.count();
    await this.root.getByRole('button', { name: 'Add header' }).click();
    await this.headerName(i).fill(name);
    await this.headerValue(i).fill(value);
  }
  async removeHeader(name: string): Promise<void> {
    await this.root.getByRole('button', { name: `Remove header ${name}` }).click();
  }
  async relay(option: string): Promise<void> {
    await this.root.getByRole('combobox', { name: 'Relay' }).click();
    await this.root.page().getByRole('option', { name: option }).click();
  }
  get stripPrefix(): Locator {
    return this.root.getByRole('switch', { name: /Strip the prefix/ });
  }
  get removeToken(): Locator {
    return this.root.getByRole('checkbox', { name: /Remove the proxy token/ });
  }
  submit(label: 'Create route' | 'Save route'): Locator {
    return this.root.getByRole('button', { name: label });
  }
}

export class RoutesPage extends Shell {
  async open(): Promise<this> {
    await this.page.goto('routes');
    await this.page.getByRole('heading', { level: 1, name: 'Routes' }).waitFor();
    return this;
  }
  get rows(): Locator {
    return this.page.getByTestId('route-row');
  }
  get empty(): Locator {
    return this.page.getByTestId('empty-state');
  }
  row(prefix: string): Locator {
    return this.rows.filter({ has: this.page.getByRole('cell', { name: prefix, exact: true }) });
  }
  headerNames(prefix: string): Locator {
    return this.row(prefix).getByTestId('route-header-names');
  }
  token(prefix: string): Locator {
    return this.row(prefix).getByTestId('route-token');
  }
  async openCreate(): Promise<RouteDialogObject> {
    await this.page.getByRole('button', { name: 'Add route' }).click();
    const dialog = this.page.getByRole('dialog', { name: 'Add a route' });
    await dialog.waitFor();
    return new RouteDialogObject(dialog);
  }
  async openEdit(prefix: string): Promise<RouteDialogObject> {
    await this.page.getByRole('button', { name: `Edit ${prefix}` }).click();
    const dialog = this.page.getByRole('dialog', { name: `Edit the route ${prefix}` });
    await dialog.waitFor();
    return new RouteDialogObject(dialog);
  }
  /** Clicks Delete on a route's row and confirms. */
  async delete(prefix: string): Promise<void> {
    await this.page.getByRole('button', { name: `Delete ${prefix}` }).click();
    const dialog = this.page.getByRole('dialog', { name: `Delete the route ${prefix}?` });
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await dialog.waitFor({ state: 'detached' });
  }
}

export class UsersPage extends Shell {
  async open(): Promise<this> {
    await this.page.goto('users');
    await this.page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
    return this;
  }
  get rows(): Locator {
    return this.page.getByTestId('user-row');
  }
}

export class AuditPage extends Shell {
  async open(): Promise<this> {
    await this.page.goto('audit');
    await this.page.getByRole('heading', { level: 1, name: 'Audit trail' }).waitFor();
    return this;
  }
  get rows(): Locator {
    return this.page.getByTestId('audit-row');
  }
}

export class AlertsPage extends Shell {
  async open(query = ''): Promise<this> {
    await this.page.goto(`alerts${query}`);
    await this.page.getByRole('heading', { level: 1, name: 'Alerts' }).waitFor();
    return this;
  }
  get rows(): Locator {
    return this.page.getByTestId('alert-row');
  }
  /** The alert rows of one key (by its masked form). */
  row(maskedKey: string): Locator {
    return this.rows.filter({ hasText: maskedKey });
  }
}

/**
 * An alert's actions where they are shown (a row of the Alerts page or of a
 * binding's alerts, or the alert's own page): each is one click, then a
 * confirmation.
 */
export class AlertActionsObject {
  constructor(readonly root: Locator) {}

  get status(): Locator {
    return this.root.getByTestId('alert-status');
  }
  get buttons(): Locator {
    return this.root.getByRole('button');
  }
  async allow(network: string): Promise<void> {
    await this.confirm(`Allow ${network}`, 'Allow network');
  }
  async ban(): Promise<void> {
    await this.confirm('Ban key', 'Ban key');
  }
  async dismiss(): Promise<void> {
    await this.confirm('Dismiss', 'Dismiss');
  }
  private async confirm(action: string, confirmLabel: string): Promise<void> {
    await this.root.getByRole('button', { name: action, exact: true }).click();
    const dialog = this.root.page().getByRole('dialog');
    await dialog.getByRole('button', { name: confirmLabel, exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
  }
}

/** One alert's page (`/alerts/:id`, where the webhook's console_url leads). */
export class AlertDetailPage extends Shell {
  async open(id: string): Promise<this> {
    await this.page.goto(`alerts/${id}`);
    await this.detail.waitFor();
    return this;
  }
  get detail(): Locator {
    return this.page.getByTestId('alert-detail');
  }
  get actions(): AlertActionsObject {
    return new AlertActionsObject(this.page.locator('main'));
  }
}
