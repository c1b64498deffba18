import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // vitest's default is one worker less than the cores: on these 2-core machines, one. Every
    // project must share the value (vitest refuses different ones in one group).
    maxWorkers: 2,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/lab/global-setup.ts'],
          // Each file brings up its own emulated cluster, on its own subnet and namespaces, so two files
          // run side by side: a lab spends most of its time waiting on restarts, not computing.
          fileParallelism: true,
          // A full rotation of a six-node lab takes about a minute, more on a busy machine.
          testTimeout: 300_000,
          // One more try for a test that failed: with two labs side by side, one test (rotate.e2e's
          // etcdadm fault, normally 40 s) once ran out its 300 s and could not be made to fail again.
          // A test that fails twice still fails the run.
          retry: 1,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
