import { describe, expect, it } from 'vitest';
import { SecretBox } from './secret-box';

describe('SecretBox', () => {
  it('round-trips and never stores the plain text', () => {
    const sut = new SecretBox(Buffer.from('m'.repeat(32)));
    const sealed = sut.seal('whsec_topsecret');
    expect(JSON.stringify(sealed)).not.toContain('topsecret');
    expect(sut.open(sealed)).toBe('whsec_topsecret');
  });

  it('refuses another key, tampering and junk', () => {
    const sealed = new SecretBox(Buffer.from('a'.repeat(32))).seal('x');
    expect(new SecretBox(Buffer.from('b'.repeat(32))).open(sealed)).toBeNull();
    const sut = new SecretBox(Buffer.from('a'.repeat(32)));
    expect(sut.open({ ...sealed, data: Buffer.from('y').toString('base64') })).toBeNull();
    expect(sut.open('plain')).toBeNull();
    expect(sut.open(null)).toBeNull();
  });
});
