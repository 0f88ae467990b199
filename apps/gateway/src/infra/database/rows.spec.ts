import { describe, expect, it } from 'vitest';
import { queryRows } from './rows';

const runner = (answer: unknown) => ({ query: () => Promise.resolve(answer) });

describe('queryRows', () => {
  it('unwraps the [rows, count] answer TypeORM gives for UPDATE and DELETE', async () => {
    expect(await queryRows(runner([[{ id: 1 }], 1]), 'SELECT 1')).toEqual([{ id: 1 }]);
    expect(await queryRows(runner([[], 0]), 'SELECT 1')).toEqual([]);
  });
  it('passes plain row arrays through', async () => {
    expect(await queryRows(runner([{ id: 1 }, { id: 2 }]), 'SELECT 1')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(await queryRows(runner([]), 'SELECT 1')).toEqual([]);
  });
});
