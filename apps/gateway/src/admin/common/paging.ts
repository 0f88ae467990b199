import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type Page } from '@keypin/shared';
import { invalid } from './validation';

export interface Paging {
  page: number;
  pageSize: number;
  offset: number;
}

function positiveInt(field: string, raw: unknown, def: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  if (typeof raw !== 'string' || !/^\d{1,9}$/.test(raw)) throw invalid(field, 'must be a positive integer');
  const n = Number(raw);
  if (n < 1 || n > max) throw invalid(field, `must be between 1 and ${max}`);
  return n;
}

/** `page` (from 1) and `page_size` (default 20, at most 200) from a query string. */
export function parsePaging(query: Record<string, unknown>): Paging {
  const page = positiveInt('page', query['page'], 1, 1_000_000);
  const pageSize = positiveInt('page_size', query['page_size'], DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  return { page, pageSize, offset: (page - 1) * pageSize };
}

export function pageOf<T>(items: T[], total: number, p: Paging): Page<T> {
  return { items, total, page: p.page, page_size: p.pageSize };
}
