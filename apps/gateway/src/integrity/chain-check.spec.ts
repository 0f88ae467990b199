import { describe, expect, it } from 'vitest';
import { ChainCheck, type SealedRecord } from './chain-check';
import { chainHash, GENESIS_HASH } from './record-hash';

/** A valid chain of `n` records from `start` (seq 0 and 64 zeros by default). */
function chain(n: number, start = { seq: 0, hash: GENESIS_HASH }): SealedRecord[] {
  const out: SealedRecord[] = [];
  let prev = start.hash;
  for (let i = 1; i <= n; i++) {
    const canonical = JSON.stringify({ n: start.seq + i });
    const hash = chainHash(prev, canonical);
    out.push({ seq: start.seq + i, prevHash: prev, hash, canonical });
    prev = hash;
  }
  return out;
}

const headOf = (records: SealedRecord[], start = { seq: 0, hash: GENESIS_HASH }) => {
  const last = records[records.length - 1];
  return last ? { seq: last.seq, hash: last.hash } : start;
};

function run(
  records: SealedRecord[],
  head: { seq: number; hash: string | null },
  start: { seq: number; hash: string } | null = null,
) {
  const sut = new ChainCheck(start, head);
  for (const r of records) if (!sut.add(r)) break;
  return sut.finish();
}

describe('ChainCheck', () => {
  const ten = chain(10);
  const head = headOf(ten);

  it('accepts an intact chain', () => {
    expect(run(ten, head)).toEqual({ ok: true, checked: 10, first_bad_seq: null });
  });

  it('accepts an empty chain (head 0, 64 zeros)', () => {
    expect(run([], { seq: 0, hash: GENESIS_HASH })).toEqual({ ok: true, checked: 0, first_bad_seq: null });
  });

  it('reports a changed record at its own seq', () => {
    const tampered = ten.map((r) => (r.seq === 4 ? { ...r, canonical: r.canonical.replace('4', '40') } : r));
    expect(run(tampered, head)).toEqual({ ok: false, checked: 3, first_bad_seq: 4 });
  });

  it('reports a changed record whose hash was recomputed at the next seq (its prev_hash no longer matches)', () => {
    const tampered = ten.map((r) => {
      if (r.seq !== 4) return r;
      const canonical = r.canonical.replace('4', '40');
      return { ...r, canonical, hash: chainHash(r.prevHash, canonical) };
    });
    expect(run(tampered, head).first_bad_seq).toBe(5);
  });

  it('reports a rewritten rest of the chain at the head (its hash is not the one recorded)', () => {
    const forged = chain(10).map((r) => ({ ...r }));
    // Record 6 changed and every hash after it recomputed: only the head's recorded hash tells.
    let prev = forged[4]!.hash;
    for (const r of forged.slice(5)) {
      r.canonical = r.seq === 6 ? '{"n":"six"}' : r.canonical;
      r.prevHash = prev;
      r.hash = chainHash(prev, r.canonical);
      prev = r.hash;
    }
    expect(run(forged, head)).toEqual({ ok: false, checked: 10, first_bad_seq: 10 });
  });

  it('reports a deleted record at the missing seq', () => {
    expect(
      run(
        ten.filter((r) => r.seq !== 7),
        head,
      ),
    ).toEqual({ ok: false, checked: 6, first_bad_seq: 7 });
    expect(
      run(
        ten.filter((r) => r.seq !== 1),
        head,
      ).first_bad_seq,
    ).toBe(1);
  });

  it('reports a deleted tail at the first missing seq', () => {
    expect(run(ten.slice(0, 8), head)).toEqual({ ok: false, checked: 8, first_bad_seq: 9 });
    expect(run([], head).first_bad_seq).toBe(1);
  });

  it('reports a record inserted past the head at its seq, even with a correct hash', () => {
    const eleven = chain(11);
    expect(run(eleven, head)).toEqual({ ok: false, checked: 10, first_bad_seq: 11 });
  });

  it('reports a record inserted in a gap left by a deletion at its seq (wrong prev_hash or hash)', () => {
    const forged = ten.map((r) =>
      r.seq === 5 ? { ...r, canonical: '{"n":"forged"}', hash: chainHash(r.prevHash, '{"n":"forged"}') } : r,
    );
    // Its own hash is consistent, but record 6 does not follow it.
    expect(run(forged, head).first_bad_seq).toBe(6);
    const wrongPrev = ten.map((r) => (r.seq === 5 ? { ...r, prevHash: 'f'.repeat(64) } : r));
    expect(run(wrongPrev, head).first_bad_seq).toBe(5);
  });

  it('starts after a checkpoint: the records before it may be gone', () => {
    const cp = { seq: ten[3]!.seq, hash: ten[3]!.hash };
    expect(run(ten.slice(4), head, cp)).toEqual({ ok: true, checked: 6, first_bad_seq: null });
    // A checkpoint with a wrong hash: the first record after it fails.
    expect(run(ten.slice(4), head, { seq: 4, hash: 'e'.repeat(64) }).first_bad_seq).toBe(5);
    // Everything removed up to the head: nothing to read, the checkpoint is the head.
    expect(run([], head, { seq: 10, hash: head.hash })).toEqual({
      ok: true,
      checked: 0,
      first_bad_seq: null,
    });
    expect(run([], head, { seq: 10, hash: 'e'.repeat(64) }).first_bad_seq).toBe(10);
  });

  it('a checkpoint past the head claims seqs never assigned', () => {
    expect(run([], head, { seq: 12, hash: 'e'.repeat(64) }).first_bad_seq).toBe(11);
  });

  it('checks a segment up to a seq without comparing a head hash', () => {
    expect(run(ten.slice(0, 6), { seq: 6, hash: null })).toEqual({
      ok: true,
      checked: 6,
      first_bad_seq: null,
    });
    expect(run(ten.slice(0, 5), { seq: 6, hash: null }).first_bad_seq).toBe(6);
  });

  it('stops at the first failure', () => {
    const sut = new ChainCheck(null, head);
    const tampered = ten.map((r) => (r.seq === 2 ? { ...r, hash: '0'.repeat(64) } : r));
    expect(sut.add(tampered[0]!)).toBe(true);
    expect(sut.add(tampered[1]!)).toBe(false);
    expect(sut.going).toBe(false);
    expect(sut.add(tampered[2]!)).toBe(false);
    expect(sut.finish().first_bad_seq).toBe(2);
  });
});
