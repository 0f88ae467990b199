import { useCallback } from 'react';
import { useSearchParams } from 'react-router-dom';
import { DEFAULT_PAGE_SIZE, type PageQuery } from '@keypin/shared';
import type { Paging } from './Pager';

export type UrlPatch = Record<string, string | number | null | undefined>;

/**
 * Filters and paging live in the address (shareable, back button works).
 * `set` merges a patch; empty values are removed.
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
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          for (const [k, v] of Object.entries(patch)) {
            if (v === null || v === undefined || v === '') next.delete(k);
            else next.set(k, String(v));
          }
          return next;
        },
        { replace: true },
      );
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
