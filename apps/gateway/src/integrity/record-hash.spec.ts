import { describe, expect, it } from 'vitest';
import {
  type AuditEvidence,
  auditCanonical,
  auditHash,
  chainHash,
  GENESIS_HASH,
  HASHED_FIELDS,
  type InterceptEvidence,
  interceptCanonical,
  interceptHash,
} from './record-hash';

/**
 * The fixed test vectors of docs/integrity.md ("Test vectors"): if one of
 * these changes, every stored chain stops verifying. They were also checked
 * with Python's json.dumps(sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False) and hashlib.sha256, as the auditor's recipe does.
 */
const I1: InterceptEvidence = {
  id: '0b0e9f6e-6f3a-4c1e-9d9e-0a1b2c3d4e5f',
  binding_id: 42,
  token_display: 'abcd\u2026wxyz',
  attempt_ip: '198.51.100.9',
  allowed_ips: ['203.0.113.7/32'],
  reason: 'ip_not_allowed',
  method: 'POST',
  path: '/v1/chat/completions',
  user_agent: 'curl/8.5.0',
  enforced: true,
  intercepted_at: '2025-01-02T03:04:05.678Z',
  count: 1,
};
const I2: InterceptEvidence = {
  id: '6f1c2a43-8d7e-4b5a-9c3d-2e1f0a9b8c7d',
  binding_id: null,
  token_display: '=sk-\u20269999',
  attempt_ip: '2001:db8::1',
  allowed_ips: [],
  reason: 'network_denied',
  method: 'GET',
  path: '/v1/"caf\u00e9",x',
  user_agent: null,
  enforced: false,
  intercepted_at: '2025-01-02T03:04:06.000Z',
  count: 17,
};
const I3: InterceptEvidence = {
  id: 'a3b2c1d0-e9f8-4a7b-8c6d-5e4f3a2b1c0d',
  binding_id: 7,
  token_display: 'sk-a\u2026',
  attempt_ip: '10.1.2.3',
  allowed_ips: ['10.0.0.0/24', '2001:db8::/64'],
  reason: 'key_banned',
  method: 'PUT',
  path: '/p',
  user_agent: 'a\tb\u0001\\c',
  enforced: true,
  intercepted_at: '2025-12-31T23:59:59.999Z',
  count: 1_000_000,
};
const A1: AuditEvidence = {
  id: 1,
  actor: 'admin',
  action: 'binding.ban',
  target: 'binding:42',
  before: { status: 'active', allowed_ips: ['203.0.113.7/32'], request_count: 10 },
  after: { status: 'banned', allowed_ips: ['203.0.113.7/32'], request_count: 10 },
  ip: '127.0.0.1',
  at: '2025-01-02T03:04:05.678Z',
};
const A2: AuditEvidence = {
  id: 2,
  actor: 'auditor.b',
  action: 'user.password',
  target: null,
  before: null,
  after: { password: 'changed', z: { b: [true, null, 1.5], a: -3 } },
  ip: null,
  at: '2025-01-02T03:04:06.100Z',
};

const H_I1 = 'e63ccb287314d14c6da94b35b6b34b4f9011bbc2a9f04a0e9aa4e9cdedf00fd3';
const H_I2 = '4bc5ab81538abf71283ab4b092649023bdac815bcb7d64dab6eb89230372d58b';
const H_I3 = '7d7dc3b6ed72020878f147567086c956024c1a9d49ff7bb0ff85ae3360300e3d';
const H_A1 = '8ab5cf7c0f844854d59d4907e1969dfff9df37da0a7b39c7d60efe00ea68827b';
const H_A2 = '44160afa6840aa670fb484bbe587c90e09b4e3d6acb9c0e2df7fea446f6b9f87';

