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
    ],
  },
});
