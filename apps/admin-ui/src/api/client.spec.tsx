import { describe, expect, it } from 'vitest';
import { ApiClient, ApiError, isErrorCode } from './client';

function clientAnswering(status: number, body: string): ApiClient {
  return new ApiClient({
    getToken: () => 't',
    fetch: () =>
      Promise.resolve(new Response(body, { status, headers: { 'content-type': 'application/json' } })),
  });
}

async function failure(client: ApiClient): Promise<ApiError> {
  const err: unknown = await client.me().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

const body = (code: unknown) =>
  JSON.stringify({ error: { message: 'Refused.', type: 'keypin_error', code } });

describe('ApiError.code', () => {
  it('is the contract code the API sent', async () => {
    const err = await failure(clientAnswering(409, body('would_unbind_all')));
    expect(err.code).toBe('would_unbind_all');
    expect(err.message).toBe('Refused.');
    expect(err.status).toBe(409);
  });

  it.each([['some_future_code'], [undefined], [42], ['toString']])(
    'is "unknown" for a code the console does not know (%j), keeping the message',
    async (code) => {
      const err = await failure(clientAnswering(400, body(code)));
      expect(err.code).toBe('unknown');
      expect(err.message).toBe('Refused.');
    },
  );

  it('has codes of its own for answers that are not KeyPin errors', async () => {
    expect((await failure(clientAnswering(502, '<html>'))).code).toBe('http_error');
    const down = new ApiClient({ getToken: () => null, fetch: () => Promise.reject(new Error('offline')) });
    expect((await failure(down)).code).toBe('network_error');
    expect((await failure(clientAnswering(200, 'not json'))).code).toBe('bad_response');
  });

  it('isErrorCode knows only the contract codes', () => {
    expect(isErrorCode('too_many_attempts')).toBe(true);
    expect(isErrorCode('network_error')).toBe(false);
    expect(isErrorCode('constructor')).toBe(false);
    expect(isErrorCode(null)).toBe(false);
  });
});

describe('ApiError.field', () => {
  const refusal = (extra: object, inner: object = {}) =>
    JSON.stringify({
      error: {
        message: 'Invalid policy.max_tokens: must be an integer from 1 to 100000000',
        type: 'keypin_error',
        code: 'validation_failed',
        ...inner,
      },
      ...extra,
    });

  it('is the field a 422 names beside the error (where the gateway puts it)', async () => {
    const err = await failure(clientAnswering(422, refusal({ field: 'policy.max_tokens' })));
    expect(err.code).toBe('validation_failed');
    expect(err.field).toBe('policy.max_tokens');
    expect(err.message).toBe('Invalid policy.max_tokens: must be an integer from 1 to 100000000');
  });

  it('is read inside the error too, and is null when the answer names none', async () => {
    expect((await failure(clientAnswering(422, refusal({}, { field: 'policy.models[2]' })))).field).toBe(
      'policy.models[2]',
    );
    expect((await failure(clientAnswering(422, refusal({})))).field).toBeNull();
    expect((await failure(clientAnswering(422, refusal({ field: 7 })))).field).toBeNull();
  });
});
