import { ThemeProvider } from '@mui/material/styles';
import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { useState } from 'react';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../api/client';
import { theme } from '../../theme/theme';
import { PolicyChoiceForm } from './PolicyForm';
import {
  apiPolicyErrors,
  checkPolicy,
  choiceOf,
  draftOfPolicy,
  EMPTY_POLICY_DRAFT,
  type PolicyChoice,
  type PolicyErrors,
  policyFieldOf,
  samePolicy,
} from './policy-form';

/** These tests type into many fields: room for a loaded 2-core machine. */
const TYPING_TIMEOUT = 20_000;

const custom = (fields: Partial<PolicyChoice['fields']>): PolicyChoice => ({
  custom: true,
  fields: { ...EMPTY_POLICY_DRAFT, ...fields },
});

describe('checkPolicy: the form’s text → the policy sent', () => {
  it('"none" is null; a policy with every field empty is {} (explicitly unlimited)', () => {
    expect(checkPolicy({ custom: false, fields: { ...EMPTY_POLICY_DRAFT, burst: 'x' } })).toEqual({
      policy: null,
      errors: {},
    });
    expect(checkPolicy(custom({}))).toEqual({ policy: {}, errors: {} });
    expect(checkPolicy(custom({ requests_per_day: '   ', models: '\n \n' }))).toEqual({
      policy: {},
      errors: {},
    });
  });

  it('sends only the filled fields, as numbers, and the models one per line (or comma), blanks dropped', () => {
    const r = checkPolicy(
      custom({
        rate_per_second: '0.5',
        burst: '3',
        requests_per_day: '1 000',
        max_tokens: '4096',
        models: ' gpt-4o-mini \n\nclaude-3-5-*, gpt-4o-mini\n',
      }),
    );
    expect(r.errors).toEqual({});
    expect(r.policy).toEqual({
      rate_per_second: 0.5,
      burst: 3,
      requests_per_day: 1000,
      max_tokens: 4096,
      models: ['gpt-4o-mini', 'claude-3-5-*'],
    });
  });

  it.each([
    ['requests_per_day', '0', 'Requests per day must be an integer from 1 to 1000000000.'],
    ['requests_per_day', '2.5', 'Requests per day must be an integer from 1 to 1000000000.'],
    ['requests_per_day', 'ten', 'Requests per day must be an integer from 1 to 1000000000.'],
    ['rate_per_second', '-1', 'Rate per second must be a number from 0.001 to 1000000.'],
    ['max_concurrent', '100001', 'Max concurrent requests must be an integer from 1 to 100000.'],
    ['max_tokens', '1e9', 'Max tokens per request must be an integer from 1 to 100000000.'],
  ] as const)('%s = %j is refused with the shared validator’s rule', (field, text, message) => {
    const r = checkPolicy(custom({ [field]: text }));
    expect(r.policy).toBeUndefined();
    expect(r.errors).toEqual({ [field]: message });
  });

  it('names the model that breaks the rules', () => {
    const r = checkPolicy(custom({ models: 'gpt-4o\ngpt-*-mini\nclaude *' }));
    expect(r.policy).toBeUndefined();
    expect(r.errors.models).toBe(`Model "gpt-*-mini" may hold '*' only as its last character (a prefix).`);
  });

  it('burst needs a rate; every bad field complains at once', () => {
    const r = checkPolicy(custom({ burst: '5', max_tokens: '0' }));
    expect(r.policy).toBeUndefined();
    expect(r.errors).toEqual({
      burst: 'Burst needs a rate per second: set one, or leave burst empty.',
      max_tokens: 'Max tokens per request must be an integer from 1 to 100000000.',
    });
    expect(checkPolicy(custom({ burst: '5', rate_per_second: '1' })).policy).toEqual({
      burst: 5,
      rate_per_second: 1,
    });
  });

  it('reads a stored policy back into the form: null is "none", {} is a policy with empty fields', () => {
    expect(choiceOf(null)).toEqual({ custom: false, fields: EMPTY_POLICY_DRAFT });
    expect(choiceOf({})).toEqual({ custom: true, fields: EMPTY_POLICY_DRAFT });
    const p = { rate_per_second: 2.5, requests_per_month: 30000, models: ['a', 'b*'] };
    expect(draftOfPolicy(p)).toEqual({
      ...EMPTY_POLICY_DRAFT,
      rate_per_second: '2.5',
      requests_per_month: '30000',
      models: 'a\nb*',
    });
    // Round trip.
    expect(checkPolicy(choiceOf(p)).policy).toEqual(p);
  });

  it('samePolicy tells null from {} and compares every field', () => {
    expect(samePolicy(null, null)).toBe(true);
    expect(samePolicy(null, {})).toBe(false);
    expect(samePolicy({}, {})).toBe(true);
    expect(samePolicy({ max_tokens: 5 }, { max_tokens: 5 })).toBe(true);
    expect(samePolicy({ max_tokens: 5 }, { max_tokens: 6 })).toBe(false);
    expect(samePolicy({ models: ['a'] }, { models: ['a', 'b'] })).toBe(false);
  });
});

