/**
 * Waits, if need be, so that the next `withinMs` do not cross a UTC
 * midnight: tests that compare "today's" figures (daily counters, date
 * filters) would otherwise fail when a run happens to straddle two days.
 */
export async function notAcrossUtcMidnight(withinMs: number): Promise<void> {
  const now = Date.now();
  const nextMidnight = Math.ceil(now / 86_400_000) * 86_400_000;
  const left = nextMidnight - now;
  if (left < withinMs) await new Promise((r) => setTimeout(r, left + 1000));
}
