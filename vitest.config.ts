import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    maxWorkers: 2,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/lab/global-setup.ts'],
          // Two files side by side, each with its own lab (own namespaces and subnet): the suite takes
          // about 13 instead of 24 minutes on a 2-core machine. vitest's default is one worker less than
          // the cores, so 1 on such a machine: the maxWorkers above says 2.
          fileParallelism: true,
          // A full rotation of a six-node lab takes about a minute, more on a busy machine.
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