describe('the API’s field → the form’s field', () => {
  it.each([
    ['policy.max_tokens', 'policy', 'max_tokens'],
    ['policy.models[2]', 'policy', 'models'],
    ['default_policy.burst', 'default_policy', 'burst'],
    ['policy', 'policy', null],
    ['policy.nope', 'policy', null],
    ['default_policy.burst', 'policy', null],
    ['id', 'policy', null],
  ] as const)('%s (under %s) → %s', (field, prefix, expected) => {
    expect(policyFieldOf(field, prefix)).toBe(expected);
  });

  it('a 422 naming a policy field becomes that field’s complaint, in the API’s words', () => {
    const message = "Invalid policy.models[2]: may hold '*' only as its last character (a prefix)";
    const err = new ApiError(422, 'validation_failed', message, null, 'policy.models[2]');
    expect(apiPolicyErrors(err)).toEqual({ models: message });
    expect(apiPolicyErrors(err, 'default_policy')).toEqual({});
    expect(apiPolicyErrors(new ApiError(422, 'validation_failed', 'Invalid id: x', null, 'id'))).toEqual({});
    expect(apiPolicyErrors(new ApiError(403, 'forbidden', 'Your role may not do this.'))).toEqual({});
    expect(apiPolicyErrors(new Error('boom'))).toEqual({});
  });
});

/** The form as a dialog uses it: state outside, the check’s verdict shown. */
function Harness({ initial, apiErrors = {} }: { initial: PolicyChoice; apiErrors?: PolicyErrors }) {
  const [value, setValue] = useState(initial);
  const check = checkPolicy(value);
  return (
    <ThemeProvider theme={theme}>
      <PolicyChoiceForm
        value={value}
        onChange={setValue}
        errors={{ ...check.errors, ...apiErrors }}
        legend="Which policy applies"
        noneLabel="Use the default policy"
        noneHelp="The default applies."
        customLabel="Give this key its own policy"
        customHelp="Own limits."
        allEmptyNote="Every field is empty: unlimited."
      />
      <output data-testid="policy">
        {check.policy === undefined ? 'invalid' : JSON.stringify(check.policy)}
      </output>
    </ThemeProvider>
  );
}

const box = (name: string) => screen.getByRole('textbox', { name });
const helpOf = (input: HTMLElement) => {
  const id = input.getAttribute('aria-describedby');
  return id ? (document.getElementById(id)?.textContent ?? '') : '';
};

describe('PolicyChoiceForm', { timeout: TYPING_TIMEOUT }, () => {
  it('labels every field and says what empty means', () => {
    render(<Harness initial={custom({})} />);
    for (const [name, empty] of [
      ['Rate per second', /Empty: no rate limit\..*0\.001 to 1,000,000, decimals allowed/],
      ['Burst', /Empty: same as the rate\./],
      ['Requests per day', /Quota per UTC calendar day.*Empty: no daily quota\./],
      ['Requests per month', /Empty: no monthly quota\./],
      ['Max concurrent requests', /streams included.*Empty: no limit\./],
      ['Allowed models', /One model name per line.*Empty: every model\./],
      ['Max tokens per request', /Empty: no cap\./],
    ] as const) {
      expect(helpOf(box(name)), name).toMatch(empty);
    }
  });

  it('shows each complaint under its own field as it is typed, and the verdict follows', async () => {
    const user = userEvent.setup();
    render(<Harness initial={custom({})} />);
    expect(screen.getByTestId('policy').textContent).toBe('{}');
    expect(screen.getByTestId('policy-all-empty').textContent).toMatch(/unlimited/);

    await user.type(box('Requests per day'), '0');
    expect(box('Requests per day').getAttribute('aria-invalid')).toBe('true');
    expect(helpOf(box('Requests per day'))).toBe('Requests per day must be an integer from 1 to 1000000000.');
    expect(box('Max tokens per request').getAttribute('aria-invalid')).toBe('false');
    expect(screen.getByTestId('policy').textContent).toBe('invalid');

    await user.clear(box('Requests per day'));
    await user.type(box('Requests per day'), '100');
    await user.type(box('Allowed models'), 'gpt-4o{Enter}bad*name');
    expect(helpOf(box('Allowed models'))).toBe(
      `Model "bad*name" may hold '*' only as its last character (a prefix).`,
    );
    expect(box('Requests per day').getAttribute('aria-invalid')).toBe('false');
    await user.type(box('Allowed models'), '*');
    // "bad*name*" still has a '*' inside.
    expect(screen.getByTestId('policy').textContent).toBe('invalid');
    await user.clear(box('Allowed models'));
    await user.type(box('Allowed models'), 'gpt-4o{Enter}claude-*');
    expect(screen.getByTestId('policy').textContent).toBe(
      JSON.stringify({ requests_per_day: 100, models: ['gpt-4o', 'claude-*'] }),
    );
    expect(screen.queryByTestId('policy-all-empty')).toBeNull();
  });

  it('"use the default" hides the fields and gives null; switching back keeps what was typed', async () => {
    const user = userEvent.setup();
    render(<Harness initial={custom({ max_tokens: '512' })} />);
    await user.click(screen.getByRole('radio', { name: /Use the default policy/ }));
    expect(screen.queryByRole('textbox', { name: 'Max tokens per request' })).toBeNull();
    expect(screen.getByTestId('policy').textContent).toBe('null');
    await user.click(screen.getByRole('radio', { name: /Give this key its own policy/ }));
    expect(screen.getByRole<HTMLInputElement>('textbox', { name: 'Max tokens per request' }).value).toBe(
      '512',
    );
    expect(screen.getByTestId('policy').textContent).toBe('{"max_tokens":512}');
  });

  it('shows an API complaint under the field it names', () => {
    render(
      <Harness
        initial={custom({ max_tokens: '512' })}
        apiErrors={{ max_tokens: 'Invalid policy.max_tokens: too large for this relay' }}
      />,
    );
    expect(box('Max tokens per request').getAttribute('aria-invalid')).toBe('true');
    expect(helpOf(box('Max tokens per request'))).toBe('Invalid policy.max_tokens: too large for this relay');
    expect(box('Burst').getAttribute('aria-invalid')).toBe('false');
  });
});
