import { useEffect, useRef } from 'react';

/** Calls `fn(value)` once `value` has stopped changing for `ms`. */
export function useDebouncedEffect<T>(value: T, ms: number, fn: (v: T) => void): void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const t = setTimeout(() => fnRef.current(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
}
