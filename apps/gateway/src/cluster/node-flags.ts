/**
 * The Node/V8 flags a KeyPin process is started with. V8 sizes its heap
 * when the process starts, so these cannot be set from inside a running
 * process: the supervisor passes them to the processes it forks, and
 * `npm start` (scripts/start.mjs) and the bench to the gateway they start.
 * docs/workers.md, "Young generation".
 */

/**
 * NODE_SEMI_SPACE_MB's default: the young generation's semi-space, in MiB.
 * At 64 a serving process scavenges about a quarter as
 * often as at V8's default (16 MiB on 64-bit), for about 1.3 µs less GC per
 * forwarded request and fewer 2–4 ms pauses in the tail (docs/benchmarks.md,
 * 2026-12-04 evening), at about 50 MiB more RSS per serving process under
 * load (the whole `WORKERS=2` tree grew from 473 to 577 MiB).
 */
export const DEFAULT_SEMI_SPACE_MB = 64;

const SEMI_SPACE_FLAG = '--max-semi-space-size';

/**
 * `execArgv` with `--max-semi-space-size=<semiSpaceMb>` added, unless
 * `semiSpaceMb` is 0 (V8's default) or the operator set the flag already,
 * on the command line or in NODE_OPTIONS: theirs wins.
 */
export function withNodeFlags(
  execArgv: readonly string[],
  nodeOptions: string | undefined,
  semiSpaceMb: number,
): string[] {
  const out = [...execArgv];
  if (semiSpaceMb <= 0) return out;
  const given = (arg: string) => arg === SEMI_SPACE_FLAG || arg.startsWith(`${SEMI_SPACE_FLAG}=`);
  if (out.some(given) || (nodeOptions ?? '').split(/\s+/).some(given)) return out;
  out.push(`${SEMI_SPACE_FLAG}=${semiSpaceMb}`);
  return out;
}

/**
 * The flags for a gateway started from a script (`npm start`, the bench):
 * NODE_SEMI_SPACE_MB from `env` when it is a whole number, else the default.
 * A value the gateway's configuration refuses is left to it to report.
 */
export function nodeFlagsFor(env: Readonly<Record<string, string | undefined>>): string[] {
  const raw = (env['NODE_SEMI_SPACE_MB'] ?? '').trim();
  const mb = /^\d+$/.test(raw) ? Number(raw) : DEFAULT_SEMI_SPACE_MB;
  return withNodeFlags([], env['NODE_OPTIONS'], mb);
}
