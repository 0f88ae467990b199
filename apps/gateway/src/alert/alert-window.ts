/** An intercept record as alert windows see it. */
export interface WindowItem {
  id: string;
  at: number; // ms
  ip: string;
  /** Refused requests the record stands for (thresholds count requests, not records). */
  count: number;
}

export interface OpenAlert {
  id: string;
  windowEnd: number; // ms
}

export interface NewWindow {
  items: WindowItem[];
  /** Requests in the window: the sum of its items' counts. */
  count: number;
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
 * A window opens at an intercept when `threshold` requests (its own
 * included; a record counts as many requests as it stands for) fall within
 * `windowMs` of it; the alert covers every intercept until
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
  const need = Math.max(1, threshold);
  let i = 0;
  if (open !== null) {
    while (i < items.length && items[i]!.at < open.windowEnd) attach.push(items[i++]!);
  }
  // items[i..reach) hold `requests` requests: the shortest run from i that reaches the threshold.
  let reach = i;
  let requests = 0;
  while (i < items.length) {
    while (reach < items.length && requests < need) requests += items[reach++]!.count;
    if (requests < need) break;
    const first = items[i]!;
    if (items[reach - 1]!.at - first.at > windowMs) {
      requests -= first.count;
      i++;
      continue;
    }
    const w = windowFrom(items, i, first.at + windowMs);
    windows.push(w);
    i += w.items.length;
    reach = i;
    requests = 0;
  }
  return { attach, windows };
}

/** The window opening at items[start]: every item up to `windowEnd`. */
function windowFrom(items: readonly WindowItem[], start: number, windowEnd: number): NewWindow {
  let end = start;
  let count = 0;
  while (end < items.length && items[end]!.at <= windowEnd) count += items[end++]!.count;
  const group = items.slice(start, end);
  return { items: group, count, firstAt: group[0]!.at, lastAt: group[group.length - 1]!.at, windowEnd };
}
