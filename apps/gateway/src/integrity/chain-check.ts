import { chainHash, GENESIS_HASH } from './record-hash';

/** One sealed record as verification sees it: its seal and the canonical JSON of its fields. */
export interface SealedRecord {
  seq: number;
  prevHash: string;
  hash: string;
  canonical: string;
}

/** What verification found; the rest of a ChainState (head, checkpoint, backlog) is read beside it. */
export interface CheckResult {
  ok: boolean;
  checked: number;
  first_bad_seq: number | null;
}

/**
 * Verifies one chain record by record, in seq order, keeping nothing but the
 * running position (so a chain of any length verifies in flat memory).
 *
 * Starts after `start` (the latest checkpoint, or seq 0 with 64 zeros) and
 * expects the records up to `end` (the head: what the sealer last assigned
 * and its hash; or, for a segment, a seq alone). The first seq that fails
 * is the answer:
 * - a record changed → its own seq (its hash no longer matches);
 * - a record removed → the missing seq (the next one present skips it),
 *   the tail removed → the seq after the last one present;
 * - a record inserted → the seq it claims: a seq past the head, or a
 *   `prev_hash` that is not the previous record's hash;
 * - the whole rest rewritten with fresh hashes → the head (its hash no
 *   longer the one the sealer recorded).
 */
export class ChainCheck {
  private expected: number;
  private prev: string;
  private checked = 0;
  private bad: number | null = null;

  constructor(
    private readonly start: { seq: number; hash: string } | null,
    private readonly end: { seq: number; hash: string | null },
  ) {
    this.expected = (start?.seq ?? 0) + 1;
    this.prev = start?.hash ?? GENESIS_HASH;
  }

  /** False once a record failed: nothing after it needs reading. */
  get going(): boolean {
    return this.bad === null;
  }

  /** Checks the next record; false when it (or a record before it) fails. */
  add(r: SealedRecord): boolean {
    if (this.bad !== null) return false;
    if (r.seq !== this.expected) {
      this.bad = Math.min(r.seq, this.expected);
      return false;
    }
    if (r.seq > this.end.seq || r.prevHash !== this.prev || chainHash(this.prev, r.canonical) !== r.hash) {
      this.bad = r.seq;
      return false;
    }
    this.prev = r.hash;
    this.expected++;
    this.checked++;
    return true;
  }

  /** The verdict, once every record up to the end was offered (or one failed). */
  finish(): CheckResult {
    if (this.bad === null) {
      const last = this.expected - 1;
      const { seq, hash } = this.end;
      if (last < seq) this.bad = this.expected;
      else if (last === seq && hash !== null && this.prev !== hash) this.bad = seq;
      // A checkpoint past the head: seqs the sealer never assigned are claimed removed.
      else if (last > seq) this.bad = seq + 1;
    }
    return { ok: this.bad === null, checked: this.checked, first_bad_seq: this.bad };
  }
}
