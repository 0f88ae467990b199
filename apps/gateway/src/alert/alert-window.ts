/** An intercept as alert windows see it. */
export interface WindowItem {
  id: string;
  at: number; // ms
  ip: string;
}

export interface OpenAlert {
  id: string;
  windowEnd: number; // ms
}

export interface NewWindow {
  items: WindowItem[];
  firstAt: number;
  lastAt: number;
  windowEnd: number;
}

export interface WindowPlan {
  /** Intercepts that fall in an alert already raised: marked alerted, no new alert. */
  attach: WindowItem[];
  /** Windows that reached the threshold: one alert each. */
  windows: NewWindow[];
}

/**
 * Decides which not-yet-alerted intercepts of one key raise an alert.
 *
 * A window opens at an intercept when `threshold` intercepts (it included)
 * fall within `windowMs` of it; the alert covers every intercept until
 * `firstAt + windowMs`, so more intercepts in that window raise no second
 * alert. Intercepts before the end of the key's last alert join that alert.
 * `items` must be sorted by time.
 */
export function planAlerts(
  items: readonly WindowItem[],
  threshold: number,
  windowMs: number,
  open: OpenAlert | null,
): WindowPlan {
  const attach: WindowItem[] = [];
  const windows: NewWindow[] = [];
  let i = 0;
  if (open !== null) {
    while (i < items.length && items[i]!.at < open.windowEnd) attach.push(items[i++]!);
  }
  while (i < items.length) {
    const first = items[i]!;
    const nth = items[i + threshold - 1];
    if (nth === undefined) break;
    if (nth.at - first.at > windowMs) {
      i++;
      continue;
    }
    const windowEnd = first.at + windowMs;
    let j = i;
    while (j < items.length && items[j]!.at <= windowEnd) j++;
    const group = items.slice(i, j);
    windows.push({ items: group, firstAt: first.at, lastAt: group[group.length - 1]!.at, windowEnd });
    i = j;
  }
  return { attach, windows };
}
