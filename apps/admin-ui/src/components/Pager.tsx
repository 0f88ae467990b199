import { TablePagination } from '@mui/material';

export const PAGE_SIZES = [20, 50, 100];

/** Where a list stands and how to move: `page` counts from 1 as the API does. */
export interface Paging {
  page: number;
  pageSize: number;
  onChange: (page: number, pageSize: number) => void;
}

/** Server-side paging. */
export function Pager({ total, page, pageSize, onChange }: Paging & { total: number }) {
  // A page past the end (rows deleted meanwhile) still shows where it is.
  const lastPage = Math.max(0, Math.ceil(total / pageSize) - 1);
  return (
    <TablePagination
      component="div"
      count={total}
      page={Math.min(page - 1, lastPage)}
      rowsPerPage={pageSize}
      rowsPerPageOptions={PAGE_SIZES}
      onPageChange={(_e, p) => onChange(p + 1, pageSize)}
      onRowsPerPageChange={(e) => onChange(1, Number(e.target.value))}
      showFirstButton
      showLastButton
    />
  );
}
