import { useCallback, useEffect, useRef } from 'react';
import { useSearchParams } from 'react-router-dom';
import { DEFAULT_PAGE_SIZE, type PageQuery } from '@keypin/shared';
import type { Paging } from './Pager';

export type UrlPatch = Record<string, string | number | null | undefined>;

/**
 * The filters of `next` that differ from `current`: what a filter change
 * puts into the address. Only those: a filter applied a moment before (its
 * render still pending, so missing from `current` and from the `next` built
 * on it) is not undone.
 */
export function changedFilters<T extends { [K in keyof T]: string }>(current: T, next: T): Partial<T> {
  const keys = Object.keys(next) as (keyof T)[];
  return Object.fromEntries(
    keys.filter((k) => next[k] !== current[k]).map((k) => [k, next[k]]),
  ) as Partial<T>;
}

/**
 * Filters and paging live in the address (shareable, back button works).
 * `set` merges a patch into the address as it was last set; empty values
 * are removed.
 */
export function useUrlState(): {
  params: URLSearchParams;
  get: (name: string) => string;
  getInt: (name: string, fallback: number) => number;
  set: (patch: UrlPatch) => void;
  /** Paging into the address; the defaults (page 1, 20 rows) leave it clean. */
  setPaging: (page: number, pageSize: number) => void;
} {
  const [params, setParams] = useSearchParams();
  // The router applies a change of address as a transition: until it has
  // rendered, `params` is the old address. A second change in that time
  // builds on the first (kept here) instead of undoing it.
  const latest = useRef(params);
  useEffect(() => {
    latest.current = params;
  }, [params]);
  const get = useCallback((name: string) => params.get(name) ?? '', [params]);
  const getInt = useCallback(
    (name: string, fallback: number) => {
      const v = params.get(name);
      if (v === null || !/^\d{1,9}$/.test(v)) return fallback;
      const n = Number(v);
      return n >= 1 ? n : fallback;
    },
    [params],
  );
  const set = useCallback(
    (patch: UrlPatch) => {
      const next = new URLSearchParams(latest.current);
      for (const [k, v] of Object.entries(patch)) {
        if (v === null || v === undefined || v === '') next.delete(k);
        else next.set(k, String(v));
      }
      latest.current = next;
      setParams(next, { replace: true });
    },
    [setParams],
  );
  const setPaging = useCallback(
    (page: number, pageSize: number) =>
      set({ page: page === 1 ? null : page, page_size: pageSize === DEFAULT_PAGE_SIZE ? null : pageSize }),
    [set],
  );
  return { params, get, getInt, set, setPaging };
}

/** A list's page in the address: `query` for the API, `paging` for its pager. */
export function useUrlPaging(): { query: PageQuery; paging: Paging } {
  const { getInt, setPaging } = useUrlState();
  const page = getInt('page', 1);
  const pageSize = getInt('page_size', DEFAULT_PAGE_SIZE);
  return { query: { page, page_size: pageSize }, paging: { page, pageSize, onChange: setPaging } };
}
