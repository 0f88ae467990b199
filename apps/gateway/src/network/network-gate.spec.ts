import { parseIp } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { NetworkGate } from './network-gate';

const ip = (s: string) => parseIp(s)!;

describe('NetworkGate', () => {
  it('is open with empty lists', () => {
    const g = new NetworkGate();
    g.use({ allow: [], deny: [], first_use_from: [] });
    expect(g.open).toBe(true);
    expect(g.mayBindFrom(ip('198.51.100.1'))).toBe(true);
  });

  it('denies inside deny, then refuses outside allow (deny wins inside allow)', () => {
    const g = new NetworkGate();
    g.use({ allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.9.0.0/16'], first_use_from: [] });
    expect(g.refusal(ip('10.1.2.3'))).toBeNull();
    expect(g.refusal(ip('10.9.2.3'))).toBe('network_denied');
    expect(g.refusal(ip('192.0.2.1'))).toBe('network_not_allowed');
    expect(g.refusal(ip('2001:db8::5'))).toBeNull();
    expect(g.refusal(ip('2001:db9::5'))).toBe('network_not_allowed');
  });

  it('binds first uses only from first_use_from', () => {
    const g = new NetworkGate();
    g.use({ allow: [], deny: [], first_use_from: ['192.0.2.0/24'] });
    expect(g.open).toBe(true);
    expect(g.mayBindFrom(ip('192.0.2.77'))).toBe(true);
    expect(g.mayBindFrom(ip('192.0.3.1'))).toBe(false);
  });

  it('recompiles only when the policy object changes', () => {
    const g = new NetworkGate();
    const p = { allow: [], deny: ['0.0.0.0/0'], first_use_from: [] };
    g.use(p);
    expect(g.refusal(ip('1.2.3.4'))).toBe('network_denied');
    p.deny = []; // the same object: not recompiled (settings objects are replaced, never changed)
    g.use(p);
    expect(g.refusal(ip('1.2.3.4'))).toBe('network_denied');
    g.use({ ...p });
    expect(g.refusal(ip('1.2.3.4'))).toBeNull();
  });
});
