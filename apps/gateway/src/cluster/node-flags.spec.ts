import { describe, expect, it } from 'vitest';
import { DEFAULT_SEMI_SPACE_MB, nodeFlagsFor, withNodeFlags } from './node-flags';

describe('withNodeFlags', () => {
  it('adds the semi-space size to what the process was started with', () => {
    expect(withNodeFlags(['--enable-source-maps'], undefined, 64)).toEqual([
      '--enable-source-maps',
      '--max-semi-space-size=64',
    ]);
  });

  it('leaves V8 its default at 0', () => {
    expect(withNodeFlags(['--inspect'], '', 0)).toEqual(['--inspect']);
  });

  it("keeps the operator's own value, on the command line or in NODE_OPTIONS", () => {
    expect(withNodeFlags(['--max-semi-space-size=8'], undefined, 64)).toEqual(['--max-semi-space-size=8']);
    expect(withNodeFlags(['--max-semi-space-size', '8'], undefined, 64)).toEqual([
      '--max-semi-space-size',
      '8',
    ]);
    expect(withNodeFlags([], '--trace-gc  --max-semi-space-size=16', 64)).toEqual([]);
    // A longer flag that merely starts the same way is not the operator's choice.
    expect(withNodeFlags([], '--max-semi-space-size-other=1', 32)).toEqual(['--max-semi-space-size=32']);
  });

  it('does not change the array it was given', () => {
    const argv = ['--a'];
    withNodeFlags(argv, undefined, 64);
    expect(argv).toEqual(['--a']);
  });
});

describe('nodeFlagsFor (npm start, the bench)', () => {
  it('reads NODE_SEMI_SPACE_MB, else the default', () => {
    expect(nodeFlagsFor({})).toEqual([`--max-semi-space-size=${DEFAULT_SEMI_SPACE_MB}`]);
    expect(nodeFlagsFor({ NODE_SEMI_SPACE_MB: ' 32 ' })).toEqual(['--max-semi-space-size=32']);
    expect(nodeFlagsFor({ NODE_SEMI_SPACE_MB: '0' })).toEqual([]);
    expect(nodeFlagsFor({ NODE_OPTIONS: '--max-semi-space-size=4' })).toEqual([]);
  });

  it('leaves a value the configuration refuses for the gateway to report', () => {
    expect(nodeFlagsFor({ NODE_SEMI_SPACE_MB: 'lots' })).toEqual([
      `--max-semi-space-size=${DEFAULT_SEMI_SPACE_MB}`,
    ]);
  });
});
