import { fileURLToPath } from 'node:url';
import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// Nest needs emitted decorator metadata, which esbuild does not produce:
// every project that may load gateway code compiles through SWC.
const swcPlugin = () =>
  swc.vite({
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
  });

export default defineConfig({
  test: {
    reporters: ['default', './scripts/vitest-summary-reporter.mjs'],
    projects: [
      {
        plugins: [swcPlugin()],
        test: {
          name: 'unit',
          include: ['libs/*/src/**/*.spec.ts', 'apps/gateway/src/**/*.spec.ts'],
          environment: 'node',
        },
      },
      {
        plugins: [swcPlugin()],
        test: {
          name: 'integration',
          include: ['apps/gateway/test/**/*.int-spec.ts'],
          environment: 'node',
          // Integration files start real gateway processes and measure timing:
          // run them one at a time on this 2-core machine.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        plugins: [swcPlugin()],
        test: {
          // Gateway classes in-process against the real PostgreSQL and Redis
          // (no gateway process): a fresh database per file.
          name: 'medium',
          include: ['apps/gateway/test/medium/**/*.medium-spec.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Admin console components in a simulated DOM.
        resolve: {
          alias: {
            '@keypin/shared': fileURLToPath(new URL('./libs/shared/src/index.ts', import.meta.url)),
          },
        },
        oxc: { jsx: { runtime: 'automatic' } },
        test: {
          name: 'ui',
          include: ['apps/admin-ui/src/**/*.spec.tsx'],
          environment: 'jsdom',
          setupFiles: ['apps/admin-ui/src/test/setup.ts'],
        },
      },
      {
        // The built console in Chromium against a real gateway process:
        // one file at a time, generous timeouts, and only after the other
        // projects are done (a browser beside the timing-sensitive
        // integration files on a 2-core machine would make both flaky).
        test: {
          name: 'e2e',
          include: ['apps/admin-ui/e2e/**/*.e2e.ts'],
          environment: 'node',
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
