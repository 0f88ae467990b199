/**
 * `npm run verify` (scripts/verify.mjs runs this file from the build):
 * recomputes both hash chains of the database at DATABASE_URL, exactly as
 * `GET /admin/api/integrity` does, prints the same JSON and exits
 *   0 when both chains verify,
 *   1 when one fails (its first_bad_seq says where),
 *   2 when it could not verify at all (database unreachable, not migrated).
 * Reads only; needs no Redis and no other setting.
 */
import type { IntegrityReport } from '@keypin/shared';
import { IntegrityRepository } from './integrity.repository';
import { verifyAll } from './integrity.service';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/keypin';

/** One line per chain for people; the JSON (stdout) is for machines. */
export function summary(report: IntegrityReport): string {
  return (['intercepts', 'audit'] as const)
    .map((chain) => {
      const s = report[chain];
      const from = s.checkpoint_seq === null ? 'seq 1' : `checkpoint ${s.checkpoint_seq}`;
      return s.ok
        ? `${chain}: ok, ${s.checked} records verified from ${from} to head ${s.head_seq} (${s.head_hash})` +
            (s.unsealed > 0 ? `; ${s.unsealed} not sealed yet` : '')
        : `${chain}: BROKEN at seq ${s.first_bad_seq} (${s.checked} records verified from ${from}; head ${s.head_seq})`;
    })
    .join('\n');
}

async function main(): Promise<number> {
  const databaseUrl = process.env['DATABASE_URL']?.trim() || DEFAULT_DATABASE_URL;
  let report: IntegrityReport;
  try {
    report = await verifyAll(new IntegrityRepository(null), databaseUrl);
  } catch (err) {
    process.stderr.write(`verify: could not verify the chains: ${(err as Error).message}\n`);
    return 2;
  }
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  process.stderr.write(`${summary(report)}\n`);
  return report.intercepts.ok && report.audit.ok ? 0 : 1;
}

if (require.main === module) {
  void main().then((code) => process.exit(code));
}
