import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The console is served by the gateway (and by nginx) under /admin/ui/.
export default defineConfig({
  base: '/admin/ui/',
  plugins: [react()],
  resolve: {
    alias: {
      '@keypin/shared': fileURLToPath(new URL('../../libs/shared/src/index.ts', import.meta.url)),
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
  },
});
