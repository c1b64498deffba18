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
          // One file at a time. Two side by side (maxWorkers: 2; vitest's default is one worker less than
          // the cores, so 1 here) took 16 instead of 26 minutes, but some tests then stalled for minutes
          // (rotate.e2e's etcdadm fault 223 s and once past 300 s, normally 40 s; a stacked-etcd test idle
          // after its run finished). Until that is understood, the suite stays serial.
          fileParallelism: false,
          // A full rotation of a six-node lab takes about a minute, more on a busy machine.
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
