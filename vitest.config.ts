import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/lab/global-setup.ts'],
          // Each file brings up its own emulated cluster, on its own subnet and namespaces, so files run
          // side by side, one per core (vitest's default worker count): a lab spends most of its time
          // waiting on restarts, not computing.
          fileParallelism: true,
          // A full rotation of a six-node lab takes about a minute, more on a busy machine.
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
