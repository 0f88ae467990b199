/**
 * Relay parity in process (docs/contract.md 2.1): KeyPin's own parsing of a request
 * (scanRequestHead, queryKeys, resolveApiKey: what proxy.service runs)
 * against the relay models of test/support/relay-models.ts, on the requests
 * test/relay-parity.int-spec.ts sends through a real gateway, thousands at a
 * time.
 *
 * For every request and each known token T: when the relay, reading the
 * request as KeyPin forwards it, would authenticate T, KeyPin must have
 * refused the request (ambiguous_key, invalid_key) or judged it as T's
 * canonical key. (What a real gateway adds on the wire, such as how the
 * WebSocket tunnel writes the head, only the integration test sees.)
 */
import type { KeyRules } from '@keypin/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Attack,
  attackArbitrary,
  goParseQuery,
  goTrimSpace,
  liteLlmBearer,
  liteLlmPresentedKey,
  lookupToken,
  newApiPresentedKey,
  openAiPresentedKey,
  PARITY_PROFILES,
  type ParityProfile,
  parsedAttack,
  presentedKey,
  pyStrip,
  type RelayRequest,
  renderAttack,
  showBytes,
  starletteQueryGet,
} from '../../test/support/relay-models';
import { resolveApiKey } from './api-key';
import { type KeyCandidate, queryKeys, scanRequestHead } from './request-head';

const NUM_RUNS = Number(process.env['RELAY_PARITY_UNIT_RUNS'] ?? 3000);
const SEED =
  process.env['RELAY_PARITY_SEED'] === undefined ? undefined : Number(process.env['RELAY_PARITY_SEED']);

/** A mismatch for one request, or null. */
function mismatch(profile: ParityProfile, attack: Attack): string | null {
  const rules: KeyRules = {
    relay: profile.relay,
    tokenNormalize: profile.tokenNormalize,
    keyCase: profile.keyCase,
  };
  const req = parsedAttack(attack);
  // KeyPin's judgement, as proxy.service makes it.
  const head = scanRequestHead(req.rawHeaders, 'x-real-ip');
  const candidates: KeyCandidate[] = [
    ...head.keys,
    ...queryKeys(req.target).map((value): KeyCandidate => ({ place: 'query', value })),
  ];
  const judged = resolveApiKey(candidates, head.duplicateKeyHeader, rules, req.target);
  if (judged.kind === 'ambiguous' || judged.kind === 'invalid') return null;

  // The relay, on the header lines KeyPin sends on.
  const presented = presentedKey(profile.relay, { ...req, rawHeaders: head.forward });
  const tokens = [profile.keys.ownerToken, profile.keys.attackerToken];
  const authenticated = lookupToken(presented, tokens, {
    caseInsensitive: profile.keyCase === 'insensitive',
  });
  if (authenticated === null) return null;
  const expected = profile.keyCase === 'insensitive' ? authenticated.toLowerCase() : authenticated;
  if (judged.kind === 'key' && judged.canonical === expected) return null;
  return [
    `the ${profile.name} relay authenticates ${showBytes(authenticated)} (it looked up ${showBytes(presented!)})`,
    `but KeyPin judged ${judged.kind === 'key' ? showBytes(judged.canonical) : 'no key'}`,
    `request bytes: ${showBytes(renderAttack(attack))}`,
  ].join('\n');
}

describe.each(PARITY_PROFILES)('relay parity in process: $name', (profile) => {
  it(`KeyPin judges every key the relay authenticates as that key (${NUM_RUNS} requests)`, () => {
    fc.assert(
      fc.property(attackArbitrary(profile.keys), (attack) => {
        const m = mismatch(profile, attack);
        if (m !== null) throw new Error(m);
      }),
      { numRuns: NUM_RUNS, seed: SEED },
    );
  });

  it('the models find the plain keys (the comparison is not vacuous)', () => {
    const plain = (value: string): Attack => ({
      method: 'POST',
      path: '/v1/chat/completions',
      entries: [{ header: 'Authorization', value }],
      websocket: false,
      behindKeylessUpgrade: false,
    });
    const caseInsensitive = profile.keyCase === 'insensitive';
    const tokens = [profile.keys.ownerToken];
    const found = lookupToken(
      presentedKey(profile.relay, parsedAttack(plain(`Bearer ${profile.keys.owner}`))),
      tokens,
      { caseInsensitive },
    );
    expect(found).toBe(profile.keys.ownerToken);
  });
});

