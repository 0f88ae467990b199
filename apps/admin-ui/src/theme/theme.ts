import { createTheme } from '@mui/material/styles';

/**
 * The console's theme, built from a few tokens. Light and dark schemes are
 * both generated as CSS variables and switched with a class on <html>, so a
 * toggle repaints without re-rendering (MUI keeps the choice in localStorage).
 */
const tokens = {
  brand: '#1f6feb',
  brandDark: '#58a6ff',
  danger: '#c62828',
  dangerDark: '#ef5350',
  radius: 8,
  font: '"Inter", "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  mono: '"JetBrains Mono", "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace',
};

export const monoFont = tokens.mono;

export const theme = createTheme({
  cssVariables: { colorSchemeSelector: 'class' },
  colorSchemes: {
    light: {
      palette: {
        primary: { main: tokens.brand },
        error: { main: tokens.danger },
        background: { default: '#f6f8fa', paper: '#ffffff' },
      },
    },
    dark: {
      palette: {
        primary: { main: tokens.brandDark },
        error: { main: tokens.dangerDark },
        background: { default: '#0d1117', paper: '#161b22' },
      },
    },
  },
  shape: { borderRadius: tokens.radius },
  typography: {
    fontFamily: tokens.font,
    h1: { fontSize: '1.5rem', fontWeight: 600 },
    h2: { fontSize: '1.15rem', fontWeight: 600 },
    h3: { fontSize: '1rem', fontWeight: 600 },
  },
  components: {
    MuiButton: {
      defaultProps: { disableElevation: true },
      styleOverrides: { root: { textTransform: 'none', fontWeight: 600 } },
    },
    MuiPaper: { defaultProps: { variant: 'outlined' } },
    MuiAppBar: { defaultProps: { elevation: 0 } },
    MuiTableCell: { styleOverrides: { head: { fontWeight: 600, whiteSpace: 'nowrap' } } },
    MuiTextField: { defaultProps: { size: 'small' } },
    MuiFormControl: { defaultProps: { size: 'small' } },
    MuiSelect: { defaultProps: { size: 'small' } },
  },
});
