import { Paper } from '@mui/material';
import type { ReactNode } from 'react';
import { DataTable, type DataTableProps } from './DataTable';
import { ErrorAlert } from './ErrorAlert';
import { Pager, type Paging } from './Pager';
import { RefreshBar } from './TableStates';

/** What a list needs of its query: a TanStack `useQuery` result of a page fits. */
export interface PageQueryState<T> {
  data: { items: T[]; total: number } | undefined;
  error: unknown;
  isError: boolean;
  isLoading: boolean;
  isFetching: boolean;
  refetch: () => unknown;
}

/**
 * One page of a list from the API: its error (with a retry), a bar while a
 * new page loads over the old one, the rows (`children`) and the pager.
 */
export function PagedList({
  query,
  errorTitle,
  paging,
  children,
}: {
  query: PageQueryState<unknown>;
  errorTitle: string;
  paging: Paging;
  children: ReactNode;
}) {
  return (
    <>
      <ErrorAlert error={query.error} title={errorTitle} onRetry={() => void query.refetch()} />
      <Paper>
        <RefreshBar active={query.isFetching && !query.isLoading} />
        {children}
        <Pager total={query.data?.total ?? 0} {...paging} />
      </Paper>
    </>
  );
}

/** A {@link PagedList} whose rows are a {@link DataTable}. */
export function PagedTable<T>({
  query,
  errorTitle,
  paging,
  ...table
}: {
  query: PageQueryState<T>;
  errorTitle: string;
  paging: Paging;
} & Omit<DataTableProps<T>, 'rows' | 'loading' | 'failed'>) {
  return (
    <PagedList query={query} errorTitle={errorTitle} paging={paging}>
      <DataTable {...table} rows={query.data?.items ?? []} loading={query.isLoading} failed={query.isError} />
    </PagedList>
  );
}