describe('intercept records', () => {
  it('canonical JSON of vector I1', () => {
    expect(interceptCanonical(I1)).toBe(
      '{"allowed_ips":["203.0.113.7/32"],"attempt_ip":"198.51.100.9","binding_id":42,"count":1,' +
        '"enforced":true,"id":"0b0e9f6e-6f3a-4c1e-9d9e-0a1b2c3d4e5f","intercepted_at":"2025-01-02T03:04:05.678Z",' +
        '"method":"POST","path":"/v1/chat/completions","reason":"ip_not_allowed","token_display":"abcd\u2026wxyz",' +
        '"user_agent":"curl/8.5.0"}',
    );
  });

  it('canonical JSON of vectors I2 and I3 (nulls, IPv6, escapes)', () => {
    expect(interceptCanonical(I2)).toBe(
      '{"allowed_ips":[],"attempt_ip":"2001:db8::1","binding_id":null,"count":17,"enforced":false,' +
        '"id":"6f1c2a43-8d7e-4b5a-9c3d-2e1f0a9b8c7d","intercepted_at":"2025-01-02T03:04:06.000Z","method":"GET",' +
        '"path":"/v1/\\"caf\u00e9\\",x","reason":"network_denied","token_display":"=sk-\u20269999","user_agent":null}',
    );
    expect(interceptCanonical(I3)).toContain('"user_agent":"a\\tb\\u0001\\\\c"}');
    expect(interceptCanonical(I3)).toContain('"allowed_ips":["10.0.0.0/24","2001:db8::/64"]');
  });

  it('chains I1 → I2 → I3 from 64 zeros to the documented hashes', () => {
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    expect(interceptHash(GENESIS_HASH, I1)).toBe(H_I1);
    expect(interceptHash(H_I1, I2)).toBe(H_I2);
    expect(interceptHash(H_I2, I3)).toBe(H_I3);
  });

  it('hashes exactly the evidence fields: alerted and alert_id are not part of the record', () => {
    const withWorkflow = { ...I1, alerted: true, alert_id: 'x' } as InterceptEvidence;
    expect(interceptHash(GENESIS_HASH, withWorkflow)).toBe(H_I1);
    expect(Object.keys(JSON.parse(interceptCanonical(I1)) as object)).toEqual([...HASHED_FIELDS.intercepts]);
  });

  it('an empty user agent is hashed as null (a CSV cannot tell them apart)', () => {
    expect(interceptHash(H_I1, { ...I2, user_agent: '' })).toBe(H_I2);
  });

  it.each<[string, Partial<InterceptEvidence>]>([
    ['the count', { count: 2 }],
    ['the attempted IP', { attempt_ip: '198.51.100.10' }],
    ['the allowed IPs', { allowed_ips: ['203.0.113.8/32'] }],
    ['the allowed IPs order', { allowed_ips: ['2001:db8::/64', '10.0.0.0/24'] }],
    ['the time by 1 ms', { intercepted_at: '2025-01-02T03:04:05.679Z' }],
    ['the mode', { enforced: false }],
    ['the binding', { binding_id: null }],
    ['the user agent', { user_agent: null }],
  ])('a change of %s changes the hash', (_name, change) => {
    const base = _name === 'the allowed IPs order' ? I3 : I1;
    expect(interceptHash(GENESIS_HASH, { ...base, ...change })).not.toBe(interceptHash(GENESIS_HASH, base));
  });

  it('the previous hash is part of the input', () => {
    expect(interceptHash(H_I2, I1)).not.toBe(H_I1);
  });
});

describe('audit records', () => {
  it('canonical JSON of vector A1 (before and after sorted too)', () => {
    expect(auditCanonical(A1)).toBe(
      '{"action":"binding.ban","actor":"admin","after":{"allowed_ips":["203.0.113.7/32"],"request_count":10,' +
        '"status":"banned"},"at":"2025-01-02T03:04:05.678Z","before":{"allowed_ips":["203.0.113.7/32"],' +
        '"request_count":10,"status":"active"},"id":1,"ip":"127.0.0.1","target":"binding:42"}',
    );
    expect(Object.keys(JSON.parse(auditCanonical(A1)) as object)).toEqual([...HASHED_FIELDS.audit]);
  });

  it('canonical JSON of vector A2 (nulls, nested values)', () => {
    expect(auditCanonical(A2)).toBe(
      '{"action":"user.password","actor":"auditor.b","after":{"password":"changed","z":{"a":-3,"b":[true,null,1.5]}},' +
        '"at":"2025-01-02T03:04:06.100Z","before":null,"id":2,"ip":null,"target":null}',
    );
  });

  it('chains A1 → A2 from 64 zeros to the documented hashes', () => {
    expect(auditHash(GENESIS_HASH, A1)).toBe(H_A1);
    expect(auditHash(H_A1, A2)).toBe(H_A2);
  });

  it('undefined before/after are null', () => {
    expect(auditHash(H_A1, { ...A2, before: undefined })).toBe(H_A2);
  });
});

describe('chainHash', () => {
  it('is hex SHA-256 of prev_hash, a line feed and the canonical JSON', () => {
    // printf '%s\n%s' "$(printf '0%.0s' $(seq 1 64))" '{}' | sha256sum
    expect(chainHash(GENESIS_HASH, '{}')).toBe(
      '5649d09ed68c17156095d175eef152856c5b1a81c117c409c1e00f096aa6838e',
    );
  });
});
