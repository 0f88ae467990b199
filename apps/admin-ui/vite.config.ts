import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const REACT =
  /node_modules[\\/](react|react-dom|scheduler|react-router|react-router-dom|@tanstack[\\/][^\\/]+)[\\/]/;
const MUI =
  /node_modules[\\/](@mui[\\/](material|system|utils|styled-engine|private-theming|icons-material)|@emotion[\\/][^\\/]+|@popperjs[\\/]core|react-transition-group|stylis|clsx|prop-types|react-is|hoist-non-react-statics|@babel[\\/]runtime)[\\/]/;

/** A package installed at the top of node_modules (not one nested under another package). */
function topLevel(re: RegExp): (id: string) => boolean {
  return (id) => re.test(id) && id.split(/[\\/]node_modules[\\/]/).length === 2;
}

// The console is served by the gateway (and by nginx) under /admin/ui/.
export default defineConfig({
  base: '/admin/ui/',
  plugins: [react()],
  resolve: {
    alias: {
      '@keypin/shared': fileURLToPath(new URL('../../libs/shared/src/index.ts', import.meta.url)),
    },
  },
  // `npm run dev -w @keypin/admin-ui`: the console with hot reload, calling
  // the admin API of a gateway running elsewhere (KEYPIN_URL).
  server: {
    proxy: { '/admin/api': process.env['KEYPIN_URL'] ?? 'http://127.0.0.1:8080' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // React, MUI and friends change less often than the console: their own
    // long-cached files. The chart library (with its own copies of MUI's
    // utilities, nested under it) is split off by a lazy import.
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'react', test: topLevel(REACT), priority: 20 },
            { name: 'mui', test: topLevel(MUI), priority: 10 },
          ],
        },
      },
    },
  },
});
