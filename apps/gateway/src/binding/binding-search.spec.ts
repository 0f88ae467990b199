import type { KeyRules } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { escapeLike, parseBindingSearch } from './binding-search';
import { filterSql } from './binding-admin.repository';

const NEWAPI: KeyRules = { relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive' };
const NONE: KeyRules = { relay: 'newapi', tokenNormalize: 'none', keyCase: 'sensitive' };

/** A stand-in hash that shows what was hashed. */
const hash = (canonical: string) => `H(${canonical})`;

describe('parseBindingSearch', () => {
  it.each([
    ['10.0.0.7', { kind: 'ip', ip: '10.0.0.7' }],
    [' 10.0.0.7 ', { kind: 'ip', ip: '10.0.0.7' }],
    ['2001:DB8:0::5', { kind: 'ip', ip: '2001:db8::5' }],
    ['::ffff:1.2.3.4', { kind: 'ip', ip: '1.2.3.4' }],
    ['10.0.0.0/8', { kind: 'network', cidr: '10.0.0.0/8' }],
    ['2001:db8::/32', { kind: 'network', cidr: '2001:db8::/32' }],
  ])('reads %j as an address search', (text, expected) => {
    expect(parseBindingSearch(text, NEWAPI, hash)).toEqual(expected);
  });

  it.each([
    // Not strict IPv4 spellings: searched as text, never as another address.
    ['010.0.0.1', '%010.0.0.1%', 'H(010.0.0.1)'],
    ['127.1', '%127.1%', 'H(127.1)'],
    // Host bits set: not a network, so text (too long for a mask).
    ['10.0.0.1/8', null, 'H(10.0.0.1/8)'],
  ])('reads %j as text', (text, like, hashHex) => {
    expect(parseBindingSearch(text, NEWAPI, hash)).toEqual({ kind: 'key', like, hashHex });
  });

  it('matches a masked key case-insensitively and turns "..." into the mask character', () => {
    expect(parseBindingSearch('AbCd...WxYz', NONE, hash)).toEqual({
      kind: 'key',
      like: '%abcd\u2026wxyz%',
      hashHex: 'H(AbCd...WxYz)',
    });
  });

  it('hashes the canonical form of a raw key under the current normalisation', () => {
    const newapi = parseBindingSearch('sk-xyz-3', NEWAPI, hash);
    expect(newapi).toMatchObject({ kind: 'key', hashHex: 'H(xyz)' });
    expect(parseBindingSearch('Bearer sk-xyz', NEWAPI, hash)).toMatchObject({ hashHex: 'H(xyz)' });
    expect(parseBindingSearch('bearer   xyz-9', NEWAPI, hash)).toMatchObject({ hashHex: 'H(xyz)' });
    expect(parseBindingSearch('sk-proj-abc', NONE, hash)).toMatchObject({ hashHex: 'H(sk-proj-abc)' });
  });

  it('keeps no raw key in its answer: text longer than any mask is only hashed', () => {
    const r = parseBindingSearch('sk-secretvalue123-1', NEWAPI, (c) => `hash-of-${c.length}`);
    expect(r).toEqual({ kind: 'key', like: null, hashHex: 'hash-of-14' });
    // 9 characters is the longest mask: still a substring search.
    expect(parseBindingSearch('abcd…wxyz', NONE, hash)).toMatchObject({ like: '%abcd\u2026wxyz%' });
    expect(parseBindingSearch('abcd…wxyz0', NONE, hash)).toMatchObject({ like: null });
  });

  it('has no hash when nothing canonical is left, and nothing for blank text', () => {
    expect(parseBindingSearch('sk-', NEWAPI, hash)).toEqual({ kind: 'key', like: '%sk-%', hashHex: null });
    expect(parseBindingSearch('   ', NEWAPI, hash)).toBeNull();
    expect(parseBindingSearch('', NEWAPI, hash)).toBeNull();
  });

  it('escapes LIKE wildcards', () => {
    expect(escapeLike('50%_a\\b')).toBe('50\\%\\_a\\\\b');
    expect(parseBindingSearch('%', NEWAPI, hash)).toMatchObject({ like: '%\\%%' });
  });
});

describe('filterSql', () => {
  it('numbers its parameters in order and joins conditions with AND', () => {
    const sut = filterSql({
      status: 'banned',
      ruleType: 'multiple',
      search: { kind: 'key', like: '%ab%', hashHex: 'ff' },
    });
    expect(sut.params).toEqual(['banned', 'multiple', '%ab%', 'ff']);
    expect(sut.where).toMatch(/^WHERE status = \$1::binding_status AND rule_type = \$2::binding_rule AND \(/);
    expect(sut.where).toContain(`lower(token_display) LIKE $3 ESCAPE '\\'`);
    expect(sut.where).toContain(`key_hash = decode($4, 'hex')`);
  });

  it('matches addresses inside networks (through binding_networks) and first/last IPs', () => {
    const ip = filterSql({ status: null, ruleType: null, search: { kind: 'ip', ip: '10.0.0.7' } });
    expect(ip.params).toEqual(['10.0.0.7']);
    expect(ip.where).toMatch(
      /^WHERE id IN \(SELECT binding_id FROM binding_networks WHERE network >>= \$1::inet /,
    );
    expect(ip.where).toContain('last_ip = $1::inet');
    expect(ip.where).toContain('first_ip = $1::inet');
    const net = filterSql({ status: null, ruleType: null, search: { kind: 'network', cidr: '10.0.0.0/8' } });
    expect(net.where).toContain('network && $1::cidr');
    expect(net.where).toContain('last_ip <<= $1::cidr');
    expect(net.where).toContain('first_ip <<= $1::cidr');
  });

  it('has no WHERE without filters and no hash clause without a hash', () => {
    expect(filterSql({ status: null, ruleType: null, search: null })).toEqual({ where: '', params: [] });
    const sut = filterSql({
      status: null,
      ruleType: null,
      search: { kind: 'key', like: '%x%', hashHex: null },
    });
    expect(sut.params).toEqual(['%x%']);
    expect(sut.where).not.toContain('key_hash');
  });
});
