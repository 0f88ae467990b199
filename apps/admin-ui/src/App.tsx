import {
  AppBar,
  Box,
  Container,
  CssBaseline,
  ThemeProvider,
  Toolbar,
  Typography,
  createTheme,
} from '@mui/material';
import { maskKey } from '@keypin/shared';

const theme = createTheme({ colorSchemes: { light: true, dark: true } });

/** The console shell; the screens arrive with the admin API. */
export function App() {
  return (
    <ThemeProvider theme={theme}>
      <CssBaseline />
      <AppBar position="static">
        <Toolbar>
          <Typography variant="h6" component="h1">
            KeyPin
          </Typography>
        </Toolbar>
      </AppBar>
      <Container sx={{ py: 4 }}>
        <Box>
          <Typography variant="body1">
            The admin console is on its way. Keys are shown masked, like {maskKey('abcdefghijklmnopwxyz')}.
          </Typography>
        </Box>
      </Container>
    </ThemeProvider>
  );
}
