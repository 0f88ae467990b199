import { describe, expect, it } from 'vitest';
import { canonicalJson as sut } from './canonical-json';

describe('canonicalJson', () => {
  it.each<[string, unknown, string]>([
    ['null', null, 'null'],
    ['true', true, 'true'],
    ['false', false, 'false'],
    ['zero', 0, '0'],
    ['minus zero is zero', -0, '0'],
    ['integer', 1_000_000, '1000000'],
    ['negative integer', -3, '-3'],
    ['large safe integer', 9_007_199_254_740_991, '9007199254740991'],
    ['fraction (ECMAScript form)', 1.5, '1.5'],
    ['tiny number', 1e-7, '1e-7'],
    ['huge number', 1e21, '1e+21'],
    ['empty string', '', '""'],
    ['quote and backslash', 'a"b\\c', '"a\\"b\\\\c"'],
    ['short escapes', '\b\t\n\f\r', '"\\b\\t\\n\\f\\r"'],
    ['other controls as \\u00xx, lower-case', '\u0001\u001f', '"\\u0001\\u001f"'],
    ['DEL and non-ASCII as themselves', '\u007f\u00e9\u2026\u{1F600}', '"\u007f\u00e9\u2026\u{1F600}"'],
    ['slash not escaped', '/v1/x', '"/v1/x"'],
    ['U+2028 as itself', '\u2028', '"\u2028"'],
    ['empty array', [], '[]'],
    ['array keeps its order', [3, 1, 2], '[3,1,2]'],
    ['undefined in an array is null', [undefined, 1], '[null,1]'],
    ['empty object', {}, '{}'],
    ['keys sorted', { b: 1, a: 2, c: 3 }, '{"a":2,"b":1,"c":3}'],
    ['keys sorted by code unit, not locale', { b: 1, B: 2, _: 3, a: 4 }, '{"B":2,"_":3,"a":4,"b":1}'],
    ['nested objects sorted too', { z: { y: 1, x: [{ b: 1, a: 2 }] } }, '{"z":{"x":[{"a":2,"b":1}],"y":1}}'],
    ['null member written', { a: null }, '{"a":null}'],
    ['undefined member left out', { a: undefined, b: 1 }, '{"b":1}'],
  ])('%s', (_name, value, expected) => {
    expect(sut(value)).toBe(expected);
  });

  it('is what JSON.parse reads back', () => {
    const value = { path: '/a,"b"\nc', n: [1, null, true], o: { k: '\u0000' } };
    expect(JSON.parse(sut(value))).toEqual(value);
  });

  it.each<[string, unknown]>([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a bigint', 1n],
    ['a Date (times are strings)', new Date(0)],
    ['a function', () => 1],
    ['undefined at the top', undefined],
  ])('refuses %s', (_name, value) => {
    expect(() => sut(value)).toThrow(TypeError);
  });
});
