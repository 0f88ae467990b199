import { Alert, Button } from '@mui/material';
import { Link as RouterLink } from 'react-router-dom';
import { PageHeader } from '../components/PageHeader';

export function NotFoundPage() {
  return (
    <>
      <PageHeader title="Page not found" />
      <Alert
        severity="info"
        action={
          <Button component={RouterLink} to="/">
            Dashboard
          </Button>
        }
      >
        There is no page at this address.
      </Alert>
    </>
  );
}
