/**
 * An instance-wide limit split over the serving processes of `WORKERS=N`
 * (docs/workers.md, "What is per process, and what is shared"): each
 * process takes ⌈limit / N⌉, so the instance never holds more than about
 * the limit it was given. 0 (unlimited) stays 0; every process gets at
 * least 1.
 */
export function perProcessShare(limit: number, servingProcesses: number): number {
  if (limit === 0 || servingProcesses <= 1) return limit;
  return Math.max(1, Math.ceil(limit / servingProcesses));
}