/** Known answers of the models' building blocks, from the relays' sources (see relay-models.ts). */
describe('relay models', () => {
  const u = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
  const req = (target: string, headers: [string, string][], websocket = false): RelayRequest => ({
    method: 'GET',
    target,
    rawHeaders: headers.flat(),
    websocket,
  });

  it("Go's strings.TrimSpace trims Unicode white space by its UTF-8 bytes, never a lone byte", () => {
    expect(goTrimSpace(`${u('\u3000')}K${u('\u00a0')}`)).toBe('K');
    expect(goTrimSpace(`\t ${u('\u0085')}K${u('\u2028')}\r`)).toBe('K');
    expect(goTrimSpace('\xa0K\x85')).toBe('\xa0K\x85');
    expect(goTrimSpace(`${u('\u200b')}K${u('\ufeff')}`)).toBe(`${u('\u200b')}K${u('\ufeff')}`);
  });

  it("Go's url.ParseQuery: & only, pairs with ; or a bad escape skipped, + is a space, first value for Gin", () => {
    expect(goParseQuery('key=a&key=b').get('key')).toEqual(['a', 'b']);
    expect(goParseQuery('key=a;x=1&%6Bey=b').get('key')).toEqual(['b']);
    expect(goParseQuery('key=%zz&k%65y=c+d').get('key')).toEqual(['c d']);
  });

  it("Starlette's QueryParams: the last value, lenient escapes, UTF-8 with replacement", () => {
    expect(starletteQueryGet('key=a&key=b', 'key')).toBe('b');
    expect(starletteQueryGet('key=%zz', 'key')).toBe('%zz');
    expect(starletteQueryGet('k%65y=%E3%80%80+x%C3', 'key')).toBe('\u3000 x\ufffd');
    expect(pyStrip('\x85\xa0K\x1c ')).toBe('K');
  });

  it("LiteLLM's bearer parsing removes every prefix and reads SigV4 credentials", () => {
    expect(liteLlmBearer('Bearer Bearer K', false)).toBe('K');
    expect(liteLlmBearer('Basic K', false)).toBe('K');
    expect(liteLlmBearer('Token K', false)).toBe('');
    expect(liteLlmBearer('Token K', true)).toBe('Token K');
    expect(liteLlmBearer('AWS4-HMAC-SHA256 Credential=Bearer  K/2025, Signature=x', false)).toBe('K');
    expect(liteLlmBearer('AWS4-HMAC-SHA256 Credential=K\x85junk/2025', false)).toBe('K');
    expect(liteLlmBearer('AWS4-HMAC-SHA256 Signature=x', false)).toBe('');
  });

  it('New API: subprotocol, x-api-key and ?key= by path, mj-api-secret, sk- and the channel suffix', () => {
    expect(
      newApiPresentedKey(req('/v1/chat/completions', [['Authorization', `Bearer ${u('\u3000')}sk-K-3`]])),
    ).toBe('K');
    expect(
      newApiPresentedKey(req('/x', [['Sec-WebSocket-Protocol', 'realtime, openai-insecure-api-key.sk-K']])),
    ).toBe('K');
    expect(newApiPresentedKey(req('/v1/chat/completions', [['x-api-key', 'K']]))).toBeNull();
    expect(newApiPresentedKey(req('/v1/messages', [['x-api-key', 'K']]))).toBe('K');
    expect(newApiPresentedKey(req('/v1beta/models/g:generateContent?%6Bey=K', []))).toBe('K');
    expect(newApiPresentedKey(req('/v1/chat/completions?key=K', []))).toBeNull();
    expect(newApiPresentedKey(req('/mj', [['mj-api-secret', 'Bearer sk-K']]))).toBe('K');
    expect(
      newApiPresentedKey(
        req('/mj', [
          ['Authorization', 'Bearer midjourney-proxy'],
          ['mj-api-secret', 'K'],
        ]),
      ),
    ).toBe('K');
    expect(newApiPresentedKey(req('/x', [['Authorization', 'BEARER K']]))).toBe('BEARER K');
  });

  it('New API: /api/usage/token reads Authorization alone, where the Midjourney placeholder is a key; KeyPin refuses it there', () => {
    const mj: [string, string][] = [
      ['Authorization', 'Bearer midjourney-proxy'],
      ['mj-api-secret', 'sk-K'],
    ];
    expect(newApiPresentedKey(req('/api/usage/token/', mj))).toBe('midjourney');
    expect(newApiPresentedKey(req('/api/usage/%74oken', [['x-api-key', 'K']]))).toBeNull();
    expect(newApiPresentedKey(req('/api/usage/token', [['Authorization', 'Bearer sk-K-2']]))).toBe('K');
    const rules: KeyRules = { relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive' };
    const judge = (target: string) => {
      const head = scanRequestHead(mj.flat(), 'x-real-ip');
      return resolveApiKey(head.keys, head.duplicateKeyHeader, rules, target).kind;
    };
    expect(judge('/mj/submit/imagine')).toBe('key');
    expect(judge('/api/usage/token/')).toBe('ambiguous');
    expect(judge('/api/usage/%74oken')).toBe('ambiguous');
  });

  it('LiteLLM: x-litellm-api-key first, Authorization next, ?key= only on generateContent, pass-through header', () => {
    const auth: [string, string] = ['Authorization', 'Bearer sk-A'];
    expect(liteLlmPresentedKey(req('/v1/chat/completions', [auth, ['x-litellm-api-key', 'sk-K']]))).toBe(
      'sk-K',
    );
    expect(
      liteLlmPresentedKey(
        req('/v1/chat/completions', [
          ['Authorization', 'Token sk-A'],
          ['api-key', 'sk-K'],
        ]),
      ),
    ).toBeNull();
    expect(liteLlmPresentedKey(req('/v1/chat/completions', [['Ocp-Apim-Subscription-Key', 'sk-K']]))).toBe(
      'sk-K',
    );
    expect(liteLlmPresentedKey(req('/v1beta/models/g:generateContent?key=sk-A&key=sk-K', []))).toBe('sk-K');
    expect(liteLlmPresentedKey(req('/v1/models?key=sk-K', []))).toBeNull();
    expect(liteLlmPresentedKey(req('/anthropic/v1/messages', [auth, ['litellm_user_api_key', 'sk-K']]))).toBe(
      'sk-K',
    );
    const ws = (h: [string, string][]) => liteLlmPresentedKey(req('/v1/realtime', h, true));
    expect(ws([['Sec-WebSocket-Protocol', 'realtime, \x85openai-insecure-api-key.sk-K']])).toBe('sk-K');
    expect(ws([['Authorization', 'Bearer sk-K\xa0']])).toBe('sk-K');
    expect(ws([['Authorization', 'bearer sk-K']])).toBeNull();
    expect(ws([['x-litellm-api-key', 'sk-K']])).toBeNull();
  });

  it('a plain upstream: Bearer in any case, then x-api-key, then api-key', () => {
    expect(openAiPresentedKey(req('/v1/models', [['Authorization', 'bEaReR \tsk-K']]))).toBe('sk-K');
    expect(
      openAiPresentedKey(
        req('/v1/models', [
          ['api-key', 'sk-A'],
          ['x-api-key', 'sk-K'],
        ]),
      ),
    ).toBe('sk-K');
  });

  it('a MySQL collation matches without case, accents or trailing spaces', () => {
    const tokens = ['OwnerKey'];
    expect(lookupToken('ownerkey  ', tokens, { caseInsensitive: true })).toBe('OwnerKey');
    expect(lookupToken(u('\uff2fwnerKey'), tokens, { caseInsensitive: true })).toBe('OwnerKey');
    expect(lookupToken('ownerkey', tokens)).toBeNull();
    expect(lookupToken(' OwnerKey', tokens, { caseInsensitive: true })).toBeNull();
  });
});
